//! Counters in array slots across real applies. Interfaces (`IfaceEntry::stats_slot`,
//! `SFC_IF_STATS_V3`): a slot stays with its interface while either bank has it, so counts carry
//! on; an interface given a slot anew starts from zero, whatever the slot held; a slot is given
//! to another interface only once it is in neither bank. Hops (`HopHome`, `SFC_HOP_SLOTS`): a
//! port pair's home hop counts in its slot, not in the hash, and keeps it while the model has
//! the hop; a hop given a slot anew starts from zero. Packets are run through the installed tc
//! program with `BPF_PROG_TEST_RUN`. Needs root (bpf, a network namespace).

#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/test_run.rs"]
#[expect(dead_code, reason = "only tc verdicts are checked")]
mod test_run;

use std::{collections::BTreeMap, time::Duration};

use aya::{
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues},
    programs::{SchedClassifier, TestRun as _, TestRunOptions},
};
use etherparse::PacketBuilder;
use sfc::{
    config,
    datapath::{self, LoadOptions, Location, maps::Maps},
    model::{self, AttachMode, Model},
};
use sfc_common::{
    limits::{HOP_SLOTS, IF_STATS_SLOTS},
    maps::{Counter, DIR_FORWARD, HopHome, HopStatsKey, IfStats, IfaceEntry, MAP_HOP_HOMES, MAP_HOP_SLOTS, MAP_HOP_STATS, MAP_IF_SLOTS, MAP_IFACES, MAP_META, Meta},
};

const PAIRS: &[(&str, &str)] = &[("qsrc", "qdst"), ("qs1i", "qs1o"), ("qs2i", "qs2o"), ("qs3i", "qs3o")];

/// The namespace with its links up and no IPv6 on them: the kernel's own packets (neighbour
/// discovery, MLD) arriving on a port would bump its counters while the test reads them.
fn namespace_up() -> sfc_tests::netns::Inside {
    let ns = sandbox::namespace(PAIRS);
    let off = [("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1")];
    sfc_tests::netns::sysctls(ns.name(), &off).unwrap_or_else(|e| panic!("{e:#}"));
    for dev in PAIRS.iter().flat_map(|(a, b)| [a, b]) {
        sfc_tests::link::up(ns.name(), dev).unwrap_or_else(|e| panic!("{e:#}"));
    }
    ns
}

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
    send_on(loc, "qsrc", n);
}

/// As `send`, arriving on `dev` (an SF's egress: the packet back from it).
fn send_on(loc: &Location, dev: &str, n: u32) {
    let prog = SchedClassifier::from_pin(loc.pin_dir.join("prog_tc_ingress")).expect("the pinned tc program");
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(4000, 5000).write(&mut frame, &[0; 18]).expect("frame");
    let ctx = test_run::context(AttachMode::Tc, sandbox::ifindex(dev), frame.len());
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
    let bed = Bed::new();
    let loc = &bed.loc;
    let apply = |pps: &[u8]| {
        bed.apply(pps);
        let (live, _) = slots(loc);
        let mut seen: Vec<u16> = live.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), live.len(), "one slot per interface: {live:?}");
        assert!(!seen.contains(&0), "every interface has a slot: {live:?}");
        live
    };

    let first = apply(&[1]);
    send(loc, 3);
    assert_eq!(classified(loc, "qsrc"), 3);
    // pp2 comes: its interfaces get slots that held counts, and must read zero; qsrc keeps its
    // slot and its count.
    litter(loc);
    let second = apply(&[1, 2]);
    for name in ["qsrc", "qdst", "qs1i", "qs1o"] {
        let i = sandbox::ifindex(name);
        assert_eq!(first.get(&i), second.get(&i), "{name} keeps its slot");
    }
    assert_eq!(classified(loc, "qsrc"), 3, "counts carry on across the apply");
    for name in ["qs2i", "qs2o"] {
        assert!(all_zero(loc, name), "{name} starts from zero in a slot that held counts");
    }
    send(loc, 2);
    assert_eq!(classified(loc, "qsrc"), 5);
    // pp1 goes: its slots stay out of use while the other bank still has its interfaces ...
    let third = apply(&[2]);
    let pp1: Vec<u16> = ["qs1i", "qs1o"].iter().map(|n| second[&sandbox::ifindex(n)]).collect();
    let (_, other) = slots(loc);
    assert!(pp1.iter().all(|s| other.values().any(|o| o == s)), "pp1 still in the other bank: {other:?}");
    let fourth = apply(&[2, 3]);
    let pp3: Vec<u16> = ["qs3i", "qs3o"].iter().map(|n| fourth[&sandbox::ifindex(n)]).collect();
    assert!(pp3.iter().all(|s| !pp1.contains(s)), "pp3 {pp3:?} took pp1's slots {pp1:?} while a bank had pp1");
    assert_eq!(third[&sandbox::ifindex("qs2i")], fourth[&sandbox::ifindex("qs2i")]);
    // ... and are free once neither bank has them: pp1 back then gets them (the lowest free),
    // from zero.
    apply(&[3]);
    litter(loc);
    let sixth = apply(&[3, 1]);
    let back: Vec<u16> = ["qs1i", "qs1o"].iter().map(|n| sixth[&sandbox::ifindex(n)]).collect();
    assert_eq!(back, pp1, "pp1 back in its old slots, free since neither bank had it");
    for name in ["qs1i", "qs1o"] {
        let stats = Maps::open(loc).expect("maps").if_stats().expect("interface counters");
        assert!(all_zero(loc, name), "{name} starts from zero: {:?}", stats.get(&sandbox::ifindex(name)));
    }
    assert_eq!(classified(loc, "qsrc"), 5, "qsrc kept its count through five applies");
}

/// Port pair `name`'s id, as the last apply saved it.
fn pp_id(loc: &Location, name: &str) -> u32 {
    datapath::State::load(&loc.state_dir()).expect("state").expect("saved").ids.port_pair(name)
}

/// Forward packets counted for port pair `pp` at hop `hop` of chain 1: both maps together
/// (`sfc stats`), and the hash alone.
fn hop_packets(loc: &Location, pp: &str, hop: u32) -> (u64, u64) {
    let key = HopStatsKey { chain_id: 1, hop, port_pair: pp_id(loc, pp), dir: DIR_FORWARD };
    let all = Maps::open(loc).expect("maps").hop_stats().expect("hop counters");
    let hash: PerCpuHashMap<MapData, HopStatsKey, Counter> =
        PerCpuHashMap::try_from(aya::maps::Map::PerCpuHashMap(MapData::from_pin(loc.map_pin(MAP_HOP_STATS)).expect("hop stats"))).expect("per-CPU hash");
    let in_hash = hash.get(&key, 0).map_or(0, |v| v.iter().map(|c| c.packets).sum());
    (all.get(&key).map_or(0, |c| c.packets), in_hash)
}

/// Fills every hop slot no installed home points to with counts.
fn litter_hops(loc: &Location) {
    let homes: aya::maps::Array<MapData, HopHome> = aya::maps::Array::try_from(aya::maps::Map::Array(MapData::from_pin(loc.map_pin(MAP_HOP_HOMES)).expect("homes"))).expect("array");
    let pointed: Vec<u16> = homes.iter().map(|h| h.expect("home").slot).collect();
    let mut m: PerCpuArray<MapData, Counter> = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(MapData::from_pin(loc.map_pin(MAP_HOP_SLOTS)).expect("slots"))).expect("per-CPU array");
    let cpus = aya::util::nr_cpus().expect("CPUs");
    for s in (1..HOP_SLOTS).filter(|s| !pointed.contains(&u16::try_from(*s).expect("u16"))) {
        for dir in 0..2 {
            m.set(s * 2 + dir, PerCpuValues::try_from(vec![Counter { packets: 9, bytes: 9 }; cpus]).expect("values"), 0).expect("littering");
        }
    }
}

#[test]
fn hop_counters_count_in_their_home_slots_across_applies() {
    let bed = Bed::new();
    let loc = &bed.loc;
    let apply = |pps: &[u8]| bed.apply(pps);

    apply(&[1, 2]);
    send(loc, 3);
    send_on(loc, "qs1o", 2);
    assert_eq!(hop_packets(loc, "pp1", 0), (3, 0), "pp1 at hop 0: counted in its slot, not the hash");
    assert_eq!(hop_packets(loc, "pp2", 1), (2, 0), "pp2 at hop 1");
    // pp3 joins: its hop gets a slot that held counts and must read zero; the others carry on.
    litter_hops(loc);
    apply(&[1, 2, 3]);
    assert_eq!(hop_packets(loc, "pp3", 2), (0, 0), "pp3's new slot starts from zero");
    assert_eq!(hop_packets(loc, "pp1", 0).0, 3, "pp1's count carried over the apply");
    // The flow takes the new path from its next packet at the source on.
    send(loc, 1);
    send_on(loc, "qs2o", 4);
    assert_eq!(hop_packets(loc, "pp3", 2), (4, 0));
    assert_eq!(hop_packets(loc, "pp1", 0), (4, 0));
    // pp1 leaves: pp2 now sits at hop 0, a new home hop with a new slot, from zero; packets from
    // the source go to it there.
    litter_hops(loc);
    apply(&[2, 3]);
    assert_eq!(hop_packets(loc, "pp2", 0), (0, 0), "pp2's new home starts from zero");
    send(loc, 5);
    assert_eq!(hop_packets(loc, "pp2", 0), (5, 0));
    assert_eq!(hop_packets(loc, "pp3", 1).0, 0, "pp3 at its new hop");
}

/// One test's namespace (links up, no IPv6), pin directory and datapath location; `sfc down`
/// on drop, before the pins and the namespace go (also when an assertion fails).
struct Bed {
    loc: Location,
    _pins: sfc_tests::bpffs::PinDir,
    _ns: sfc_tests::netns::Inside,
}

impl Bed {
    fn new() -> Self {
        sandbox::sweep_stale();
        let ns = namespace_up();
        let pins = sandbox::pin_dir();
        Bed { loc: Location::new(None, Some(pins.path().to_owned())), _pins: pins, _ns: ns }
    }

    /// `sfc apply` of the chain through port pairs `pps`, in this process.
    fn apply(&self, pps: &[u8]) {
        let opts = LoadOptions { flow_table_size: 1024, drain_timeout: Duration::ZERO, mode: AttachMode::Tc, new_flow_rate: 0, absent_ok: false, latency_every: 0 };
        datapath::apply(&self.loc, &model_with(pps), opts).unwrap_or_else(|e| panic!("apply {pps:?}: {e}"));
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Err(e) = datapath::down(&self.loc) {
            eprintln!("counter_slots: sfc down: {e}");
        }
    }
}
