//! Tap groups (`tap_enabled`): copies of a chain's packets for passive functions. Steering
//! notes the flow's path (`note`, for flows whose chain has taps); once the packet's own way is
//! decided, the entry point copies it to the members of the tap hops it passed (`copy_to_taps`),
//! each into its ingress, as the tap's group samples them. What a tap member sends back is
//! dropped by steering (`IF_F_TAP`).

use aya_ebpf::helpers::generated::bpf_get_prandom_u32;
use sfc_common::{
    DropReason,
    limits::MAX_HOPS,
    maps::{DIR_FORWARD, DIR_REVERSE, FLOW_F_REVERSE, FlowEntry, HopStatsKey, MAX_TAPS_IN_A_ROW, PP_F_DOWN, PP_F_NO_MAC, banked_id},
};

use crate::{
    counters,
    ctx::PacketCtx,
    flow, hops,
    maps::{SFC_GROUPS_V2, SFC_SCRATCH, SFC_TAP_COUNT, Scratch, port_pair},
    trace,
};

/// Records the flow's path for `copy_to_taps`: its current or previous members (as the packet
/// follows), where the packet came from and the hop it goes to. A copy of the entry, so a flow
/// the full table (or the new-flow cap) kept in scratch only is copied too.
#[inline(always)]
pub fn note(s: &mut Scratch, flow: *const FlowEntry, prev: bool, from: usize, ifindex: u32, bank: u32, next: usize) {
    // SAFETY: a pointer steering got from a flow-table lookup (or the scratch copy), valid for
    // this program run.
    let f = unsafe { &*flow };
    s.taps.ifindex = ifindex;
    s.taps.bank = bank;
    s.taps.chain_id = f.chain_id;
    s.taps.from = from as u8;
    s.taps.next = next as u8;
    s.taps.reverse = u8::from(f.flags & FLOW_F_REVERSE != 0);
    // Field by field, map value to map value: a tuple would be built on the stack, which the
    // copies' frames share with this one.
    if prev {
        s.taps.members = f.prev_members;
        s.taps.n_hops = f.prev_n_hops;
        s.taps.present = f.prev_present;
    } else {
        s.taps.members = f.members;
        s.taps.n_hops = f.n_hops;
        s.taps.present = f.present;
    }
}

/// Sends copies of the packet to the members of the tap hops between where steering took the
/// flow from and the hop it sent the packet to (at most `MAX_TAPS_IN_A_ROW`, validated), each
/// into its ingress, as its group samples them; the packet itself is left as it was. Called by
/// the entry points once the packet's own way is decided, and a subprogram: it is verified for
/// the few states there, not for every path through steering (and its helpers invalidate
/// packet pointers, which nothing after it reads). A copy that cannot be made (the member is
/// down, the clone refused) is counted as `tap_copy_failed`: a lost copy, not a lost packet.
/// A probe's copies are traced (to members that are up), never sent, and leave the sampling
/// as it was.
#[inline(never)]
pub fn copy_to_taps<C: PacketCtx>(ctx: &C) {
    let Some(s) = SFC_SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's element of a per-CPU array only this program touches.
    let s = unsafe { &mut *s };
    let t = &s.taps;
    if t.ifindex == 0 || t.ifindex != ctx.ifindex() {
        return;
    }
    let members = &t.members;
    // Tap hops hold a member but are not crossed (`present` leaves them out).
    let taps = hops::hops_from(flow::presence(members) & !t.present, usize::from(t.from), t.n_hops)
        & ((1u32 << (u32::from(t.next) & 31)).wrapping_sub(1));
    if taps == 0 {
        return;
    }
    // XDP cannot copy a frame (the loader refuses taps there): nothing to do, nothing lost.
    let Some(restore) = ctx.dst_mac() else { return };
    let (bank, chain_id, n_hops, reverse) = (t.bank, t.chain_id, t.n_hops, t.reverse != 0);
    let probe = ctx.is_probe();
    let mut left = taps;
    for _ in 0..MAX_TAPS_IN_A_ROW {
        if left == 0 {
            break;
        }
        // The lowest set bit's position, without a scan (as in `steer::forward`).
        let h = ((left & left.wrapping_neg()) - 1).count_ones() as usize;
        // As in `forward`: a volatile read keeps the mask LLVM would prove redundant.
        // SAFETY: reading a local.
        let h = unsafe { core::ptr::read_volatile(&raw const h) } & (MAX_HOPS - 1);
        left &= left - 1;
        let pp_id = u32::from(members[h]);
        let Some(pp) = port_pair(pp_id) else {
            counters::drop(DropReason::TapCopyFailed);
            continue;
        };
        let usable = pp.flags & (PP_F_DOWN | PP_F_NO_MAC) == 0;
        if probe && !usable {
            continue;
        }
        if !probe && !tap_sampled(bank, pp.group) {
            continue;
        }
        let (position, dir) = if reverse { (usize::from(n_hops).wrapping_sub(1).wrapping_sub(h), DIR_REVERSE) } else { (h, DIR_FORWARD) };
        let len = ctx.len();
        if !probe {
            if !usable || !ctx.copy_to(pp.ingress_ifindex, pp.ingress_mac, restore) {
                counters::drop(DropReason::TapCopyFailed);
                continue;
            }
            counters::hop(&HopStatsKey { chain_id, hop: position as u32, port_pair: pp_id, dir }, len);
        }
        trace::tapped(pp.ingress_ifindex, pp_id, (position as u32 & 0xffff) | (dir << 16), len);
    }
}

/// Whether tap group `group` copies this packet: 1 in `tap_every` (per CPU), and of those the
/// share `tap_threshold` says.
#[inline(always)]
fn tap_sampled(bank: u32, group: u32) -> bool {
    // SAFETY: map lookups' references, valid for this program run (RCU); plain integers.
    let g = unsafe { SFC_GROUPS_V2.get(&banked_id(bank, group)).or_else(|| SFC_GROUPS_V2.get(&banked_id(bank ^ 1, group))) };
    let Some(g) = g else { return false };
    if g.tap_every > 1 {
        let Some(c) = SFC_TAP_COUNT.get_ptr_mut(group) else { return false };
        // SAFETY: this CPU's slot of a per-CPU array.
        let seen = unsafe { *c };
        // SAFETY: as above.
        unsafe { *c = if seen.wrapping_add(1) >= g.tap_every { 0 } else { seen.wrapping_add(1) } };
        if seen != 0 {
            return false;
        }
    }
    // SAFETY: a helper without arguments.
    g.tap_threshold == u32::MAX || unsafe { bpf_get_prandom_u32() } <= g.tap_threshold
}
