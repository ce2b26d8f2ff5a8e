//! Service functions behind tap devices, as `OpenStack` plugs VMs: the tap pump
//! (`sfc_tests::tap`, a VM's network card without a VM) on its own, then a chain through an SF
//! whose two ports are taps, next to one on veths.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sfc_tests::{
    Sfc, TopologyConfig,
    netns::{self, NetNsGroup, ip_in},
    pid_name,
    ping::ping,
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

sfc_tests::in_both_modes!(a_chain_steers_through_a_service_function_behind_taps);

/// SF 1 is a "VM" on two taps, SF 2 is on veths. Behind a tap sfc cannot read the SF's MAC from
/// a peer: without `ingress_mac` the file is refused, naming the field; with the MACs given, the
/// chain steers through both, proven by the SFs' own interface counters.
fn a_chain_steers_through_a_service_function_behind_taps(mode: &str) {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2]).taps(&[End::SfIn(1), End::SfOut(1)]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo).with_mode(mode);
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), 5353);
    let echo = UdpEchoServer::start(&topo.dest(), dest).unwrap_or_else(|e| panic!("{e:#}"));

    let mut file = topo.one_group_per_sf("udp", 5353);
    let with_macs = fx.write("taps.yaml", &file);
    file.port_pairs[0].ingress_mac = None;
    let refused = sfc.try_run(&["apply", "--mode", mode, "-f", &fx.write("no-mac.yaml", &file).to_string_lossy()]).expect_err("no MAC behind a tap");
    let msg = format!("{refused:#}");
    assert!(msg.contains("port_pairs[pp1].ingress: cannot tell the MAC address") && msg.contains("give it as ingress_mac"), "{msg}");

    sfc.apply(&with_macs);
    let (out, w) = fx.window(&sfc, "UDP through sf1 (taps) and sf2 (veths)", || udp_exchange(&topo.source(), dest, 20).unwrap_or_else(|e| panic!("{e:#}")));
    assert_eq!(out.echoed, 20, "{out:?}: {}", w.report());
    assert_eq!(echo.received(), 20, "{}", w.report());
    for (hop, n) in [(0, 1), (1, 2)] {
        assert_eq!(w.link(End::SfIn(n)).rx_packets, 20, "sf{n}: {}", w.report());
        assert_eq!(w.link(End::SfOut(n)).tx_packets, 20, "sf{n}: {}", w.report());
        assert_eq!(w.packets("pc1", hop, &format!("pp{n}")), 20, "{}", w.report());
    }
    w.assert_no_drops();
}
