//! The skeleton chain end to end (issue 2): source --classifier--> PG1{sf1} -> PG2{sf3} -> dest,
//! proven by the SF interfaces' own kernel counters agreeing exactly with sfc's per-hop counters.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use sfc_tests::{
    Counters, Sfc, Stats, Topology, TopologyConfig,
    chain::ScratchDir,
    counters::settled,
    sfc::{Attached, diagnostics},
    topology::{DEST_IP, End},
    traffic::{TcpServer, UdpEchoServer, tcp_requests, udp_exchange},
};

const REQUESTS: usize = 20;
const DATAGRAMS: usize = 25;
const UDP_PORT: u16 = 5353;
/// The chain's SFs, hop by hop: hop 0 is pp1 (sf1), hop 1 is pp3 (sf3).
const HOPS: [(usize, u8); 2] = [(0, 1), (1, 3)];

fn dest(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(DEST_IP), port)
}

/// A topology with sf1 and sf3 and a directory for chain files. Each test's `Sfc` borrows the
/// topology, so it is dropped first: the datapath goes down before the namespaces go.
struct Fixture {
    dir: ScratchDir,
    topo: Topology,
}

impl Fixture {
    fn new() -> Fixture {
        let topo = TopologyConfig::new(&[1, 3])
            .build()
            .unwrap_or_else(|e| panic!("{e:#}"));
        let dir = ScratchDir::new(&format!("sfc-test-{}", topo.id())).unwrap();
        Fixture { dir, topo }
    }

    /// Writes the skeleton chain for `protocol`/`port` and applies it.
    fn apply(&self, sfc: &Sfc<'_>, protocol: &str, port: u16) -> PathBuf {
        let file = self
            .dir
            .write(
                &format!("chain-{protocol}.yaml"),
                &self.topo.one_group_per_sf(protocol, port),
            )
            .unwrap();
        sfc.apply(&file);
        file
    }

    /// Counters and sfc stats once in-flight packets have landed.
    fn settled(&self, sfc: &Sfc<'_>) -> (Counters, Stats) {
        settled(Duration::from_secs(3), Duration::from_millis(150), || {
            Ok((self.topo.counters()?, sfc.try_stats()?))
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn report(&self, what: &str, delta: &Counters, stats: &Stats) -> String {
        format!(
            "{what} (topology {})\nSF/endpoint counter deltas:\n{delta}\nsfc stats --json:\n{stats}\n{}",
            self.topo.id(),
            diagnostics(&self.topo)
        )
    }
}

/// Demands that every packet of the exchange went source -> sf1 -> sf3 -> dest, and that
/// sfc's per-hop counters equal the SF `in` interfaces' rx counters exactly.
fn assert_took_the_chain(fx: &Fixture, what: &str, delta: &Counters, stats: &Stats) {
    let report = fx.report(what, delta, stats);
    for (hop, n) in HOPS {
        let (sf_in, sf_out) = (delta.get(End::SfIn(n)), delta.get(End::SfOut(n)));
        assert!(sf_in.rx_packets > 0, "sf{n} in saw nothing: {report}");
        assert!(sf_out.tx_packets > 0, "sf{n} out sent nothing: {report}");
        assert_eq!(
            sf_out.tx_packets, sf_in.rx_packets,
            "sf{n} forwarded a different number of packets than it received: {report}"
        );
        let pp = format!("pp{n}");
        assert_eq!(
            stats.packets("pc1", hop, &pp),
            Some(sf_in.rx_packets),
            "sfc hop {hop} member {pp} vs sf{n} in rx_packets: {report}"
        );
    }
    assert_eq!(
        delta.get(End::Dest).rx_packets,
        delta.get(End::SfOut(3)).tx_packets,
        "dest must receive exactly what sf3 forwarded: {report}"
    );
    assert_eq!(
        delta.get(End::Source).tx_packets,
        delta.get(End::SfIn(1)).rx_packets,
        "every packet source sent must enter sf1: {report}"
    );
    let drops: u64 = stats.drops().values().sum();
    assert_eq!(drops, 0, "sfc dropped packets: {report}");
}

fn assert_sfs_quiet(fx: &Fixture, what: &str, delta: &Counters, stats: &Stats) {
    assert!(
        delta.moved_sf_interfaces().is_empty(),
        "SF interfaces moved: {:?}: {}",
        delta.moved_sf_interfaces(),
        fx.report(what, delta, stats)
    );
}

#[test]
fn tcp_to_port_80_traverses_sf1_then_sf3() {
    let fx = Fixture::new();
    let sfc = Sfc::for_topology(&fx.topo);
    let web = TcpServer::start(&fx.topo.dest(), dest(80)).unwrap();
    fx.apply(&sfc, "tcp", 80);

    let (before, _) = fx.settled(&sfc);
    let out = tcp_requests(&fx.topo.source(), dest(80), REQUESTS).unwrap();
    let (after, stats) = fx.settled(&sfc);
    let delta = after.since(&before);

    assert_eq!(
        out.ok,
        REQUESTS,
        "{out:?}: {}",
        fx.report("TCP to dest:80", &delta, &stats)
    );
    assert_eq!(web.served(), REQUESTS);
    assert_took_the_chain(&fx, "TCP to dest:80", &delta, &stats);
}

#[test]
fn udp_to_classified_port_traverses_the_chain() {
    let fx = Fixture::new();
    let sfc = Sfc::for_topology(&fx.topo);
    let echo = UdpEchoServer::start(&fx.topo.dest(), dest(UDP_PORT)).unwrap();
    fx.apply(&sfc, "udp", UDP_PORT);

    let (before, _) = fx.settled(&sfc);
    let out = udp_exchange(&fx.topo.source(), dest(UDP_PORT), DATAGRAMS).unwrap();
    let (after, stats) = fx.settled(&sfc);
    let delta = after.since(&before);
    let report = fx.report("UDP to dest:5353", &delta, &stats);

    assert_eq!(
        echo.received(),
        DATAGRAMS,
        "datagrams at dest: {out:?}: {report}"
    );
    assert_eq!(out.echoed, DATAGRAMS, "{out:?}: {report}");
    assert_took_the_chain(&fx, "UDP to dest:5353", &delta, &stats);
    for (hop, n) in HOPS {
        assert_eq!(
            stats.packets("pc1", hop, &format!("pp{n}")),
            Some(DATAGRAMS as u64),
            "hop {hop}: one packet per datagram: {report}"
        );
    }
}

#[test]
fn unclassified_traffic_bypasses_the_chain() {
    let fx = Fixture::new();
    let sfc = Sfc::for_topology(&fx.topo);
    let _web = TcpServer::start(&fx.topo.dest(), dest(8080)).unwrap();
    let echo = UdpEchoServer::start(&fx.topo.dest(), dest(80)).unwrap();
    fx.apply(&sfc, "tcp", 80);

    let (before, _) = fx.settled(&sfc);
    // Another port with the classified protocol, and the classified port with another protocol.
    let tcp = tcp_requests(&fx.topo.source(), dest(8080), REQUESTS).unwrap();
    let udp = udp_exchange(&fx.topo.source(), dest(80), DATAGRAMS).unwrap();
    let (after, stats) = fx.settled(&sfc);
    let delta = after.since(&before);
    let report = fx.report("TCP to 8080 and UDP to 80", &delta, &stats);

    assert_eq!(tcp.ok, REQUESTS, "{tcp:?}: {report}");
    assert_eq!(udp.echoed, DATAGRAMS, "{udp:?}: {report}");
    assert_eq!(echo.received(), DATAGRAMS, "{report}");
    assert_sfs_quiet(&fx, "TCP to 8080 and UDP to 80", &delta, &stats);
    assert_eq!(
        stats.packets_by_port_pair().values().sum::<u64>(),
        0,
        "sfc counted unclassified packets: {report}"
    );
}

#[test]
fn down_restores_plain_forwarding() {
    let fx = Fixture::new();
    let sfc = Sfc::for_topology(&fx.topo);
    let _web = TcpServer::start(&fx.topo.dest(), dest(80)).unwrap();
    fx.apply(&sfc, "tcp", 80);
    assert!(
        sfc.pin_dir().is_dir(),
        "apply did not pin at {}",
        sfc.pin_dir().display()
    );
    let src_port = fx.topo.hub_dev(End::Source);
    let attached = Attached::read(&fx.topo.hub(), &src_port).unwrap();
    assert!(
        !attached.is_empty(),
        "apply attached nothing to the logical source port {src_port}"
    );

    // Steered first, so that `down` has something to undo.
    let (before, _) = fx.settled(&sfc);
    let out = tcp_requests(&fx.topo.source(), dest(80), 5).unwrap();
    let (after, stats) = fx.settled(&sfc);
    let delta = after.since(&before);
    assert_eq!(
        out.ok,
        5,
        "{out:?}: {}",
        fx.report("before down", &delta, &stats)
    );
    assert_took_the_chain(&fx, "before down", &delta, &stats);

    sfc.down();
    assert!(
        !sfc.pin_dir().exists(),
        "`sfc down` left the pin dir {}",
        sfc.pin_dir().display()
    );
    let before = fx.topo.counters().unwrap();
    let out = tcp_requests(&fx.topo.source(), dest(80), REQUESTS).unwrap();
    let after = settled(Duration::from_secs(3), Duration::from_millis(150), || {
        fx.topo.counters()
    })
    .unwrap();
    let delta = after.since(&before);
    let report = format!(
        "after down (topology {}):\n{delta}\n{}",
        fx.topo.id(),
        diagnostics(&fx.topo)
    );
    assert_eq!(out.ok, REQUESTS, "{out:?}: {report}");
    assert!(
        delta.moved_sf_interfaces().is_empty(),
        "SF interfaces moved after down: {report}"
    );
    for end in fx.topo.ends() {
        let dev = fx.topo.hub_dev(end);
        let attached = Attached::read(&fx.topo.hub(), &dev).unwrap();
        assert!(
            attached.is_empty(),
            "`sfc down` left programs on {dev}: {attached}"
        );
    }
}
