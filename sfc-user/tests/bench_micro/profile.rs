//! Where one hop's time goes: perf over sfc's program running one packet of a known flow on a
//! 2-hop chain, for each kind of run of path (d) in turn (the entry port, an SF's egress on to the
//! next SF, the last SF's delivering), by source line through the programs' JIT line info
//! (`sfc_tests::perf`). For working on the per-hop cost next to `one_hop_alone`'s figures;
//! `SFC_BENCH_EBPF_OBJECT` profiles another build of the datapath the same way.
//!
//! Under perf a run takes longer (the sampling interrupts it): the shares count, not the times.

use sfc_tests::perf;

use super::{
    growth::{ONE_HOP_PORTS, packet, two_hops},
    test_run,
};

/// Runs of the same packet per `BPF_PROG_TEST_RUN` call, and calls per kind: about 2 s each.
const REPEAT: u32 = 1_000_000;
const CALLS: u32 = 15;
/// Sampling frequency (Hz).
const FREQ: u32 = 25_000;
/// Lines and kernel symbols printed per kind.
const TOP_LINES: usize = 20;
const TOP_SYMBOLS: usize = 6;

/// What each of `growth::ONE_HOP_PORTS`' runs does.
const KINDS: [&str; 3] = ["entry port (a known flow)", "back from the first SF, on to the second", "back from the last SF, delivered"];

/// Markdown lines: per kind, the time per run under perf, the kernel's part by symbol and sfc's
/// hottest source lines.
pub fn one_hop_lines() -> Vec<String> {
    let (_ns, s) = two_hops();
    let p = packet(0);
    // The first runs create the flow (the entry) and steer it on: the runs timed are hits.
    for port in ONE_HOP_PORTS {
        assert_eq!(s.run(port, &p, 1).0, test_run::REDIRECT, "sfc did not steer on {port}");
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a directory for perf's data: {e}"));
    let mut out = Vec::new();
    for (port, what) in ONE_HOP_PORTS.into_iter().zip(KINDS) {
        let data = dir.path().join(format!("{port}.data"));
        let ns = perf::record_process(std::process::id(), FREQ, &data, || (0..CALLS).map(|_| s.run(port, &p, REPEAT).1).sum::<f64>() / f64::from(CALLS))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let symbols = perf::symbols(&data).unwrap_or_else(|e| panic!("{e:#}"));
        let lines = perf::lines(&data, &[sfc_common::maps::PROG_TC_INGRESS]).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(lines.samples > 0, "{what}: no sample fell in sfc's program (is perf allowed to sample the kernel?)");
        let bpf: f64 = symbols.iter().filter(|(_, s)| s.starts_with("bpf_prog_")).map(|(p, _)| p).sum();
        out.push(format!("{what} (`{port}`): {ns:.0} ns per run under perf; {bpf:.1} % of the samples in BPF programs"));
        out.push(String::new());
        let kernel: Vec<String> =
            symbols.iter().filter(|(_, s)| !s.starts_with("bpf_prog_")).take(TOP_SYMBOLS).map(|(p, s)| format!("`{s}` {p:.1} %")).collect();
        out.push(format!("Outside the programs: {}.", kernel.join(", ")));
        out.push(String::new());
        out.push(format!("| share of sfc's {} samples | line |", lines.samples));
        out.push("|---:|---|".to_owned());
        for (share, line) in lines.shares.iter().take(TOP_LINES) {
            // The path up to the crate's sources: the file and line say enough.
            let short = line.rsplit_once("/src/").map_or(line.as_str(), |(_, l)| l);
            out.push(format!("| {share:.1} % | `{}` |", short.replace('|', "\\|")));
        }
        out.push(String::new());
    }
    out
}
