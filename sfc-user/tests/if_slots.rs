//! Interface counters in array slots (`IfaceEntry::stats_slot`, `SFC_IF_STATS_V3`) across real
//! applies: a slot stays with its interface while either bank has it, so counts carry on; an
//! interface given a slot anew starts from zero, whatever the slot held; a slot is given to
//! another interface only once it is in neither bank. Packets are run through the installed
//! tc program with `BPF_PROG_TEST_RUN`. Needs root (bpf, a network namespace).

#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/test_run.rs"]
#[expect(dead_code, reason = "only tc verdicts are checked")]
mod test_run;

use std::{collections::BTreeMap, time::Duration};

use aya::{
    maps::{HashMap, MapData, PerCpuArray, PerCpuValues},
    programs::{SchedClassifier, TestRun as _, TestRunOptions},
};
use etherparse::PacketBuilder;
use sfc::{
    config,
    datapath::{self, LoadOptions, Location, maps::Maps},
    model::{self, AttachMode, Model},
};
use sfc_common::{
    limits::IF_STATS_SLOTS,
    maps::{IfStats, IfaceEntry, MAP_IF_SLOTS, MAP_IFACES, MAP_META, Meta},
};

const PAIRS: &[(&str, &str)] = &[("qsrc", "qdst"), ("qs1i", "qs1o"), ("qs2i", "qs2o"), ("qs3i", "qs3o")];

/// One chain from `qsrc` to `qdst` through the port pairs `pps` (of qs1, qs2, qs3).
fn model_with(pps: &[u8]) -> Model {
    let pairs: Vec<String> = pps.iter().map(|n| format!("  - {{name: pp{n}, ingress: qs{n}i, egress: qs{n}o}}\n")).collect();
    let groups: Vec<String> = pps.iter().map(|n| format!("  - {{name: pg{n}, port_pairs: [pp{n}]}}\n")).collect();
    let (pairs, groups) = (pairs.concat(), groups.concat());
    let names: Vec<String> = pps.iter().map(|n| format!("pg{n}")).collect();
    let file = format!(
        "port_pairs:\n{pairs}port_pair_groups:\n{groups}flow_classifiers:\n  - {{name: c, protocol: udp, destination_ip_prefix: 10.0.0.2/32, \
         logical_source_port: qsrc, logical_destination_port: qdst}}\n\
         port_chains:\n  - {{name: pc, chain_id: 1, port_pair_groups: [{}], flow_classifiers: [c]}}\n",
        names.join(", ")
    );
    let cfg = config::parse("slots.yaml", &file).unwrap_or_else(|e| panic!("{e}"));
    model::validate(&cfg).unwrap_or_else(|e| panic!("{e}"))
}

/// ifindex -> slot of each bank, the live one first.
fn slots(loc: &Location) -> (BTreeMap<u32, u16>, BTreeMap<u32, u16>) {
    let meta: aya::maps::Array<MapData, Meta> = aya::maps::Array::try_from(aya::maps::Map::Array(MapData::from_pin(loc.map_pin(MAP_META)).expect("meta"))).expect("array");
    let live = meta.get(&0, 0).expect("meta").bank & 1;
    let ifaces: HashMap<MapData, u32, IfaceEntry> = HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(loc.map_pin(MAP_IFACES)).expect("ifaces"))).expect("hash");
    let (mut l, mut o) = (BTreeMap::new(), BTreeMap::new());
    for r in &ifaces {
        let (k, e) = r.expect("entry");
        let (bank, ifindex) = sfc_common::maps::unbanked_id(k);
        if bank == live { l.insert(ifindex, e.stats_slot) } else { o.insert(ifindex, e.stats_slot) };
    }
    (l, o)
}

fn slot_map(loc: &Location) -> PerCpuArray<MapData, IfStats> {
    PerCpuArray::try_from(aya::maps::Map::PerCpuArray(MapData::from_pin(loc.map_pin(MAP_IF_SLOTS)).expect("slots"))).expect("per-CPU array")
}

/// Fills every slot no entry of either bank names with counts, as an interface gone from both
/// banks leaves them.
fn litter(loc: &Location) {
    let (live, other) = slots(loc);
    let held: Vec<u16> = live.values().chain(other.values()).copied().collect();
    let mut m = slot_map(loc);
    let cpus = aya::util::nr_cpus().expect("CPUs");
    let junk = IfStats { classified: 7, unclassified: 7, from_sf: 7, malformed: 7, recomputed: 7 };
    for s in (1..IF_STATS_SLOTS).filter(|s| !held.contains(&u16::try_from(*s).expect("u16"))) {
        m.set(s, PerCpuValues::try_from(vec![junk; cpus]).expect("values"), 0).expect("littering");
    }
}

/// Runs `n` packets of the chain's flow through the installed tc program as arriving on `qsrc`.
fn send(loc: &Location, n: u32) {
    let prog = SchedClassifier::from_pin(loc.pin_dir.join("prog_tc_ingress")).expect("the pinned tc program");
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(4000, 5000).write(&mut frame, &[0; 18]).expect("frame");
    let ctx = test_run::context(AttachMode::Tc, sandbox::ifindex("qsrc"), frame.len());
    for _ in 0..n {
        let mut out = vec![0u8; frame.len() + 64];
        let r = prog.test_run(TestRunOptions { data_in: Some(&frame), data_out: Some(&mut out), ctx_in: Some(&ctx), repeat: 1, ..TestRunOptions::default() }).expect("test run");
        let drops = || Maps::open(loc).and_then(|m| m.drops()).map(|d| d.into_iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>());
        assert_eq!(r.return_value, test_run::REDIRECT, "steered into the chain (drops: {:?})", drops());
    }
}

fn classified(loc: &Location, name: &str) -> u64 {
    let stats = Maps::open(loc).expect("maps").if_stats().expect("interface counters");
    stats.get(&sandbox::ifindex(name)).map_or(0, |s| s.classified)
}

fn all_zero(loc: &Location, name: &str) -> bool {
    let stats = Maps::open(loc).expect("maps").if_stats().expect("interface counters");
    stats.get(&sandbox::ifindex(name)).is_none_or(|s| *s == IfStats::default())
}

#[test]
fn interface_counters_keep_their_slots_across_applies() {
    sandbox::sweep_stale();
    let ns = sandbox::namespace(PAIRS);
    for dev in PAIRS.iter().flat_map(|(a, b)| [a, b]) {
        sfc_tests::link::up(ns.name(), dev).unwrap_or_else(|e| panic!("{e:#}"));
    }
    let pins = sandbox::pin_dir();
    let loc = Location::new(None, Some(pins.path().to_owned()));
    let _down = Down(&loc);
    let opts = LoadOptions { flow_table_size: 1024, drain_timeout: Duration::ZERO, mode: AttachMode::Tc, new_flow_rate: 0, absent_ok: false, latency_every: 0 };
    let apply = |pps: &[u8]| {
        datapath::apply(&loc, &model_with(pps), opts).unwrap_or_else(|e| panic!("apply {pps:?}: {e}"));
        let (live, _) = slots(&loc);
        let mut seen: Vec<u16> = live.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), live.len(), "one slot per interface: {live:?}");
        assert!(!seen.contains(&0), "every interface has a slot: {live:?}");
        live
    };

    let first = apply(&[1]);
    send(&loc, 3);
    assert_eq!(classified(&loc, "qsrc"), 3);
    // pp2 comes: its interfaces get slots that held counts, and must read zero; qsrc keeps its
    // slot and its count.
    litter(&loc);
    let second = apply(&[1, 2]);
    for name in ["qsrc", "qdst", "qs1i", "qs1o"] {
        let i = sandbox::ifindex(name);
        assert_eq!(first.get(&i), second.get(&i), "{name} keeps its slot");
    }
    assert_eq!(classified(&loc, "qsrc"), 3, "counts carry on across the apply");
    for name in ["qs2i", "qs2o"] {
        assert!(all_zero(&loc, name), "{name} starts from zero in a slot that held counts");
    }
    send(&loc, 2);
    assert_eq!(classified(&loc, "qsrc"), 5);
    // pp1 goes: its slots stay out of use while the other bank still has its interfaces ...
    let third = apply(&[2]);
    let pp1: Vec<u16> = ["qs1i", "qs1o"].iter().map(|n| second[&sandbox::ifindex(n)]).collect();
    let (_, other) = slots(&loc);
    assert!(pp1.iter().all(|s| other.values().any(|o| o == s)), "pp1 still in the other bank: {other:?}");
    let fourth = apply(&[2, 3]);
    let pp3: Vec<u16> = ["qs3i", "qs3o"].iter().map(|n| fourth[&sandbox::ifindex(n)]).collect();
    assert!(pp3.iter().all(|s| !pp1.contains(s)), "pp3 {pp3:?} took pp1's slots {pp1:?} while a bank had pp1");
    assert_eq!(third[&sandbox::ifindex("qs2i")], fourth[&sandbox::ifindex("qs2i")]);
    // ... and are free once neither bank has them: pp1 back then gets them (the lowest free),
    // from zero.
    apply(&[3]);
    litter(&loc);
    let sixth = apply(&[3, 1]);
    let back: Vec<u16> = ["qs1i", "qs1o"].iter().map(|n| sixth[&sandbox::ifindex(n)]).collect();
    assert_eq!(back, pp1, "pp1 back in its old slots, free since neither bank had it");
    for name in ["qs1i", "qs1o"] {
        assert!(all_zero(&loc, name), "{name} starts from zero");
    }
    assert_eq!(classified(&loc, "qsrc"), 5, "qsrc kept its count through five applies");
}

/// `sfc down` of a location on drop.
struct Down<'a>(&'a Location);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if let Err(e) = datapath::down(self.0) {
            eprintln!("if_slots: sfc down: {e}");
        }
    }
}
