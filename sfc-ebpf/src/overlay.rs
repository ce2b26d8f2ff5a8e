//! Multi-host (see `sfc_common::overlay`): sending a hop into the VXLAN overlay, and taking
//! frames in from it.

use aya_ebpf::{
    bindings::{
        BPF_F_TUNINFO_IPV6, TC_ACT_REDIRECT, TC_ACT_SHOT, __sk_buff, bpf_check_mtu_flags::BPF_MTU_CHK_SEGS,
        bpf_check_mtu_ret::BPF_MTU_CHK_RET_SUCCESS, bpf_tunnel_key,
    },
    helpers::{
        bpf_redirect, bpf_redirect_peer,
        generated::{bpf_check_mtu, bpf_skb_get_tunnel_key, bpf_skb_set_tunnel_key},
    },
    programs::TcContext,
};
use sfc_common::{
    DropReason,
    limits::REMOTE_IFINDEX_BASE,
    overlay::{OVL_F_PEER, OvlMac, VTEP_V6},
};

use crate::{
    counters::{self, If},
    maps::{SFC_OVL_PORTS, SFC_REMOTES},
};

/// TTL of the outer IP header.
const OUTER_TTL: u8 = 64;

/// The interface a packet for `ifindex` leaves by: `ifindex` itself when it is local; for a
/// stand-in of an interface on another host, the overlay device, with the tunnel key set
/// (the host's VTEP, `vni`). Negative: the drop reason, negated (`sent_to` reads it back): a
/// plain integer rather than a `Result` (it was a BPF subprogram; inlined, as every hop's calls
/// are, see sfc-ebpf `steer::resteer`).
#[inline(always)]
pub fn send(skb: *mut __sk_buff, ifindex: u32, vni: u32) -> i64 {
    if ifindex < REMOTE_IFINDEX_BASE {
        return i64::from(ifindex);
    }
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain bytes.
    let Some(r) = (unsafe { SFC_REMOTES.get(&ifindex) }) else {
        return -(DropReason::RedirectFailed as i64);
    };
    let out = r.overlay_ifindex;
    // The whole frame against the overlay device's MTU, a GSO packet by its segments
    // (`BPF_MTU_CHK_SEGS`): what does not fit would be dropped past the device, uncounted.
    let mut mtu_len = 0u32;
    // SAFETY: `skb` is the program's context; the helper writes `mtu_len`, which outlives the call.
    let m = unsafe { bpf_check_mtu(skb.cast(), out, &raw mut mtu_len, 0, u64::from(BPF_MTU_CHK_SEGS)) };
    if m != i64::from(BPF_MTU_CHK_RET_SUCCESS) {
        return -(DropReason::OverlayTooBig as i64);
    }
    // Zeroed by `mem::zero`: `mem::zeroed` would be a call to `memset` (see `mem`).
    let mut key = core::mem::MaybeUninit::<bpf_tunnel_key>::uninit();
    // SAFETY: a local's own pointer; all-zero bytes are a valid `bpf_tunnel_key` (integers and
    // unions of integers), and it is one once zeroed.
    let key = unsafe {
        crate::mem::zero(key.as_mut_ptr());
        &mut *key.as_mut_ptr()
    };
    key.tunnel_id = vni;
    key.tunnel_ttl = OUTER_TTL;
    let flags = if r.family == VTEP_V6 {
        let v = r.vtep;
        key.__bindgen_anon_1.remote_ipv6 = [
            u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
            u32::from_ne_bytes([v[4], v[5], v[6], v[7]]),
            u32::from_ne_bytes([v[8], v[9], v[10], v[11]]),
            u32::from_ne_bytes([v[12], v[13], v[14], v[15]]),
        ];
        u64::from(BPF_F_TUNINFO_IPV6)
    } else {
        // Host order: the kernel converts it.
        key.__bindgen_anon_1.remote_ipv4 = u32::from_be_bytes([r.vtep[0], r.vtep[1], r.vtep[2], r.vtep[3]]);
        0
    };
    // SAFETY: `skb` is the program's context; the helper reads `key`, which outlives the call.
    let s = unsafe { bpf_skb_set_tunnel_key(skb, &raw mut *key, size_of::<bpf_tunnel_key>() as u32, flags) };
    if s != 0 {
        return -(DropReason::RedirectFailed as i64);
    }
    i64::from(out)
}

/// `sfc_tc_overlay`: a frame in from another host goes to the local interface whose MAC it is
/// addressed to (a member's ingress, forward; its egress, reverse; a destination or source
/// port, delivery). Anything else is dropped and counted: the overlay device is sfc's own.
#[inline(always)]
pub fn receive(ctx: &TcContext) -> i32 {
    match try_receive(ctx) {
        Ok(verdict) => verdict,
        Err(reason) => {
            counters::drop(reason);
            TC_ACT_SHOT
        }
    }
}

#[inline(always)]
fn try_receive(ctx: &TcContext) -> Result<i32, DropReason> {
    // SAFETY: the context pointer the kernel handed the program; `ifindex` is readable.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // As in `send`.
    let mut key = core::mem::MaybeUninit::<bpf_tunnel_key>::uninit();
    // SAFETY: as in `send`.
    let key = unsafe {
        crate::mem::zero(key.as_mut_ptr());
        &mut *key.as_mut_ptr()
    };
    let size = size_of::<bpf_tunnel_key>() as u32;
    // The kernel hands out a key only to a caller asking for its underlay's family (-EPROTO
    // otherwise): IPv4 first, then IPv6.
    // SAFETY: the program's context; the helper writes `key`, which outlives the call.
    let mut r = unsafe { bpf_skb_get_tunnel_key(ctx.skb.skb, &raw mut *key, size, 0) };
    if r != 0 {
        // SAFETY: as above.
        r = unsafe { bpf_skb_get_tunnel_key(ctx.skb.skb, &raw mut *key, size, u64::from(BPF_F_TUNINFO_IPV6)) };
    }
    // Without a tunnel key the frame did not come through VXLAN. The VNI names the chain and
    // SI the sender was at; the MAC alone says where the frame goes (a packet finishing its
    // path after its flow left the chain comes with chain 0 and must not be dropped).
    if r != 0 {
        return Err(DropReason::OverlayUnknown);
    }
    let mac = ctx.load::<[u8; 6]>(0).map_err(|_| DropReason::OverlayUnknown)?;
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
    let port = (unsafe { SFC_OVL_PORTS.get(&OvlMac { mac, _pad: [0; 2] }) }).copied().ok_or(DropReason::OverlayUnknown)?;
    // SAFETY: helper calls with plain integer arguments.
    let sent = unsafe {
        if port.flags & OVL_F_PEER != 0 { bpf_redirect_peer(port.ifindex, 0) } else { bpf_redirect(port.ifindex, 0) }
    };
    if sent != i64::from(TC_ACT_REDIRECT) {
        return Err(DropReason::RedirectFailed);
    }
    counters::by_ifindex(ifindex, If::FromSf);
    Ok(TC_ACT_REDIRECT)
}

/// `send`'s answer as a `Result`.
#[inline(always)]
pub fn sent_to(r: i64) -> Result<u32, DropReason> {
    if r >= 0 {
        Ok(r as u32)
    } else if r == -(DropReason::OverlayTooBig as i64) {
        Err(DropReason::OverlayTooBig)
    } else {
        Err(DropReason::RedirectFailed)
    }
}
