//! Counters: per chain/hop/member, per interface, and drops by reason. All per-CPU, so the hot
//! path never contends; the loader sums across CPUs.

use sfc_common::{
    DropReason,
    maps::{Counter, HopStatsKey, IfStats},
};

use crate::maps::{SFC_DROPS, SFC_HOP_HOMES, SFC_HOP_SLOTS, SFC_HOP_STATS, SFC_IF_STATS_V2, SFC_IF_STATS_V3};

const BPF_NOEXIST: u64 = 1;

/// Not inlined: called from several places, and each inlined copy would get its own stack slots.
#[inline(never)]
pub fn hop(key: &HopStatsKey, bytes: u32) {
    // One lookup per packet: the slot is created (zero on every CPU) only by a member's first
    // packet anywhere. Losing that race to another CPU is fine, the entry then exists.
    let c = if let Some(c) = SFC_HOP_STATS.get_ptr_mut(key) {
        c
    } else {
        // Zeroed by `mem::zero`: `Counter::default()` is a call to `memset`, a function whose
        // frame counts against the stack on kernels before 6.9 (see `sfc_tc_ingress`).
        let mut zero = core::mem::MaybeUninit::<Counter>::uninit();
        // SAFETY: a local's own pointer; zeros are a valid `Counter` (two integers), which it
        // is once zeroed. Borrowed in place: a move out would be a `memset` again.
        let zero = unsafe {
            crate::mem::zero(zero.as_mut_ptr());
            &*zero.as_ptr()
        };
        let _ = SFC_HOP_STATS.insert(key, zero, BPF_NOEXIST);
        let Some(c) = SFC_HOP_STATS.get_ptr_mut(key) else { return };
        c
    };
    // SAFETY: this CPU's value of a per-CPU map; only this CPU writes it.
    unsafe { (*c).add(1, u64::from(bytes)) };
}

/// `hop` for the tc program: in the port pair's array slot when this is its home hop
/// (`HopHome`), else in the hash. Inlined: every hop's (see `steer::resteer`).
#[inline(always)]
pub fn hop_slot(key: &HopStatsKey, bytes: u32) {
    if let Some(h) = SFC_HOP_HOMES.get(key.port_pair)
        && h.slot != 0
        && h.chain_id == key.chain_id
        && u32::from(h.hop) == key.hop
    {
        if let Some(c) = SFC_HOP_SLOTS.get_ptr_mut(u32::from(h.slot) * 2 + (key.dir & 1)) {
            // SAFETY: this CPU's value of a per-CPU map; only this CPU writes it.
            unsafe { (*c).add(1, u64::from(bytes)) };
        }
        return;
    }
    hop(key, bytes);
}

/// Which per-interface counter to bump.
#[derive(Clone, Copy)]
pub enum If {
    Classified,
    Unclassified,
    FromSf,
    Malformed,
    Recomputed,
}

/// The counters of the interface whose `IfaceEntry::stats_slot` is `slot` (tc). Inlined: every
/// packet's (see `steer::resteer`).
#[inline(always)]
pub fn iface(slot: u32, what: If) {
    if let Some(s) = SFC_IF_STATS_V3.get_ptr_mut(slot) {
        // SAFETY: this CPU's value of a per-CPU map; only this CPU writes it.
        bump(unsafe { &mut *s }, what);
    }
}

/// The counters of interface `ifindex`, in the hash: XDP's (`PacketCtx::SLOT_COUNTERS`), and
/// the overlay device's, which has no `IfaceEntry` and so no slot.
#[inline(never)]
pub fn by_ifindex(ifindex: u32, what: If) {
    // As `hop`: one lookup, the slot created by the device's first packet.
    let s = if let Some(s) = SFC_IF_STATS_V2.get_ptr_mut(&ifindex) {
        s
    } else {
        let _ = SFC_IF_STATS_V2.insert(&ifindex, &IfStats::default(), BPF_NOEXIST);
        let Some(s) = SFC_IF_STATS_V2.get_ptr_mut(&ifindex) else { return };
        s
    };
    // SAFETY: this CPU's value of a per-CPU map; only this CPU writes it.
    bump(unsafe { &mut *s }, what);
}

#[inline(always)]
fn bump(s: &mut IfStats, what: If) {
    match what {
        If::Classified => s.classified += 1,
        If::Unclassified => s.unclassified += 1,
        If::FromSf => s.from_sf += 1,
        If::Malformed => s.malformed += 1,
        If::Recomputed => s.recomputed += 1,
    }
}

#[inline(always)]
pub fn drop(reason: DropReason) {
    if let Some(c) = SFC_DROPS.get_ptr_mut(reason as u32) {
        unsafe { *c += 1 };
    }
}
