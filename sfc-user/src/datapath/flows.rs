//! The flow table as the loader keeps it: a cache the datapath fills, which the loader ages
//! (idle entries, closed TCP flows, tombstones), flushes on request, and accounts for (entries
//! created, new flows capped, entries removed, and from those what the LRU evicted). Also the
//! new-flow rate cap the datapath enforces (`SFC_LIMITS`).

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, PerCpuValues};
use serde::Serialize;
use sfc_common::maps::{
    FLOW_F_CLOSING, FLOW_STAT_CAPPED, FLOW_STAT_CREATED, FLOW_STAT_REMOVED, FlowEntry, FlowKey, Limits, MAP_FLOW_STATS,
    MAP_FLOWS, MAP_LIMITS,
};

use super::{
    Location, Result,
    maps::{map_err, typed},
};

/// How the loader ages flow entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aging {
    /// An entry with no packet at its entry port for this long is removed.
    pub idle_s: u32,
    /// A closed TCP flow (FIN or RST seen) and a tombstone (a flow no classifier matches any
    /// more) are removed this long after their last packet.
    pub close_grace_s: u32,
}

/// What one aging pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Expired {
    pub idle: u64,
    pub closed: u64,
    pub tombstones: u64,
}

impl Expired {
    pub fn total(&self) -> u64 {
        self.idle + self.closed + self.tombstones
    }
}

/// `CLOCK_MONOTONIC_COARSE` in seconds: the clock of `FlowEntry::last_seen`.
pub fn coarse_now_s() -> u32 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    u32::try_from(ts.tv_sec).unwrap_or(u32::MAX)
}

/// Whether `e` is due for removal at `now`, and why.
pub fn due(e: &FlowEntry, now: u32, a: Aging) -> Option<&'static str> {
    let age = now.saturating_sub(e.last_seen);
    if e.chain_id == 0 && age >= a.close_grace_s {
        Some("tombstone")
    } else if e.flags & FLOW_F_CLOSING != 0 && age >= a.close_grace_s {
        Some("closed")
    } else if age >= a.idle_s {
        Some("idle")
    } else {
        None
    }
}

fn flows_map(loc: &Location) -> Result<HashMap<MapData, FlowKey, FlowEntry>> {
    typed(loc, MAP_FLOWS)
}

/// Removes `keys` from the flow table; returns how many it removed (one evicted meanwhile is
/// gone either way) and adds them to `FLOW_STAT_REMOVED`.
fn remove(loc: &Location, m: &mut HashMap<MapData, FlowKey, FlowEntry>, keys: &[FlowKey]) -> Result<u64> {
    let mut n = 0;
    for k in keys {
        match m.remove(k) {
            Ok(()) => n += 1,
            Err(e) if super::maps::is_absent(&e) => {}
            Err(e) => return Err(map_err(MAP_FLOWS, "removing an entry")(e)),
        }
    }
    add_removed(loc, n)?;
    Ok(n)
}

/// Forgets every flow entry; returns how many were removed. Nothing is lost: the table is a
/// cache, and each flow's path is recomputed at its next packet (on its entry port, or by
/// reclassification at the service function it is in).
pub fn flush(loc: &Location) -> Result<u64> {
    let mut m = flows_map(loc)?;
    let keys: Vec<FlowKey> = m.keys().filter_map(std::result::Result::ok).collect();
    remove(loc, &mut m, &keys)
}

/// Whether each of `keys` has an entry in the flow table.
pub fn present(loc: &Location, keys: &[FlowKey]) -> Result<Vec<bool>> {
    let m = flows_map(loc)?;
    keys.iter()
        .map(|k| match m.get(k, 0) {
            Ok(_) => Ok(true),
            Err(MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(map_err(MAP_FLOWS, "reading an entry")(e)),
        })
        .collect()
}

/// Removes the entries of `keys` (those there are); returns how many it removed.
pub fn forget(loc: &Location, keys: &[FlowKey]) -> Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut m = flows_map(loc)?;
    remove(loc, &mut m, keys)
}

/// One aging pass over the flow table.
pub fn expire(loc: &Location, a: Aging) -> Result<Expired> {
    let mut m = flows_map(loc)?;
    let now = coarse_now_s();
    let mut out = Expired::default();
    let mut keys = Vec::new();
    for r in &m {
        let Ok((k, e)) = r else { continue };
        match due(&e, now, a) {
            Some("tombstone") => out.tombstones += 1,
            Some("closed") => out.closed += 1,
            Some(_) => out.idle += 1,
            None => continue,
        }
        keys.push(k);
    }
    let removed = remove(loc, &mut m, &keys)?;
    // An entry refreshed or evicted between the walk and the removal was not removed.
    if removed < out.total() {
        out.idle = out.idle.saturating_sub(out.total() - removed);
    }
    Ok(out)
}

fn stats_map(loc: &Location) -> Result<PerCpuArray<MapData, u64>> {
    typed(loc, MAP_FLOW_STATS)
}

fn add_removed(loc: &Location, n: u64) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let mut m = stats_map(loc)?;
    let mut v: Vec<u64> = m.get(&FLOW_STAT_REMOVED, 0).map_err(map_err(MAP_FLOW_STATS, "reading"))?.iter().copied().collect();
    // The datapath never writes this slot: the loader's count lives on CPU 0.
    if let Some(first) = v.first_mut() {
        *first += n;
    }
    let values = PerCpuValues::try_from(v).map_err(|e| super::DatapathError::Other(format!("{MAP_FLOW_STATS}: {e}")))?;
    m.set(FLOW_STAT_REMOVED, values, 0).map_err(map_err(MAP_FLOW_STATS, "writing"))
}

/// The flow table's counts (summed over CPUs): entries created, new flows capped, entries
/// removed by sfc.
pub fn counts(loc: &Location) -> Result<(u64, u64, u64)> {
    let m = stats_map(loc)?;
    let sum = |slot: u32| -> Result<u64> { Ok(m.get(&slot, 0).map_err(map_err(MAP_FLOW_STATS, "reading"))?.iter().sum()) };
    Ok((sum(FLOW_STAT_CREATED)?, sum(FLOW_STAT_CAPPED)?, sum(FLOW_STAT_REMOVED)?))
}

/// Sets the new-flow rate cap (new entries per CPU per second; 0: none).
pub fn set_new_flow_rate(loc: &Location, per_cpu_per_sec: u32) -> Result<()> {
    let mut m: Array<MapData, Limits> = typed(loc, MAP_LIMITS)?;
    m.set(0, Limits { new_flows_per_sec: per_cpu_per_sec, _pad: 0 }, 0).map_err(map_err(MAP_LIMITS, "writing"))
}

#[cfg(test)]
mod tests {
    use super::{Aging, due};
    use sfc_common::maps::{FLOW_F_CLOSING, FlowEntry};

    #[test]
    fn what_is_due() {
        let a = Aging { idle_s: 300, close_grace_s: 10 };
        let live = FlowEntry { chain_id: 1, last_seen: 1000, ..FlowEntry::default() };
        assert_eq!(due(&live, 1299, a), None);
        assert_eq!(due(&live, 1300, a), Some("idle"));
        let closing = FlowEntry { flags: FLOW_F_CLOSING, ..live };
        assert_eq!(due(&closing, 1009, a), None);
        assert_eq!(due(&closing, 1010, a), Some("closed"));
        let tomb = FlowEntry { chain_id: 0, ..live };
        assert_eq!(due(&tomb, 1010, a), Some("tombstone"));
        // A clock behind the entry (read before the packet landed) is no age.
        assert_eq!(due(&live, 900, a), None);
    }
}
