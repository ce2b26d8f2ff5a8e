//! Service functions behind tap devices, as `OpenStack` plugs VMs: the tap pump
//! (`sfc_tests::tap`, a VM's network card without a VM) on its own, then a chain through an SF
//! whose two ports are taps, next to one on veths.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use sfc_tests::{
    Sfc, TopologyConfig,
    failover::{self, Fault},
    link,
    netns::{self, NetNsGroup, ip_in},
    pid_name,
    ping::ping,
    process::Daemon,
    scenario::Fixture,
    tap::TapPump,
    topology::{DEST_IP, End},
    traffic::{UdpEchoServer, udp_exchange},
};

const HOST_NS: &str = "sfctaph";
const VM_NS: &str = "sfctapv";
const VM_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x13, 0x00, 0x01];

#[test]
fn a_pumped_tap_carries_a_vms_traffic_and_goes_with_it() {
    netns::sweep_stale(HOST_NS);
    netns::sweep_stale(VM_NS);
    let (host, vm) = (pid_name::unique(HOST_NS), pid_name::unique(VM_NS));
    let mut group = NetNsGroup::default();
    group.create(&host).unwrap_or_else(|e| panic!("{e:#}"));
    group.create(&vm).unwrap_or_else(|e| panic!("{e:#}"));

    let pump = TapPump::start(&host, "tap0", &vm, "eth0", VM_MAC).unwrap_or_else(|e| panic!("{e:#}"));
    ip_in(&host, &["addr", "add", "198.18.0.1/24", "dev", "tap0"]).unwrap_or_else(|e| panic!("{e:#}"));
    ip_in(&vm, &["addr", "add", "198.18.0.2/24", "dev", "eth0"]).unwrap_or_else(|e| panic!("{e:#}"));

    let out = ping(&host, Ipv4Addr::new(198, 18, 0, 2), 5).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(out.replied + 1 >= out.sent && out.replied > 0, "{out:?}");
    // The host learnt the VM's own MAC through the tap (not the tap's).
    let neigh = ip_in(&host, &["neigh", "show", "198.18.0.2", "dev", "tap0"]).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(neigh.contains("52:54:00:13:00:01"), "{neigh}");
    let (to_vm, from_vm) = pump.frames();
    assert!(to_vm >= out.replied as u64 && from_vm >= out.replied as u64, "pump copied {to_vm}/{from_vm} for {out:?}");

    pump.stop().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(ip_in(&host, &["link", "show", "tap0"]).is_err(), "the host tap outlived its pump");
    assert!(ip_in(&vm, &["link", "show", "eth0"]).is_err(), "the VM's NIC outlived its pump");
}

sfc_tests::in_both_modes!(a_chain_steers_through_taps_in_every_role, macs_behind_taps_are_learnt_under_sfc_run);

/// Source, destination and SF 1 are "VMs" on taps, SF 2 is on veths: every role on a tap, in
/// one chain with a veth member. The MACs come from the file (`ingress_mac` / `egress_mac` on
/// the port pair, `mac` on the destination's `interfaces:` entry). Proven by the SFs' own
/// interface counters.
fn a_chain_steers_through_taps_in_every_role(mode: &str) {
    let taps = [End::Source, End::Dest, End::SfIn(1), End::SfOut(1)];
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]).taps(&taps));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), 5353);
    let echo = UdpEchoServer::start(&topo.dest(), dest).unwrap_or_else(|e| panic!("{e:#}"));

    let mut file = topo.one_group_per_sf("udp", 5353);
    file.flow_classifiers[0].logical_destination_port = Some(topo.hub_dev(End::Dest));
    let yaml = format!("{}interfaces:\n  - {{name: {}, mac: {}}}\n", file.to_yaml(), topo.hub_dev(End::Dest), link::mac_string(End::Dest.mac()));
    let path = fx.dir.path().join("taps.yaml");
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("{e}"));
    let out = sfc.apply(&path);
    assert!(!out.contains("not used until"), "every MAC was given:\n{out}");

    let (out, w) = fx.window(&sfc, "UDP from a tap, through sf1 (taps) and sf2 (veths), to a tap", || {
        udp_exchange(&topo.source(), dest, 20).unwrap_or_else(|e| panic!("{e:#}"))
    });
    assert_eq!(out.echoed, 20, "{out:?}: {}", w.report());
    assert_eq!(echo.received(), 20, "{}", w.report());
    for (hop, n) in [(0, 1), (1, 2)] {
        assert_eq!(w.link(End::SfIn(n)).rx_packets, 20, "sf{n}: {}", w.report());
        assert_eq!(w.link(End::SfOut(n)).tx_packets, 20, "sf{n}: {}", w.report());
        assert_eq!(w.packets("pc1", hop, &format!("pp{n}")), 20, "{}", w.report());
    }
    w.assert_no_drops();
}

/// The same chain with no MAC in the file: `sfc run` installs it, keeps SF 1 out of use and
/// says so (`sfc status`: "no MAC yet", the taps "learning"), learns the VMs' MACs from the
/// first frames they send (an ARP request each), re-applies by itself, and the chain then
/// carries traffic into the VMs' own MACs.
fn macs_behind_taps_are_learnt_under_sfc_run(mode: &str) {
    let taps = [End::Dest, End::SfIn(1), End::SfOut(1)];
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]).taps(&taps));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), 5353);
    let echo = UdpEchoServer::start(&topo.dest(), dest).unwrap_or_else(|e| panic!("{e:#}"));

    let mut file = topo.one_group_per_sf("udp", 5353);
    file.flow_classifiers[0].logical_destination_port = Some(topo.hub_dev(End::Dest));
    file.port_pairs[0].ingress_mac = None;
    file.port_pairs[0].egress_mac = None;
    let path = fx.write("learn.yaml", &file);
    // The bridge must not know the VMs yet either (sfc would read its forwarding database).
    for end in taps {
        let mac = link::mac_string(end.mac());
        netns::run("bridge", &["-n", &topo.hub(), "fdb", "del", &mac, "dev", &topo.hub_dev(end), "master"]).unwrap_or_else(|e| panic!("{e:#}"));
    }
    let log = fx.dir.path().join("daemon.log");
    let metrics = if mode == "xdp" { "127.0.0.1:9475" } else { "127.0.0.1:9474" };
    let args = ["--mode", mode, "-f", &path.to_string_lossy(), "--health-interval", "200", "--metrics", metrics];
    let mut daemon = Daemon::start(&sfc, &args, &log).unwrap_or_else(|e| panic!("{e:#}"));
    let logged = daemon.log();
    assert!(logged.contains("waiting for a MAC") && logged.contains(&format!("pp1: ingress '{}'", topo.hub_dev(End::SfIn(1)))), "{logged}");
    let status = sfc.run(&["status"]);
    assert!(status.contains("pp1 (no MAC yet: ingress") && status.contains("learning"), "{status}");
    let up = |pp: &str| {
        let reply = sfc_tests::http::http_get_in(&topo.hub(), metrics.parse().expect("an address"), "/metrics").unwrap_or_else(|e| panic!("{e:#}"));
        sfc_tests::prometheus::Exposition::parse(&reply.body).unwrap_or_else(|e| panic!("{e:#}")).value("sfc_port_pair_up", &[("port_pair", pp)])
    };
    assert_eq!((up("pp1"), up("pp2")), (Some(0), Some(1)), "a member waiting for its MAC does not serve");

    // Each VM sends one frame (an ARP request for an address nobody has).
    for (ns, dev) in [(topo.dest(), "eth0"), (topo.sf(1), "in"), (topo.sf(1), "out")] {
        let _ = ip_in(&ns, &["neigh", "flush", "dev", dev]);
        speak(&ns, dev);
    }
    daemon.wait_for_log("MAC learnt, serving: pp1", Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e:#}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = sfc.run(&["status"]);
        if !status.contains("learning") || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for end in taps {
        let want = format!("{} (learnt)", link::mac_string(end.mac()));
        assert!(status.contains(&want), "{end:?}: want {want}:\n{status}");
    }

    assert_eq!(up("pp1"), Some(1));
    let (out, w) = fx.window(&sfc, "UDP through the learnt MACs", || udp_exchange(&topo.source(), dest, 20).unwrap_or_else(|e| panic!("{e:#}")));
    assert_eq!(out.echoed, 20, "{out:?}: {}\n{}", w.report(), daemon.log());
    assert_eq!(echo.received(), 20, "{}", w.report());
    assert_eq!(w.link(End::SfIn(1)).rx_packets, 20, "{}", w.report());
    assert_eq!(w.packets("pc1", 0, "pp1"), 20, "{}", w.report());
    w.assert_no_drops();
}

/// Makes the "VM" in namespace `ns` send a frame out of `dev`: a datagram to an address nobody
/// has, which its kernel first asks for with an ARP request (broadcast, from the NIC's MAC).
fn speak(ns: &str, dev: &str) {
    use std::os::fd::AsRawFd as _;
    netns::in_netns(ns, || {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: SO_BINDTODEVICE reads `dev.len()` bytes of the name, which lives across the call.
        let rc = unsafe {
            libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_BINDTODEVICE, dev.as_ptr().cast(), libc::socklen_t::try_from(dev.len()).unwrap_or(0))
        };
        assert_eq!(rc, 0, "SO_BINDTODEVICE {dev}: {}", std::io::Error::last_os_error());
        sock.send_to(b"hello", (Ipv4Addr::new(198, 18, 0, 250), 9)).unwrap_or_else(|e| panic!("{e}"));
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// VMs the bridge already knows (they spoke before sfc was there: here, the static entries the
/// topology writes) need no MAC in the file: a one-shot apply reads them from the bridge's
/// forwarding database.
#[test]
fn macs_behind_bridged_taps_come_from_the_fdb() {
    let taps = [End::Dest, End::SfIn(1), End::SfOut(1)];
    let fx = Fixture::new(TopologyConfig::new(&[1]).taps(&taps));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), 5353);
    let echo = UdpEchoServer::start(&topo.dest(), dest).unwrap_or_else(|e| panic!("{e:#}"));
    let mut file = topo.one_group_per_sf("udp", 5353);
    file.flow_classifiers[0].logical_destination_port = Some(topo.hub_dev(End::Dest));
    file.port_pairs[0].ingress_mac = None;
    file.port_pairs[0].egress_mac = None;
    let out = sfc.apply(&fx.write("fdb.yaml", &file));
    assert!(!out.contains("not used until"), "{out}");
    let (out, w) = fx.window(&sfc, "UDP through MACs from the FDB", || udp_exchange(&topo.source(), dest, 20).unwrap_or_else(|e| panic!("{e:#}")));
    assert_eq!(out.echoed, 20, "{out:?}: {}", w.report());
    assert_eq!(echo.received(), 20, "{}", w.report());
    assert_eq!(w.link(End::SfIn(1)).rx_packets, 20, "{}", w.report());
    w.assert_no_drops();
}

/// What cannot carry a chain is refused by name before anything is installed: an L3 tun device
/// (bare IP packets, no Ethernet header to steer by), and a neutron port whose tap is not there
/// (the message names the tap and the port).
#[test]
fn an_l3_tun_and_a_missing_neutron_port_are_refused_by_name() {
    let fx = Fixture::new(TopologyConfig::new(&[1]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    ip_in(&topo.hub(), &["tuntap", "add", "dev", "sfctun0", "mode", "tun"]).unwrap_or_else(|e| panic!("{e:#}"));
    let mut file = topo.one_group_per_sf("udp", 5353);
    file.port_pairs[0].ingress = "sfctun0".to_owned();
    let err = sfc.try_run(&["apply", "-f", &fx.write("tun.yaml", &file).to_string_lossy()]).expect_err("an L3 tun as an SF port");
    let msg = format!("{err:#}");
    assert!(msg.contains("port_pairs[pp1].ingress: interface 'sfctun0' is an L3 tun device (IFF_TUN"), "{msg}");

    let port = "897df85a-26c3-4491-888e-8cc58f19cea1";
    file.port_pairs[0].ingress = port.to_owned();
    let err = sfc.try_run(&["apply", "-f", &fx.write("port.yaml", &file).to_string_lossy()]).expect_err("no such tap");
    let msg = format!("{err:#}");
    assert!(msg.contains(&format!("port_pairs[pp1].ingress: interface 'tap897df85a-26' (neutron port {port}) does not exist")), "{msg}");
    assert!(!sfc.pin_dir().exists(), "a refused first apply left pins behind");
}

/// A service VM deleted under `sfc run` (its taps vanish) fails over like a link going down, and
/// when it is started again (new taps, new ifindexes, same names) the program is attached to
/// the new taps and the member serves again; no link pin is left for the dead taps.
#[test]
fn a_deleted_vm_fails_over_and_serves_again_when_restarted() {
    failover_of_a_vm_on_taps(Fault::VmDeleted, false, "200", "127.0.0.1:9476", |topo, sfc, daemon, r| {
        let ctx = format!("{}\ndaemon log:\n{}", r.report, daemon.log());
        // Loss only while the VM was gone; the flow went on through the other member.
        for g in r.report.gaps() {
            let sent = r.report.sent_at(g.first).expect("a sent datagram");
            assert!(sent + Duration::from_millis(50) >= r.fault_at && sent < r.cleared_at, "datagrams #{}..=#{} lost outside the fault: {ctx}", g.first, g.last);
        }
        assert!(r.via_other > 0, "nothing went through sf{}: {ctx}", r.other);
        let log = daemon.log();
        assert!(log.contains(&format!("absent (members out, classifiers off until they appear): {}", topo.hub_dev(End::SfIn(r.failed)))), "{log}");
        assert!(log.contains("new interfaces under the file's names"), "{log}");

        // The restarted VM's taps carry the program; nothing is pinned for the deleted ones.
        let status = sfc.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&status).unwrap_or_else(|e| panic!("{e}: {status}"));
        let ifaces = v["interfaces"].as_array().unwrap_or_else(|| panic!("{status}"));
        for end in [End::SfIn(r.failed), End::SfOut(r.failed)] {
            let name = topo.hub_dev(end);
            let now = netns::in_netns(&topo.hub(), || link::ifindex(&name)).and_then(|r| r).unwrap_or_else(|e| panic!("{e:#}"));
            let entry = ifaces.iter().find(|i| i["name"] == name.as_str()).unwrap_or_else(|| panic!("{name} not in status: {status}"));
            assert_eq!(entry["ifindex"], now, "{name}: {status}");
            assert_eq!(entry["oper_up"], true, "{name}: {status}");
        }
        for i in ifaces {
            assert!(i["oper_up"] != serde_json::Value::Null, "an interface that is gone is still known: {i}\n{status}");
        }
    });
}

/// Health probes go through a VM behind taps too (addressed to its MAC, from the file): a VM
/// that stops forwarding with its taps up is taken out of its group, and serves again once it
/// forwards.
#[test]
fn probes_find_a_hung_vm_behind_taps() {
    // Link polling every 10 s: what happens is the probes' doing.
    failover_of_a_vm_on_taps(Fault::Hang, true, "10000", "127.0.0.1:9477", |_, _, daemon, r| {
        assert!(r.via_other > 0, "nothing went through sf{}: {}\n{}", r.other, r.report, daemon.log());
        assert_eq!(r.metric_while_out, Some(0), "sfc_port_pair_up of the hung VM:\n{}", daemon.log());
    });
}

/// SFs 1 and 2 are "VMs" on taps in PG1 (probed when `probed`), SF 3 on veths: `sfc run`
/// (link polling every `health_ms`, metrics on `metrics`), one failover of the member carrying a
/// stream with `fault` (`failover::run`), then `check` with what it saw.
fn failover_of_a_vm_on_taps(
    fault: Fault,
    probed: bool,
    health_ms: &str,
    metrics: &str,
    check: impl FnOnce(&sfc_tests::Topology, &Sfc<'_>, &mut Daemon, failover::Failover),
) {
    let taps = [End::SfIn(1), End::SfOut(1), End::SfIn(2), End::SfOut(2)];
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]).taps(&taps));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let file = fx.write("chains.yaml", &failover::chain(topo, probed));
    let log = fx.dir.path().join("daemon.log");
    let args = ["-f", &file.to_string_lossy(), "--health-interval", health_ms, "--metrics", metrics];
    let mut daemon = Daemon::start(&sfc, &args, &log).unwrap_or_else(|e| panic!("{e:#}"));
    if probed {
        std::thread::sleep(Duration::from_millis(500));
        assert!(!daemon.log().contains("not forwarding"), "healthy VMs reported down:\n{}", daemon.log());
    }
    let addr = metrics.parse().expect("a socket address");
    let r = failover::run(topo, &sfc, &mut daemon, addr, fault, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e:#}\n{}", daemon.log()));
    check(topo, &sfc, &mut daemon, r);
}
