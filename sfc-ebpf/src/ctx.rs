//! What steering needs from a program context, so the same code runs from tc and XDP (as
//! cilium's `lib/overloadable.h` does): packet bounds, length, ingress interface, and the one
//! step that differs, what to do to a packet before it is redirected.

use aya_ebpf::{
    bindings::bpf_check_mtu_ret::{BPF_MTU_CHK_RET_FRAG_NEEDED, BPF_MTU_CHK_RET_SUCCESS},
    helpers::generated::{bpf_check_mtu, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};
use sfc_common::{DropReason, maps::FlowKey};

use crate::{csum, parse::Parsed};

pub trait PacketCtx {
    /// Interface counters in `IfaceEntry::stats_slot`'s array slot and hop counters in their
    /// `HopHome` slot (tc), or by key in a hash (XDP: the interface slot, a value read from a
    /// map, costs its verifier 120,000 more instructions of the 1,000,000 it may use, with less
    /// than 180,000 left).
    const SLOT_COUNTERS: bool;
    /// The ingress interface's entry from its array slot (`iface::find`, tc), or from the
    /// hash (XDP: with the slot its verifier goes past 1,000,000 instructions; without, 568,000).
    const IFACE_SLOTS: bool;
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// Packet length in bytes (for counters).
    fn len(&self) -> u32;
    /// The interface the packet arrived on.
    fn ifindex(&self) -> u32;
    /// Makes the packet fit to be handed to `ifindex`, or says why it cannot be; returns the
    /// interface to redirect to (the overlay device for an interface on another host, with
    /// `vni` in the tunnel key).
    fn before_redirect(&self, p: &Parsed, key: &FlowKey, ifindex: u32, vni: u32) -> Result<u32, DropReason>;
    /// The frame's Ethernet source address, copied out by a helper (not read through the packet
    /// pointer: a bounds check here would give the verifier a second packet range to carry
    /// through the whole program).
    fn src_mac(&self) -> Option<[u8; 6]>;
    /// The frame's Ethernet destination address, through a helper (as `src_mac`).
    fn dst_mac(&self) -> Option<[u8; 6]>;
    /// Sends a copy of the frame, addressed to `mac`, out of `ifindex` (into what is behind it),
    /// and leaves the frame addressed to `restore`. `false`: no copy was sent. Invalidates
    /// packet pointers (the helper may move the data).
    fn copy_to(&self, ifindex: u32, mac: [u8; 6], restore: [u8; 6]) -> bool;
    /// A `sfc trace --probe` packet (`PROBE_MARK`): its tap copies are traced, not sent.
    fn is_probe(&self) -> bool;
    /// Two bytes at `off` (network order), through a helper.
    fn load_u16(&self, off: u32) -> Option<u16>;
    /// Puts `h` between the Ethernet header and the packet, under `ethertype` (an SFC-aware
    /// member's MPLS or NSH header). Invalidates packet pointers.
    fn push_header(&self, ethertype: u16, h: &[u8]) -> Result<(), DropReason>;
    /// Reads and removes the MPLS or NSH header of a frame back from an SFC-aware member
    /// (`IF_F_DECAP`), into `d`. Invalidates packet pointers.
    fn pop_header(&self, decap: bool, d: &mut crate::encap::Decap) -> Result<(), DropReason>;
}

impl PacketCtx for TcContext {
    const SLOT_COUNTERS: bool = true;
    const IFACE_SLOTS: bool = true;

    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        TcContext::len(self)
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        unsafe { (*self.skb.skb).ifindex }
    }
    /// The skb travels on with its checksum state and GSO metadata: nothing to do, unless the
    /// target is on another host (`overlay::send`).
    #[inline(always)]
    fn before_redirect(&self, _: &Parsed, _: &FlowKey, ifindex: u32, vni: u32) -> Result<u32, DropReason> {
        crate::overlay::sent_to(crate::overlay::send(self.skb.skb, ifindex, vni))
    }
    #[inline(always)]
    fn src_mac(&self) -> Option<[u8; 6]> {
        self.load::<[u8; 6]>(6).ok()
    }
    #[inline(always)]
    fn dst_mac(&self) -> Option<[u8; 6]> {
        self.load::<[u8; 6]>(0).ok()
    }
    #[inline(always)]
    fn copy_to(&self, ifindex: u32, mac: [u8; 6], restore: [u8; 6]) -> bool {
        if self.store(0, &mac, 0).is_err() {
            return false;
        }
        let sent = self.clone_redirect(ifindex, 0).is_ok();
        // The frame itself goes on addressed as before, sent or not.
        let _ = self.store(0, &restore, 0);
        sent
    }
    #[inline(always)]
    fn is_probe(&self) -> bool {
        // SAFETY: the context pointer the kernel handed the program; reading `mark` is allowed
        // for tc programs.
        unsafe { (*self.skb.skb).mark == sfc_common::trace::PROBE_MARK }
    }
    #[inline(always)]
    fn load_u16(&self, off: u32) -> Option<u16> {
        self.load::<[u8; 2]>(off as usize).ok().map(u16::from_be_bytes)
    }
    #[inline(always)]
    fn push_header(&self, ethertype: u16, h: &[u8]) -> Result<(), DropReason> {
        crate::encap::push_tc(self, ethertype, h)
    }
    /// tc cannot remove a header from a non-IP skb (the loader runs XDP where one comes back):
    /// such a frame is dropped, never handed on with the header.
    #[inline(always)]
    fn pop_header(&self, decap: bool, d: &mut crate::encap::Decap) -> Result<(), DropReason> {
        d.on = 0;
        if !decap {
            return Ok(());
        }
        match self.load_u16(12) {
            Some(sfc_common::maps::ETH_P_MPLS_UC | sfc_common::maps::ETH_P_NSH) => Err(DropReason::EncapFailed),
            _ => Ok(()),
        }
    }
}

impl PacketCtx for XdpContext {
    const SLOT_COUNTERS: bool = false;
    const IFACE_SLOTS: bool = false;

    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> u32 {
        (XdpContext::data_end(self) - XdpContext::data(self)) as u32
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        unsafe { (*self.ctx).ingress_ifindex }
    }
    /// An `xdp_frame` carries no checksum note, so an offloaded checksum is completed here; and
    /// a frame the target cannot send would be dropped by the kernel uncounted, so it is
    /// dropped (and counted) here. An interface on another host (a stand-in ifindex) is no
    /// interface here: the MTU check fails and the frame is dropped as `redirect_failed` (the
    /// loader keeps XDP off chains that cross hosts: tunnel keys are tc's).
    #[inline(always)]
    fn before_redirect(&self, p: &Parsed, key: &FlowKey, ifindex: u32, _vni: u32) -> Result<u32, DropReason> {
        // The IP packet's length against the target's MTU (VLAN tags do not count, as in the
        // kernel's own forwarding check).
        let mut mtu_len = (self.len()).saturating_sub(u32::from(p.ip_off));
        let r = unsafe { bpf_check_mtu(self.ctx.cast(), ifindex, &raw mut mtu_len, 0, 0) };
        match r {
            r if r == i64::from(BPF_MTU_CHK_RET_SUCCESS) => {}
            r if r == i64::from(BPF_MTU_CHK_RET_FRAG_NEEDED) => return Err(DropReason::TooBig),
            // No such interface in this namespace: the redirect would fail too.
            _ => return Err(DropReason::RedirectFailed),
        }
        // Last: a packet that is dropped leaves the program as it came.
        csum::complete(self, p, key)?;
        Ok(ifindex)
    }
    #[inline(always)]
    fn src_mac(&self) -> Option<[u8; 6]> {
        let mut mac = [0u8; 6];
        // SAFETY: the helper writes at most 6 bytes into `mac`, which lives across the call.
        let r = unsafe { bpf_xdp_load_bytes(self.ctx, 6, mac.as_mut_ptr().cast(), 6) };
        (r == 0).then_some(mac)
    }
    #[inline(always)]
    fn dst_mac(&self) -> Option<[u8; 6]> {
        None
    }
    /// XDP has no way to copy a frame (the loader refuses tap groups on XDP interfaces; a copy
    /// asked for anyway is counted as `tap_copy_failed`).
    #[inline(always)]
    fn copy_to(&self, _: u32, _: [u8; 6], _: [u8; 6]) -> bool {
        false
    }
    /// An XDP probe has no mark; it makes no copies either.
    #[inline(always)]
    fn is_probe(&self) -> bool {
        false
    }
    #[inline(always)]
    fn load_u16(&self, off: u32) -> Option<u16> {
        let mut b = [0u8; 2];
        // SAFETY: the helper writes at most 2 bytes into `b`, which lives across the call.
        let r = unsafe { bpf_xdp_load_bytes(self.ctx, off, b.as_mut_ptr().cast(), 2) };
        (r == 0).then(|| u16::from_be_bytes(b))
    }
    #[inline(always)]
    fn push_header(&self, ethertype: u16, h: &[u8]) -> Result<(), DropReason> {
        crate::encap::push_xdp(self, ethertype, h)
    }
    #[inline(always)]
    fn pop_header(&self, decap: bool, d: &mut crate::encap::Decap) -> Result<(), DropReason> {
        crate::encap::pop(self, decap, d)
    }
}
