//! The role of the interface a packet arrived on: its `IfaceEntry`, from its array slot
//! (`SFC_IFACES_DIR`) when it has one, else from the hash (`SFC_IFACES_V4`).

use sfc_common::maps::{IfaceEntry, banked_id, iface_direct_slot};

use crate::maps::{SFC_IFACES_DIR, SFC_IFACES_V4};

/// Copies the entry of interface `ifindex` in `bank` into `out` and returns `bank`; an
/// interface `bank` does not have is looked for in the other bank (an interface the live
/// generation does not use may still have packets of the previous one), and that bank
/// returned. `NONE`: in neither. In `bank`, the array slot (`SFC_IFACES_DIR`) first, and the
/// hash when the slot holds another interface of the bank or none (the interface has no slot,
/// or the program was loaded before the slots were written); in the other bank, the hash.
/// A subprogram that copies, so that steering goes on with one kind of pointer (an entry of
/// either map would give the verifier two states to walk for everything after it).
///
/// # Safety
/// `out` is valid for a write of an `IfaceEntry` and aligned for it (a per-CPU map value).
#[inline(never)]
pub unsafe fn find(ifindex: u32, bank: u32, out: *mut IfaceEntry) -> u32 {
    if ifindex == 0 {
        // No interface; an empty slot's `ifindex` is 0 too.
        return NONE;
    }
    for i in 0..2u32 {
        let b = (bank ^ i) & 1;
        // The live bank's slots only: the loader rewrites the other bank's in place (an array
        // value is copied over, not swapped like a hash entry), and a packet reading one then
        // could see half of the old entry and half of the new.
        if i == 0
            && let Some(d) = SFC_IFACES_DIR.get(iface_direct_slot(b, ifindex))
            && d.ifindex == ifindex
        {
            // SAFETY: `out` is the caller's; `d` is a map value (RCU, valid for this run), not
            // `out`'s map.
            unsafe { crate::mem::copy(out, &raw const d.entry) };
            return b;
        }
        // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
        if let Some(e) = unsafe { SFC_IFACES_V4.get(&banked_id(b, ifindex)) } {
            // SAFETY: as above.
            unsafe { crate::mem::copy(out, e) };
            return b;
        }
    }
    NONE
}

/// `find`'s answer for an interface in neither bank.
pub const NONE: u32 = 2;
