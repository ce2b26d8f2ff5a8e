//! Service graphs with real packets: pc1 (sf1) branches to pc2 (sf2) for UDP to one port and to
//! pc3 (sf3) for UDP to another; anything else stays on pc1. Each branch is proven by the SFs'
//! own counters: a branch taken crosses sf1 and its chain's SF, a branch not taken crosses sf1
//! only, and dest gets every datagram once. Then a stream runs while the graph is changed
//! (branch to pc2, then to pc3, then no graph): no datagram is lost, and after each apply the
//! SF of the old branch sees none.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use sfc_tests::{
    Sfc, TopologyConfig, Topology,
    scenario::Fixture,
    send::datagrams_from,
    stream::{STREAM_PORT, SeqStream, StreamSpec},
    topology::{DEST_IP, End, SOURCE_IP},
};

const TO_PC2: u16 = 5001;
const TO_PC3: u16 = 5002;
const ELSEWHERE: u16 = 5003;

/// pc1 over sf1 for all UDP from the source; `branches` (chain number n over sf n, UDP to
/// port) are pc1's graph destinations, their classifiers without a logical source port.
fn file(topo: &Topology, branches: &[(u8, u16)]) -> String {
    let (src, dst) = (topo.hub_dev(End::Source), topo.hub_dev(End::Dest));
    let mut y = String::from("port_pairs:\n");
    for n in [1, 2, 3] {
        let _ = writeln!(y, "  - {{name: pp{n}, ingress: {}, egress: {}}}", topo.hub_dev(End::SfIn(n)), topo.hub_dev(End::SfOut(n)));
    }
    y.push_str("port_pair_groups:\n");
    for n in [1, 2, 3] {
        let _ = writeln!(y, "  - {{name: pg{n}, port_pairs: [pp{n}]}}");
    }
    let _ = writeln!(y, "flow_classifiers:\n  - {{name: udp, protocol: udp, source_ip_prefix: {SOURCE_IP}/32, logical_source_port: {src}, logical_destination_port: {dst}}}");
    for (_, port) in branches {
        let _ = writeln!(y, "  - {{name: to{port}, protocol: udp, destination_port_range_min: {port}, destination_port_range_max: {port}, logical_destination_port: {dst}}}");
    }
    y.push_str("port_chains:\n  - {name: pc1, chain_id: 1, port_pair_groups: [pg1], flow_classifiers: [udp]}\n");
    for (n, port) in branches {
        let _ = writeln!(y, "  - {{name: pc{n}, chain_id: {n}, port_pair_groups: [pg{n}], flow_classifiers: [to{port}]}}");
    }
    if !branches.is_empty() {
        let to: Vec<String> = branches.iter().map(|(n, _)| format!("pc{n}")).collect();
        let _ = writeln!(y, "service_graphs:\n  - name: g\n    port_chains: {{pc1: [{}]}}", to.join(", "));
    }
    y
}

fn apply(fx: &Fixture, sfc: &Sfc<'_>, text: &str) {
    let path = fx.dir.path().join("chains.yaml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    sfc.apply(&path);
}

fn send(topo: &Topology, dport: u16) {
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), dport);
    for sport in 44_000..44_004 {
        datagrams_from(&topo.source(), sport, dest, &[64; 5], Duration::from_millis(1)).unwrap_or_else(|e| panic!("{e:#}"));
    }
}

#[test]
fn traffic_takes_the_branch_it_matches_and_stays_on_the_source_chain_otherwise() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    apply(&fx, &sfc, &file(topo, &[(2, TO_PC2), (3, TO_PC3)]));
    for (dport, branch, chain) in [(TO_PC2, Some(2), "pc1->pc2"), (TO_PC3, Some(3), "pc1->pc3"), (ELSEWHERE, None, "pc1")] {
        let ((), w) = fx.window(&sfc, &format!("20 datagrams to port {dport}"), || send(topo, dport));
        let report = w.report();
        assert_eq!(w.link(End::SfIn(1)).rx_packets, 20, "every datagram crosses pc1's sf1: {report}");
        for n in [2, 3] {
            let want = if branch == Some(n) { 20 } else { 0 };
            assert_eq!(w.link(End::SfIn(n)).rx_packets, want, "sf{n} for port {dport}: {report}");
        }
        assert_eq!(w.link(End::Dest).rx_packets, 20, "{report}");
        assert_eq!(w.packets(chain, 0, "pp1"), 20, "sfc counts the path {chain}: {report}");
        if let Some(n) = branch {
            assert_eq!(w.packets(chain, 1, &format!("pp{n}")), 20, "{report}");
        }
        w.assert_no_drops();
    }
    // explain names the path a packet takes.
    let (src, dst) = (SOURCE_IP.to_string(), DEST_IP.to_string());
    let out = sfc.run(&["explain", "--in", &topo.hub_dev(End::Source), "--proto", "udp", "--src", &src, "--dst", &dst, "--sport", "1", "--dport", &TO_PC3.to_string()]);
    assert!(out.contains("chain: pc1->pc3") && out.contains("service graph g"), "{out}");
}

#[test]
fn a_graph_changes_under_a_stream_without_losing_a_datagram() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    apply(&fx, &sfc, &file(topo, &[(2, STREAM_PORT)]));
    let spec = StreamSpec { rate: 1000, sports: vec![41_001, 41_002, 41_003, 41_004], limit: Duration::from_secs(20) };
    let stream = SeqStream::start(&topo.source(), &topo.dest(), spec).unwrap_or_else(|e| panic!("{e:#}"));
    let phase = Duration::from_millis(600);
    let settle = Duration::from_millis(150);
    let read = || topo.counters().unwrap_or_else(|e| panic!("{e:#}"));
    std::thread::sleep(phase);
    // Each step: the branch it leaves gets nothing once the apply has settled.
    for (branches, quiet, busy) in [(vec![(3, STREAM_PORT)], 2, Some(3)), (vec![], 3, None)] {
        apply(&fx, &sfc, &file(topo, &branches));
        std::thread::sleep(settle);
        let before = read();
        std::thread::sleep(phase);
        let d = read().since(&before);
        assert_eq!(d.get(End::SfIn(quiet)).rx_packets, 0, "sf{quiet} after leaving the graph:\n{d}");
        assert!(d.get(End::SfIn(1)).rx_packets > 100, "pc1 keeps its traffic:\n{d}");
        if let Some(n) = busy {
            // The counters are read one interface after the other, a few milliseconds apart,
            // while 1,000 datagrams a second flow: sf1's and sf3's readings differ by the
            // datagrams sent in between (the quiet branch's 0 above is exact).
            let (into_1, into_n) = (d.get(End::SfIn(1)).rx_packets, d.get(End::SfIn(n)).rx_packets);
            assert!(into_1.abs_diff(into_n) <= 10, "every datagram takes the new branch ({into_1} into sf1, {into_n} into sf{n}):\n{d}");
        }
    }
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.received() > 1000, "{report:?}");
    assert_eq!(report.lost(), 0, "datagrams lost while the graph changed: gaps {:?}; {}", report.gaps(), sfc_tests::stream::kernel_drops(topo));
}
