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

use std::{
    collections::BTreeMap,
    fmt,
    net::Ipv4Addr,
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

use crate::{
    chain::{ChainFile, FlowClassifier, PortChain, PortPair, PortPairGroup},
    counters::{Counters, LinkStats},
    netns::{self, NetNs, ip_in},
};

pub const SOURCE_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const DEST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const PREFIX_LEN: u8 = 24;
/// The bridge inside the hub namespace.
pub const BRIDGE: &str = "br0";
/// Every namespace of every topology starts with this.
pub const NS_PREFIX: &str = "sfc-";
/// Longest id that keeps hub-side names (`<id>-s1o`) within IFNAMSIZ - 1.
pub const MAX_ID_LEN: usize = 11;

/// One endpoint-side interface and the bridge port facing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    Source,
    Dest,
    /// Service function `n`'s ingress interface (`in`).
    SfIn(u8),
    /// Service function `n`'s egress interface (`out`).
    SfOut(u8),
}

impl End {
    /// Interface name inside the endpoint namespace.
    pub fn dev(self) -> &'static str {
        match self {
            End::Source | End::Dest => "eth0",
            End::SfIn(_) => "in",
            End::SfOut(_) => "out",
        }
    }

    /// Short name of the namespace role: `source`, `dest`, `sf<n>`.
    pub fn role(self) -> String {
        match self {
            End::Source => "source".to_owned(),
            End::Dest => "dest".to_owned(),
            End::SfIn(n) | End::SfOut(n) => format!("sf{n}"),
        }
    }

    fn hub_suffix(self) -> String {
        match self {
            End::Source => "src".to_owned(),
            End::Dest => "dst".to_owned(),
            End::SfIn(n) => format!("s{n}i"),
            End::SfOut(n) => format!("s{n}o"),
        }
    }

    /// The endpoint-side MAC address: locally administered, fixed, so that static neighbour
    /// and FDB entries can be written before anything is up. `02:5f:c0:<who>:<side>:01`.
    pub fn mac(self) -> [u8; 6] {
        let (who, side) = match self {
            End::Source => (0x01, 0),
            End::Dest => (0x02, 0),
            End::SfIn(n) => (0x10 + n, 0),
            End::SfOut(n) => (0x10 + n, 1),
        };
        [0x02, 0x5f, 0xc0, who, side, 0x01]
    }

    /// The hub-side MAC: as [`End::mac`] with last byte 02.
    pub fn hub_mac(self) -> [u8; 6] {
        let mut mac = self.mac();
        mac[5] = 0x02;
        mac
    }

    /// The address on this interface, with its prefix length.
    pub fn addr(self) -> (Ipv4Addr, u8) {
        match self {
            End::Source => (SOURCE_IP, PREFIX_LEN),
            End::Dest => (DEST_IP, PREFIX_LEN),
            // /32 on `in`: no subnet route there, so what arrives on `in` for dest leaves by `out`.
            End::SfIn(n) => (Ipv4Addr::new(198, 18, 0, 10 * n + 1), 32),
            End::SfOut(n) => (Ipv4Addr::new(198, 18, 0, 10 * n + 2), PREFIX_LEN),
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role(), self.dev())
    }
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// What to build.
#[derive(Debug, Clone)]
pub struct TopologyConfig {
    /// Fixed id (e.g. `demo`, so it can be found again); `None`: a fresh random one.
    pub id: Option<String>,
    /// Which service functions exist, e.g. `[1, 3]`; each in 1..=9.
    pub sfs: Vec<u8>,
}

impl TopologyConfig {
    pub fn new(sfs: &[u8]) -> Self {
        TopologyConfig {
            id: None,
            sfs: sfs.to_vec(),
        }
    }

    #[must_use]
    pub fn id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    pub fn build(self) -> Result<Topology> {
        Topology::build(self)
    }
}

/// A built topology; dropping it deletes every namespace it made (and with them every veth).
#[derive(Debug)]
pub struct Topology {
    id: String,
    sfs: Vec<u8>,
    /// In creation order, hub first.
    namespaces: Vec<NetNs>,
}

impl Topology {
    fn build(config: TopologyConfig) -> Result<Topology> {
        if let Some(&bad) = config.sfs.iter().find(|&&n| !(1..=9).contains(&n)) {
            bail!("service function numbers are 1..=9, got {bad}");
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
        let mut topo = Topology {
            id,
            sfs: config.sfs,
            namespaces: Vec::new(),
        };
        topo.create()
            .with_context(|| format!("build topology {}", topo.id))?;
        Ok(topo)
    }

    fn create(&mut self) -> Result<()> {
        let hub = self.hub();
        let mut roles = vec!["hub".to_owned(), "source".to_owned(), "dest".to_owned()];
        roles.extend(self.sfs.iter().map(|n| format!("sf{n}")));
        for role in &roles {
            let ns = NetNs::create(&self.ns(role))?;
            self.namespaces.push(ns);
        }

        for role in &roles {
            let mut settings = vec![
                ("net.ipv6.conf.all.disable_ipv6", "1"),
                ("net.ipv6.conf.default.disable_ipv6", "1"),
                ("net.ipv4.conf.all.accept_redirects", "0"),
                ("net.ipv4.conf.default.accept_redirects", "0"),
                ("net.ipv4.conf.all.send_redirects", "0"),
                ("net.ipv4.conf.default.send_redirects", "0"),
            ];
            if role.starts_with("sf") {
                settings.extend([
                    ("net.ipv4.ip_forward", "1"),
                    ("net.ipv4.conf.all.rp_filter", "0"),
                    ("net.ipv4.conf.default.rp_filter", "0"),
                ]);
            }
            netns::sysctls(&self.ns(role), &settings)?;
        }

        ip_in(
            &hub,
            &[
                "link",
                "add",
                BRIDGE,
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        ip_in(&hub, &["link", "set", BRIDGE, "up"])?;

        for end in self.ends() {
            let ns = self.ns(&end.role());
            let hub_dev = self.hub_dev(end);
            let (hub_mac, mac) = (mac_string(end.hub_mac()), mac_string(end.mac()));
            #[rustfmt::skip]
            ip_in(&hub, &[
                "link", "add", &hub_dev, "address", &hub_mac, "type", "veth",
                "peer", "name", end.dev(), "address", &mac, "netns", &ns,
            ])?;
            ip_in(&hub, &["link", "set", &hub_dev, "master", BRIDGE, "up"])?;
            if let End::SfIn(_) | End::SfOut(_) = end {
                let dev = end.dev();
                netns::sysctls(
                    &ns,
                    &[
                        (&format!("net.ipv4.conf.{dev}.rp_filter"), "0"),
                        (&format!("net.ipv4.conf.{dev}.accept_redirects"), "0"),
                        (&format!("net.ipv4.conf.{dev}.send_redirects"), "0"),
                    ],
                )?;
            }
            let (addr, len) = end.addr();
            ip_in(
                &ns,
                &["addr", "add", &format!("{addr}/{len}"), "dev", end.dev()],
            )?;
            ip_in(&ns, &["link", "set", end.dev(), "up"])?;
            // The bridge must never flood towards an SF for want of knowing where a MAC lives.
            #[rustfmt::skip]
            netns::run("bridge", &[
                "-n", &hub, "fdb", "replace", &mac, "dev", &hub_dev, "master", "static",
            ])?;
        }

        // Static neighbours: nobody ever ARPs, so SF interfaces see only chain traffic.
        let neigh = |ns: &str, dev: &str, to: End| {
            let (addr, _) = to.addr();
            let (addr, mac) = (addr.to_string(), mac_string(to.mac()));
            let args = [
                "neigh",
                "replace",
                &addr,
                "lladdr",
                &mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ];
            ip_in(ns, &args)
        };
        neigh(&self.source(), "eth0", End::Dest)?;
        neigh(&self.dest(), "eth0", End::Source)?;
        for &n in &self.sfs {
            neigh(&self.sf(n), "out", End::Dest)?;
            neigh(&self.sf(n), "out", End::Source)?;
        }
        Ok(())
    }

    /// Deletes every namespace of topology `id` (e.g. a kept demo); returns their names.
    pub fn remove_by_id(id: &str) -> Result<Vec<String>> {
        let names = netns::list(&format!("{NS_PREFIX}{id}-"));
        for name in &names {
            netns::delete(name)?;
        }
        Ok(names)
    }

    /// Leaves everything in place when dropped (`cargo xtask demo --keep`).
    pub fn keep(mut self) {
        for ns in &mut self.namespaces {
            ns.disarm();
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn sfs(&self) -> &[u8] {
        &self.sfs
    }

    /// Namespace name for a role: `hub`, `source`, `dest`, `sf<n>`.
    pub fn ns(&self, role: &str) -> String {
        format!("{NS_PREFIX}{}-{role}", self.id)
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

    pub fn sf(&self, n: u8) -> String {
        self.ns(&format!("sf{n}"))
    }

    /// The namespace names this topology owns.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|ns| ns.name().to_owned())
            .collect()
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

    /// Port pair `pp<n>` for service function `n`.
    pub fn port_pair(&self, n: u8) -> PortPair {
        PortPair::new(
            &format!("pp{n}"),
            &self.hub_dev(End::SfIn(n)),
            &self.hub_dev(End::SfOut(n)),
        )
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
        }
    }

    /// Kernel counters of every endpoint-side interface (one `ip` call per namespace).
    pub fn counters(&self) -> Result<Counters> {
        let mut by_ns: BTreeMap<String, Vec<End>> = BTreeMap::new();
        for end in self.ends() {
            by_ns.entry(self.ns(&end.role())).or_default().push(end);
        }
        let mut links = BTreeMap::new();
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
        // Endpoints first, the hub last.
        while let Some(ns) = self.namespaces.pop() {
            drop(ns);
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
        let topo = Topology {
            id,
            sfs: vec![9],
            namespaces: Vec::new(),
        };
        for end in topo.ends() {
            assert!(topo.hub_dev(end).len() <= 15, "{}", topo.hub_dev(end));
        }
    }

    #[test]
    fn sf_addresses_follow_the_plan() {
        assert_eq!(End::SfIn(3).addr(), (Ipv4Addr::new(198, 18, 0, 31), 32));
        assert_eq!(End::SfOut(3).addr(), (Ipv4Addr::new(198, 18, 0, 32), 24));
        assert_eq!(mac_string(End::SfOut(2).hub_mac()), "02:5f:c0:12:01:02");
    }

    #[test]
    fn fresh_ids_are_short_and_distinct() {
        let a = fresh_id();
        let b = fresh_id();
        assert_eq!(a.len(), 5);
        assert_ne!(a, b);
    }
}
