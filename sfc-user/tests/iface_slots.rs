//! The interfaces' array slots (`SFC_IFACES_DIR`): the program finds an interface's role in its
//! slot, and in the hash when another interface of the bank has the slot. Interfaces are made
//! with ifindexes that share slots (`IFACE_DIRECT_SLOTS` apart), chains are applied for real
//! (in this process, so later applies write only the changed interfaces' slots), and packets are
//! run through the installed tc program with `BPF_PROG_TEST_RUN`. Needs root (bpf, a network
//! namespace).

#[path = "common/down.rs"]
mod down;
#[path = "common/sandbox.rs"]
mod sandbox;
#[path = "common/test_run.rs"]
#[expect(dead_code, reason = "only tc verdicts are checked")]
mod test_run;

use std::time::Duration;

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions};
use etherparse::PacketBuilder;
use sfc::{
    config,
    datapath::{self, LoadOptions, Location, direct, maps::Maps},
    model::{self, AttachMode, Model},
};
use sfc_common::limits::IFACE_DIRECT_SLOTS;
use sfc_tests::link::Veth;

/// (name, ifindex) of each veth pair's ends. `zs1o` and `zs2o` share `zs1i`'s slot; of the
/// interfaces of a bank that share a slot the lowest ifindex has it.
const BASE: u32 = 300;
/// A veth end: its name and ifindex.
type End = (&'static str, u32);

fn pairs() -> [(End, End); 3] {
    [
        (("zsrc", BASE), ("zdst", BASE + 1)),
        (("zs1i", BASE + 2), ("zs1o", BASE + 2 + IFACE_DIRECT_SLOTS)),
        (("zs2i", BASE + 4), ("zs2o", BASE + 2 + 2 * IFACE_DIRECT_SLOTS)),
    ]
}

/// One chain from `zsrc` to `zdst` through port pairs `pps` (of zs1, zs2).
fn model_with(pps: &[u8]) -> Model {
    let pairs: Vec<String> = pps.iter().map(|n| format!("  - {{name: pp{n}, ingress: zs{n}i, egress: zs{n}o}}\n")).collect();
    let groups: Vec<String> = pps.iter().map(|n| format!("  - {{name: pg{n}, port_pairs: [pp{n}]}}\n")).collect();
    let names: Vec<String> = pps.iter().map(|n| format!("pg{n}")).collect();
    let file = format!(
        "port_pairs:\n{}port_pair_groups:\n{}flow_classifiers:\n  - {{name: c, protocol: udp, destination_ip_prefix: 10.0.0.2/32, \
         logical_source_port: zsrc, logical_destination_port: zdst}}\n\
         port_chains:\n  - {{name: pc, chain_id: 1, port_pair_groups: [{}], flow_classifiers: [c]}}\n",
        pairs.concat(),
        groups.concat(),
        names.join(", ")
    );
    let cfg = config::parse("slots.yaml", &file).unwrap_or_else(|e| panic!("{e}"));
    model::validate(&cfg).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the installed tc program on one packet of the chain's flow arriving on `dev`; must be
/// steered.
fn send_on(loc: &Location, dev: &str) {
    let prog = SchedClassifier::from_pin(loc.pin_dir.join("prog_tc_ingress")).expect("the pinned tc program");
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(4000, 5000).write(&mut frame, &[0; 18]).expect("frame");
    let ctx = test_run::context(AttachMode::Tc, sandbox::ifindex(dev), frame.len());
    let mut out = vec![0u8; frame.len() + 64];
    let r = prog.test_run(TestRunOptions { data_in: Some(&frame), data_out: Some(&mut out), ctx_in: Some(&ctx), repeat: 1, ..TestRunOptions::default() }).expect("test run");
    let drops = Maps::open(loc).and_then(|m| m.drops()).map(|d| d.into_iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>());
    assert_eq!(r.return_value, test_run::REDIRECT, "a packet on {dev} steered (drops: {drops:?})");
}

/// (classified, from an SF, recomputed) packets counted on `dev`.
fn counts(loc: &Location, dev: &str) -> (u64, u64, u64) {
    let stats = Maps::open(loc).expect("maps").if_stats().expect("interface counters");
    stats.get(&sandbox::ifindex(dev)).map_or((0, 0, 0), |s| (s.classified, s.from_sf, s.recomputed))
}

/// The ifindexes the live bank's slots hold.
fn in_slots(loc: &Location) -> Vec<u32> {
    let live = Maps::open(loc).expect("maps").meta().expect("meta").bank & 1;
    direct::read(loc, live).expect("slots").into_iter().map(|(_, d)| d.ifindex).collect()
}

#[test]
fn interfaces_that_share_a_slot_are_found_in_the_hash() {
    sandbox::sweep_stale();
    let ns = sandbox::namespace(&[]);
    // No IPv6: the kernel's own packets (neighbour discovery) would be counted on the ports.
    let off = [("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1")];
    sfc_tests::netns::sysctls(ns.name(), &off).unwrap_or_else(|e| panic!("{e:#}"));
    for ((a, ia), (b, ib)) in pairs() {
        let (va, vb) = (Veth::new(ns.name(), a).index(ia), Veth::new(ns.name(), b).index(ib));
        sfc_tests::link::veth(va, vb).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((sandbox::ifindex(a), sandbox::ifindex(b)), (ia, ib));
        for dev in [a, b] {
            sfc_tests::link::up(ns.name(), dev).unwrap_or_else(|e| panic!("{e:#}"));
        }
    }
    let pins = sandbox::pin_dir();
    let loc = Location::new(None, Some(pins.path().to_owned()));
    let _down = down::Down(&loc);
    let opts = LoadOptions { flow_table_size: 1024, drain_timeout: Duration::ZERO, mode: AttachMode::Tc, new_flow_rate: 0, absent_ok: false, latency_every: 0 };
    let apply = |pps: &[u8]| {
        datapath::apply(&loc, &model_with(pps), opts).unwrap_or_else(|e| panic!("apply {pps:?}: {e}"));
        datapath::direct::check(&loc).expect("reading the slots").unwrap_or_else(|e| panic!("after applying {pps:?}: {e}"));
    };

    // From scratch (every slot of the bank written): zs1o is found in the hash.
    apply(&[1]);
    assert_eq!(in_slots(&loc), vec![BASE, BASE + 1, BASE + 2]);
    send_on(&loc, "zsrc");
    send_on(&loc, "zs1o");
    send_on(&loc, "zs1o");
    assert_eq!(counts(&loc, "zsrc"), (1, 0, 0));
    assert_eq!(counts(&loc, "zs1o"), (0, 2, 0), "zs1o, found in the hash, is the SF's egress: its packets go on by their flow");

    // The later applies start from what the last one kept: only the changed interfaces' slots
    // are written. Both port pairs: zs2o too shares zs1i's slot.
    apply(&[1, 2]);
    assert_eq!(in_slots(&loc), vec![BASE, BASE + 1, BASE + 2, BASE + 4]);
    send_on(&loc, "zsrc");
    send_on(&loc, "zs1o");
    send_on(&loc, "zs2o");
    assert_eq!(counts(&loc, "zs2o"), (0, 1, 0));
    // pp1 goes from the bank that had it alone: zs1i's slot passes to zs2o, the lowest left.
    apply(&[2]);
    assert_eq!(in_slots(&loc), vec![BASE, BASE + 1, BASE + 2 + 2 * IFACE_DIRECT_SLOTS, BASE + 4]);
    send_on(&loc, "zsrc");
    send_on(&loc, "zs2o");
    assert_eq!(counts(&loc, "zs2o"), (0, 2, 0), "zs2o, now in its slot");
    // pp1 back, pp2 gone from the other bank: zs2i's slot is emptied, zs1i has its own again.
    apply(&[1]);
    assert_eq!(in_slots(&loc), vec![BASE, BASE + 1, BASE + 2]);
    send_on(&loc, "zsrc");
    send_on(&loc, "zs1o");
    assert_eq!(counts(&loc, "zs1o"), (0, 4, 0));
    assert_eq!(counts(&loc, "zsrc").2 + counts(&loc, "zs1o").2 + counts(&loc, "zs2o").2, 0, "nothing recomputed");
}
