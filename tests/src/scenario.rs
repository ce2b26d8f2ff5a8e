//! What every scenario test does around its traffic: a topology with a scratch directory for
//! chain files, and a measurement window (interface counter deltas next to sfc counter deltas,
//! both read once in-flight packets have landed) with a failure report that shows everything.

use std::{fmt, path::PathBuf, time::Duration};

use crate::{
    ChainFile, Counters, Sfc, Stats, Topology, TopologyConfig, chain::ScratchDir,
    counters::settled, sfc::diagnostics, topology::End,
};

/// A topology and a directory for its chain files. A test's [`Sfc`] borrows the topology, so
/// it is dropped first: the datapath goes down before the namespaces go.
#[derive(Debug)]
pub struct Fixture {
    pub dir: ScratchDir,
    pub topo: Topology,
}

impl Fixture {
    /// Builds `config`; panics with the whole error chain on failure.
    pub fn new(config: TopologyConfig) -> Fixture {
        let topo = config.build().unwrap_or_else(|e| panic!("{e:#}"));
        let dir =
            ScratchDir::new(&format!("sfc-test-{}", topo.id())).unwrap_or_else(|e| panic!("{e:#}"));
        Fixture { dir, topo }
    }

    /// Writes `file` as `<dir>/<name>` and returns its path.
    pub fn write(&self, name: &str, file: &ChainFile) -> PathBuf {
        self.dir
            .write(name, file)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Interface counters and sfc stats once two readings 150 ms apart agree.
    pub fn settled(&self, sfc: &Sfc<'_>) -> (Counters, Stats) {
        settled(Duration::from_secs(3), Duration::from_millis(150), || {
            Ok((self.topo.counters()?, sfc.try_stats()?))
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Runs `traffic` between two settled readings; returns its result and the window.
    pub fn window<T>(
        &self,
        sfc: &Sfc<'_>,
        what: &str,
        traffic: impl FnOnce() -> T,
    ) -> (T, Window<'_>) {
        let (before_counters, before) = self.settled(sfc);
        let out = traffic();
        let (after_counters, after) = self.settled(sfc);
        let window = Window {
            topo: &self.topo,
            what: what.to_owned(),
            delta: after_counters.since(&before_counters),
            before,
            after,
        };
        (out, window)
    }
}

/// [`Window::report`].
pub struct Report<'w>(&'w Window<'w>);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.0;
        write!(
            f,
            "{} (topology {})\nendpoint counter deltas:\n{}\nsfc stats --json after:\n{}\n{}",
            w.what,
            w.topo.id(),
            w.delta,
            w.after,
            diagnostics(w.topo)
        )
    }
}

/// What one batch of traffic did: interface counter deltas and sfc stats before and after.
#[derive(Debug)]
pub struct Window<'t> {
    topo: &'t Topology,
    pub what: String,
    pub delta: Counters,
    pub before: Stats,
    pub after: Stats,
}

impl Window<'_> {
    /// The topology's service functions.
    pub fn sfs(&self) -> &[u8] {
        self.topo.sfs()
    }

    /// Counter deltas of one endpoint interface.
    pub fn link(&self, end: End) -> crate::LinkStats {
        self.delta.get(end)
    }

    /// Forward packets sfc sent into `port_pair` at `chain`'s hop `hop` during the window.
    pub fn packets(&self, chain: &str, hop: usize, port_pair: &str) -> u64 {
        let now = self.after.packets(chain, hop, port_pair).unwrap_or(0);
        now.saturating_sub(self.before.packets(chain, hop, port_pair).unwrap_or(0))
    }

    /// Reverse-direction packets (symmetric chains) sfc sent into `port_pair` at hop `hop`.
    pub fn reverse_packets(&self, chain: &str, hop: usize, port_pair: &str) -> u64 {
        let now = self
            .after
            .reverse_packets(chain, hop, port_pair)
            .unwrap_or(0);
        now.saturating_sub(
            self.before
                .reverse_packets(chain, hop, port_pair)
                .unwrap_or(0),
        )
    }

    /// Forward packets sfc sent into `port_pair` over every chain and hop during the window.
    pub fn packets_into(&self, port_pair: &str) -> u64 {
        let get = |s: &Stats| {
            s.packets_by_port_pair()
                .get(port_pair)
                .copied()
                .unwrap_or(0)
        };
        get(&self.after).saturating_sub(get(&self.before))
    }

    /// Forward packets sfc sent anywhere during the window.
    pub fn packets_total(&self) -> u64 {
        let sum = |s: &Stats| s.packets_by_port_pair().values().sum::<u64>();
        sum(&self.after).saturating_sub(sum(&self.before))
    }

    /// How much interface counter `kind` of `iface` (sfc's per-interface counters) grew.
    pub fn interface_delta(&self, iface: &str, kind: &str) -> u64 {
        let get = |s: &Stats| s.interface(iface, kind).unwrap_or(0);
        get(&self.after).saturating_sub(get(&self.before))
    }

    /// Drops sfc counted during the window, by reason (only reasons that moved).
    pub fn drops(&self) -> Vec<(String, u64)> {
        let before = self.before.drops();
        self.after
            .drops()
            .into_iter()
            .map(|(k, v)| {
                let d = v.saturating_sub(before.get(&k).copied().unwrap_or(0));
                (k, d)
            })
            .filter(|(_, d)| *d > 0)
            .collect()
    }

    /// Everything about the window, for an assertion message: the counter deltas, sfc's stats
    /// after it, and what is attached where. Lazy: the kernel state is only read when the
    /// report is formatted, i.e. when an assertion fails.
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }

    /// Panics unless no SF interface counter moved and sfc counted nothing into any member.
    pub fn assert_sfs_quiet(&self) {
        assert!(
            self.delta.moved_sf_interfaces().is_empty(),
            "SF interfaces moved: {:?}: {}",
            self.delta.moved_sf_interfaces(),
            self.report()
        );
        assert_eq!(
            self.packets_total(),
            0,
            "sfc counted packets into members: {}",
            self.report()
        );
    }

    /// Panics unless sfc counted no drop.
    pub fn assert_no_drops(&self) {
        assert!(
            self.drops().is_empty(),
            "sfc dropped packets: {:?}: {}",
            self.drops(),
            self.report()
        );
    }
}
