//! Health probes coming back from a service function (see `sfc_common::probe`): recognised at an
//! SF's egress, recorded for the prober, consumed.

use sfc_common::probe::MAGIC;

use crate::{maps::SFC_PROBES, parse::Parsed};

/// Whether the UDP datagram `p` (to the probe port, at the egress of port pair `port_pair`) is a
/// probe; if so, and it came back out of the member it was sent into, its sequence number is
/// recorded. A probe is consumed wherever it shows up.
#[inline(always)]
pub fn returned(start: usize, end: usize, p: &Parsed, port_pair: u32) -> bool {
    // The payload after the 8-byte UDP header (the offset masked for the verifier, as the
    // parser does).
    let at = start + usize::from(p.l4_off & 0x3fff) + 8;
    if at + 20 > end {
        return false;
    }
    // SAFETY: `at + 20 <= end` was checked above: the 20 bytes read here are in the packet.
    let magic = unsafe { core::ptr::read_unaligned(at as *const [u8; 8]) };
    if magic != MAGIC {
        return false;
    }
    // SAFETY: inside the 20 bytes checked above.
    let pp = u32::from_be(unsafe { core::ptr::read_unaligned((at + 8) as *const u32) });
    // SAFETY: inside the 20 bytes checked above.
    let seq = u64::from_be(unsafe { core::ptr::read_unaligned((at + 12) as *const u64) });
    if pp == port_pair
        && let Some(slot) = SFC_PROBES.get_ptr_mut(pp) {
            // SAFETY: a valid pointer to an element of an array map of u64.
            unsafe { *slot = seq };
        }
    true
}
