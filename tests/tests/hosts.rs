//! Chains across hosts with real packets: three "hosts" (hub namespaces joined by a VXLAN
//! underlay, `sfc_tests::hosts`), etcd in a namespace of its own, one `sfc run --etcd` agent per
//! host. The chain: source@h1 -> pg1 {sf1@h2, sf3@h3} -> pg2 {sf2@h1} -> dest@h3, symmetric.
//! The path is proven by the SFs' own interface counters: every request and reply crosses a
//! pg1 member and sf2, over the overlay between hosts.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`), etcd (Debian's `etcd-server`
//! and `etcd-client`, installed by `cargo xtask setup`) and root; run with `--test-threads=1`.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    time::{Duration, Instant},
};

use sfc_tests::{
    TopologyConfig,
    chain::{ChainFile, FlowClassifier, PortChain, PortPairGroup, ScratchDir},
    hosts::Hosts,
    sfc::bin_from_env,
    stream::{STREAM_PORT, SeqStream, StreamSpec},
    topology::{DEST_IP, DEST_IP6, End, SOURCE_IP, SOURCE_IP6},
    traffic::{TcpServer, UdpEchoServer, tcp_requests},
};

const REQUESTS: usize = 20;

/// Where the ends live: sf1 on h2, sf3 and dest on h3; source and sf2 stay on h1.
const PLACEMENT: [(End, usize); 5] =
    [(End::SfIn(1), 2), (End::SfOut(1), 2), (End::SfIn(3), 3), (End::SfOut(3), 3), (End::Dest, 3)];

fn chain(h: &Hosts, extra_port: Option<u16>) -> ChainFile {
    let topo = h.topo();
    let classifier = |name: &str, proto: &str, port: u16| {
        let mut fc = FlowClassifier::to_port(name, proto, port, &topo.hub_dev(End::Source));
        fc.source_ip_prefix = Some(format!("{SOURCE_IP}/32"));
        fc.logical_destination_port = Some(topo.hub_dev(End::Dest));
        fc
    };
    let mut classifiers = vec![classifier("web", "tcp", 80), classifier("stream", "udp", STREAM_PORT)];
    classifiers.extend(extra_port.map(|p| classifier("extra", "udp", p)));
    let mut pc = PortChain::new("pc1", 1, &["pg1", "pg2"], &classifiers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>());
    pc.symmetric = true;
    ChainFile {
        port_pairs: [1, 2, 3].iter().map(|&n| topo.port_pair(n)).collect(),
        port_pair_groups: vec![PortPairGroup::new("pg1", &["pp1", "pp3"]), PortPairGroup::new("pg2", &["pp2"])],
        flow_classifiers: classifiers,
        port_chains: vec![pc],
        interfaces: Vec::new(),
    }
}

fn hosts(dir: &Path, v6_underlay: bool) -> Hosts {
    hosts_with(dir, v6_underlay, TopologyConfig::new(&[1, 2, 3]).symmetric_routing())
}

fn hosts_with(dir: &Path, v6_underlay: bool, config: TopologyConfig) -> Hosts {
    let topo = config.build().unwrap_or_else(|e| panic!("{e:#}"));
    Hosts::build(topo, 3, &PLACEMENT, v6_underlay, &bin_from_env(), dir).unwrap_or_else(|e| panic!("{e:#}"))
}

/// `REQUESTS` TCP requests from source to `server`, every one answered; the endpoint counter
/// deltas they made.
fn requests_answered(h: &Hosts, server: &TcpServer) -> sfc_tests::Counters {
    let topo = h.topo();
    let before = topo.counters().unwrap_or_else(|e| panic!("{e:#}"));
    let out = tcp_requests(&topo.source(), server.addr(), REQUESTS).unwrap_or_else(|e| panic!("{e:#}"));
    let d = topo.counters().unwrap_or_else(|e| panic!("{e:#}")).since(&before);
    assert_eq!(out.ok, REQUESTS, "requests answered: {out:?}\n{d}\n{}", h.logs());
    d
}

fn up(h: &mut Hosts, dir: &ScratchDir) -> i64 {
    let file = dir.write("chains.yaml", &chain(h, None)).unwrap_or_else(|e| panic!("{e:#}"));
    let rev = h.push(&file).unwrap_or_else(|e| panic!("{e:#}"));
    for n in 1..=3 {
        h.start_agent(n).unwrap_or_else(|e| panic!("{e:#}"));
    }
    h.wait_applied(rev, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e:#}"));
    rev
}

/// TCP requests and their replies cross h1 -> h2|h3 -> h1 -> h3 and back, byte for byte.
fn tcp_across_hosts(v6_underlay: bool) {
    let dir = ScratchDir::new("hosts").unwrap_or_else(|e| panic!("{e:#}"));
    let mut h = hosts(dir.path(), v6_underlay);
    up(&mut h, &dir);
    let topo = h.topo();
    let server = TcpServer::start(&topo.dest(), SocketAddr::new(IpAddr::V4(DEST_IP), 80)).unwrap_or_else(|e| panic!("{e:#}"));
    let d = requests_answered(&h, &server);
    // Each connection is a flow pinned to sf1 or sf3; all of them cross sf2.
    let pg1 = d.get(End::SfIn(1)).rx_packets + d.get(End::SfIn(3)).rx_packets;
    let sf2 = d.get(End::SfIn(2)).rx_packets;
    assert!(sf2 >= 3 * REQUESTS as u64, "sf2 saw every request's packets: {sf2}\n{d}");
    assert_eq!(pg1, sf2, "every packet that crossed sf2 crossed sf1 or sf3 first:\n{d}");
    // Replies enter the SFs through `out` (symmetric chain).
    let replies = d.get(End::SfOut(1)).rx_packets + d.get(End::SfOut(3)).rx_packets;
    assert_eq!(replies, d.get(End::SfOut(2)).rx_packets, "replies cross sf2 and a pg1 member:\n{d}");
    assert!(replies >= 2 * REQUESTS as u64, "replies crossed the SFs: {replies}\n{d}");

    // sf1 (on h2) leaves pg1 with the default drain (30 s): every host installs it draining,
    // the one that reaches it over the overlay too, and requests go on through sf3.
    let mut without_sf1 = chain(&h, None);
    without_sf1.port_pair_groups[0].port_pairs = vec!["pp3".to_owned()];
    let file = dir.write("without-sf1.yaml", &without_sf1).unwrap_or_else(|e| panic!("{e:#}"));
    let rev = h.push(&file).unwrap_or_else(|e| panic!("{e:#}"));
    h.wait_applied(rev, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e:#}"));
    let before = topo.counters().unwrap_or_else(|e| panic!("{e:#}"));
    let out = tcp_requests(&topo.source(), server.addr(), 5).unwrap_or_else(|e| panic!("{e:#}"));
    let d = topo.counters().unwrap_or_else(|e| panic!("{e:#}")).since(&before);
    assert_eq!((out.ok, d.get(End::SfIn(1)).rx_packets), (5, 0), "new connections avoid the draining sf1:\n{d}\n{}", h.logs());
    let rev = h.push(&dir.write("chains.yaml", &chain(&h, None)).unwrap_or_else(|e| panic!("{e:#}"))).unwrap_or_else(|e| panic!("{e:#}"));
    h.wait_applied(rev, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e:#}"));

    // IP fragments (2000-byte datagrams, 2 fragments each; the echo server echoes up to 2048
    // bytes), both ways: later fragments follow their first one on every host.
    let echo = UdpEchoServer::start(&topo.dest(), SocketAddr::new(IpAddr::V4(DEST_IP), STREAM_PORT)).unwrap_or_else(|e| panic!("{e:#}"));
    let before = topo.counters().unwrap_or_else(|e| panic!("{e:#}"));
    let back = udp_sized(&topo.source(), echo.addr(), 2000, 5, false);
    let d = topo.counters().unwrap_or_else(|e| panic!("{e:#}")).since(&before);
    assert_eq!((echo.received(), back), (5, 5), "fragmented datagrams and their echoes:\n{d}\n{}", h.logs());
    assert_eq!((d.get(End::SfIn(2)).rx_packets, d.get(End::SfOut(2)).rx_packets), (10, 10), "every fragment crossed sf2, both ways:\n{d}");

    // A packet too big for the overlay is dropped and counted where it would enter it, never
    // lost silently (h1's overlay device made smaller than the source's MTU).
    sfc_tests::netns::ip_in(h.hub(1), &["link", "set", "sfc-vxlan", "mtu", "1200"]).unwrap_or_else(|e| panic!("{e:#}"));
    let drops = |h: &Hosts| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&h.sfc_on(1, &["stats", "--json"]).unwrap_or_else(|e| panic!("{e:#}"))).unwrap_or_default();
        v["drops"]["overlay_too_big"].as_u64().unwrap_or_else(|| panic!("no overlay_too_big in {v}"))
    };
    let (before, received) = (drops(&h), echo.received());
    let back = udp_sized(&topo.source(), echo.addr(), 1400, 3, true);
    assert_eq!((echo.received() - received, back), (0, 0), "a datagram too big for the overlay got through");
    assert_eq!(drops(&h) - before, 3, "overlay_too_big counts each datagram");
    sfc_tests::netns::ip_in(h.hub(1), &["link", "set", "sfc-vxlan", "mtu", &sfc_tests::hosts::OVERLAY_MTU.to_string()]).unwrap_or_else(|e| panic!("{e:#}"));

    // `sfc down` removes the overlay device the agent created.
    h.agent(2).map(sfc_tests::hosts::Agent::kill);
    let out = h.sfc_on(2, &["down"]).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(out.contains("removed the overlay device sfc-vxlan"), "{out}");
    assert!(sfc_tests::netns::ip_in(h.hub(2), &["link", "show", "sfc-vxlan"]).is_err(), "sfc-vxlan is still in h2");
}

/// Sends `n` datagrams of `size` bytes from `ns` to `to` (with DF set when `df`: no
/// fragmentation anywhere) and counts the echoes that come back within a second each.
fn udp_sized(ns: &str, to: SocketAddr, size: usize, n: usize, df: bool) -> usize {
    sfc_tests::netns::in_netns(ns, move || {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("{e}"));
        if df {
            let v: libc::c_int = libc::IP_PMTUDISC_DO;
            // SAFETY: a valid socket and a c_int option value of the right size.
            let r = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&sock),
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    (&raw const v).cast(),
                    libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
                )
            };
            assert_eq!(r, 0, "IP_MTU_DISCOVER");
        }
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap_or_else(|e| panic!("{e}"));
        let mut back = 0;
        let mut buf = vec![0u8; 65_536];
        for i in 0..n {
            let payload = vec![u8::try_from(i % 256).unwrap_or(0); size];
            sock.send_to(&payload, to).unwrap_or_else(|e| panic!("send: {e}"));
            if let Ok((got, _)) = sock.recv_from(&mut buf)
                && buf[..got] == payload[..]
            {
                back += 1;
            }
        }
        back
    })
    .unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn tcp_across_three_hosts_ipv4_underlay() {
    tcp_across_hosts(false);
}

#[test]
fn tcp_across_three_hosts_ipv6_underlay() {
    tcp_across_hosts(true);
}

/// A UDP sequence stream through the chain while the control plane is disturbed: h2's agent
/// killed and restarted, etcd stopped for 10 s, an update pushed: not one datagram lost (the
/// datapath forwards as configured whatever the control plane does). Then h2 dies for good
/// (its agent and its SF): sf1's flows are lost until its lease expires and every host fails
/// them over to sf3; the gap is reported and bounded, and the stream ends whole.
#[test]
fn control_plane_disturbed_and_a_host_dies() {
    let dir = ScratchDir::new("hosts").unwrap_or_else(|e| panic!("{e:#}"));
    let mut h = hosts(dir.path(), false);
    up(&mut h, &dir);
    let topo = h.topo();
    let (source, dest, sf1) = (topo.source(), topo.dest(), topo.sf(1));
    let spec = StreamSpec { rate: 200, sports: (42_001..42_009).collect(), limit: Duration::from_mins(1) };
    let stream = SeqStream::start(&source, &dest, spec).unwrap_or_else(|e| panic!("{e:#}"));
    let pause = |ms| std::thread::sleep(Duration::from_millis(ms));
    let step = |h: &Hosts, what: &str, r: anyhow::Result<()>| r.unwrap_or_else(|e| panic!("{what}: {e:#}\n{}", h.logs()));
    pause(1000);

    // 1. h2's agent killed, restarted (within its lease).
    h.agent(2).map(sfc_tests::hosts::Agent::kill);
    pause(1500);
    // The log is appended to: what the restarted agent says starts past what is there now.
    let said_before = h.agent(2).map_or(0, |a| a.log().len());
    h.start_agent(2).unwrap_or_else(|e| panic!("{e:#}"));
    // It resumes what was installed: its first apply changes nothing (no new generation).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = h.agent(2).map(|a| a.log()).unwrap_or_default();
        let after_restart = log.get(said_before..).unwrap_or_default();
        if after_restart.contains("no change (generation") {
            break;
        }
        assert!(!after_restart.contains("generation") && Instant::now() < deadline, "h2's restarted agent did not resume unchanged:\n{log}");
        pause(100);
    }
    pause(1000);
    // 2. etcd stopped for 10 s.
    h.etcd.stop().unwrap_or_else(|e| panic!("{e:#}"));
    pause(10_000);
    let r = h.etcd.restart();
    step(&h, "restarting etcd", r);
    pause(2000);
    // 3. An update (one more classifier on the chain).
    let file = dir.write("chains2.yaml", &chain(&h, Some(5999))).unwrap_or_else(|e| panic!("{e:#}"));
    let rev = h.push(&file).unwrap_or_else(|e| panic!("{e:#}"));
    h.wait_applied(rev, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e:#}"));
    // Two pushes in quick succession: every host ends on the last.
    let first = dir.write("chains3.yaml", &chain(&h, Some(5998))).unwrap_or_else(|e| panic!("{e:#}"));
    h.push(&first).unwrap_or_else(|e| panic!("{e:#}"));
    let rev = h.push(&file).unwrap_or_else(|e| panic!("{e:#}"));
    h.wait_applied(rev, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e:#}"));
    // The same file pushed again: a new revision with nothing to change, still acknowledged.
    let again = h.push(&file).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(again > rev);
    h.wait_applied(again, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e:#}"));
    pause(1000);
    // 4. h2 dies: its agent, then its SF.
    let died = Instant::now();
    h.agent(2).map(sfc_tests::hosts::Agent::kill);
    for dev in [End::SfIn(1).dev(), End::SfOut(1).dev()] {
        sfc_tests::netns::ip_in(&sf1, &["link", "set", dev, "down"]).unwrap_or_else(|e| panic!("{e:#}"));
    }
    pause(8000);
    let report = stream.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let sent_before = (0..report.sent()).filter(|&s| report.sent_at(s).is_some_and(|t| t < died)).count() as u64;
    let got_before = report.received_where(|t| t < died);
    let gaps: Vec<String> = report
        .gaps()
        .iter()
        .map(|g| format!("{}..={} ({} datagrams, sent at {:.0} ms)", g.first, g.last, g.count(), report.sent_at(g.first).map_or(0.0, |t| report.ms(t))))
        .collect();
    eprintln!("h2 died at {:.0} ms; {report}; gaps: {}", report.ms(died), gaps.join(", "));
    assert_eq!(got_before, sent_before, "lost while the control plane was disturbed: {report}\ngaps: {gaps:?}\n{}", h.logs());
    // After the death: only sf1's flows (about half of 8) until the lease (4 s) expired and the
    // hosts re-applied; the last 2 s of the stream arrive whole.
    let lost_after = report.lost();
    assert!(lost_after > 0, "h2's SF died with flows on it, yet nothing was lost: {report}");
    assert!(lost_after <= 200 * 7, "lost {lost_after} after h2 died (more than 7 s of the stream): {report}\n{}", h.logs());
    let end = report.sent_at(report.sent() - 1).unwrap_or(died);
    let tail_sent = (0..report.sent()).filter(|&s| report.sent_at(s).is_some_and(|t| t + Duration::from_secs(2) > end)).count() as u64;
    let tail_got = report.received_where(|t| t + Duration::from_secs(2) > end);
    assert_eq!(tail_got, tail_sent, "the stream did not recover after the failover: {report}\n{}", h.logs());
}

/// IPv6 inside (over an IPv4 underlay): TCP to dest's IPv6 address through the same chain, a
/// classifier of ethertype IPv6, replies back through the same members.
#[test]
fn ipv6_inside_across_hosts() {
    let dir = ScratchDir::new("hosts").unwrap_or_else(|e| panic!("{e:#}"));
    let mut h = hosts_with(dir.path(), false, TopologyConfig::new(&[1, 2, 3]).symmetric_routing().ipv6());
    let mut file = chain(&h, None);
    for fc in &mut file.flow_classifiers {
        fc.ethertype = Some("IPv6".to_owned());
        fc.source_ip_prefix = Some(format!("{SOURCE_IP6}/128"));
    }
    let path = dir.write("chains.yaml", &file).unwrap_or_else(|e| panic!("{e:#}"));
    let rev = h.push(&path).unwrap_or_else(|e| panic!("{e:#}"));
    for n in 1..=3 {
        h.start_agent(n).unwrap_or_else(|e| panic!("{e:#}"));
    }
    h.wait_applied(rev, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e:#}"));
    let topo = h.topo();
    let server = TcpServer::start(&topo.dest(), SocketAddr::new(IpAddr::V6(DEST_IP6), 80)).unwrap_or_else(|e| panic!("{e:#}"));
    let d = requests_answered(&h, &server);
    // IPv6 endpoints may add a stray neighbour or MLD packet: at least every request's packets.
    let pg1 = d.get(End::SfIn(1)).rx_packets + d.get(End::SfIn(3)).rx_packets;
    assert!(d.get(End::SfIn(2)).rx_packets >= 3 * REQUESTS as u64 && pg1 >= 3 * REQUESTS as u64, "requests crossed pg1 and sf2:\n{d}");
    let replies = d.get(End::SfOut(1)).rx_packets + d.get(End::SfOut(3)).rx_packets;
    assert!(replies >= 2 * REQUESTS as u64 && d.get(End::SfOut(2)).rx_packets >= 2 * REQUESTS as u64, "replies crossed sf2 and pg1:\n{d}");
}
