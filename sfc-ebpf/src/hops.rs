//! Where a packet is on its flow's path: the hop of a port pair among the flow's members, the
//! hops still ahead in a presence bitmap, and which of two paths a packet in flight across a
//! re-resolution took. Branch-free arithmetic over a flow entry's fixed-size arrays, for
//! steering (`steer`) and the tap copies (`taps`).

use sfc_common::{limits::MAX_HOPS, maps::FlowEntry};

/// Whether a packet coming back from the SF at hop `c` of the current path and hop `q` of the
/// previous one entered the chain before the flow was re-resolved. Packets carry no chain
/// metadata through SFC-unaware SFs, but routing SFs decrement the TTL: the packet has crossed
/// `flow.ttl - ttl` of them, which tells the two paths apart when their prefixes differ in length.
/// Otherwise the current path wins (with equal prefixes both lead to a whole path anyway).
#[inline(always)]
pub fn came_by_prev(flow: &FlowEntry, ttl: u8, c: usize, q: usize) -> bool {
    if flow.ttl == 0 || ttl > flow.ttl {
        return false;
    }
    let crossed = u32::from(flow.ttl - ttl);
    let upto = |h: usize| -> u16 { ((2u32 << (h & (MAX_HOPS - 1))) - 1) as u16 };
    let via_cur = (flow.present & upto(c)).count_ones();
    let via_prev = (flow.prev_present & upto(q)).count_ones();
    crossed == via_prev && crossed != via_cur
}

/// The hop of `members` at which the flow was sent into port pair `pp`.
///
/// Branch-free (a port pair is on a path at most once, validated): a scan that returns at the
/// first match would hand the verifier one path per position, and two such scans in a row,
/// then steering's search for the next hop (`steer::forward`), multiply into more states than
/// it accepts.
#[inline(always)]
pub fn hop_of(members: &[u16; MAX_HOPS], n_hops: u8, pp: u32) -> Option<usize> {
    let (mut found, mut pos) = (0u32, 0u32);
    for (h, m) in members.iter().enumerate() {
        let x = u32::from(*m) ^ pp; // 0 only on a match
        let hit = ((x | x.wrapping_neg()) >> 31) ^ 1;
        found |= hit;
        pos += hit * h as u32;
    }
    let pos = (pos as usize) & (MAX_HOPS - 1);
    (found != 0 && pos < usize::from(n_hops)).then_some(pos)
}

/// Bits `from..n` of a hop bitmap.
#[inline(always)]
pub fn hops_from(present: u16, from: usize, n: u8) -> u32 {
    let below_n = (1u32 << (u32::from(n) & 31)).wrapping_sub(1);
    let below_from = (1u32 << (from as u32 & 31)).wrapping_sub(1);
    u32::from(present) & below_n & !below_from
}
