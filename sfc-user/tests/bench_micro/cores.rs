//! Two cores (issue 17): the tc program run on one core, and on two at once, each core with its
//! own flows of the same chain (what RSS or RPS does to a NIC's flows). The program keeps no
//! lock on a known flow's path (per-CPU counters, a flow-table lookup), so two cores should do
//! about twice the work of one; a new flow inserts into the shared LRU flow table, which takes
//! its locks. Measured with `BPF_PROG_TEST_RUN` on threads pinned to CPU 0 and CPU 1 (no sender
//! shares a core: on this 2-core machine a namespace path would measure the sharing instead).
//!
//! Per row: the kernel's time per packet on a core alone (the mean of CPU 0's and CPU 1's), on
//! each of two cores at once (mean of both), and the scaling: packets per second of both cores
//! at once over those of one core alone, each core compared with itself.

use std::sync::Barrier;

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};
use rustix::thread::{CpuSet, sched_setaffinity};
use sfc_common::maps::PROG_TC_INGRESS;

use super::{Bench, REDIRECT, SF_OUT, SRC, dst_of, median, ns, sandbox, test_run, udp64};

pub const REPEAT: u32 = 200_000;
pub const SAMPLES: usize = 5;
/// New flows per core and sample: 4 runs (each core alone, both together) of `SAMPLES` stay
/// within the source ports and the flow table (65,536).
pub const NEW_FLOWS: usize = 2_000;
const NEW_FLOWS_F: f64 = 2_000.0;

/// What one core runs: the same known packet repeated, or one run each of new flows.
#[derive(Clone, Copy)]
enum Load {
    Repeat { sf_hop: bool },
    NewFlows,
}

/// The packets of one core's run `run` (0, 1: each core alone; 2, 3: both at once), flows of
/// its own (source ports apart); `sample` gives new flows each time.
fn packets(load: Load, run: usize, sample: usize) -> Vec<Vec<u8>> {
    let base = 1000 + run * SAMPLES * NEW_FLOWS;
    let port = |i: usize| u16::try_from(base + i).expect("fewer than 2^16 ports");
    match load {
        Load::Repeat { .. } => vec![udp64(dst_of(0), port(0))],
        Load::NewFlows => (0..NEW_FLOWS).map(|i| udp64(dst_of(0), port(sample * NEW_FLOWS + i))).collect(),
    }
}

/// ns per packet on `core` (pinned), for `load` in run `run`; every core starts each sample
/// together.
fn run_on(pin: &std::path::Path, netns: &str, (core, run): (usize, usize), load: Load, start: &Barrier) -> f64 {
    sfc_tests::netns::enter(netns).unwrap_or_else(|e| panic!("{e:#}"));
    let mut set = CpuSet::new();
    set.set(core);
    sched_setaffinity(None, &set).unwrap_or_else(|e| panic!("pinning to CPU {core}: {e}"));
    let prog = SchedClassifier::from_pin(pin).unwrap_or_else(|e| panic!("the pinned program: {e}"));
    let (src, sf_out) = (sandbox::ifindex(SRC), sandbox::ifindex(SF_OUT));
    let ifindex = if matches!(load, Load::Repeat { sf_hop: true }) { sf_out } else { src };
    let once = |ifindex: u32, packet: &[u8], repeat: u32| {
        let ctx = test_run::context(sfc::model::AttachMode::Tc, ifindex, packet.len());
        let mut out = [0u8; 256];
        let opts = TestRunOptions { data_in: Some(packet), data_out: Some(&mut out), ctx_in: Some(&ctx), repeat, ..TestRunOptions::default() };
        let r = prog.test_run(opts).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e:?}"));
        assert_eq!(r.return_value, REDIRECT, "core {core}: a packet was not steered");
        r.duration
    };
    if let Load::Repeat { .. } = load {
        // The flow is known before timing starts: its first packet at the source port.
        once(src, &packets(load, run, 0)[0], 1);
    }
    let mut samples = Vec::new();
    for sample in 0..SAMPLES {
        let p = packets(load, run, sample);
        start.wait();
        samples.push(match load {
            Load::Repeat { .. } => ns(once(ifindex, &p[0], REPEAT)),
            Load::NewFlows => p.iter().map(|p| ns(once(ifindex, p, 1))).sum::<f64>() / NEW_FLOWS_F,
        });
    }
    median(samples)
}

/// ns per packet on each of `cores` ((core, run)) running `load` at once.
fn together(b: &Bench, netns: &str, load: Load, cores: &[(usize, usize)]) -> Vec<f64> {
    let pin = b.loc.pin_dir.join("bench_tc");
    let (pin, start) = (&pin, &Barrier::new(cores.len()));
    std::thread::scope(|s| {
        let handles: Vec<_> = cores.iter().map(|&c| s.spawn(move || run_on(pin, netns, c, load, start))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

/// The table (markdown lines); `netns` is the namespace of the calling thread.
pub fn cores(netns: &str) -> Vec<String> {
    let mut b = Bench::new(1);
    let prog: &mut SchedClassifier = b.ebpf.program_mut(PROG_TC_INGRESS).expect("program").try_into().expect("tc");
    prog.pin(b.loc.pin_dir.join("bench_tc")).unwrap_or_else(|e| panic!("pinning the program: {e}"));
    let mut out = vec![
        "| tc program, 1 classifier | one core alone ns | each of two cores at once ns | scaling (2 cores / 1) |".to_owned(),
        "|---|---:|---:|---:|".to_owned(),
    ];
    // New flows last: they fill the table, which the known flows do not need.
    for (what, load) in [
        ("known flow at the entry port", Load::Repeat { sf_hop: false }),
        ("known flow back from the SF", Load::Repeat { sf_hop: true }),
        ("new flows (one run each)", Load::NewFlows),
    ] {
        // Each core alone first: the two cores of a VM need not be equally fast (interrupts,
        // the host's other guests), and scaling compares each core with itself.
        let alone = [together(&b, netns, load, &[(0, 0)])[0], together(&b, netns, load, &[(1, 1)])[0]];
        let two: [f64; 2] = together(&b, netns, load, &[(0, 2), (1, 3)]).try_into().expect("two cores");
        let mean = |v: &[f64; 2]| v.iter().sum::<f64>() / 2.0;
        let scaling = alone.iter().zip(&two).map(|(a, t)| a / t).sum::<f64>();
        eprintln!("bench_micro: two cores, {what}: alone {alone:.0?} ns, together {two:.0?} ns, scaling {scaling:.2}x");
        out.push(format!("| {what} | {:.0} | {:.0} | {scaling:.2}x |", mean(&alone), mean(&two)));
    }
    out
}
