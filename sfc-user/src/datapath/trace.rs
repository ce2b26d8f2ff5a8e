//! The trace and SF latency maps (`sfc_common::trace`): the configuration `sfc apply` and
//! `sfc trace` write, the counters and histograms `sfc stats` and the metrics read, and the
//! ring buffer `sfc trace` drains.

use std::collections::BTreeMap;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use sfc_common::trace::{
    InflightKey, LATENCY_BUCKETS, MAP_INFLIGHT, MAP_LATENCY, MAP_TRACE, MAP_TRACE_CONF, MAP_TRACE_STATS, TS_EMITTED,
    TS_LOST_BUDGET, TS_LOST_FULL, TraceConf, TraceEvent, latency_slot,
};

use super::{
    Location, Result,
    maps::{map_err, typed},
};

/// The configuration now in the kernel (all zero when nothing wrote it).
pub fn conf(loc: &Location) -> Result<TraceConf> {
    let m: Array<MapData, TraceConf> = typed(loc, MAP_TRACE_CONF)?;
    m.get(&0, 0).map_err(map_err(MAP_TRACE_CONF, "reading"))
}

pub fn set_conf(loc: &Location, c: TraceConf) -> Result<()> {
    let mut m: Array<MapData, TraceConf> = typed(loc, MAP_TRACE_CONF)?;
    m.set(0, c, 0).map_err(map_err(MAP_TRACE_CONF, "writing"))
}

/// Sets how often SF latency samples (1 packet in `every` by fingerprint, 0: off), keeping
/// whatever a running `sfc trace` set.
pub fn set_latency_every(loc: &Location, every: u32) -> Result<()> {
    let c = conf(loc)?;
    if c.latency_every == every {
        return Ok(());
    }
    set_conf(loc, TraceConf { latency_every: every, ..c })
}

/// Trace events emitted and lost, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TraceStats {
    pub emitted: u64,
    /// Over the per-CPU budget of events per second.
    pub lost_budget: u64,
    /// The ring buffer was full (the reader was behind).
    pub lost_ring_full: u64,
}

pub fn stats(loc: &Location) -> Result<TraceStats> {
    let m: PerCpuArray<MapData, u64> = typed(loc, MAP_TRACE_STATS)?;
    let sum = |i: u32| -> Result<u64> { Ok(m.get(&i, 0).map_err(map_err(MAP_TRACE_STATS, "reading"))?.iter().sum()) };
    Ok(TraceStats { emitted: sum(TS_EMITTED)?, lost_budget: sum(TS_LOST_BUDGET)?, lost_ring_full: sum(TS_LOST_FULL)? })
}

/// Histogram buckets per (port pair id, direction), summed over CPUs; members with no sample
/// are left out. Slots of port pairs in `ids` only (the array holds every possible one).
pub fn latency(loc: &Location, ids: &[u32]) -> Result<BTreeMap<(u32, u8), [u64; LATENCY_BUCKETS as usize]>> {
    let m: PerCpuArray<MapData, u64> = typed(loc, MAP_LATENCY)?;
    let mut out = BTreeMap::new();
    for &id in ids {
        for dir in 0..2u8 {
            let slot = sfc_common::trace::latency_slot(id, dir);
            let mut buckets = [0u64; LATENCY_BUCKETS as usize];
            for (b, bucket) in (0u32..).zip(buckets.iter_mut()) {
                let idx = slot * LATENCY_BUCKETS + b;
                *bucket = m.get(&idx, 0).map_err(map_err(MAP_LATENCY, "reading"))?.iter().sum();
            }
            if buckets.iter().any(|b| *b != 0) {
                out.insert((id, dir), buckets);
            }
        }
    }
    Ok(out)
}

/// The time below which a fraction `q` of the samples lie, in seconds (the upper bound of the
/// bucket holding the q-th sample: the histogram's resolution is a factor of two).
pub fn quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    #[expect(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a rank among at most 2^64 samples, rounded up")]
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, n) in (0u32..).zip(buckets) {
        seen += n;
        if seen >= rank {
            return Some(sfc_common::trace::latency_bucket_le(b).min(sfc_common::trace::latency_bucket_le(LATENCY_BUCKETS - 2)));
        }
    }
    None
}

/// Forgets the SF latency sample a packet with fingerprint `fp` started when it was sent into
/// member `port_pair` in direction `dir` (a probe's time in a member is no function's).
pub fn forget_inflight(loc: &Location, fp: u32, port_pair: u32, dir: u8) -> Result<()> {
    let mut m: HashMap<MapData, InflightKey, u64> = typed(loc, MAP_INFLIGHT)?;
    match m.remove(&InflightKey { fp, slot: latency_slot(port_pair, dir) }) {
        Ok(()) => Ok(()),
        Err(e) if super::maps::is_absent(&e) => Ok(()),
        Err(e) => Err(map_err(MAP_INFLIGHT, "removing an entry")(e)),
    }
}

/// The ring buffer of trace events, for one reader.
pub fn ring(loc: &Location) -> Result<RingBuf<MapData>> {
    typed(loc, MAP_TRACE)
}

/// One event out of the ring's bytes (`None` for a record of another size).
pub fn decode(bytes: &[u8]) -> Option<TraceEvent> {
    if bytes.len() < std::mem::size_of::<TraceEvent>() {
        return None;
    }
    // SAFETY: `TraceEvent` is plain data (`repr(C)`, integers and byte arrays, every bit pattern
    // valid) and `bytes` holds at least one; the read tolerates any alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<TraceEvent>()) })
}

/// One `sfc trace` at a time per datapath: held while it runs (the kernel has one filter).
pub struct TraceLock {
    _file: std::fs::File,
}

impl TraceLock {
    pub fn acquire(loc: &Location) -> Result<TraceLock> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = loc.state_dir().join("trace.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| super::DatapathError::Io { what: format!("opening {}", path.display()), source: e })?;
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(super::DatapathError::Other(format!(
                "another `sfc trace` is running on this datapath ({} is locked): the kernel has one trace filter",
                path.display()
            )));
        }
        Ok(TraceLock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_bucket_upper_bounds() {
        let mut b = [0u64; 32];
        assert_eq!(quantile(&b, 0.5), None);
        b[3] = 90; // [8, 16) units of 1.024 us
        b[10] = 10;
        let p50 = quantile(&b, 0.5).expect("samples");
        assert!((p50 - 16.0 * 1024e-9).abs() < 1e-12, "{p50}");
        let p99 = quantile(&b, 0.99).expect("samples");
        assert!((p99 - 2048.0 * 1024e-9).abs() < 1e-12, "{p99}");
    }
}
