//! Steering that cannot be fooled or bypassed, with real packets: a sender's TTL changes are no
//! loop; a real loop is caught, counted and bounded; packets inside a service function when the
//! flow table loses their entries still cross every later SF; a flood of new 5-tuples through
//! a tiny flow table lets no packet skip an SF.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use sfc_tests::{
    Sfc, TopologyConfig,
    link,
    netns::{self, ip_in},
    scenario::Fixture,
    send,
    topology::{DEST_IP, End},
    traffic::UdpEchoServer,
};

sfc_tests::in_both_modes!(
    a_sender_changing_its_ttl_is_no_loop,
    a_real_loop_is_caught_counted_and_bounded,
    packets_inside_an_sf_when_the_flow_table_is_flushed_cross_every_later_sf,
    a_flood_through_a_tiny_flow_table_skips_no_sf,
);

const PORT: u16 = 5353;

fn dest(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(DEST_IP), port)
}

/// One UDP flow (fixed 5-tuple) whose sender changes its TTL mid-stream: every datagram
/// crosses both SFs and reaches dest; nothing is dropped as a loop (nor as the retired
/// `hop_limit`).
fn a_sender_changing_its_ttl_is_no_loop(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]));
    let sfc = Sfc::for_topology(&fx.topo).with_mode(mode);
    let echo = UdpEchoServer::start(&fx.topo.dest(), dest(PORT)).unwrap();
    sfc.apply(&fx.write("udp.yaml", &fx.topo.one_group_per_sf("udp", PORT)));

    let ttls = [64, 64, 64, 50, 50, 50, 64, 64];
    let (sent, w) = fx.window(&sfc, "one UDP flow, TTL 64 x3, 50 x3, 64 x2", || {
        send::datagrams_with_ttls(
            &fx.topo.source(),
            dest(PORT),
            &ttls,
            Duration::from_millis(20),
        )
        .unwrap()
    });
    let n = ttls.len() as u64;
    assert_eq!(sent, ttls.len());
    assert_eq!(echo.received(), ttls.len(), "{}", w.report());
    for (hop, sf) in [(0, 1u8), (1, 2)] {
        assert_eq!(
            w.link(End::SfIn(sf)).rx_packets,
            n,
            "sf{sf} in: {}",
            w.report()
        );
        assert_eq!(
            w.link(End::SfOut(sf)).tx_packets,
            n,
            "sf{sf} out: {}",
            w.report()
        );
        assert_eq!(
            w.packets("pc1", hop, &format!("pp{sf}")),
            n,
            "{}",
            w.report()
        );
    }
    let drops = w.after.drops();
    assert_eq!(
        (drops.get("loop"), drops.get("hop_limit")),
        (Some(&0), Some(&0)),
        "{drops:?}: {}",
        w.report()
    );
    w.assert_no_drops();
}

/// A real loop: a chain without a logical destination port hands each datagram (to
/// 198.18.0.99, an address of the test subnet nobody owns) back to the host after sf1; dest
/// routes it to source, and source routes it back into its port, the chain's logical source
/// port. Every datagram crosses sf1 once, makes exactly one lap, and is dropped as `loop` when it
/// comes back; without the guard it would go round until routing exhausted its TTL.
fn a_real_loop_is_caught_counted_and_bounded(mode: &str) {
    const LOOPED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
    const N: usize = 20;
    let fx = Fixture::new(TopologyConfig::new(&[1]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let (source_mac, dest_mac) = (End::Source.mac(), End::Dest.mac());
    let neigh = |ns: &str, dev: &str, mac: [u8; 6]| link::static_neighbour(ns, dev, LOOPED.into(), mac).unwrap();
    // source and sf1 send it to dest; dest routes it back to source; source forwards it again.
    neigh(&topo.source(), "eth0", dest_mac);
    neigh(&topo.sf(1), "out", dest_mac);
    neigh(&topo.dest(), "eth0", source_mac);
    // Source forwards a packet that carries its own address as the source: accept_local.
    for ns in [topo.source(), topo.dest()] {
        #[rustfmt::skip]
        netns::sysctls(&ns, &[
            ("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.eth0.rp_filter", "0"),
            ("net.ipv4.conf.all.accept_local", "1"), ("net.ipv4.conf.eth0.accept_local", "1"),
        ]).unwrap();
    }
    let mut file = topo.one_group_per_sf("udp", PORT);
    file.classifier_mut("web").unwrap().destination_ip_prefix = Some(format!("{LOOPED}/32"));
    sfc.apply(&fx.write("loop.yaml", &file));

    let to = SocketAddr::new(IpAddr::V4(LOOPED), PORT);
    let (_, w) = fx.window(
        &sfc,
        "UDP to 198.18.0.99, routed round by dest and source",
        || {
            send::datagrams_with_ttls(&topo.source(), to, &[64; N], Duration::from_millis(10))
                .unwrap()
        },
    );
    let n = N as u64;
    let drops = w.after.drops();
    assert_eq!(
        drops.get("loop"),
        Some(&n),
        "every datagram caught once: {}",
        w.report()
    );
    assert_eq!(
        w.link(End::SfIn(1)).rx_packets,
        n,
        "each crossed sf1 exactly once: {}",
        w.report()
    );
    assert_eq!(
        w.link(End::Dest).rx_packets,
        n,
        "each reached dest once: {}",
        w.report()
    );
    assert_eq!(
        w.link(End::Dest).tx_packets,
        n,
        "dest routed each back once: {}",
        w.report()
    );
    assert_eq!(
        w.link(End::Source).tx_packets,
        2 * n,
        "source sent each, and forwarded it once: {}",
        w.report()
    );
}

/// Deterministic eviction: sf1 holds the datagrams (its next hop's address does not resolve,
/// so they wait in its neighbour queue), every flow entry is flushed, and then sf1 lets them
/// go. Coming back from sf1 with no entry, each is reclassified and sent into sf2: dest gets
/// them all, sf2 forwarded them all, none was handed to the host half-steered.
fn packets_inside_an_sf_when_the_flow_table_is_flushed_cross_every_later_sf(mode: &str) {
    const N: usize = 30;
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let echo = UdpEchoServer::start(&topo.dest(), dest(PORT)).unwrap();
    sfc.apply(&fx.write("udp.yaml", &topo.one_group_per_sf("udp", PORT)));
    let sf1 = hold_in_sf1(topo);
    let ((), w) = fx.window(
        &sfc,
        "30 datagrams held in sf1, flows flushed, then released",
        || {
            send::datagrams_with_ttls(
                &topo.source(),
                dest(PORT),
                &[64; N],
                Duration::from_millis(5),
            )
            .unwrap();
            // They are all in sf1 now, and have a flow entry.
            wait_for(
                || {
                    sfc.try_stats()
                        .ok()
                        .and_then(|s| s.packets("pc1", 0, "pp1"))
                        == Some(N as u64)
                },
                "sfc sent all into sf1",
            );
            assert_eq!(
                echo.received(),
                0,
                "sf1 let datagrams go before its next hop resolved"
            );
            let flushed = sfc.run(&["flows", "--flush"]);
            assert!(flushed.contains("flushed 1 flow entry"), "{flushed}");
            release_sf1(&sf1);
            wait_for(|| echo.received() == N, "dest received every datagram");
        },
    );
    let n = N as u64;
    let s1o = topo.hub_dev(End::SfOut(1));
    // The first one back recomputes the path and stores it again; the others find it.
    assert!(
        w.interface_delta(&s1o, "recomputed") >= 1,
        "no path was recomputed: {}",
        w.report()
    );
    assert_eq!(
        w.packets("pc1", 1, "pp2"),
        n,
        "sfc sent each into sf2: {}",
        w.report()
    );
    assert_eq!(
        w.link(End::SfOut(2)).tx_packets,
        n,
        "sf2 forwarded each (ARP for the gateway reaches its in, not its out): {}",
        w.report()
    );
    assert_eq!(echo.received(), N);
    w.assert_no_drops();
}

/// The smallest flow table (1,024 entries), a flood of 5,000 new 5-tuples that match the
/// chain, and a steady flow at the same time, all held inside sf1 (as in the test above) while
/// the flood evicts the entries of the packets that are in there, then released: every
/// datagram that reaches dest crossed sf1 and sf2 (kernel counters of the SFs' interfaces
/// against dest's), and sfc recomputed the paths whose entries were evicted.
fn a_flood_through_a_tiny_flow_table_skips_no_sf(mode: &str) {
    const FLOWS: usize = 5_000;
    const STEADY: usize = 200;
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    // Nothing listens on dest: its port-unreachable answers go back to source unclassified and
    // do not count at dest's rx, which must then be exactly the chain's traffic.
    let file = fx.write("udp.yaml", &topo.one_group_per_sf("udp", PORT));
    sfc.run(&[
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--mode",
        mode,
        "--flow-table-size",
        "1024",
    ]);
    let sf1 = hold_in_sf1(topo);

    let (sent, w) = fx.window(
        &sfc,
        "flood of 5,000 5-tuples and a steady flow, 1,024-entry flow table",
        || {
            let sent = std::thread::scope(|s| {
                let steady = s.spawn(|| {
                    send::datagrams_with_ttls(
                        &topo.source(),
                        dest(PORT),
                        &[64; STEADY],
                        Duration::from_millis(1),
                    )
                    .unwrap()
                });
                let flood = send::flood(
                    &topo.source(),
                    dest(PORT),
                    FLOWS,
                    1,
                    Duration::from_secs(20),
                )
                .unwrap();
                (flood, steady.join().expect("steady sender"))
            });
            // Everything sfc sent into sf1 is held there. (The source's backlog may drop a few
            // datagrams of the burst before any program sees them: what matters is that every
            // datagram sfc steered crosses both SFs.)
            let into_sf1 = || sfc.try_stats().ok().and_then(|s| s.packets("pc1", 0, "pp1")).unwrap_or(0);
            let mut last = u64::MAX;
            wait_for(
                || {
                    let now = into_sf1();
                    std::thread::sleep(Duration::from_millis(200));
                    let settled = now == last && now == into_sf1();
                    last = now;
                    settled
                },
                "sfc's count into sf1 settles",
            );
            release_sf1(&sf1);
            (sent, into_sf1())
        },
    );
    let ((flood, steady), n) = sent;
    assert_eq!((flood.flows, flood.sent, steady), (FLOWS, FLOWS, STEADY));
    let report = w.report();
    assert!(n > 1024 + STEADY as u64, "only {n} datagrams reached the datapath: {report}");
    // sf1 asked for its gateway by broadcast: every other bridge port saw those ARP requests
    // (sf2's `out` saw nothing else).
    let arp = w.link(End::SfOut(2)).rx_packets;
    assert_eq!(w.link(End::SfIn(1)).rx_packets - arp, n, "{report}");
    assert_eq!(
        w.link(End::SfOut(1)).tx_packets - arp,
        n,
        "sf1 held and then forwarded all it got: {report}"
    );
    assert_eq!(
        w.link(End::SfOut(2)).tx_packets,
        n,
        "everything out of sf1 went through sf2: {report}"
    );
    assert_eq!(
        w.link(End::Dest).rx_packets - arp,
        n,
        "dest got exactly what sf2 forwarded, nothing else: {report}"
    );
    // At most 1,024 of the flows held in sf1 can still have had an entry when their packets
    // came back (the steady flow's 200 datagrams are one flow).
    let recomputed = w.interface_delta(&topo.hub_dev(End::SfOut(1)), "recomputed");
    assert!(
        recomputed >= n - 1024 - STEADY as u64,
        "{recomputed} paths recomputed: {report}"
    );
    w.assert_no_drops();
    println!(
        "flood {flood:?} + {steady} steady: all {n} crossed sf1 and sf2; {recomputed} paths recomputed"
    );
}

const HELD_BY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 250);

/// Makes sf1 hold what it would forward: it routes dest via a gateway nobody answers for, and
/// its neighbour queue keeps what waits (up to 64 MiB) for as long as it asks (50 tries a second
/// apart). Returns sf1's namespace, for [`release_sf1`].
fn hold_in_sf1(topo: &sfc_tests::Topology) -> String {
    let sf1 = topo.sf(1);
    netns::sysctls(
        &sf1,
        &[
            ("net.ipv4.neigh.out.mcast_solicit", "50"),
            ("net.ipv4.neigh.out.unres_qlen_bytes", "67108864"),
        ],
    )
    .unwrap();
    ip_in(
        &sf1,
        &[
            "route",
            "replace",
            &format!("{DEST_IP}/32"),
            "via",
            &HELD_BY.to_string(),
            "dev",
            "out",
            "onlink",
        ],
    )
    .unwrap();
    sf1
}

/// The gateway resolves (to dest's MAC): sf1 sends on everything it held, in order.
fn release_sf1(sf1: &str) {
    link::static_neighbour(sf1, "out", HELD_BY.into(), End::Dest.mac()).unwrap();
}

/// Polls `cond` every 20 ms for up to 10 s; panics with `what` when it never holds.
fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting: {what}");
}
