//! The benchmark topology: one set of namespaces per path, all alike, so that the paths differ
//! only in how the hub moves packets.
//!
//! ```text
//!  source eth0 198.18.1.2 ── src 198.18.1.1 ┐        ┌ dst 198.18.2.1 ── eth0 198.18.2.2 dest
//!                                           ├─ hub ──┤
//!  sf<n> in 198.18.1<n>.2 ── s<n>i 198.18.1<n>.1     s<n>o 198.18.2<n>.1 ── out 198.18.2<n>.2 sf<n>
//! ```
//!
//! The hub routes (it is the host between its guests); source and dest use it as their
//! gateway. Each service function is a plain router whose default route leaves by `out`
//! towards the hub, so whatever enters `in` for dest comes back on the hub's `s<n>o`. For the
//! Open vSwitch path the hub's ports carry no addresses and the hub does not forward: only
//! OVS moves packets there. Every MAC address is fixed and every neighbour static (nothing
//! ARPs), IPv6 is off, and all addresses are in 198.18.0.0/15 (RFC 2544) inside the namespaces.

use std::net::Ipv4Addr;

use anyhow::{Context as _, Result};
use sfc_tests::{
    link::{self, Veth},
    netns::{self, NetNsGroup, ip_in},
    sysctl,
};

/// Service functions in the chain.
pub const HOPS: u8 = 3;

pub const SOURCE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const DEST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
/// Every port's subnet is a /24.
const PREFIX_LEN: u8 = 24;
/// What every path steers through the chain.
pub const DEST_PREFIX: &str = "198.18.2.0/24";

/// One veth pair between the hub and an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Source,
    Dest,
    /// Service function `n`'s ingress (`in`).
    SfIn(u8),
    /// Service function `n`'s egress (`out`).
    SfOut(u8),
}

impl Port {
    /// Every port: source, dest, then each service function's in and out.
    pub fn all() -> Vec<Port> {
        let mut ports = vec![Port::Source, Port::Dest];
        for n in 1..=HOPS {
            ports.extend([Port::SfIn(n), Port::SfOut(n)]);
        }
        ports
    }

    /// The endpoint namespace's role: `source`, `dest`, `sf<n>`.
    pub fn role(self) -> String {
        match self {
            Port::Source => "source".to_owned(),
            Port::Dest => "dest".to_owned(),
            Port::SfIn(n) | Port::SfOut(n) => format!("sf{n}"),
        }
    }

    /// The interface name inside the endpoint namespace.
    pub fn dev(self) -> &'static str {
        match self {
            Port::Source | Port::Dest => "eth0",
            Port::SfIn(_) => "in",
            Port::SfOut(_) => "out",
        }
    }

    /// The hub-side interface name (what chain files and `OpenFlow` rules name).
    pub fn hub_dev(self) -> String {
        match self {
            Port::Source => "src".to_owned(),
            Port::Dest => "dst".to_owned(),
            Port::SfIn(n) => format!("s{n}i"),
            Port::SfOut(n) => format!("s{n}o"),
        }
    }

    /// The third octet of the port's subnet.
    fn subnet(self) -> u8 {
        match self {
            Port::Source => 1,
            Port::Dest => 2,
            Port::SfIn(n) => 10 + n,
            Port::SfOut(n) => 20 + n,
        }
    }

    /// The endpoint side's address (`.2`) and the hub side's (`.1`).
    pub fn addr(self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet(), 2)
    }

    pub fn hub_addr(self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet(), 1)
    }

    /// `02:5f:c1:<subnet>:00:01` on the endpoint side, `...:02` on the hub side.
    pub fn mac(self) -> [u8; 6] {
        [0x02, 0x5f, 0xc1, self.subnet(), 0x00, 0x01]
    }

    pub fn hub_mac(self) -> [u8; 6] {
        [0x02, 0x5f, 0xc1, self.subnet(), 0x00, 0x02]
    }
}

/// How the hub is configured at the IP level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hub {
    /// Addresses on every hub port, forwarding on: a router.
    Routed,
    /// No addresses, forwarding off: something else (OVS) moves the packets.
    Bare,
}

/// How the service functions are plugged into the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SfPorts {
    /// veth pairs.
    Veth,
    /// Taps, each with a userspace pump copying frames to the SF's NIC (a VM's NIC without a
    /// VM: `sfc_tests::tap`), as qemu's virtio-net backend does between a VM and its tap.
    Tap,
}

/// One path's namespaces: `<prefix>-hub`, `-source`, `-dest`, `-sf1`..; deleted on drop.
#[derive(Debug)]
pub struct Net {
    /// Each namespace's `/proc/net/dev`, opened at its first read. Before `namespaces`: fields
    /// drop in order, and an open file keeps its namespace (and its interfaces) alive.
    netdevs: std::sync::Mutex<std::collections::BTreeMap<String, sfc_tests::NetDev>>,
    prefix: String,
    /// The SFs' tap pumps, stopped (their taps gone) before the namespaces are deleted.
    pumps: Vec<sfc_tests::tap::TapPump>,
    /// In creation order, hub first; dropped in reverse.
    namespaces: NetNsGroup,
}

impl Net {
    /// Builds the topology under namespace names `<prefix>-<role>`.
    pub fn build(prefix: &str, hub: Hub, sf_ports: SfPorts) -> Result<Net> {
        let mut net = Net {
            netdevs: std::sync::Mutex::default(),
            prefix: prefix.to_owned(),
            pumps: Vec::new(),
            namespaces: NetNsGroup::default(),
        };
        net.create(hub, sf_ports)
            .with_context(|| format!("build the benchmark topology {prefix}-*"))?;
        Ok(net)
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    pub fn hub(&self) -> String {
        self.ns("hub")
    }

    pub fn source(&self) -> String {
        self.ns("source")
    }

    pub fn dest(&self) -> String {
        self.ns("dest")
    }

    fn create(&mut self, hub_kind: Hub, sf_ports: SfPorts) -> Result<()> {
        let mut roles = vec!["hub".to_owned(), "source".to_owned(), "dest".to_owned()];
        roles.extend((1..=HOPS).map(|n| format!("sf{n}")));
        for role in &roles {
            self.namespaces.create(&self.ns(role))?;
        }
        for role in &roles {
            let forward = role.starts_with("sf") || (role == "hub" && hub_kind == Hub::Routed);
            let mut settings = sysctl::IPV6_OFF.to_vec();
            settings.extend_from_slice(sysctl::NO_RP_FILTER);
            settings.extend_from_slice(sysctl::NO_REDIRECTS);
            settings.push(sysctl::ip_forward(forward));
            netns::sysctls(&self.ns(role), &settings)?;
        }

        let hub = self.hub();
        for port in Port::all() {
            let ns = self.ns(&port.role());
            let hub_dev = port.hub_dev();
            if sf_ports == SfPorts::Tap && matches!(port, Port::SfIn(_) | Port::SfOut(_)) {
                let pump = sfc_tests::tap::TapPump::start(&hub, &hub_dev, &ns, port.dev(), port.mac())?;
                self.pumps.push(pump);
                ip_in(&hub, &["link", "set", &hub_dev, "down"])?;
                ip_in(&hub, &["link", "set", &hub_dev, "address", &link::mac_string(port.hub_mac())])?;
            } else {
                link::veth(
                    Veth::new(&hub, &hub_dev).mac(port.hub_mac()),
                    Veth::new(&ns, port.dev()).mac(port.mac()),
                )?;
            }
            link::up(&hub, &hub_dev)?;
            link::add_addr(&ns, port.dev(), port.addr().into(), PREFIX_LEN)?;
            link::up(&ns, port.dev())?;
            if hub_kind == Hub::Routed {
                link::add_addr(&hub, &hub_dev, port.hub_addr().into(), PREFIX_LEN)?;
                link::static_neighbour(&hub, &hub_dev, port.addr().into(), port.mac())?;
            }
        }

        // Endpoints route via the hub: source and dest by default route, each service function
        // out of `out`, whatever arrived on `in`.
        for (port, role) in [(Port::Source, "source"), (Port::Dest, "dest")] {
            let ns = self.ns(role);
            let gw = port.hub_addr().to_string();
            ip_in(&ns, &["route", "add", "default", "via", &gw])?;
            link::static_neighbour(&ns, port.dev(), port.hub_addr().into(), port.hub_mac())?;
        }
        for n in 1..=HOPS {
            let (ns, out) = (self.ns(&format!("sf{n}")), Port::SfOut(n));
            for port in [Port::SfIn(n), out] {
                sysctl::open_interface(&ns, port.dev())?;
            }
            let gw = out.hub_addr().to_string();
            ip_in(&ns, &["route", "add", "default", "via", &gw, "dev", "out"])?;
            link::static_neighbour(&ns, "out", out.hub_addr().into(), out.hub_mac())?;
        }
        Ok(())
    }

    /// Interface counters of the endpoint side of `port`.
    pub fn link(&self, port: Port) -> Result<sfc_tests::LinkStats> {
        let ns = self.ns(&port.role());
        let mut open = self.netdevs.lock().map_err(|_| anyhow::anyhow!("the counter files' lock is poisoned"))?;
        if !open.contains_key(&ns) {
            open.insert(ns.clone(), sfc_tests::NetDev::open(&ns)?);
        }
        open[&ns].read(port.dev())
    }
}

/// Receive packet steering on `dev` in `ns`: `mask` of CPUs (hex), `0` for none.
pub fn set_rps(ns: &str, dev: &str, mask: &str) -> Result<()> {
    netns::write_sysfs(ns, &format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus"), mask)
}
