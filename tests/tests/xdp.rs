//! XDP mode with real traffic: what `sfc apply --mode xdp` attaches where (the steering program
//! on the hub's ports, a pass program behind every redirect target so the far end takes XDP
//! frames), bulk TCP through three hops with every byte checked (offloaded checksums completed
//! by the program), per-interface overrides, switching modes under a stream without a loss, and
//! the clear refusal when a veth's MTU is too large for XDP. `sfc down` leaves every interface as
//! it found it, offloads included.
//!
//! The same scenarios as `scenarios.rs` run in XDP mode there too (`xdp::*`). Needs the `sfc`
//! binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with `--test-threads=1`.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use sfc_tests::{
    Sfc, TopologyConfig,
    stream::{SeqStream, StreamSpec},
    link, netns,
    scenario::Fixture,
    sfc::Attached,
    topology::{DEST_IP, End, Topology},
    bulk::{TcpSink, tcp_bulk},
    traffic::{UdpEchoServer, udp_exchange},
};

const BULK_PORT: u16 = 5001;
const BULK_BYTES: u64 = 16 << 20;

fn dest(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(DEST_IP), port)
}

/// What is attached to endpoint `end`'s interface, on the hub side or (`far`) inside the
/// endpoint's own namespace.
fn attached(topo: &Topology, end: End, far: bool) -> Attached {
    let (ns, dev) = if far { (topo.ns(&end.role()), end.dev().to_owned()) } else { (topo.hub(), topo.hub_dev(end)) };
    Attached::read(&ns, &dev).unwrap_or_else(|e| panic!("{e:#}"))
}

/// `ethtool -k` of an endpoint-side interface: whether TCP segmentation offload is on.
fn tso_on(topo: &Topology, end: End) -> bool {
    let out = netns::run("ip", &["netns", "exec", &topo.ns(&end.role()), "ethtool", "-k", end.dev()])
        .unwrap_or_else(|e| panic!("{e:#}"));
    out.lines().any(|l| l.trim_start().starts_with("tcp-segmentation-offload: on"))
}

fn status_mode(sfc: &Sfc<'_>) -> String {
    let raw = sfc.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("status --json: {e}: {raw}"));
    v["mode"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn xdp_mode_attaches_xdp_on_the_hub_and_pass_programs_behind_the_targets() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode("xdp");
    let sink = TcpSink::start(&topo.dest(), dest(BULK_PORT)).unwrap();
    let mut file = topo.one_group_per_sf("tcp", BULK_PORT);
    file.classifier_mut("web").unwrap().logical_destination_port = Some(topo.hub_dev(End::Dest));
    assert!(tso_on(topo, End::Source), "the source's veth starts with TSO on");
    let out = sfc.apply(&fx.write("bulk.yaml", &file));

    // Steering: XDP on the logical source port and on every SF egress, no tc program anywhere.
    for end in [End::Source, End::SfOut(1), End::SfOut(2), End::SfOut(3)] {
        let a = attached(topo, end, false);
        assert!(a.xdp && a.tcx_ingress == 0, "hub side of {end:?}: {a}\napply said:\n{out}");
    }
    // Redirect targets (SF ingresses, the destination port): nothing on the hub side, a pass
    // program on the far end; the far ends nothing redirects into get nothing.
    for end in [End::SfIn(1), End::SfIn(2), End::SfIn(3), End::Dest] {
        assert!(attached(topo, end, false).is_empty(), "hub side of {end:?}: {}", attached(topo, end, false));
        let far = attached(topo, end, true);
        assert!(far.xdp && far.tcx_ingress == 0, "far side of {end:?}: {far}\napply said:\n{out}");
    }
    for end in [End::Source, End::SfOut(1), End::SfOut(2), End::SfOut(3)] {
        assert!(!attached(topo, end, true).xdp, "far side of {end:?} needs no program");
    }
    assert_eq!(status_mode(&sfc), "xdp");
    // The devmap holds exactly the redirect targets, decoded into their names.
    let devmap = sfc.run(&["map", "dump", "devmap", "--json"]);
    for end in topo.ends() {
        let target = matches!(end, End::SfIn(_) | End::Dest);
        assert_eq!(devmap.contains(&format!("\"{}\"", topo.hub_dev(end))), target, "{end:?} in SFC_DEVMAP: {devmap}");
    }
    let list = sfc.run(&["map", "list"]);
    assert!(list.contains("SFC_DEVMAP") && list.contains("devmap_hash"), "{list}");
    // veth turns TSO off on the peer of an XDP interface (no multi-buffer program here).
    assert!(!tso_on(topo, End::Source), "TSO on the source's veth while its hub side runs XDP");

    // sf3 hands dest's traffic to a router (as on a routed host): its frames carry the hub
    // port's MAC, not dest's. Delivery must address them to dest, or dest refuses them as
    // another host's once XDP rebuilds them there.
    link::static_neighbour(&topo.sf(3), "out", DEST_IP.into(), End::SfOut(3).hub_mac()).unwrap();
    let (took, w) = fx.window(&sfc, "16 MiB of TCP through sf1, sf2, sf3 in XDP mode", || {
        tcp_bulk(&topo.source(), dest(BULK_PORT), BULK_BYTES).unwrap()
    });
    let report = w.report();
    let got = sink.last().unwrap_or_else(|| panic!("the sink saw no connection: {report}"));
    assert_eq!(got.received, BULK_BYTES, "{report}");
    assert!(got.intact, "bytes arrived changed: {report}");
    #[expect(clippy::cast_precision_loss, reason = "a rate for people")]
    let gbit = BULK_BYTES as f64 * 8.0 / took.as_secs_f64() / 1e9;
    eprintln!("16 MiB through 3 SFs in XDP mode: {took:.2?} ({gbit:.2} Gbit/s)");
    for (hop, n) in [(0, 1), (1, 2), (2, 3)] {
        let sf_in = w.link(End::SfIn(n));
        assert!(sf_in.rx_packets > 0, "sf{n} saw nothing: {report}");
        assert_eq!(w.packets("pc1", hop, &format!("pp{n}")), sf_in.rx_packets, "sfc's count for pp{n} vs sf{n} in: {report}");
        assert_eq!(w.link(End::SfOut(n)).tx_packets, sf_in.rx_packets, "sf{n} forwarded what it got: {report}");
    }
    assert_eq!(w.link(End::Dest).rx_packets, w.link(End::SfOut(3)).tx_packets, "{report}");
    w.assert_no_drops();

    sfc.down();
    for end in topo.ends() {
        for far in [false, true] {
            let a = attached(topo, end, far);
            assert!(a.is_empty(), "after `sfc down`, {end:?} ({}): {a}", if far { "far side" } else { "hub side" });
        }
    }
    assert!(tso_on(topo, End::Source), "`sfc down` gives the source's veth its TSO back");
}

#[test]
fn an_interface_override_runs_xdp_on_one_port_and_tc_on_the_rest() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let echo = UdpEchoServer::start(&topo.dest(), dest(5353)).unwrap();
    let mut file = topo.one_group_per_sf("udp", 5353);
    file.interfaces = vec![(topo.hub_dev(End::Source), "xdp".to_owned())];
    sfc.apply(&fx.write("override.yaml", &file));
    let src = attached(topo, End::Source, false);
    assert!(src.xdp && src.tcx_ingress == 0, "source port: {src}");
    for n in [1, 2] {
        let out = attached(topo, End::SfOut(n), false);
        assert!(!out.xdp && out.tcx_ingress == 1, "sf{n} out: {out}");
    }
    // The XDP port redirects into sf1: its far end takes XDP frames.
    assert!(attached(topo, End::SfIn(1), true).xdp, "sf1 in (far side)");
    assert_eq!(status_mode(&sfc), "mixed");

    let (out, w) = fx.window(&sfc, "UDP through sf1 (from an XDP port), sf2 (from a tc port)", || {
        udp_exchange(&topo.source(), dest(5353), 20).unwrap()
    });
    assert_eq!(out.echoed, 20, "{out:?}: {}", w.report());
    assert_eq!(echo.received(), 20, "{}", w.report());
    for (hop, n) in [(0, 1), (1, 2)] {
        assert_eq!(w.link(End::SfIn(n)).rx_packets, 20, "{}", w.report());
        assert_eq!(w.packets("pc1", hop, &format!("pp{n}")), 20, "{}", w.report());
    }
    // Interface counters of both kinds: the XDP port's by ifindex, the tc ports' in their
    // slots (`PacketCtx::SLOT_COUNTERS`).
    let delta = |dev: String, kind: &str| w.after.interface(&dev, kind).unwrap_or(0) - w.before.interface(&dev, kind).unwrap_or(0);
    assert_eq!(delta(topo.hub_dev(End::Source), "classified"), 20, "{}", w.report());
    for n in [1, 2] {
        assert_eq!(delta(topo.hub_dev(End::SfOut(n)), "from_sf"), 20, "sf{n} out: {}", w.report());
    }
    w.assert_no_drops();
}

#[test]
fn switching_modes_under_a_stream_loses_nothing() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let file = fx.write("chain.yaml", &topo.one_group_per_sf("udp", sfc_tests::stream::STREAM_PORT));
    let tc = Sfc::for_topology(topo).with_mode("tc");
    let xdp = Sfc::for_topology(topo).with_mode("xdp");
    tc.apply(&file);
    let spec = StreamSpec { rate: 1000, sports: vec![40_001, 40_002, 40_003, 40_004], limit: Duration::from_secs(20) };
    let stream = SeqStream::start(&topo.source(), &topo.dest(), spec).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..4 {
        let (sfc, want) = if round % 2 == 0 { (&xdp, "xdp") } else { (&tc, "tc") };
        sfc.apply(&file);
        assert_eq!(status_mode(sfc), want, "round {round}");
        let a = attached(topo, End::Source, false);
        assert_eq!((a.xdp, a.tcx_ingress), (want == "xdp", u32::from(want == "tc")), "round {round}: source port {a}");
        assert_eq!(attached(topo, End::SfIn(2), true).xdp, want == "xdp", "round {round}: far side of sf2 in");
        std::thread::sleep(Duration::from_millis(400));
    }
    let report = stream.finish().unwrap();
    assert!(report.sent() > 1000, "{report:?}");
    assert_eq!(report.lost(), 0, "datagrams lost while switching tc <-> xdp: gaps {:?}; {}", report.gaps(), sfc_tests::stream::kernel_drops(topo));
}

#[test]
fn xdp_is_refused_with_a_clear_message_when_a_veth_mtu_is_too_large() {
    let fx = Fixture::new(TopologyConfig::new(&[1]));
    let topo = &fx.topo;
    link::set_mtu(&topo.ns("source"), End::Source.dev(), 9000).unwrap();
    let sfc = Sfc::for_topology(topo).with_mode("xdp");
    let file = fx.write("mtu.yaml", &topo.one_group_per_sf("udp", 5353));
    let err = sfc
        .try_run(&["apply", "-f", &file.to_string_lossy(), "--mode", "xdp"])
        .expect_err("XDP behind a 9000-byte MTU must be refused");
    let msg = format!("{err:#}");
    assert!(msg.contains("MTU") && msg.contains(&topo.hub_dev(End::Source)), "the error names the interface and the MTU: {msg}");
    eprintln!("refused: {msg}");
    assert!(!sfc.pin_dir().exists(), "a failed first install leaves nothing pinned");
    for end in topo.ends() {
        for far in [false, true] {
            assert!(attached(topo, end, far).is_empty(), "{end:?} after the refusal: {}", attached(topo, end, far));
        }
    }
    // tc mode has no such limit.
    Sfc::for_topology(topo).apply(&file);
}
