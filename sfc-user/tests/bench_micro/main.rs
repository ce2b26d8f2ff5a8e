//! Micro benchmark: the tc program's cost per packet, measured by the kernel with
//! `BPF_PROG_TEST_RUN`, for 1 to 100,000 flow classifiers. Not a test (no timing assertions):
//! `cargo xtask bench` runs it in release mode with
//! `cargo test --release -p sfc-user --test bench_micro -- --ignored --nocapture` (this file and
//! `growth.rs`: hops and flow-table growth, printed between `BENCH-GROWTH BEGIN` / `END`)
//! and copies the table it prints (between `BENCH-MICRO BEGIN` / `END`) into BENCHMARKS.md.
//!
//! Set-up per classifier count N: a fresh load of `EBPF_OBJECT` with its own pin directory, maps
//! written by the real loader code (`compile::compile` -> `Maps::write`) from a model of N UDP
//! classifiers, each a distinct /32 destination on one logical source port, all on one chain with
//! one service function, delivered to a logical destination port. The model is a validated
//! one-classifier chain file (`config::parse` -> `model::validate`) with the classifier copied N
//! times (see `model_with`). The thread lives in a private network namespace whose veths give the
//! program real ifindexes (the kernel resolves `skb->ifindex`); nothing is attached, no packet is
//! sent.
//!
//! Columns (nanoseconds per packet, as the kernel times the program):
//! - hit: a packet of a known flow on the source port (flow lookup, member, redirect), one
//!   packet run `HIT_REPEAT` times: the kernel's own average. SF hop: the same packet coming
//!   back from the service function (flow lookup, next hop). Not sfc's: a packet on the source
//!   port that no classifier matches (walk fails, nothing recorded).
//! - miss: the first packet of a new flow (classification walk, member pick, flow insert). A run
//!   records its flow, so a repeated run would be a hit: every miss is its own `repeat = 1` run
//!   of a distinct packet, `MISSES` of them; "spread" sends them to destinations spread over all
//!   N classifiers, "one dst" all to one classifier's (its trie path stays in the cache). The
//!   kernel reads its clock around each single run, which adds a fixed cost: "hit, 1 run"
//!   measures the spread packets again the same way (now hits), for comparison.
//! - XDP hit, XDP SF hop: the hit and SF hop packets through `sfc_xdp` instead (same maps, the
//!   redirect through the devmap, the MTU check and the offloaded-checksum test).
//! - floor, spread: what the spread misses cannot do without, in a bare program (`floor.rs`):
//!   its lookup in a flow table (a miss), the lookup of its destination in a hash of
//!   `SFC_CLS_HASH`'s kind and size holding the N destinations, then the flow's insert into the
//!   flow table. Its growth from 1 to N is the part of "miss, spread"'s growth that those maps
//!   cost by themselves on this machine.
//! - compile s, write s: `compile::compile` and `Maps::write` of the N classifiers.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp},
};
use etherparse::PacketBuilder;
use sfc::{
    compile::{self, IfaceFacts},
    config,
    datapath::{self, Location, maps::Maps},
    model::{self, AttachMode, FlowClassifier, Model, PortChain, Prefix},
};
use sfc_common::maps::{PROG_TC_INGRESS, PROG_XDP};

/// The fixtures' namespace and pin directory, and the test-run verdicts and context.
#[path = "../common/sandbox.rs"]
mod sandbox;
#[path = "../common/test_run.rs"]
#[expect(dead_code, reason = "the benchmark checks steered and unclassified packets, not drops")]
mod test_run;
use test_run::{PASS, REDIRECT, XDP_REDIRECT};
use sfc_tests::bpffs::PinDir;

mod cores;
mod floor;
mod growth;
mod profile;
mod tracing;
mod updates;

/// Classifier counts to measure (the 1, 100, 10,000 and 100,000).
const SIZES: &[usize] = &[1, 100, 10_000, 100_000];
/// Chains the largest size is dealt over in the last row.
const SPREAD_CHAINS: usize = 4_000;
/// Runs per hit measurement, and how many measurements (the median is reported).
const HIT_REPEAT: u32 = 200_000;
const HIT_SAMPLES: usize = 5;
/// New flows per miss measurement (well below the flow table's 65,536 entries).
const MISSES: usize = 20_000;
/// Floors measured per row (`cls_floor`), of which the median.
const FLOOR_PASSES: usize = 3;

/// Interfaces in the private namespace: the logical source port, the logical destination port,
/// and the service function's ingress and egress.
const SRC: &str = "bsrc";
const DST: &str = "bdst";
const SF_IN: &str = "bsfi";
const SF_OUT: &str = "bsfo";
const PAIRS: &[(&str, &str)] = &[(SRC, DST), (SF_IN, SF_OUT)];

const CLIENT: [u8; 4] = [192, 168, 1, 10];
const MAC_A: [u8; 6] = [0x02, 0x5f, 0xc0, 0xbe, 0x00, 0x01];
const MAC_B: [u8; 6] = [0x02, 0x5f, 0xc0, 0xbe, 0x00, 0x02];
const DPORT: u16 = 5001;

/// The destination of classifier `i`: distinct /32s in 10.0.0.0/8.
fn dst_of(i: usize) -> [u8; 4] {
    let i = u32::try_from(i).expect("fewer than 2^24 classifiers") + 1;
    let [_, a, b, c] = i.to_be_bytes();
    [10, a, b, c]
}

/// The chain file for one classifier: one SF (ingress `SF_IN`, egress `SF_OUT`), UDP to
/// `dst_of(0)`/32 arriving on `SRC`, delivered to `DST`.
fn chain_file() -> String {
    let [a, b, c, d] = dst_of(0);
    format!(
        "port_pairs:\n  - {{name: pp1, ingress: {SF_IN}, egress: {SF_OUT}}}\n\
         port_pair_groups:\n  - {{name: pg1, port_pairs: [pp1]}}\n\
         flow_classifiers:\n  - {{name: c0, protocol: udp, destination_ip_prefix: {a}.{b}.{c}.{d}/32, \
         logical_source_port: {SRC}, logical_destination_port: {DST}}}\n\
         port_chains:\n  - {{name: pc1, chain_id: 1, port_pair_groups: [pg1], flow_classifiers: [c0]}}\n"
    )
}

/// The validated model of `chain_file()` with classifier `c0` copied to `n` classifiers, `c<i>`
/// for `dst_of(i)`/32, all on chain `pc0`. Built in code rather than parsed: parsing and
/// validating are timed apart (`updates::reading`).
fn model_with(n: usize) -> Model {
    model_over(n, 1)
}

/// `model_with(n)` with the classifiers dealt over `chains` chains (classifier i into chain
/// i % chains, all through the one group): results that differ, so the classes after the
/// first field are shared only by a chain's classifiers.
fn model_over(n: usize, chains: usize) -> Model {
    let cfg = config::parse("bench.yaml", &chain_file()).unwrap_or_else(|e| panic!("{e}"));
    let mut model = model::validate(&cfg).unwrap_or_else(|e| panic!("bench config invalid:\n{e}"));
    let template = model.flow_classifiers[0].clone();
    model.flow_classifiers = (0..n)
        .map(|i| {
            let mut addr = [0u8; 16];
            addr[..4].copy_from_slice(&dst_of(i));
            FlowClassifier {
                name: format!("c{i}"),
                destination_prefix: Prefix { addr, ..template.destination_prefix },
                ..template.clone()
            }
        })
        .collect();
    let template = model.port_chains[0].clone();
    model.port_chains = (0..chains)
        .map(|c| PortChain {
            name: format!("pc{c}"),
            chain_id: u32::try_from(c + 1).expect("few chains"),
            flow_classifiers: (c..n).step_by(chains).collect(),
            ..template.clone()
        })
        .collect();
    model
}

/// A 64-byte frame on the wire (60 without the FCS): Ethernet, IPv4, UDP, 18 bytes of payload.
fn udp64(dst: [u8; 4], sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(CLIENT, dst, 64)
        .udp(sport, DPORT)
        .write(&mut v, &[0u8; 18])
        .expect("building a packet");
    assert_eq!(v.len(), 60);
    v
}

/// One loaded datapath with N classifiers.
struct Bench {
    // Drop order: program and map fds before the pins.
    ebpf: Ebpf,
    _pins: PinDir,
    compile: Duration,
    write: Duration,
    loc: Location,
}

impl Bench {
    fn new(n: usize) -> Self {
        Self::over(n, 1)
    }

    /// `new`, the classifiers dealt over `chains` chains (`model_over`).
    fn over(n: usize, chains: usize) -> Self {
        let pins = sandbox::pin_dir();
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins.path())
            .load(&growth::object())
            .unwrap_or_else(|e| panic!("loading the BPF object: {e}"));
        let prog: &mut SchedClassifier =
            ebpf.program_mut(PROG_TC_INGRESS).expect("program in the object").try_into().expect("a tc program");
        sfc::datapath::attach::load_retrying(|| prog.load()).unwrap_or_else(|e| panic!("loading {PROG_TC_INGRESS}: {e:?}"));
        let xdp: &mut Xdp = ebpf.program_mut(PROG_XDP).expect("program in the object").try_into().expect("an XDP program");
        sfc::datapath::attach::load_retrying(|| xdp.load()).unwrap_or_else(|e| panic!("loading {PROG_XDP}: {e:?}"));

        let model = model_over(n, chains);
        let started = Instant::now();
        let macs = [(SRC, MAC_B), (DST, MAC_A), (SF_IN, [2, 0x5f, 0xc0, 0xbe, 1, 1]), (SF_OUT, [2, 0x5f, 0xc0, 0xbe, 1, 2])];
        let facts: BTreeMap<String, IfaceFacts> = macs
            .iter()
            .map(|(name, mac)| {
                let f = IfaceFacts { ifindex: sandbox::ifindex(name), peer_mac: Some(*mac), peer_in_other_netns: true, ..Default::default() };
                ((*name).to_owned(), f)
            })
            .collect();
        let compiled = compile::compile(&model, &facts, None).unwrap_or_else(|e| panic!("compile: {e:?}"));
        let compile = started.elapsed();
        let started = Instant::now();
        let loc = Location::new(None, Some(pins.path().to_owned()));
        Maps::open(&loc)
            .and_then(|mut m| m.write(&compiled, false))
            .unwrap_or_else(|e| panic!("writing the maps: {e}"));
        // The hop counters' array slots, as an apply installs them.
        datapath::hop_slots::install(&loc, &model, &compile::Ids::by_index(&model)).unwrap_or_else(|e| panic!("{e}"));
        Self { ebpf, loc, _pins: pins, compile, write: started.elapsed() }
    }

    /// Runs the tc program `repeat` times on `packet` arriving on `ifindex`; returns the verdict
    /// and the kernel's average time per run.
    fn run(&self, ifindex: u32, packet: &[u8], repeat: u32) -> (u32, Duration) {
        let ctx = test_run::context(AttachMode::Tc, ifindex, packet.len());
        let prog: &SchedClassifier = self.ebpf.program(PROG_TC_INGRESS).expect("program").try_into().expect("tc");
        Self::timed(packet, &ctx, repeat, |o| prog.test_run(o))
    }

    /// `run` through the XDP program.
    fn run_xdp(&self, ifindex: u32, packet: &[u8], repeat: u32) -> (u32, Duration) {
        let ctx = test_run::context(AttachMode::Xdp, ifindex, packet.len());
        let prog: &Xdp = self.ebpf.program(PROG_XDP).expect("program").try_into().expect("xdp");
        Self::timed(packet, &ctx, repeat, |o| prog.test_run(o))
    }

    fn timed(
        packet: &[u8],
        ctx: &[u8],
        repeat: u32,
        test_run: impl FnOnce(TestRunOptions<'_>) -> Result<aya::programs::TestRunResult, aya::programs::ProgramError>,
    ) -> (u32, Duration) {
        let mut out = [0u8; 256];
        let opts = TestRunOptions { data_in: Some(packet), data_out: Some(&mut out), ctx_in: Some(ctx), repeat, ..TestRunOptions::default() };
        let r = test_run(opts).unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e:?}"));
        (r.return_value, r.duration)
    }
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per packet for one classifier count.
struct Row {
    n: usize,
    chains: usize,
    compile: Duration,
    write: Duration,
    hit: f64,
    sf_hop: f64,
    unclassified: f64,
    /// New flows to destinations spread over every classifier.
    miss: f64,
    /// New flows all to one classifier's destination (the trie path stays in the cache).
    miss_one_dst: f64,
    /// The spread-out flows again, now known: the same single-run method as the misses.
    hit_single: f64,
    xdp_hit: f64,
    xdp_sf_hop: f64,
    /// The spread misses' classifier lookup alone, in a bare program (`floor`).
    lookup_floor: f64,
    /// The flow's lookup (a miss), that lookup and the flow's insert, in a bare program.
    floor: f64,
}

impl Bench {
    /// Kernel time per packet, repeated runs of one packet: the median of `HIT_SAMPLES`.
    fn repeated(&self, ifindex: u32, packet: &[u8], want: u32, what: &str) -> f64 {
        let (v, _) = self.run(ifindex, packet, 1);
        assert_eq!(v, want, "{what}: verdict {v}, want {want}");
        median((0..HIT_SAMPLES).map(|_| ns(self.run(ifindex, packet, HIT_REPEAT).1)).collect())
    }

    /// `repeated` through the XDP program (a redirect is `XDP_REDIRECT`).
    fn repeated_xdp(&self, ifindex: u32, packet: &[u8], what: &str) -> f64 {
        let (v, _) = self.run_xdp(ifindex, packet, 1);
        assert_eq!(v, XDP_REDIRECT, "{what} (XDP): verdict {v}");
        median((0..HIT_SAMPLES).map(|_| ns(self.run_xdp(ifindex, packet, HIT_REPEAT).1)).collect())
    }

    /// Mean kernel time of one run each of `packets`, every one of which must be steered.
    fn singles(&self, ifindex: u32, packets: &[Vec<u8>], what: &str) -> f64 {
        let mut total = Duration::ZERO;
        for p in packets {
            let (v, d) = self.run(ifindex, p, 1);
            assert_eq!(v, REDIRECT, "{what}: a packet was not steered");
            total += d;
        }
        ns(total) / f64::from(u32::try_from(packets.len()).expect("fewer than 2^32 packets"))
    }
}

/// `count` packets of distinct flows (source ports `first_sport`..), to the destination of
/// classifier `dst(i)` for the i-th.
fn flows(count: usize, first_sport: u16, dst: impl Fn(usize) -> usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| udp64(dst_of(dst(i)), first_sport + u16::try_from(i).expect("fewer than 2^16 flows")))
        .collect()
}

fn measure(n: usize, chains: usize) -> Row {
    let b = Bench::over(n, chains);
    let (src, sf_out) = (sandbox::ifindex(SRC), sandbox::ifindex(SF_OUT));
    let what = format!("{n} classifiers over {chains} chains");

    // One known flow, to a classifier in the middle of the table; then the same packet coming
    // back from the SF; then a destination no classifier has (the walk fails, nothing is kept).
    let p = udp64(dst_of(n / 2), 1000);
    let hit = b.repeated(src, &p, REDIRECT, &what);
    let sf_hop = b.repeated(sf_out, &p, REDIRECT, &what);
    let unclassified = b.repeated(src, &udp64([172, 16, 0, 1], 1000), PASS, &what);
    let xdp_hit = b.repeated_xdp(src, &p, &what);
    let xdp_sf_hop = b.repeated_xdp(sf_out, &p, &what);

    // New flows: distinct source ports, destinations spread over every classifier (a stride
    // prime to n), then all to one destination.
    let stride = 7919 % n.max(2);
    let spread = flows(MISSES, 2000, |i| (i * stride) % n);
    // The floor's spread runs start from the same cache state (`floor::evict_caches`).
    floor::evict_caches();
    let miss = b.singles(src, &spread, &what);
    let hit_single = b.singles(src, &spread, &what);
    let miss_one_dst = b.singles(src, &flows(MISSES, 30_000, |_| n / 3), &what);
    // Dealt over many chains, the destinations and so the floor are those of the row before.
    let (lookup_floor, floor) = if chains == 1 { cls_floor(n, &spread) } else { (f64::NAN, f64::NAN) };
    Row { n, chains, compile: b.compile, write: b.write, hit, sf_hop, unclassified, miss, miss_one_dst, hit_single, xdp_hit, xdp_sf_hop, lookup_floor, floor }
}

/// The floors under "miss, spread" (`floor`): the classifier hash's lookup of each packet's
/// destination, in a map like `SFC_CLS_HASH` (hash, no preallocation, both banks' size) holding
/// the `n` destinations; alone, and between the flow's lookup (a miss) and its insert in a flow
/// table of the default size, the least a new flow does.
fn cls_floor(n: usize, packets: &[Vec<u8>]) -> (f64, f64) {
    use sfc_common::{
        limits::{DEFAULT_FLOW_TABLE_SIZE, MAX_CLS_ENTRIES},
        maps::ClsKey,
    };
    let key_size = u32::try_from(size_of::<ClsKey>()).expect("small");
    let dsts: Vec<Vec<u8>> = (0..n).map(|i| udp64(dst_of(i), 0)).collect();
    let spec = sfc_tests::rawbpf::MapSpec {
        map_type: sfc_tests::rawbpf::BPF_MAP_TYPE_HASH,
        key_size,
        value_size: 4,
        max_entries: MAX_CLS_ENTRIES * 2,
        flags: sfc_tests::rawbpf::BPF_F_NO_PREALLOC,
    };
    // A fresh floor each time (a flow inserted once is not new again); the median of
    // `FLOOR_PASSES` (single runs are noisy here, and sfc's misses cannot be repeated).
    let timed = |record| {
        median(
            (0..FLOOR_PASSES)
                .map(|_| {
                    let f = floor::Floor::new(spec, floor::DST_FROM, 1, record);
                    f.fill(dsts.iter().map(Vec::as_slice));
                    floor::evict_caches();
                    f.singles(packets.iter().map(Vec::as_slice))
                })
                .collect(),
        )
    };
    (timed(None), timed(Some(DEFAULT_FLOW_TABLE_SIZE)))
}

/// The classifier table, its ratios and the floor's line.
fn print_rows(rows: &[Row]) {
    println!(
        "| classifiers | hit | SF hop | not sfc's | miss, spread | miss, one dst | hit, 1 run | XDP hit | XDP SF hop | floor, spread | compile s | write s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {}{} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.1} | {:.1} |",
            group(r.n),
            if r.chains == 1 { String::new() } else { format!(" over {} chains", group(r.chains)) },
            r.hit,
            r.sf_hop,
            r.unclassified,
            r.miss,
            r.miss_one_dst,
            r.hit_single,
            r.xdp_hit,
            r.xdp_sf_hop,
            if r.floor.is_nan() { "-".to_owned() } else { format!("{:.0}", r.floor) },
            r.compile.as_secs_f64(),
            r.write.as_secs_f64()
        );
    }
    let (first, last, over) = (&rows[0], &rows[rows.len() - 2], &rows[rows.len() - 1]);
    println!();
    println!(
        "ns per packet. Cost at {} classifiers vs 1 (goal: within 1.2x; a new flow spread over them: within 1.5x): \
         hit {:.2}x, SF hop {:.2}x, miss spread over the classifiers {:.2}x ({:.2}x over {} chains), \
         miss to one destination {:.2}x.",
        group(last.n),
        last.hit / first.hit,
        last.sf_hop / first.sf_hop,
        last.miss / first.miss,
        over.miss / first.miss,
        group(over.chains),
        last.miss_one_dst / first.miss_one_dst,
    );
    let (grew, floor_grew, lookup_grew) = (last.miss - first.miss, last.floor - first.floor, last.lookup_floor - first.lookup_floor);
    println!(
        "Floor: what a new flow cannot do without, in a bare program (one run each, the median of \
         three fresh floors): its lookup in a flow table of the default size (a miss), \
         the lookup of its destination in a hash of SFC_CLS_HASH's kind and size holding the {} \
         destinations, then \
         its insert into the flow table. It takes {:.0} ns at 1 classifier and {:.0} ns \
         at {}: it grows by {floor_grew:.0} ns ({lookup_grew:.0} ns for the lookup alone), sfc's miss \
         spread by {grew:.0} ns. With the floor's growth, a ratio of 1.5x needs a new flow to cost {} at \
         one classifier; sfc's costs {:.0} ns.",
        group(last.n),
        first.floor,
        last.floor,
        group(last.n),
        floor::needs(floor_grew, 1.5),
        first.miss,
    );
}

#[test]
#[ignore = "benchmark, run by `cargo xtask bench`"]
fn classify_and_steer() {
    sandbox::sweep_stale();
    let netns = sandbox::namespace(PAIRS);
    // The sizes into one chain, then the largest dealt over many chains.
    let runs = SIZES.iter().map(|&n| (n, 1)).chain([(SIZES[SIZES.len() - 1], SPREAD_CHAINS)]);
    let rows: Vec<Row> = runs
        .map(|(n, chains)| {
            let r = measure(n, chains);
            eprintln!(
                "bench_micro: {} classifiers over {chains} chains: compiled in {:.1?}, maps written in {:.1?}",
                group(n),
                r.compile,
                r.write
            );
            r
        })
        .collect();

    println!("BENCH-MICRO BEGIN");
    print_rows(&rows);
    println!(
        "Classes: the loader gives classifiers that lead to the same chain and ports one class after \
         their first field (what they match there is theirs; what follows is shared), so a new flow \
         spread over 100,000 host classifiers into one chain reads one entry out of the cache, not \
         one per field. Dealt over {} chains the later stages have a class per chain.",
        group(SPREAD_CHAINS),
    );
    println!(
        "hit, SF hop, not sfc's (no classifier matches, on the source port): median of {HIT_SAMPLES} runs \
         of {HIT_REPEAT} repeats of one packet. miss: a new flow, mean over {MISSES} flows, one run of \
         one packet each (a repeat would be a hit), \"spread\": destinations over every classifier, \
         \"one dst\": all to one classifier; \"hit, 1 run\": the spread flows again, now known, timed the \
         same way (the difference to \"hit\" is the kernel's timer around a single run). \
         XDP hit, XDP SF hop: the same packets through sfc_xdp (devmap redirect, MTU check, checksum test)."
    );
    println!();
    for line in tracing::tracing_cost() {
        println!("{line}");
    }
    println!();
    for line in cores::cores(netns.name()) {
        println!("{line}");
    }
    println!();
    println!(
        "Two cores: the program on CPU 0 alone, on CPU 1 alone, then on both at once, each core with flows of \
         its own (as RSS or RPS spreads a NIC's flows), threads pinned, no sender on either core; median \
         of {} samples (known flows: runs of {} repeats; new flows: {} runs of one packet each, \
         inserting into the shared LRU flow table). Scaling: the sum over both cores of its time alone over its time together (2.00x: no \
         contention).",
        cores::SAMPLES,
        cores::REPEAT,
        cores::NEW_FLOWS
    );
    println!();
    println!(
        "Tracing and SF timing: median of {} runs of {} repeats of one packet, \
         the trace ring drained between runs; \"events per run\": trace events received per packet run \
         (1 when every packet is traced). SF timing: on the entry port, the stamp of the sampled \
         packet in the in-flight table (an LRU hash insert); on the SF hop, the lookup of that stamp \
         (here never found: the same packet repeated, so the histogram update is not in the figure). \
         At the default 1 packet in 16 the stamp costs a sixteenth of its row's difference.",
        tracing::TRACED_SAMPLES,
        tracing::TRACED_REPEAT
    );
    println!("BENCH-MICRO END");
    drop(netns);
}

#[test]
#[ignore = "benchmark, run by `cargo xtask bench`"]
fn growth_with_hops_and_flows() {
    sandbox::sweep_stale();
    let mut growth = growth::growth();
    growth.push(String::new());
    growth.extend(updates::updates());
    println!("BENCH-GROWTH BEGIN");
    for line in growth {
        println!("{line}");
    }
    println!("BENCH-GROWTH END");
}

/// One hop against path (f)'s and (g)'s programs alone (`growth_with_hops_and_flows` prints it
/// too): for working on the per-hop cost. `SFC_BENCH_EBPF_OBJECT` (see `growth::object`) times
/// another build of the datapath in the same harness.
#[test]
#[ignore = "benchmark, run by `cargo xtask bench` (within growth_with_hops_and_flows)"]
fn one_hop_alone() {
    sandbox::sweep_stale();
    for line in growth::one_hop() {
        println!("{line}");
    }
}

/// perf over `one_hop_alone`'s kinds of run, by source line (`profile`): where an entry, an SF
/// hop and a delivery spend their time. Needs perf (`cargo xtask bench --profile` installs it).
#[test]
#[ignore = "profile, run by hand"]
fn one_hop_profile() {
    sandbox::sweep_stale();
    for line in profile::one_hop_lines() {
        println!("{line}");
    }
}

/// The updates table alone (`growth_with_hops_and_flows` prints it too): for working on apply.
#[test]
#[ignore = "benchmark, run by `cargo xtask bench` (within growth_with_hops_and_flows)"]
fn updates_alone() {
    sandbox::sweep_stale();
    for line in updates::updates() {
        println!("{line}");
    }
}

/// `100000` -> `100,000`.
fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
