//! Tap groups with real packets: a chain sf1 -> [tap sf2] -> sf3 -> dest. Every datagram reaches
//! dest once and crosses sf1 and sf3; sf2 (a router here, which would send what it gets on)
//! receives a copy of each, and whatever it sends back is dropped (`tap_return`), so nothing it
//! does reaches dest. Sampling 1 in 4 copies a quarter. XDP mode is refused (XDP cannot copy a
//! frame). A probe shows where the copy would go, and sends none.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    fs::File,
    net::{IpAddr, SocketAddr},
    process::Stdio,
    time::{Duration, Instant},
};

use sfc_tests::{
    Sfc, TopologyConfig,
    chain::{ChainFile, PortPairGroup},
    failover,
    process::ChildGuard,
    scenario::Fixture,
    send::datagrams_from,
    stream::STREAM_PORT,
    topology::{DEST_IP, End, SOURCE_IP},
};

/// pg1 {pp1}, tap {pp2}, pg3 {pp3}, delivered to dest.
fn chain(topo: &sfc_tests::Topology, tap: Vec<String>) -> ChainFile {
    let mut file = failover::chain_over(topo, &["pg1", "tap", "pg3"]);
    file.port_pair_groups = vec![PortPairGroup::new("pg1", &["pp1"]), PortPairGroup { tap: Some(tap), ..PortPairGroup::new("tap", &["pp2"]) }, PortPairGroup::new("pg3", &["pp3"])];
    if let Some(fc) = file.flow_classifiers.first_mut() {
        fc.logical_destination_port = Some(topo.hub_dev(End::Dest));
    }
    file
}

fn send(topo: &sfc_tests::Topology, n_flows: u16) {
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), STREAM_PORT);
    for sport in 43_000..43_000 + n_flows {
        datagrams_from(&topo.source(), sport, dest, &[64; 5], Duration::from_millis(1)).unwrap_or_else(|e| panic!("{e:#}"));
    }
}

#[test]
fn a_tap_gets_a_copy_of_every_packet_and_sends_nothing_on() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let path = fx.write("chains.yaml", &chain(topo, Vec::new()));

    let refused = sfc.try_run(&["apply", "--mode", "xdp", "-f", &path.to_string_lossy()]).expect_err("taps need tc");
    assert!(format!("{refused:#}").contains("XDP cannot copy a frame"), "{refused:#}");

    sfc.apply(&path);
    let ((), w) = fx.window(&sfc, "100 datagrams through a chain with a tap", || send(topo, 20));
    let report = w.report();
    assert_eq!(w.link(End::Dest).rx_packets, 100, "dest gets each datagram once: {report}");
    assert_eq!((w.link(End::SfIn(1)).rx_packets, w.link(End::SfIn(3)).rx_packets), (100, 100), "{report}");
    assert_eq!(w.link(End::SfIn(2)).rx_packets, 100, "the tap's own counter: a copy of each: {report}");
    assert_eq!(w.packets("pc1", 1, "pp2"), 100, "sfc counts the copies at the tap's hop: {report}");
    let sent_back = w.link(End::SfOut(2)).tx_packets;
    let dropped: u64 = w.drops().iter().filter(|(r, _)| r == "tap_return").map(|(_, n)| n).sum();
    assert!(sent_back > 0, "sf2 routes what it gets (it tried to send the copies on): {report}");
    assert_eq!(dropped, sent_back, "everything the tap sent back was dropped: {report}");
    let stats = sfc.run(&["stats"]);
    assert!(stats.contains("tap group tap (copies; the packets went on)"), "{stats}");
    let metrics_like: serde_json::Value = serde_json::from_str(&sfc.run(&["stats", "--json"])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(metrics_like["chains"][0]["hops"][1]["tap"], true);

    // The live trace shows each packet's copy in its path.
    let (out, err) = (fx.dir.path().join("trace.out"), fx.dir.path().join("trace.err"));
    let mut cmd = sfc.command(&["trace", "--proto", "udp", "--dport", &STREAM_PORT.to_string(), "--count", "10"]);
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out).unwrap_or_else(|e| panic!("{e}")))
        .stderr(File::create(&err).unwrap_or_else(|e| panic!("{e}")));
    let mut child = ChildGuard::spawn(cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&err).unwrap_or_default().contains("tracing") {
        assert!(Instant::now() < deadline, "sfc trace did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    send(topo, 1);
    assert!(child.wait_timeout(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e:#}")).is_some_and(|s| s.success()));
    let lines = std::fs::read_to_string(&out).unwrap_or_default();
    // Five datagrams: five paths with the copy, and five copies the tap (a router) sent back,
    // each dropped where it came out.
    let path = lines.lines().filter(|l| l.contains(" -> pp1 (pg1) -> [copy to pp2 (tap)] -> pp3 (pg3) -> ")).count();
    let back = lines.lines().filter(|l| l.contains(&format!("{} -> dropped: tap_return", topo.hub_dev(End::SfOut(2))))).count();
    assert_eq!((path, back), (5, 5), "{lines}");

    // A probe: the copy is shown, not sent.
    let (src, dst, dport) = (SOURCE_IP.to_string(), DEST_IP.to_string(), STREAM_PORT.to_string());
    let src_dev = topo.hub_dev(End::Source);
    let ((), w) = fx.window(&sfc, "a probe", || {
        let out = sfc.run(&["trace", "--probe", "--in", &src_dev, "--proto", "udp", "--src", &src, "--dst", &dst, "--sport", "43999", "--dport", &dport]);
        assert!(out.contains("a copy to tap pp2 (tap) through") && out.contains("-> [copy to pp2 (tap)] ->"), "{out}");
        assert!(out.contains(&format!("delivered to {}", topo.hub_dev(End::Dest))), "{out}");
    });
    assert_eq!(w.link(End::SfIn(2)).rx_packets, 0, "the probe's copy is not sent: {}", w.report());

    // 1 in 4, counted on each CPU.
    let path = fx.write("chains.yaml", &chain(topo, vec!["tap_sample_every: 4".to_owned()]));
    sfc.apply(&path);
    let ((), w) = fx.window(&sfc, "100 datagrams, tap 1 in 4", || send(topo, 20));
    let copies = w.link(End::SfIn(2)).rx_packets;
    let cpus = u64::try_from(std::thread::available_parallelism().map_or(1, std::num::NonZero::get)).unwrap_or(1);
    assert!((25..=25 + cpus).contains(&copies), "1 in 4 of 100 per CPU: {copies}: {}", w.report());
    assert_eq!(w.link(End::Dest).rx_packets, 100, "{}", w.report());
}
