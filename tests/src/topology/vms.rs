//! Topology ends that are real qemu VMs ([`crate::vm`]) instead of namespaces: how a VM is
//! configured as its namespace would be, and where to find it.

use std::time::Duration;

use super::{End, Role, Topology};
use crate::{
    sysctl,
    traffic::WELCOME,
    vm::{TCG_BOOT_TIMEOUT, Vm, VmSpec},
};

impl Topology {
    /// `who` as a VM named `<id>-<who>`: on the hub's taps for its ends, configured as its
    /// namespace would be ([`Topology::sysctls`], [`Topology::static_neighbours`],
    /// [`Topology::routes`]); dest with its web server.
    pub(super) fn vm_spec(&self, who: Role) -> VmSpec {
        let role = who.to_string();
        let mut spec = VmSpec::new(&format!("{}-{role}", self.id))
            .in_netns(&self.hub())
            .sysctls(&self.sysctls(&role))
            .boot_timeout(self.boot_timeout());
        for end in who.ends() {
            let (addr, len) = end.addr();
            spec = spec.nic(&self.hub_dev(end), end.mac(), end.dev()).addr(end.dev(), addr.into(), len);
            if let Role::Sf(_) = who {
                spec = spec.sysctls(&sysctl::open_interface_settings(end.dev()));
            }
        }
        for (nic, to) in self.static_neighbours(who) {
            spec = spec.neighbour(nic.dev(), to.addr().0, to.mac());
        }
        for (prefix, nic) in self.routes(who) {
            spec = spec.route(&prefix, nic.dev(), None);
        }
        if who == Role::Dest
            && let Some(port) = self.web_port
        {
            spec = spec.http(port, WELCOME);
        }
        if let Some(dir) = &self.keepable_vms {
            spec = spec.keepable(dir);
        }
        spec
    }

    /// The VMs boot at once and share the CPUs: each gets one VM's boot time limit per VM
    /// that shares its CPU (five VMs on two CPUs boot in about 20 s under TCG, one in 5 s).
    fn boot_timeout(&self) -> Duration {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let share = self.vm_roles.len().div_ceil(cpus).max(1);
        TCG_BOOT_TIMEOUT * u32::try_from(share).unwrap_or(u32::MAX)
    }

    /// Whether `end` is a NIC of a VM.
    pub(super) fn is_vm_end(&self, end: End) -> bool {
        self.vm_roles.contains(&end.owner())
    }

    /// Service function `n`'s VM, if it is one.
    pub fn vm(&self, n: u8) -> Option<&Vm> {
        self.vm_for(End::SfIn(n))
    }

    /// The VM whose NIC `end` is, if it is one.
    pub fn vm_for(&self, end: End) -> Option<&Vm> {
        self.vms.iter().find(|(who, _)| *who == end.owner()).map(|(_, vm)| vm)
    }

    /// Every VM with its role: source and dest (if VMs), then the service functions.
    pub fn vms(&self) -> impl Iterator<Item = (Role, &Vm)> {
        self.vms.iter().map(|(who, vm)| (*who, vm))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::TopologyConfig;

    fn kernel_params(spec: &VmSpec) -> Vec<String> {
        spec.cmdline().unwrap().split(' ').map(str::to_owned).collect()
    }

    /// A VM's guest gets what its namespace would: sysctls, addresses, neighbours, routes.
    #[test]
    fn a_vm_service_function_is_configured_as_its_namespace_would_be() {
        let config = TopologyConfig::new(&[3]).vms(&[3]).symmetric_routing().id("t1");
        let topo = Topology::from_config(config).unwrap();
        let spec = topo.vm_spec(Role::Sf(3));
        assert_eq!(spec.netns.as_deref(), Some("sfc-t1-hub"));
        let nics: Vec<(&str, &str)> = spec.nics.iter().map(|n| (n.tap.as_str(), n.name.as_str())).collect();
        assert_eq!(nics, [("t1-s3i", "in"), ("t1-s3o", "out")]);
        let params = kernel_params(&spec);
        for param in [
            "sfcvm.hostname=t1-sf3",
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
            assert!(params.iter().any(|p| p == param), "no {param} in {params:?}");
        }
        assert!(!params.iter().any(|p| p.starts_with("sfcvm.http")), "{params:?}");
        assert!(spec.keepable.is_none());
        let pp = topo.port_pair(3);
        assert_eq!((pp.ingress_mac, pp.egress_mac), (Some(End::SfIn(3).mac()), Some(End::SfOut(3).mac())));
    }

    /// Source and dest as VMs: one NIC each on their hub tap, the namespaces' address and static
    /// neighbour, no forwarding, and dest's web server on the port asked for.
    #[test]
    fn vm_endpoints_are_configured_as_their_namespaces_would_be_and_dest_serves_http() {
        let config = TopologyConfig::new(&[1]).vms(&[1]).vm_endpoints(8080).keepable_vms(Path::new("/tmp/kept")).id("t1");
        let topo = Topology::from_config(config).unwrap();
        assert_eq!(topo.vm_roles, [Role::Source, Role::Dest, Role::Sf(1)]);
        assert!(topo.namespace_roles().is_empty());
        assert!(topo.is_vm_end(End::Source) && topo.is_vm_end(End::Dest) && topo.is_vm_end(End::SfOut(1)));

        let source = topo.vm_spec(Role::Source);
        let nics: Vec<(&str, [u8; 6], &str)> = source.nics.iter().map(|n| (n.tap.as_str(), n.mac, n.name.as_str())).collect();
        assert_eq!(nics, [("t1-src", End::Source.mac(), "eth0")]);
        let params = kernel_params(&source);
        for param in [
            "sfcvm.hostname=t1-source",
            "sfcvm.addr=eth0,198.18.0.1/24",
            "sfcvm.neigh=eth0,198.18.0.2,02:5f:c0:02:00:01",
            "sfcvm.sysctl=net.ipv6.conf.all.disable_ipv6=1",
        ] {
            assert!(params.iter().any(|p| p == param), "no {param} in {params:?}");
        }
        assert!(!params.iter().any(|p| p.starts_with("sfcvm.http") || p.contains("ip_forward=1")), "{params:?}");

        let dest = kernel_params(&topo.vm_spec(Role::Dest));
        for param in ["sfcvm.addr=eth0,198.18.0.2/24", "sfcvm.neigh=eth0,198.18.0.1,02:5f:c0:01:00:01", "sfcvm.http=8080,Welcome%20to%20dest-vm%0A"] {
            assert!(dest.iter().any(|p| p == param), "no {param} in {dest:?}");
        }
        assert_eq!(topo.vm_spec(Role::Sf(1)).keepable.as_deref(), Some(Path::new("/tmp/kept")));
    }

    #[test]
    fn vms_are_ipv4_only_and_a_vm_nic_is_no_pumped_tap() {
        let err = Topology::from_config(TopologyConfig::new(&[1]).vm_endpoints(80).ipv6()).unwrap_err();
        assert!(format!("{err}").contains("IPv4 only"), "{err}");
        let err = Topology::from_config(TopologyConfig::new(&[1]).vm_endpoints(80).taps(&[End::Dest])).unwrap_err();
        assert!(format!("{err}").contains("dest/eth0 is a VM's NIC"), "{err}");
    }
}
