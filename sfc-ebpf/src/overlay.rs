//! Multi-host (see `sfc_common::overlay`): sending a hop into the VXLAN overlay, and taking
//! frames in from it.

use aya_ebpf::{
    bindings::{
        BPF_F_TUNINFO_IPV6, TC_ACT_REDIRECT, TC_ACT_SHOT, __sk_buff, bpf_tunnel_key,
        bpf_check_mtu_ret::BPF_MTU_CHK_RET_SUCCESS,
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
/// (the host's VTEP, `vni`). Negative: the drop reason, negated. A BPF subprogram (called for
/// every redirect, local or not: one state for the verifier after it).
#[inline(never)]
pub fn send(skb: *mut __sk_buff, ifindex: u32, vni: u32) -> i64 {
    if ifindex < REMOTE_IFINDEX_BASE {
        return i64::from(ifindex);
    }
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain bytes.
    let Some(r) = (unsafe { SFC_REMOTES.get(&ifindex) }) else {
        return -(DropReason::RedirectFailed as i64);
    };
    let out = r.overlay_ifindex;
    // The whole frame against the overlay device's MTU (the kernel checks a GSO packet's
    // segments): what does not fit would be dropped past the device, uncounted.
    let mut mtu_len = 0u32;
    // SAFETY: `skb` is the program's context; the helper writes `mtu_len`, which outlives the call.
    let m = unsafe { bpf_check_mtu(skb.cast(), out, &raw mut mtu_len, 0, 0) };
    if m != i64::from(BPF_MTU_CHK_RET_SUCCESS) {
        return -(DropReason::OverlayTooBig as i64);
    }
    // SAFETY: all-zero bytes are a valid `bpf_tunnel_key` (integers and unions of integers).
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
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
    let s = unsafe { bpf_skb_set_tunnel_key(skb, &raw mut key, size_of::<bpf_tunnel_key>() as u32, flags) };
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
    // SAFETY: the context pointer the kernel handed the program; `ifindex` is readable.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: all-zero bytes are a valid `bpf_tunnel_key`.
    let mut key: bpf_tunnel_key = unsafe { core::mem::zeroed() };
    // The kernel hands out a key only to a caller asking for its underlay's family (-EPROTO
    // otherwise): IPv4 first, then IPv6.
    // SAFETY: the program's context; the helper writes `key`, which outlives the call.
    let mut r = unsafe { bpf_skb_get_tunnel_key(ctx.skb.skb, &raw mut key, size_of::<bpf_tunnel_key>() as u32, 0) };
    if r != 0 {
        // SAFETY: as above.
        r = unsafe {
            bpf_skb_get_tunnel_key(ctx.skb.skb, &raw mut key, size_of::<bpf_tunnel_key>() as u32, u64::from(BPF_F_TUNINFO_IPV6))
        };
    }
    // A VNI without a chain in it is not sfc's.
    if r != 0 || key.tunnel_id >> 8 == 0 {
        counters::drop(DropReason::OverlayUnknown);
        return TC_ACT_SHOT;
    }
    let Ok(mac) = ctx.load::<[u8; 6]>(0) else {
        counters::drop(DropReason::OverlayUnknown);
        return TC_ACT_SHOT;
    };
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
    let Some(port) = (unsafe { SFC_OVL_PORTS.get(&OvlMac { mac, _pad: [0; 2] }) }).copied() else {
        counters::drop(DropReason::OverlayUnknown);
        return TC_ACT_SHOT;
    };
    // SAFETY: helper calls with plain integer arguments.
    let sent = unsafe {
        if port.flags & OVL_F_PEER != 0 { bpf_redirect_peer(port.ifindex, 0) } else { bpf_redirect(port.ifindex, 0) }
    };
    if sent != i64::from(TC_ACT_REDIRECT) {
        counters::drop(DropReason::RedirectFailed);
        return TC_ACT_SHOT;
    }
    counters::iface(ifindex, If::FromSf);
    TC_ACT_REDIRECT
}
