//! The DESIGN.md section-6 topology: a `hub` namespace with a Linux bridge playing the host,
//! and endpoint namespaces `source`, `dest` and service functions `sf<n>` joined to it by veth
//! pairs whose hub-side ends are bridge ports.
//!
//! ```text
//!  source eth0 198.18.0.1 ── <id>-src ┐            ┌ <id>-dst ── eth0 198.18.0.2 dest
//!                                     ├─ br0 (hub) ┤
//!  sf<n> in  198.18.0.<10n+1>/32 ─ <id>-s<n>i      <id>-s<n>o ─ out 198.18.0.<10n+2>/24 sf<n>
//! ```
//!
//! Noise control, so that an SF interface counts only chain traffic: IPv6 off, static
//! neighbour entries everywhere (no ARP), static bridge FDB entries for every endpoint MAC (no
//! unknown-unicast flooding), multicast snooping off.
//!
//! Options ([`TopologyConfig`]):
//! - IPv6 ([`TopologyConfig::ipv6`]): the endpoints are dual-stack, with `fd00:5fc::1` (source),
//!   `::2` (dest), SF `out` `fd00:5fc::<n>2/64` and `in` `fd00:5fc::<n>1/128`. Noise control for
//!   v6: no link-local addresses (so no router solicitation and no DAD), DAD off, static
//!   neighbours, no multicast flooding towards any bridge port, and a build that waits until the
//!   initial MLD reports (sent once when an interface comes up) are over.
//! - Symmetric routing ([`TopologyConfig::symmetric_routing`]): each SF routes traffic for source
//!   out of `in` (a host route and a static neighbour there), as a symmetric chain needs: its
//!   replies enter an SF through `out` and must come back through `in`.
//! - Taps ([`TopologyConfig::taps`]): an end joined by a tap in the hub and a [`TapPump`] (a
//!   VM's NIC without a VM) instead of a veth pair.
//! - VMs ([`TopologyConfig::vms`]): service function `n` is a real qemu VM ([`crate::vm`]) in the
//!   hub, its `in` and `out` NICs behind hub taps named as the other ends' hub sides, bridged the
//!   same way; the guest gets the sysctls, addresses, static neighbours and routes the SF's
//!   namespace would get (from its kernel command line), and its counters are read inside it.
//!   It has no namespace of its own. [`TopologyConfig::vm_endpoints`] makes source and dest VMs
//!   too (dest with a web server), and [`TopologyConfig::keepable_vms`] lets
//!   [`Topology::keep`] leave the VMs running (`topology/vms.rs`).
//!
//! The address plan (every endpoint interface's names, addresses and MACs) is [`End`], who holds
//! it is [`Role`], both in `topology/plan.rs`; the veths, addresses, neighbours and sysctls come from [`crate::link`]
//! and [`crate::sysctl`], which the bench's own topology (`xtask`) is built from too.

mod config;
mod plan;
mod vms;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

pub use self::config::TopologyConfig;
pub use self::plan::{DEST_IP, DEST_IP6, End, PREFIX_LEN, PREFIX6_LEN, Role, SOURCE_IP, SOURCE_IP6, SUBNET6};
use crate::{
    chain::{ChainFile, FlowClassifier, PortChain, PortPair, PortPairGroup},
    counters::{Counters, LinkStats},
    link::{self, Veth},
    netns::{self, NetNsGroup, ip_in},
    sysctl,
    tap::TapPump,
    vm::{self, Vm},
};

/// The bridge inside the hub namespace.
pub const BRIDGE: &str = "br0";
/// Every namespace of every topology starts with this.
pub const NS_PREFIX: &str = "sfc-";
/// How long endpoint counters must stand still before an IPv6 topology counts as built.
const QUIET_PERIOD: Duration = Duration::from_millis(300);
const QUIET_LIMIT: Duration = Duration::from_secs(5);
/// Longest id that keeps hub-side names (`<id>-s1o`) within IFNAMSIZ - 1.
pub const MAX_ID_LEN: usize = 11;

/// What [`Topology::remove_by_id`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The VMs stopped, by name.
    pub vms: Vec<String>,
    pub namespaces: Vec<String>,
}

/// A built topology; dropping it deletes every namespace it made (and with them every veth).
#[derive(Debug)]
pub struct Topology {
    id: String,
    sfs: Vec<u8>,
    ipv6: bool,
    symmetric_routing: bool,
    /// Another topology's hub this one is plugged into (with its own bridge), if any.
    shared_hub: Option<String>,
    /// Ends behind a tap, and the pumps that carry them (stopped before the namespaces go).
    taps: Vec<End>,
    pumps: std::sync::Mutex<Vec<(End, TapPump)>>,
    /// Who is a VM (source and dest first), and the VMs once started, in that order (stopped
    /// before the namespaces go, their taps with them).
    vm_roles: Vec<Role>,
    vms: Vec<(Role, Vm)>,
    /// The web server port of a VM dest.
    web_port: Option<u16>,
    /// Where keepable VMs keep their files.
    keepable_vms: Option<PathBuf>,
    /// In creation order, hub first (when this topology owns it).
    namespaces: NetNsGroup,
}

impl Topology {
    fn build(config: TopologyConfig) -> Result<Topology> {
        let mut topo = Topology::from_config(config)?;
        topo.create()
            .with_context(|| format!("build topology {}", topo.id))?;
        Ok(topo)
    }

    /// The topology `config` describes, checked; nothing is created yet.
    fn from_config(config: TopologyConfig) -> Result<Topology> {
        if let Some(&bad) = config.sfs.iter().find(|&&n| !(1..=9).contains(&n)) {
            bail!("service function numbers are 1..=9, got {bad}");
        }
        if let Some(&bad) = config.vms.iter().find(|n| !config.sfs.contains(n)) {
            bail!("VM sf{bad} is not one of the service functions {:?}", config.sfs);
        }
        let mut vm_roles = Vec::new();
        if config.vm_endpoints.is_some() {
            vm_roles.extend([Role::Source, Role::Dest]);
        }
        vm_roles.extend(config.sfs.iter().filter(|n| config.vms.contains(n)).map(|&n| Role::Sf(n)));
        if !vm_roles.is_empty() && config.ipv6 {
            // busybox has `arp -s` but no `ip neigh add`: no static IPv6 neighbours in a VM.
            bail!("VMs are IPv4 only");
        }
        if let Some(bad) = config.taps.iter().find(|e| vm_roles.contains(&e.owner())) {
            bail!("{bad} is a VM's NIC, it cannot also be a pumped tap");
        }
        let id = match config.id {
            Some(id) => id,
            None => fresh_id(),
        };
        if id.is_empty()
            || id.len() > MAX_ID_LEN
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            bail!("topology id {id:?}: 1..={MAX_ID_LEN} lowercase letters or digits");
        }
        Ok(Topology {
            id,
            sfs: config.sfs,
            ipv6: config.ipv6,
            symmetric_routing: config.symmetric_routing,
            shared_hub: config.hub,
            taps: config.taps,
            pumps: std::sync::Mutex::default(),
            vm_roles,
            vms: Vec::new(),
            web_port: config.vm_endpoints,
            keepable_vms: config.keepable_vms,
            namespaces: NetNsGroup::default(),
        })
    }

    fn create(&mut self) -> Result<()> {
        let hub = self.hub();
        let mut roles = vec!["hub".to_owned()];
        if self.shared_hub.is_some() {
            roles.clear();
        }
        roles.extend(self.namespace_roles().iter().map(Role::to_string));
        for role in &roles {
            self.namespaces.create(&self.ns(role))?;
        }

        for role in &roles {
            self.configure(role)?;
        }

        ip_in(
            &hub,
            &[
                "link",
                "add",
                &self.bridge(),
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        link::up(&hub, &self.bridge())?;
        // Every VM starts (its taps appear) before anything is plugged; they boot meanwhile.
        for who in self.vm_roles.clone() {
            let vm = Vm::start(self.vm_spec(who))?;
            self.vms.push((who, vm));
        }
        for end in self.ends() {
            self.plug(end)?;
        }
        self.neighbours()?;
        for (_, vm) in &mut self.vms {
            vm.wait_ready()?;
        }
        if self.ipv6 {
            self.wait_for_quiet()?;
        }
        Ok(())
    }

    fn configure(&self, role: &str) -> Result<()> {
        netns::sysctls(&self.ns(role), &self.sysctls(role))
    }

    /// What [`Topology::configure`] writes for `role` (and a VM's init for a VM's).
    fn sysctls(&self, role: &str) -> Vec<(&'static str, &'static str)> {
        // The hub only bridges: IPv6 stays off there in every variant.
        let v6 = self.ipv6 && role != "hub";
        let mut settings = sysctl::NO_REDIRECTS.to_vec();
        settings.extend_from_slice(if v6 { sysctl::IPV6_QUIET } else { sysctl::IPV6_OFF });
        if role.starts_with("sf") {
            settings.push(sysctl::ip_forward(true));
            settings.extend_from_slice(sysctl::NO_RP_FILTER);
            if v6 {
                settings.push(("net.ipv6.conf.all.forwarding", "1"));
            }
        }
        settings
    }

    /// Creates `end`'s veth pair, plugs its hub side into the bridge, addresses and raises it.
    /// A VM's end has its tap already (qemu made it); the guest configures its own side.
    fn plug(&self, end: End) -> Result<()> {
        let hub = self.hub();
        let ns = self.ns(&end.role());
        let hub_dev = self.hub_dev(end);
        let vm = self.is_vm_end(end);
        if vm {
            let mac = link::mac_string(end.hub_mac());
            ip_in(&hub, &["link", "set", &hub_dev, "down"])?;
            ip_in(&hub, &["link", "set", &hub_dev, "address", &mac])?;
        } else if self.taps.contains(&end) {
            let pump = TapPump::start(&hub, &hub_dev, &ns, end.dev(), end.mac())?;
            self.pumps.lock().map_err(|_| anyhow::anyhow!("tap pumps poisoned"))?.push((end, pump));
            let mac = link::mac_string(end.hub_mac());
            ip_in(&hub, &["link", "set", &hub_dev, "down"])?;
            ip_in(&hub, &["link", "set", &hub_dev, "address", &mac])?;
        } else {
            link::veth(
                Veth::new(&hub, &hub_dev).mac(end.hub_mac()),
                Veth::new(&ns, end.dev()).mac(end.mac()),
            )?;
        }
        ip_in(&hub, &["link", "set", &hub_dev, "master", &self.bridge()])?;
        if self.ipv6 {
            // MLD reports are multicast: the bridge must not flood them to endpoints.
            #[rustfmt::skip]
            netns::run("bridge", &[
                "-n", &hub, "link", "set", "dev", &hub_dev, "mcast_flood", "off",
            ])?;
        }
        link::up(&hub, &hub_dev)?;
        if !vm {
            if let End::SfIn(_) | End::SfOut(_) = end {
                sysctl::open_interface(&ns, end.dev())?;
            }
            let (addr, len) = end.addr();
            link::add_addr(&ns, end.dev(), addr.into(), len)?;
            if self.ipv6 {
                let (addr, len) = end.addr6();
                link::add_addr(&ns, end.dev(), addr.into(), len)?;
            }
            link::up(&ns, end.dev())?;
        }
        // The bridge must never flood towards an SF for want of knowing where a MAC lives.
        let mac = link::mac_string(end.mac());
        #[rustfmt::skip]
        netns::run("bridge", &[
            "-n", &hub, "fdb", "replace", &mac, "dev", &hub_dev, "master", "static",
        ])?;
        Ok(())
    }

    /// Static neighbours, and the symmetric-routing routes (a VM's come with its spec).
    fn neighbours(&self) -> Result<()> {
        // Static neighbours: nobody ever ARPs (or solicits), so SF interfaces see only chain
        // traffic.
        let v6 = self.ipv6;
        let neigh = |ns: &str, dev: &str, to: End| -> Result<()> {
            let mut addrs = vec![IpAddr::V4(to.addr().0)];
            if v6 {
                addrs.push(IpAddr::V6(to.addr6().0));
            }
            for addr in addrs {
                link::static_neighbour(ns, dev, addr, to.mac())?;
            }
            Ok(())
        };
        for who in self.namespace_roles() {
            let ns = self.ns(&who.to_string());
            for (nic, to) in self.static_neighbours(who) {
                neigh(&ns, nic.dev(), to)?;
            }
            for (prefix, nic) in self.routes(who) {
                ip_in(&ns, &["route", "replace", &prefix, "dev", nic.dev()])?;
            }
        }
        Ok(())
    }

    /// Every endpoint's role: source, dest, then the service functions.
    fn roles(&self) -> Vec<Role> {
        let mut roles = vec![Role::Source, Role::Dest];
        roles.extend(self.sfs.iter().map(|&n| Role::Sf(n)));
        roles
    }

    /// The roles that are namespaces (not VMs).
    fn namespace_roles(&self) -> Vec<Role> {
        self.roles().into_iter().filter(|r| !self.vm_roles.contains(r)).collect()
    }

    /// `who`'s static neighbours: (its interface, whom).
    fn static_neighbours(&self, who: Role) -> Vec<(End, End)> {
        match who {
            Role::Source => vec![(End::Source, End::Dest)],
            Role::Dest => vec![(End::Dest, End::Source)],
            Role::Sf(n) => {
                let mut neighbours = vec![(End::SfOut(n), End::Dest), (End::SfOut(n), End::Source)];
                if self.symmetric_routing {
                    // Replies to source enter through `out` and must leave through `in`.
                    neighbours.push((End::SfIn(n), End::Source));
                }
                neighbours
            }
        }
    }

    /// `who`'s routes beyond its connected subnet: (prefix, its interface). Only an SF of a
    /// topology with symmetric routing has any.
    fn routes(&self, who: Role) -> Vec<(String, End)> {
        let mut routes = Vec::new();
        if let Role::Sf(n) = who
            && self.symmetric_routing
        {
            routes.push((format!("{SOURCE_IP}/32"), End::SfIn(n)));
            if self.ipv6 {
                routes.push((format!("{SOURCE_IP6}/128"), End::SfIn(n)));
            }
        }
        routes
    }

    /// Waits until no endpoint interface counter moves for [`QUIET_PERIOD`]: an interface
    /// that comes up with IPv6 sends its MLD reports (with [`sysctl::IPV6_QUIET`], within a few tens
    /// of milliseconds), and a test's counter deltas must not catch them.
    fn wait_for_quiet(&self) -> Result<()> {
        let deadline = Instant::now() + QUIET_LIMIT;
        let mut last = self.counters()?;
        let mut since = Instant::now();
        while since.elapsed() < QUIET_PERIOD {
            if Instant::now() > deadline {
                bail!("endpoint counters still moving after {QUIET_LIMIT:?}:\n{last}");
            }
            std::thread::sleep(Duration::from_millis(25));
            let now = self.counters()?;
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        Ok(())
    }

    /// Unplugs tap end `end` as a deleted VM's NIC goes: its pump stops and both its taps (the
    /// host's and the VM's) disappear.
    pub fn unplug_tap(&self, end: End) -> Result<()> {
        let pump = {
            let mut pumps = self.pumps.lock().map_err(|_| anyhow::anyhow!("tap pumps poisoned"))?;
            let i = pumps.iter().position(|(e, _)| *e == end).with_context(|| format!("{end:?} is not plugged through a tap"))?;
            pumps.remove(i).1
        };
        pump.stop()
    }

    /// Plugs tap ends `ends` again, as a restarted VM comes back: new taps (new ifindexes)
    /// under the same names, with the same MACs, addresses and neighbours.
    pub fn replug_taps(&self, ends: &[End]) -> Result<()> {
        for &end in ends {
            if !self.taps.contains(&end) {
                bail!("{end:?} is not a tap end of this topology");
            }
            self.plug(end)?;
        }
        self.neighbours()
    }

    /// Removes topology `id` (e.g. a kept demo): stops the VMs running in its namespaces (a
    /// namespace with a process in it would outlive its deletion), then deletes the namespaces.
    pub fn remove_by_id(id: &str) -> Result<Removed> {
        let names = netns::list(&format!("{NS_PREFIX}{id}-"));
        let mut vms = Vec::new();
        for name in &names {
            vms.extend(vm::stop_in_netns(name)?);
        }
        for name in &names {
            netns::delete(name)?;
        }
        Ok(Removed { vms, namespaces: names })
    }

    /// Leaves everything in place when dropped (`cargo xtask demo --keep`): the namespaces and
    /// the VMs, which must be [`TopologyConfig::keepable_vms`] (checked before anything is
    /// left: an error removes it all). [`Topology::remove_by_id`] removes them later.
    pub fn keep(mut self) -> Result<()> {
        if !self.vms.is_empty() && self.keepable_vms.is_none() {
            bail!("topology {}: its VMs were not made keepable (TopologyConfig::keepable_vms)", self.id);
        }
        for (_, vm) in self.vms.drain(..) {
            vm.keep()?;
        }
        self.namespaces.disarm();
        Ok(())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn sfs(&self) -> &[u8] {
        &self.sfs
    }

    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Namespace name for a role: `hub`, `source`, `dest`, `sf<n>`.
    pub fn ns(&self, role: &str) -> String {
        format!("{NS_PREFIX}{}-{role}", self.id)
    }

    pub fn hub(&self) -> String {
        self.shared_hub.clone().unwrap_or_else(|| self.ns("hub"))
    }

    /// The bridge of this topology's ports in the hub: `br0`, or `br-<id>` in a shared hub.
    pub fn bridge(&self) -> String {
        if self.shared_hub.is_some() { format!("br-{}", self.id) } else { BRIDGE.to_owned() }
    }

    /// Source's namespace (none exists when it is a VM: see [`Topology::vm_for`]).
    pub fn source(&self) -> String {
        self.ns("source")
    }

    /// Dest's namespace (none exists when it is a VM: see [`Topology::vm_for`]).
    pub fn dest(&self) -> String {
        self.ns("dest")
    }

    /// Service function `n`'s namespace (none exists for a VM's: see [`Topology::vm`]).
    pub fn sf(&self, n: u8) -> String {
        self.ns(&format!("sf{n}"))
    }

    /// The namespace names this topology owns.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.names()
    }

    /// Hub-side (bridge port) name of an endpoint interface: what a chain file names, since
    /// sfc runs with `--netns <hub>`.
    pub fn hub_dev(&self, end: End) -> String {
        format!("{}-{}", self.id, end.hub_suffix())
    }

    /// Every endpoint-side interface: source, dest, then each SF's in and out.
    pub fn ends(&self) -> Vec<End> {
        let mut ends = vec![End::Source, End::Dest];
        for &n in &self.sfs {
            ends.extend([End::SfIn(n), End::SfOut(n)]);
        }
        ends
    }

    /// Port pair `pp<n>` for service function `n`; behind taps, with the SF's MACs (sfc cannot
    /// read them from a peer, as a VM's are not known to the host).
    pub fn port_pair(&self, n: u8) -> PortPair {
        let mut pp = PortPair::new(
            &format!("pp{n}"),
            &self.hub_dev(End::SfIn(n)),
            &self.hub_dev(End::SfOut(n)),
        );
        let tap_mac = |end: End| (self.taps.contains(&end) || self.is_vm_end(end)).then(|| end.mac());
        pp.ingress_mac = tap_mac(End::SfIn(n));
        pp.egress_mac = tap_mac(End::SfOut(n));
        pp
    }

    /// The skeleton chain `pc1` (id 1): one group `pg<i>` per SF in order, each holding that
    /// SF's port pair `pp<n>`, classifier `web` for `protocol` to dest port `port` from source.
    pub fn one_group_per_sf(&self, protocol: &str, port: u16) -> ChainFile {
        let groups: Vec<String> = (1..=self.sfs.len()).map(|i| format!("pg{i}")).collect();
        ChainFile {
            port_pairs: self.sfs.iter().map(|&n| self.port_pair(n)).collect(),
            port_pair_groups: self
                .sfs
                .iter()
                .zip(&groups)
                .map(|(&n, g)| PortPairGroup::new(g, &[&format!("pp{n}")]))
                .collect(),
            flow_classifiers: vec![FlowClassifier::to_port(
                "web",
                protocol,
                port,
                &self.hub_dev(End::Source),
            )],
            port_chains: vec![PortChain::new(
                "pc1",
                1,
                &groups.iter().map(String::as_str).collect::<Vec<_>>(),
                &["web"],
            )],
            interfaces: Vec::new(),
        }
    }

    /// Kernel counters of every endpoint-side interface (one `ip` call per namespace, one
    /// command inside each VM).
    pub fn counters(&self) -> Result<Counters> {
        let mut by_ns: BTreeMap<String, Vec<End>> = BTreeMap::new();
        let mut links = BTreeMap::new();
        for end in self.ends() {
            if !self.is_vm_end(end) {
                by_ns.entry(self.ns(&end.role())).or_default().push(end);
            }
        }
        for (who, vm) in &self.vms {
            let all = vm.link_stats()?;
            for end in who.ends() {
                let stats = all.get(end.dev()).with_context(|| format!("no interface {} in VM {}", end.dev(), vm.name()))?;
                links.insert(end, *stats);
            }
        }
        for (ns, ends) in by_ns {
            let all = LinkStats::read_all(&ns)?;
            for end in ends {
                let stats = all
                    .get(end.dev())
                    .with_context(|| format!("no interface {} in {ns}", end.dev()))?;
                links.insert(end, *stats);
            }
        }
        Ok(Counters { links })
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // VMs and pumps first: their taps go with them (a tap left open while its namespace is
        // deleted would not be ours to clean any more).
        self.vms.clear();
        if let Ok(mut pumps) = self.pumps.lock() {
            pumps.clear();
        }
        // Endpoints first, the hub last.
        self.namespaces.delete_all();
        // In another topology's hub, the bridge is this topology's to remove (its ports went
        // with the endpoint namespaces).
        if let Some(hub) = &self.shared_hub {
            let _ = ip_in(hub, &["link", "del", &self.bridge()]);
        }
    }
}

/// A fresh 5-character id (`t` + 4 base-36 digits) whose hub namespace does not exist yet.
/// Mixes pid, time and a counter so parallel processes and threads do not collide.
fn fresh_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut x = std::process::id()
            .wrapping_mul(0x9e37_79b9)
            .wrapping_add(nanos)
            .wrapping_add(
                COUNTER
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_mul(0x85eb_ca6b),
            );
        x ^= x >> 15;
        x = x.wrapping_mul(0x2c1b_3c6d);
        x ^= x >> 12;
        let mut id = String::from("t");
        for _ in 0..4 {
            id.push(char::from_digit(x % 36, 36).unwrap_or('0'));
            x /= 36;
        }
        if !netns::exists(&format!("{NS_PREFIX}{id}-hub")) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz() {
        let id = "a".repeat(MAX_ID_LEN);
        let topo = Topology::from_config(TopologyConfig::new(&[9]).id(&id)).unwrap();
        for end in topo.ends() {
            assert!(topo.hub_dev(end).len() <= 15, "{}", topo.hub_dev(end));
        }
    }

    #[test]
    fn fresh_ids_are_short_and_distinct() {
        let a = fresh_id();
        let b = fresh_id();
        assert_eq!(a.len(), 5);
        assert_ne!(a, b);
    }
}
