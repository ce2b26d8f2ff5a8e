//! The tap pump (`sfc_tests::tap`), a VM's network card without a VM: what the namespace tests
//! of tap ports (issue 13) stand on. A host namespace and a "VM" namespace joined only through
//! the pump's two taps exchange pings, the VM answers with its own MAC, and stopping the pump
//! removes the taps as deleting a VM does.

use std::net::Ipv4Addr;

use sfc_tests::{
    netns::{self, NetNsGroup, ip_in},
    pid_name,
    ping::ping,
    tap::TapPump,
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
