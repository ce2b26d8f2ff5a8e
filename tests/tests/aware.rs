//! SFC-aware functions with real packets: a chain of sf1 (NSH), sf2 (SFC-unaware, a router)
//! and sf3 (MPLS) for UDP from the source, delivered to dest. sf1 and sf3 are
//! `sfc_tests::aware_sf::AwareSf`: they read the header sfc pushed (the SI it carries is
//! recorded), lower the SI and send the frame back. Every datagram reaches dest's UDP socket
//! intact (the headers were removed), crossing each SF once; sf1 saw SI 255 (hop 0) and sf3 SI
//! 253 (hop 2). Then sf1 skips a hop (SI lowered by two): sf2 sees nothing, sf3 everything; and
//! sets SI 0: every datagram is dropped and counted (`encap_mismatch`). In tc mode (XDP runs on
//! the aware members' egress, where the header comes back) and in XDP mode.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    fmt::Write as _,
    fs::File,
    net::{IpAddr, SocketAddr},
    process::Stdio,
    time::{Duration, Instant},
};

use sfc_tests::{
    Sfc, Topology, TopologyConfig,
    aware_sf::AwareSf,
    process::ChildGuard,
    scenario::Fixture,
    send::datagrams_from,
    topology::{DEST_IP, End, SOURCE_IP},
    traffic::UdpEchoServer,
};

const PORT: u16 = 7100;
const DATAGRAMS: u64 = 20;

fn file(topo: &Topology) -> String {
    let mut y = String::from("port_pairs:\n");
    for (n, extra) in [(1, ", correlation: nsh, nsh_context: [7, 0, 0, 1]"), (2, ""), (3, ", correlation: mpls")] {
        let _ = writeln!(y, "  - {{name: pp{n}, ingress: {}, egress: {}{extra}}}", topo.hub_dev(End::SfIn(n)), topo.hub_dev(End::SfOut(n)));
    }
    y.push_str("port_pair_groups:\n");
    for n in 1..=3 {
        let _ = writeln!(y, "  - {{name: pg{n}, port_pairs: [pp{n}]}}");
    }
    let _ = writeln!(
        y,
        "flow_classifiers:\n  - {{name: fc, protocol: udp, source_ip_prefix: {SOURCE_IP}/32, destination_port_range_min: {PORT}, destination_port_range_max: {PORT}, logical_source_port: {}, logical_destination_port: {}}}",
        topo.hub_dev(End::Source),
        topo.hub_dev(End::Dest)
    );
    y.push_str("port_chains:\n  - {name: pc1, chain_id: 7, port_pair_groups: [pg1, pg2, pg3], flow_classifiers: [fc]}\n");
    y
}

fn send(topo: &Topology) {
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), PORT);
    for sport in 45_000..45_004 {
        datagrams_from(&topo.source(), sport, dest, &[64; 5], Duration::from_millis(1)).unwrap_or_else(|e| panic!("{e:#}"));
    }
}

fn aware_functions_get_their_header_and_steer_by_its_si(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let sf1 = AwareSf::start(&topo.sf(1), End::SfIn(1).dev(), End::SfOut(1).dev(), End::SfOut(1).mac()).unwrap_or_else(|e| panic!("{e:#}"));
    let sf3 = AwareSf::start(&topo.sf(3), End::SfIn(3).dev(), End::SfOut(3).dev(), End::SfOut(3).mac()).unwrap_or_else(|e| panic!("{e:#}"));
    let echo = UdpEchoServer::start(&topo.dest(), SocketAddr::new(IpAddr::V4(DEST_IP), PORT)).unwrap_or_else(|e| panic!("{e:#}"));
    let path = fx.dir.path().join("chains.yaml");
    std::fs::write(&path, file(topo)).unwrap_or_else(|e| panic!("{e}"));
    let applied = sfc.apply(&path);
    if mode == "tc" {
        let egress = [topo.hub_dev(End::SfOut(1)), topo.hub_dev(End::SfOut(3))];
        assert!(egress.iter().all(|e| applied.contains(e.as_str())), "apply names the interfaces that run XDP: {applied}");
    }

    let ((), w) = fx.window(&sfc, "20 datagrams through sf1 (NSH), sf2, sf3 (MPLS)", || send(topo));
    let report = w.report();
    for n in [1, 2, 3] {
        assert_eq!(w.link(End::SfIn(n)).rx_packets, DATAGRAMS, "sf{n}: {report}");
    }
    // dest's own counter also sees what the source's kernel says about the echoes it no longer
    // waits for: its UDP socket's count is the datagrams.
    assert_eq!(echo.received(), 20, "dest's socket got every datagram intact: {report}");
    assert_eq!(sf1.take_seen(), vec![255; 20], "sf1 is hop 0: SI 255");
    assert_eq!(sf3.take_seen(), vec![253; 20], "sf3 is hop 2: SI 253 in the MPLS label");
    assert_eq!(w.packets("pc1", 2, "pp3"), DATAGRAMS, "{report}");
    w.assert_no_drops();

    // explain and the live trace name the headers.
    let (src, dst) = (SOURCE_IP.to_string(), DEST_IP.to_string());
    let out = sfc.run(&["explain", "--in", &topo.hub_dev(End::Source), "--proto", "udp", "--src", &src, "--dst", &dst, "--sport", "1", "--dport", &PORT.to_string()]);
    assert!(out.contains("with an NSH header (SPI 7, SI 255)") && out.contains("with an MPLS label (0x7fd: chain 7 << 8 | SI 253)"), "{out}");
    let (trace_out, trace_err) = (fx.dir.path().join("trace.out"), fx.dir.path().join("trace.err"));
    let mut cmd = sfc.command(&["trace", "--proto", "udp", "--dport", &PORT.to_string(), "--count", "4"]);
    cmd.stdin(Stdio::null())
        .stdout(File::create(&trace_out).unwrap_or_else(|e| panic!("{e}")))
        .stderr(File::create(&trace_err).unwrap_or_else(|e| panic!("{e}")));
    let mut child = ChildGuard::spawn(cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&trace_err).unwrap_or_default().contains("tracing") {
        assert!(Instant::now() < deadline, "sfc trace did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    datagrams_from(&topo.source(), 45_100, SocketAddr::new(IpAddr::V4(DEST_IP), PORT), &[64; 4], Duration::from_millis(1)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(child.wait_timeout(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e:#}")).is_some_and(|s| s.success()));
    let lines = std::fs::read_to_string(&trace_out).unwrap_or_default();
    let paths = lines.lines().filter(|l| l.contains(" -> pp1 (pg1, nsh SI 255) -> pp2 (pg2) -> pp3 (pg3, mpls SI 253) -> ")).count();
    assert_eq!(paths, 4, "{lines}");
    let _ = (sf1.take_seen(), sf3.take_seen(), echo.received());

    // sf1 skips sf2.
    sf1.set_step(2);
    let ((), w) = fx.window(&sfc, "sf1 lowers the SI by two", || send(topo));
    let report = w.report();
    assert_eq!((w.link(End::SfIn(2)).rx_packets, w.link(End::SfIn(3)).rx_packets), (0, DATAGRAMS), "{report}");
    assert_eq!(echo.received(), 44, "{report}");
    assert_eq!(sf3.take_seen(), vec![253; 20]);
    w.assert_no_drops();

    // SI 0: dropped and counted, nothing reaches sf2, sf3 or dest.
    sf1.set_step(0);
    let ((), w) = fx.window(&sfc, "sf1 sends SI 0", || send(topo));
    let report = w.report();
    assert_eq!((w.link(End::SfIn(2)).rx_packets, w.link(End::SfIn(3)).rx_packets, echo.received()), (0, 0, 44), "{report}");
    let dropped: u64 = w.drops().iter().filter(|(r, _)| r == "encap_mismatch").map(|(_, n)| n).sum();
    assert_eq!(dropped, DATAGRAMS, "{report}");
}

#[test]
fn aware_functions_get_their_header_and_steer_by_its_si_tc() {
    aware_functions_get_their_header_and_steer_by_its_si("tc");
}

#[test]
fn aware_functions_get_their_header_and_steer_by_its_si_xdp() {
    aware_functions_get_their_header_and_steer_by_its_si("xdp");
}
