//! Time the path spends in BPF programs, from the kernel's own statistics: while the fd of
//! `BPF_ENABLE_STATS` is open, every program run adds to its program's run count and run time
//! (two clock reads around the run, so a probe with them on is a little slower than one
//! without, and the rates are not taken from it). Programs are told apart by id; the ones whose
//! counts moved during the probe are the path's (every path has programs of its own, or none).

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};

/// Run count and nanoseconds of each loaded program, by id (with its name).
pub struct Snapshot(BTreeMap<u32, (String, u64, u64)>);

/// Kernel BPF statistics on for as long as the value lives.
pub struct Enabled(#[expect(dead_code, reason = "held: the statistics stay on while it is open")] std::os::fd::OwnedFd);

pub fn enable() -> Result<Enabled> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map(Enabled).context("BPF_ENABLE_STATS (kernel BPF run-time statistics)")
}

pub fn snapshot() -> Result<Snapshot> {
    let mut out = BTreeMap::new();
    for p in aya::programs::loaded_programs() {
        let p = p.context("reading a loaded BPF program's info")?;
        let ns = u64::try_from(p.run_time().as_nanos()).unwrap_or(u64::MAX);
        let name = p.name_as_str().filter(|n| !n.is_empty()).unwrap_or("(no name)").to_owned();
        out.insert(p.id(), (name, p.run_count(), ns));
    }
    Ok(Snapshot(out))
}

/// What the path's programs cost per packet delivered.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Program runs per delivered packet (every program on the path: each hop decision, and a
    /// pass program where there is one).
    pub runs_per_packet: f64,
    /// Mean nanoseconds of one run.
    pub ns_per_run: f64,
    /// Nanoseconds in programs per delivered packet.
    pub ns_per_packet: f64,
    /// The programs that ran, by name: (runs, ns).
    pub by_name: BTreeMap<String, (u64, u64)>,
}

/// The programs' work between two snapshots, per packet of `delivered`.
#[expect(clippy::cast_precision_loss, reason = "counts below 2^52")]
pub fn profile(before: &Snapshot, after: &Snapshot, delivered: u64) -> Profile {
    let mut by_name: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (id, (name, runs, ns)) in &after.0 {
        let (r0, n0) = before.0.get(id).map_or((0, 0), |(_, r, n)| (*r, *n));
        let (runs, ns) = (runs.saturating_sub(r0), ns.saturating_sub(n0));
        if runs > 0 {
            let e = by_name.entry(name.clone()).or_default();
            e.0 += runs;
            e.1 += ns;
        }
    }
    let (runs, ns) = by_name.values().fold((0u64, 0u64), |(r, n), (a, b)| (r + a, n + b));
    let per = |x: u64, d: u64| if d == 0 { 0.0 } else { x as f64 / d as f64 };
    Profile { runs_per_packet: per(runs, delivered), ns_per_run: per(ns, runs), ns_per_packet: per(ns, delivered), by_name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_is_what_ran_between_the_snapshots_per_packet() {
        let snap = |v: &[(u32, &str, u64, u64)]| Snapshot(v.iter().map(|(id, n, r, ns)| (*id, ((*n).to_owned(), *r, *ns))).collect());
        // Program 1 ran 400 times for 40,000 ns; 2 did not run; 3 is new (loaded since) and
        // ran 100 times for 2,000 ns; 4 went away.
        let before = snap(&[(1, "sfc_tc_ingress", 1000, 50_000), (2, "idle", 7, 70), (4, "gone", 5, 5)]);
        let after = snap(&[(1, "sfc_tc_ingress", 1400, 90_000), (2, "idle", 7, 70), (3, "pass", 100, 2_000)]);
        let p = profile(&before, &after, 100);
        assert_eq!(p.by_name.len(), 2, "{:?}", p.by_name);
        assert_eq!(p.by_name["sfc_tc_ingress"], (400, 40_000));
        assert_eq!(p.by_name["pass"], (100, 2_000));
        assert!((p.runs_per_packet - 5.0).abs() < 1e-9);
        assert!((p.ns_per_run - 84.0).abs() < 1e-9);
        assert!((p.ns_per_packet - 420.0).abs() < 1e-9);
        // Nothing delivered, nothing ran: zeros, not a division by zero.
        let none = profile(&after, &after, 0);
        assert!(none.by_name.is_empty() && none.ns_per_packet == 0.0 && none.ns_per_run == 0.0);
    }
}
