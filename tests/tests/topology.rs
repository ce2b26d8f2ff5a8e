//! The namespace topology on its own, without sfc: plain forwarding through the hub bridge,
//! the noise controls that make SF counters exact, and cleanup.

use std::{
    net::{IpAddr, SocketAddr},
    panic::AssertUnwindSafe,
    sync::Mutex,
    time::Duration,
};

use sfc_tests::{
    Topology, TopologyConfig,
    counters::settled,
    netns,
    topology::{DEST_IP, End},
    traffic::{TcpServer, UdpEchoServer, tcp_requests, udp_exchange},
};

fn dest(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(DEST_IP), port)
}

fn build(sfs: &[u8]) -> Topology {
    TopologyConfig::new(sfs)
        .build()
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Sends 20 TCP requests and 20 UDP datagrams source -> dest and checks that all arrive while
/// no SF interface counter moves.
fn assert_plain_forwarding(topo: &Topology) {
    let _web = TcpServer::start(&topo.dest(), dest(80)).unwrap();
    let udp = UdpEchoServer::start(&topo.dest(), dest(5353)).unwrap();
    let before = topo.counters().unwrap();

    let tcp = tcp_requests(&topo.source(), dest(80), 20).unwrap();
    let udp_out = udp_exchange(&topo.source(), dest(5353), 20).unwrap();
    let after = settled(Duration::from_secs(3), Duration::from_millis(100), || {
        topo.counters()
    })
    .unwrap();
    let delta = after.since(&before);

    assert_eq!(
        tcp.ok,
        20,
        "TCP source -> dest:80 in {}: {tcp:?}\n{delta}",
        topo.id()
    );
    assert_eq!(udp_out.echoed, 20, "UDP echoes: {udp_out:?}\n{delta}");
    assert_eq!(udp.received(), 20, "UDP datagrams at dest\n{delta}");
    assert!(
        delta.moved_sf_interfaces().is_empty(),
        "SF interfaces saw traffic without any chain: {:?}\n{delta}",
        delta.moved_sf_interfaces()
    );
    let (src, dst) = (delta.get(End::Source), delta.get(End::Dest));
    assert!(src.tx_packets > 0 && dst.rx_packets > 0, "{delta}");
    // Every packet source sent reached dest and the other way round: nothing else on the wire.
    assert_eq!(
        src.tx_packets, dst.rx_packets,
        "source tx vs dest rx\n{delta}"
    );
    assert_eq!(
        dst.tx_packets, src.rx_packets,
        "dest tx vs source rx\n{delta}"
    );
}

#[test]
fn plain_forwarding_bypasses_the_service_functions() {
    let topo = build(&[1, 3]);
    assert_plain_forwarding(&topo);
}

#[test]
fn namespaces_are_configured_for_quiet_counters() {
    let topo = build(&[1, 2]);
    for ns in topo.namespaces() {
        assert_eq!(
            netns::sysctl(&ns, "net.ipv6.conf.all.disable_ipv6").unwrap(),
            "1",
            "{ns}"
        );
    }
    for n in [1, 2] {
        let sf = topo.sf(n);
        assert_eq!(
            netns::sysctl(&sf, "net.ipv4.ip_forward").unwrap(),
            "1",
            "{sf}"
        );
        for key in [
            "all.rp_filter",
            "in.rp_filter",
            "out.rp_filter",
            "in.send_redirects",
            "all.accept_redirects",
        ] {
            let key = format!("net.ipv4.conf.{key}");
            assert_eq!(netns::sysctl(&sf, &key).unwrap(), "0", "{sf} {key}");
        }
        let neigh = netns::ip_in(&sf, &["neigh", "show", "dev", "out"]).unwrap();
        assert!(
            neigh.contains("198.18.0.2 lladdr 02:5f:c0:02:00:01 PERMANENT"),
            "{sf}: {neigh}"
        );
        let routes = netns::ip_in(&sf, &["-4", "route", "get", "198.18.0.2"]).unwrap();
        assert!(
            routes.contains("dev out"),
            "{sf}: dest must be reached via out: {routes}"
        );
    }
    let snooping = netns::ip_in(&topo.hub(), &["-d", "-j", "link", "show", "br0"]).unwrap();
    assert!(snooping.contains("\"mcast_snooping\":0"), "{snooping}");
}

#[test]
fn two_topologies_side_by_side() {
    let a = build(&[1]);
    let b = build(&[1]);
    assert_ne!(a.id(), b.id());
    assert_plain_forwarding(&a);
    assert_plain_forwarding(&b);
}

#[test]
fn namespaces_are_removed_on_panic() {
    let names = Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let topo = build(&[1, 2, 3]);
        *names.lock().unwrap() = topo.namespaces();
        panic!("deliberate panic with topology {} alive", topo.id());
    }));
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 6, "{names:?}");
    let left: Vec<_> = names.iter().filter(|n| netns::exists(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

#[test]
fn ipv6_and_symmetric_routing_variant_is_quiet() {
    let topo = TopologyConfig::new(&[1])
        .ipv6()
        .symmetric_routing()
        .build()
        .unwrap_or_else(|e| panic!("{e:#}"));
    let sf = topo.sf(1);
    assert_eq!(
        netns::sysctl(&sf, "net.ipv6.conf.all.forwarding").unwrap(),
        "1"
    );
    assert_eq!(
        netns::sysctl(&sf, "net.ipv6.conf.out.accept_dad").unwrap(),
        "0"
    );
    assert_eq!(
        netns::sysctl(&topo.hub(), "net.ipv6.conf.all.disable_ipv6").unwrap(),
        "1",
        "the hub only bridges"
    );
    // Forward traffic leaves an SF by `out`; with symmetric routing, traffic for source by `in`.
    for (args, dev) in [
        (["-6", "route", "get", "fd00:5fc::2"], "dev out"),
        (["-6", "route", "get", "fd00:5fc::1"], "dev in"),
        (["-4", "route", "get", "198.18.0.1"], "dev in"),
    ] {
        let route = netns::ip_in(&sf, &args).unwrap();
        assert!(route.contains(dev), "{sf}: {args:?}: {route}");
    }

    // Idle: nothing on any wire (no MLD, router solicitation or DAD after the build).
    let before = topo.counters().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let idle = topo.counters().unwrap().since(&before);
    assert!(
        idle.links
            .values()
            .all(|s| *s == sfc_tests::LinkStats::default()),
        "counters moved while idle:\n{idle}"
    );

    // Plain IPv6 forwarding through the bridge bypasses the SF.
    let dest6 = SocketAddr::new(IpAddr::V6(sfc_tests::topology::DEST_IP6), 80);
    let _web = TcpServer::start(&topo.dest(), dest6).unwrap();
    let udp = UdpEchoServer::start(&topo.dest(), SocketAddr::new(dest6.ip(), 5353)).unwrap();
    let tcp = tcp_requests(&topo.source(), dest6, 10).unwrap();
    let udp_out = udp_exchange(&topo.source(), udp.addr(), 10).unwrap();
    let delta = settled(Duration::from_secs(3), Duration::from_millis(100), || {
        topo.counters()
    })
    .unwrap()
    .since(&before);
    assert_eq!(tcp.ok, 10, "TCP over IPv6: {tcp:?}\n{delta}");
    assert_eq!(udp_out.echoed, 10, "UDP over IPv6: {udp_out:?}\n{delta}");
    assert!(
        delta.moved_sf_interfaces().is_empty(),
        "SF interfaces saw traffic without any chain:\n{delta}"
    );
    let (src, dst) = (delta.get(End::Source), delta.get(End::Dest));
    assert_eq!(
        src.tx_packets, dst.rx_packets,
        "source tx vs dest rx\n{delta}"
    );
    assert_eq!(
        dst.tx_packets, src.rx_packets,
        "dest tx vs source rx\n{delta}"
    );
}
