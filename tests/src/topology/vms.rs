//! Topology ends that are real qemu VMs ([`crate::vm`]) instead of namespaces: how a VM is
//! configured as its namespace would be, and where to find it.

use super::{End, Topology};
use crate::{
    sysctl,
    vm::{Vm, VmSpec},
};

impl Topology {
    /// Service function `n` as a VM: on the hub's taps for its ends, configured as its namespace
    /// would be ([`Topology::sysctls`], [`Topology::sf_neighbours`], [`Topology::sf_routes`]).
    pub(super) fn vm_spec(&self, n: u8) -> VmSpec {
        let role = format!("sf{n}");
        let mut spec = VmSpec::new(&format!("{}-{role}", self.id)).in_netns(&self.hub()).sysctls(&self.sysctls(&role));
        for end in [End::SfIn(n), End::SfOut(n)] {
            let (addr, len) = end.addr();
            spec = spec
                .nic(&self.hub_dev(end), end.mac(), end.dev())
                .sysctls(&sysctl::open_interface_settings(end.dev()))
                .addr(end.dev(), addr.into(), len);
        }
        for (nic, to) in self.sf_neighbours(n) {
            spec = spec.neighbour(nic.dev(), to.addr().0, to.mac());
        }
        for (prefix, nic) in self.sf_routes(n) {
            spec = spec.route(&prefix, nic.dev(), None);
        }
        spec
    }

    /// Whether `end` is a NIC of a VM.
    pub(super) fn is_vm_end(&self, end: End) -> bool {
        matches!(end, End::SfIn(n) | End::SfOut(n) if self.vm_sfs.contains(&n))
    }

    /// Service function `n`'s VM, if it is one.
    pub fn vm(&self, n: u8) -> Option<&Vm> {
        self.vms.get(&n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::netns::NetNsGroup;

    /// A VM's guest gets what its namespace would: sysctls, addresses, neighbours, routes.
    #[test]
    fn a_vm_service_function_is_configured_as_its_namespace_would_be() {
        let topo = Topology {
            id: "t1".to_owned(),
            sfs: vec![3],
            ipv6: false,
            symmetric_routing: true,
            shared_hub: None,
            taps: Vec::new(),
            pumps: std::sync::Mutex::default(),
            vm_sfs: vec![3],
            vms: BTreeMap::new(),
            namespaces: NetNsGroup::default(),
        };
        let spec = topo.vm_spec(3);
        assert_eq!(spec.netns.as_deref(), Some("sfc-t1-hub"));
        let nics: Vec<(&str, &str)> = spec.nics.iter().map(|n| (n.tap.as_str(), n.name.as_str())).collect();
        assert_eq!(nics, [("t1-s3i", "in"), ("t1-s3o", "out")]);
        let cmdline = spec.cmdline().unwrap();
        for param in [
            "sfcvm.nic=02:5f:c0:13:00:01,in",
            "sfcvm.nic=02:5f:c0:13:01:01,out",
            "sfcvm.sysctl=net.ipv4.ip_forward=1",
            "sfcvm.sysctl=net.ipv4.conf.all.rp_filter=0",
            "sfcvm.sysctl=net.ipv6.conf.all.disable_ipv6=1",
            "sfcvm.sysctl=net.ipv4.conf.in.rp_filter=0",
            "sfcvm.addr=in,198.18.0.31/32",
            "sfcvm.addr=out,198.18.0.32/24",
            "sfcvm.neigh=out,198.18.0.2,02:5f:c0:02:00:01",
            "sfcvm.neigh=out,198.18.0.1,02:5f:c0:01:00:01",
            "sfcvm.neigh=in,198.18.0.1,02:5f:c0:01:00:01",
            "sfcvm.route=198.18.0.1/32,in",
        ] {
            assert!(cmdline.split(' ').any(|p| p == param), "no {param} in {cmdline}");
        }
        let pp = topo.port_pair(3);
        assert_eq!((pp.ingress_mac, pp.egress_mac), (Some(End::SfIn(3).mac()), Some(End::SfOut(3).mac())));
    }
}
