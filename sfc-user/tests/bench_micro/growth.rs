//! Growth (issue 17): how the per-packet cost follows the size of what the datapath holds, not
//! only the number of classifiers (`classify_and_steer`):
//! - hops: a chain of 1 to 8 service functions; the cost of a packet coming back from the first
//!   and from the last member (each hop is one program run, which must cost the same wherever
//!   it is in the chain), and of the first packet of a new flow (which pins a member per hop),
//!   in a table with room and in a full one (each new entry evicting the least recently used);
//! - flows: a flow-table hit with 10 to 50,000 flows in the default table (65,536 entries) and
//!   10 to 1,000,000 in one of 2,097,152 (one packet repeated, and one run each of packets of
//!   20,000 flows spread over the table, the median of three passes), and the big table's kernel
//!   memory (its `memlock`, preallocated: the same with 10 or 1,000,000 flows); next to each
//!   spread row its floor (`floor.rs`): the same lookups alone, in a bare program and a table of
//!   the same kind and size holding the same flows.
//!
//! - one hop against its references: sfc's SF hop (a packet of a known flow), the flow-keeping
//!   floor of path (g) and the program of path (f) (`sfc_tests::hopfloor`), in turn.
//!
//! Printed between `BENCH-GROWTH BEGIN` / `END`.

use std::{collections::BTreeMap, fmt::Write as _};

use aya::{
    EbpfLoader,
    maps::MapData,
    programs::{SchedClassifier, TestRun as _, TestRunOptions},
};
use etherparse::PacketBuilder;
use sfc::{
    compile::{self, IfaceFacts},
    config,
    datapath::{self, Location, maps::Maps},
    model::{self, AttachMode},
};
use sfc_common::{
    limits::DEFAULT_FLOW_TABLE_SIZE,
    maps::{MAP_FLOWS, PROG_TC_INGRESS},
};

use super::{median, ns, sandbox, test_run};

const HOPS: usize = 8;
/// Flow-table size for the flows measurement (the loader's maximum, 4,194,304, would do too).
const TABLE: u32 = 1 << 21;
const MANY: usize = 1_000_000;
/// Flows that fill the hops measurement's table (the default size, 65,536 entries).
const FULL: usize = DEFAULT_FLOW_TABLE_SIZE as usize;
const SPREAD: usize = 20_000;
/// Passes over the spread flows, sfc's and the floor's in turn (single runs are noisy here).
const PASSES: usize = 3;
const REPEAT: u32 = 200_000;
const SAMPLES: usize = 5;
const MAC: [u8; 6] = [0x02, 0x5f, 0xc0, 0xbe, 0x01, 0x01];

fn names() -> Vec<(String, String)> {
    let mut v = vec![("gsrc".to_owned(), "gdst".to_owned())];
    v.extend((1..=HOPS).map(|i| (format!("g{i}i"), format!("g{i}o"))));
    v
}

/// A chain of `hops` SFs (`g1`..), UDP to 10.0.0.0/8 from `gsrc`, delivered to `gdst`.
fn chain(hops: usize) -> String {
    let mut s = String::from("port_pairs:\n");
    for i in 1..=hops {
        let _ = writeln!(s, "  - {{name: p{i}, ingress: g{i}i, egress: g{i}o}}");
    }
    s += "port_pair_groups:\n";
    for i in 1..=hops {
        let _ = writeln!(s, "  - {{name: g{i}, port_pairs: [p{i}]}}");
    }
    let groups: Vec<String> = (1..=hops).map(|i| format!("g{i}")).collect();
    s += "flow_classifiers:\n  - {name: all, protocol: udp, destination_ip_prefix: 10.0.0.0/8, logical_source_port: gsrc, logical_destination_port: gdst}\n";
    let _ = writeln!(s, "port_chains:\n  - {{name: pc1, chain_id: 1, port_pair_groups: [{}], flow_classifiers: [all]}}", groups.join(", "));
    s
}

/// The first packet of flow `n`: 50,000 source ports per destination in 10.0.0.0/8, from
/// 10.0.0.1 on (every `n` its own flow).
pub(super) fn packet(n: usize) -> Vec<u8> {
    let n = u32::try_from(n).expect("fewer than 2^32 flows");
    let [_, hi, mid, lo] = (n / 50_000 + 1).to_be_bytes();
    let sport = u16::try_from(1000 + n % 50_000).expect("fits");
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC, MAC).ipv4([192, 168, 1, 10], [10, hi, mid, lo], 64).udp(sport, 5001).write(&mut v, &[0u8; 18]).expect("packet");
    v
}

pub(super) struct Setup {
    ebpf: aya::Ebpf,
    _pins: sfc_tests::bpffs::PinDir,
}

impl Setup {
    fn new(hops: usize, table: u32) -> Setup {
        let pins = sandbox::pin_dir();
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins.path())
            .map_max_entries(MAP_FLOWS, table)
            .load(&object())
            .unwrap_or_else(|e| panic!("loading the BPF object: {e}"));
        let prog: &mut SchedClassifier = ebpf.program_mut(PROG_TC_INGRESS).expect("program").try_into().expect("tc");
        datapath::attach::load_retrying(|| prog.load()).unwrap_or_else(|e| panic!("loading: {e:?}"));
        let cfg = config::parse("growth.yaml", &chain(hops)).unwrap_or_else(|e| panic!("{e}"));
        let m = model::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let facts: BTreeMap<String, IfaceFacts> = names()
            .into_iter()
            .flat_map(|(a, b)| [a, b])
            .map(|n| {
                let f = IfaceFacts { ifindex: sandbox::ifindex(&n), peer_mac: Some(MAC), peer_in_other_netns: true, ..Default::default() };
                (n, f)
            })
            .collect();
        let c = compile::compile(&m, &facts, None).unwrap_or_else(|e| panic!("{e:?}"));
        let loc = Location::new(None, Some(pins.path().to_owned()));
        Maps::open(&loc).and_then(|mut w| w.write(&c, false)).unwrap_or_else(|e| panic!("{e}"));
        // The hop counters' array slots, as an apply installs them.
        datapath::hop_slots::install(&loc, &m, &compile::Ids::by_index(&m)).unwrap_or_else(|e| panic!("{e}"));
        Setup { ebpf, _pins: pins }
    }

    pub(super) fn run(&self, ifname: &str, p: &[u8], repeat: u32) -> (u32, f64) {
        let ctx = test_run::context(AttachMode::Tc, sandbox::ifindex(ifname), p.len());
        let prog: &SchedClassifier = self.ebpf.program(PROG_TC_INGRESS).expect("program").try_into().expect("tc");
        let mut out = [0u8; 256];
        let o = TestRunOptions { data_in: Some(p), data_out: Some(&mut out), ctx_in: Some(&ctx), repeat, ..TestRunOptions::default() };
        let r = prog.test_run(o).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e:?}"));
        (r.return_value, ns(r.duration))
    }

    fn repeated(&self, ifname: &str, p: &[u8]) -> f64 {
        assert_eq!(self.run(ifname, p, 1).0, test_run::REDIRECT, "{ifname}: not steered");
        median((0..SAMPLES).map(|_| self.run(ifname, p, REPEAT).1).collect())
    }

    /// Mean time of one run each of `packets` (each must be steered).
    fn singles(&self, ifname: &str, packets: impl Iterator<Item = Vec<u8>>) -> f64 {
        let (mut total, mut n) = (0.0, 0u32);
        for p in packets {
            let (v, t) = self.run(ifname, &p, 1);
            assert_eq!(v, test_run::REDIRECT, "{ifname}: not steered");
            (total, n) = (total + t, n + 1);
        }
        total / f64::from(n.max(1))
    }

    /// The flow table's kernel memory (`memlock` of its fdinfo).
    fn flow_table_bytes(&self) -> u64 {
        let m: &aya::maps::Map = self.ebpf.map(MAP_FLOWS).expect("the flow table");
        let data: &MapData = match m {
            aya::maps::Map::LruHashMap(d) | aya::maps::Map::HashMap(d) => d,
            _ => panic!("the flow table is a hash"),
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(data.fd()));
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        info.lines().find_map(|l| l.strip_prefix("memlock:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }
}

/// Markdown lines of both growth tables.
pub fn growth() -> Vec<String> {
    let pairs = names();
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let _ns = sandbox::namespace(&refs);
    let mut out = vec![
        "| hops in the chain | new flow at the entry ns | new flow, the table full ns | back from the first member ns | back from the last member ns |".to_owned(),
        "|---:|---:|---:|---:|---:|".to_owned(),
    ];
    let mut new_flows = Vec::new();
    let mut one_hop = Vec::new();
    for hops in [1, 2, 4, 8] {
        let s = Setup::new(hops, DEFAULT_FLOW_TABLE_SIZE);
        if hops == 2 {
            one_hop = against_references(&s);
        }
        let new_flow = s.singles("gsrc", (0..SPREAD).map(packet));
        // Then the table filled (one entry per flow: the chain is not symmetric), so that every
        // new entry takes the place of the least recently used one: the flow table's steady
        // state under churn or a flood.
        let _ = s.singles("gsrc", (SPREAD..FULL).map(packet));
        let full = s.singles("gsrc", (FULL..FULL + SPREAD).map(packet));
        let first = s.repeated("g1o", &packet(0));
        let last = s.repeated(&format!("g{hops}o"), &packet(0));
        eprintln!("bench_micro: {hops} hops: new flow {new_flow:.0} ns (table full: {full:.0} ns), first {first:.0} ns, last {last:.0} ns");
        out.push(format!("| {hops} | {new_flow:.0} | {full:.0} | {first:.0} | {last:.0} |"));
        new_flows.push((hops, new_flow, full));
    }
    out.push(String::new());
    // The kernel's time of the program alone (no skb, no driver, no SF): an upper bound on what
    // one core sets up, next to the flood guard Katran documents (125,000 new connections/s/core).
    let rates: Vec<String> = new_flows
        .iter()
        .map(|(h, room, full)| format!("{:.0}k ({h} hop{}; {:.0}k with the table full)", 1e6 / room, if *h == 1 { "" } else { "s" }, 1e6 / full))
        .collect();
    out.push(format!(
        "New-flow setup rate per core, program time only (flows/s, from the new-flow columns): {}; Katran's flood guard is 125k new connections/s/core. \
         The table full: each new entry evicts the least recently used (the kernel's LRU takes free entries back from its lists in batches). \
         `--new-flow-rate` caps entry creation per CPU at that figure by default ({}/s).",
        rates.join(", "),
        sfc_common::limits::DEFAULT_NEW_FLOW_RATE
    ));
    out.push(String::new());
    out.extend(one_hop);
    out.push(String::new());
    out.push("| flow table entries | flows in the table | hit, one packet repeated ns | hit, 20,000 flows one run each ns (median of 3 passes) | floor, the same lookups alone ns (the same) |".to_owned());
    out.push("|---:|---:|---:|---:|---:|".to_owned());
    // The default table (65,536 entries) with up to 50,000 flows, then the big one with up to
    // 1,000,000: the sizes between show where the spread cost grows, and how much of it is the
    // table's size (its buckets and entries spread over its memory) rather than the flows in it.
    let (mut rows, mut bytes) = (Vec::new(), 0);
    for (table, sizes) in [(65_536, &[10, 10_000, 50_000][..]), (TABLE, &[10, 10_000, 100_000, MANY][..])] {
        let s = Setup::new(1, table);
        let floor = flow_floor(table);
        let mut loaded = 0;
        for &live in sizes {
            // Fill the table to `live` flows (each flow's first packet), then time hits on them.
            let _ = s.singles("gsrc", (loaded..live).map(packet));
            floor.fill((loaded..live).map(packet).collect::<Vec<_>>().iter().map(Vec::as_slice));
            loaded = live;
            // 20,000 single runs over the live flows, spread evenly (round and round for 10).
            let step = (live / SPREAD).max(1);
            let hit = s.repeated("gsrc", &packet(live / 2));
            let spread_packets: Vec<Vec<u8>> = (0..SPREAD).map(|k| packet((k * step) % live)).collect();
            // sfc and its floor in turn, `PASSES` times (hits can be repeated): the medians.
            let (mut spread, mut bare) = (Vec::new(), Vec::new());
            for _ in 0..PASSES {
                super::floor::evict_caches();
                spread.push(s.singles("gsrc", spread_packets.iter().cloned()));
                super::floor::evict_caches();
                bare.push(floor.singles(spread_packets.iter().map(Vec::as_slice)));
            }
            let (spread, bare) = (median(spread), median(bare));
            eprintln!("bench_micro: table {table}, {live} flows: hit {hit:.0} ns, spread {spread:.0} ns, floor {bare:.0} ns");
            out.push(format!("| {} | {} | {hit:.0} | {spread:.0} | {bare:.0} |", super::group(table as usize), super::group(live)));
            if table == TABLE {
                rows.push((hit, spread, bare));
            }
        }
        bytes = s.flow_table_bytes();
    }
    let per_entry = bytes / u64::from(TABLE);
    let mib = |b: u64| b >> 20;
    out.push(String::new());
    out.push(format!(
        "Hit at {} flows vs 10 (goal: within 1.3x): {:.2}x repeated, {:.2}x spread. The flow table \
         ({} entries, preallocated LRU hash) holds {} MiB of kernel memory: {per_entry} bytes per entry, so \
         {} MiB for 1,000,000 flows. The spread column at 10,000 flows, in the default table and in \
         the big one, shows how much of the growth is the table's size: every lookup reads a bucket at \
         a random place of the bucket array (16 bytes per entry, rounded up to a power of two: 32 MiB \
         here), in 4 KiB pages (a big map is vmalloc memory, and `__bpf_map_area_alloc` asks for no huge \
         mappings): a cache miss and, past the TLB's reach, a page walk.",
        super::group(MANY),
        rows[rows.len() - 1].0 / rows[0].0,
        rows[rows.len() - 1].1 / rows[0].1,
        super::group(TABLE as usize),
        mib(bytes),
        mib(per_entry * MANY as u64),
    ));
    let (few, many) = (rows[0], rows[rows.len() - 1]);
    out.push(String::new());
    out.push(format!(
        "Floor: the flow lookup alone (the packet's addresses and ports in a key of the flow key's size, \
         in an LRU hash of the flow table's size holding the same flows, looked up by a bare program, one \
         run each, the median of three passes as for sfc) grows by {:.0} ns from 10 flows to {}; sfc's spread hit by {:.0} ns. With the floor's \
         growth, a ratio of 1.3x needs a spread hit to cost {} at 10 flows; sfc's costs {:.0} ns.",
        many.2 - few.2,
        super::group(MANY),
        many.1 - few.1,
        super::floor::needs(many.2 - few.2, 1.3),
        few.1,
    ));
    out
}

/// The datapath's object: the loader's, or the file `SFC_BENCH_EBPF_OBJECT` names (another
/// build of sfc-ebpf, to compare two builds in the same harness; the maps must be the same).
pub fn object() -> std::borrow::Cow<'static, [u8]> {
    match std::env::var_os("SFC_BENCH_EBPF_OBJECT") {
        Some(path) => {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("SFC_BENCH_EBPF_OBJECT {}: {e}", path.to_string_lossy()));
            eprintln!("bench_micro: the datapath from {}", path.to_string_lossy());
            bytes.into()
        }
        None => datapath::EBPF_OBJECT.into(),
    }
}

/// `against_references` alone, in a namespace of its own.
pub fn one_hop() -> Vec<String> {
    let (_ns, s) = two_hops();
    against_references(&s)
}

/// The ports of path (d)'s kinds of run on a 2-hop chain: the entry, the first SF's egress (on
/// to the second SF), the last SF's (delivering).
pub(super) const ONE_HOP_PORTS: [&str; 3] = ["gsrc", "g1o", "g2o"];

/// A 2-hop chain (and the table of the default size) in a namespace of its own.
pub(super) fn two_hops() -> (sfc_tests::netns::Inside, Setup) {
    let pairs = names();
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let ns = sandbox::namespace(&refs);
    (ns, Setup::new(2, DEFAULT_FLOW_TABLE_SIZE))
}

/// sfc's hops on a 2-hop chain (`s`), a packet of a known flow, against the program of path
/// (g), the flow-keeping floor, and of path (f), the limit: sfc's entry port (`gsrc`), its
/// first SF's egress (on to the second SF) and its last SF's (delivering): the four program runs
/// of path (d)'s kinds; each `REPEAT` runs of the same packet, all in turn `SAMPLES` times,
/// medians. Markdown lines. The packet is one that SF timing does not sample (as 15 in 16 are
/// not; a sampled one would add an in-flight table write at every hop, 90 ns at the entry here):
/// should a change of the fingerprint make it one, the entry's figure doubles, which says so.
fn against_references(s: &Setup) -> Vec<String> {
    use sfc_tests::{
        hopfloor::{HopFloor, limit_program},
        rawbpf::{self, TestRun},
    };
    assert_eq!(
        (sfc_tests::hopfloor::FLOW_KEY, sfc_tests::hopfloor::FLOW_VALUE),
        super::floor::flow_sizes(),
        "the floor's flow table has sfc's key and entry sizes"
    );
    let (from, to) = (sandbox::ifindex("g1o"), sandbox::ifindex("gdst"));
    let p = packet(0);
    let floor = HopFloor::new().unwrap_or_else(|e| panic!("{e:#}"));
    floor.steer(from, to, MAC).unwrap_or_else(|e| panic!("{e:#}"));
    let limit = rawbpf::load_sched_cls(&limit_program(to, MAC)).unwrap_or_else(|e| panic!("{e:#}"));
    let ctx = test_run::context(AttachMode::Tc, from, p.len());
    let raw = |prog: &std::os::fd::OwnedFd, repeat: u32| -> (u32, f64) {
        let (v, t) = rawbpf::test_run(prog, &p, TestRun { ctx: Some(&ctx), repeat, out: None }).unwrap_or_else(|e| panic!("{e:#}"));
        (v, f64::from(t))
    };
    // The first runs: each steers (sfc's entry and the floor record the flow; the runs after
    // are hits).
    assert_eq!(raw(floor.prog(), 1).0, test_run::REDIRECT, "the floor did not steer");
    assert_eq!(raw(&limit, 1).0, test_run::REDIRECT, "(f)'s program did not steer");
    let ports = ONE_HOP_PORTS;
    for port in ports {
        assert_eq!(s.run(port, &p, 1).0, test_run::REDIRECT, "sfc did not steer on {port}");
    }
    let (mut sfc, mut g, mut f) = (vec![Vec::new(); ports.len()], Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        for (i, port) in ports.iter().enumerate() {
            sfc[i].push(s.run(port, &p, REPEAT).1);
        }
        g.push(raw(floor.prog(), REPEAT).1);
        f.push(raw(&limit, REPEAT).1);
    }
    let sfc: Vec<f64> = sfc.into_iter().map(median).collect();
    let (g, f) = (median(g), median(f));
    // Path (d) runs the program at its entry port, at two SFs' egresses towards the next SF and
    // at the last one's, delivering.
    let path = (sfc[0] + 2.0 * sfc[1] + sfc[2]) / 4.0;
    eprintln!(
        "bench_micro: one hop: sfc {path:.0} ns (entry {:.0}, SF to SF {:.0}, SF to dest {:.0}), floor (g) {g:.0} ns, limit (f) {f:.0} ns",
        sfc[0], sfc[1], sfc[2]
    );
    vec![
        "| one hop, a packet of a known flow | ns per run |".to_owned(),
        "|---|---:|".to_owned(),
        format!("| (f)'s program: constant MAC and `bpf_redirect_peer`, 13 instructions | {f:.0} |"),
        format!(
            "| (g)'s program, the flow-keeping floor: array slot, parse, 44-byte flow lookup, MAC, redirect; {} instructions | {g:.0} |",
            floor.insns()
        ),
        format!("| sfc, at the entry port | {:.0} |", sfc[0]),
        format!("| sfc, back from an SF, on to the next | {:.0} |", sfc[1]),
        format!("| sfc, back from the last SF, delivered | {:.0} |", sfc[2]),
        format!("| sfc, path (d)'s four runs per packet (entry, two SF to SF, one delivery), mean | {path:.0} |"),
        String::new(),
        format!(
            "sfc's mean run costs {:.0} ns above the floor, the floor {:.0} ns above (f): sfc's features per hop (counters, loop \
             guard, SF timing, members and generations, IPv6, VLANs, fragments, taps, SFC-aware headers) against keeping a flow \
             at all.",
            path - g,
            g - f
        ),
    ]
}

/// The floor under the spread hits (`floor`): a map of the flow table's kind and size (LRU
/// hash, `table` entries, sfc's key and entry sizes) keyed by the frame's addresses and ports.
fn flow_floor(table: u32) -> super::floor::Floor {
    use super::floor;
    let (key_size, value_size) = floor::flow_sizes();
    let spec = sfc_tests::rawbpf::MapSpec { map_type: sfc_tests::rawbpf::BPF_MAP_TYPE_LRU_HASH, key_size, value_size, max_entries: table, flags: 0 };
    floor::Floor::new(spec, floor::FLOW_FROM, floor::FLOW_WORDS, None)
}
