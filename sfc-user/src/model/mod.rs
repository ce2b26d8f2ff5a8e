//! The validated chain model: names resolved to indexes, defaults filled in, every rule checked.
//! Pure: no kernel, no interfaces looked up. The types are here; the rules are in `validate`
//! (one pass per resource kind) and `overlap` (classifiers that compete for the same packets).

mod checker;
mod health;
mod aware;
mod graph;
mod identity;
mod interfaces;
pub mod neutron;
mod ntuple;
mod overlap;
mod prefix_serde;
mod validate;

pub use health::HealthCheck;
/// Problems in a chain file are the config layer's type; the model reports its own with it.
pub use crate::config::{ValidationError, ValidationErrors};
pub use validate::validate;

pub use crate::config::neutron::{is_uuid, neutron_tap};

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};
use sfc_common::maps::{FAMILY_V6, FlowKey};

pub use sfc_common::proto::{
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, carries_ports,
};

/// `tcp` for 6 and so on; the number for the rest.
pub fn protocol_name(proto: u8) -> String {
    match proto {
        IPPROTO_ICMP => "icmp".to_owned(),
        IPPROTO_TCP => "tcp".to_owned(),
        IPPROTO_UDP => "udp".to_owned(),
        IPPROTO_ICMPV6 => "icmpv6".to_owned(),
        IPPROTO_SCTP => "sctp".to_owned(),
        IPPROTO_UDPLITE => "udplite".to_owned(),
        n => n.to_string(),
    }
}

/// A protocol by name (`tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `udplite`) or number.
pub fn parse_protocol(s: &str) -> Result<u8, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(IPPROTO_TCP),
        "udp" => Ok(IPPROTO_UDP),
        "icmp" => Ok(IPPROTO_ICMP),
        "icmpv6" | "ipv6-icmp" => Ok(IPPROTO_ICMPV6),
        "sctp" => Ok(IPPROTO_SCTP),
        "udplite" => Ok(IPPROTO_UDPLITE),
        other => other.parse::<u8>().map_err(|_| {
            format!("unknown protocol '{}' (tcp, udp, icmp, icmpv6, sctp, udplite or a number 0..=255)", s.trim())
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ethertype {
    IPv4,
    IPv6,
}

impl Ethertype {
    pub const fn value(self) -> u16 {
        match self {
            Ethertype::IPv4 => 0x0800,
            Ethertype::IPv6 => 0x86DD,
        }
    }
    pub const fn addr_bits(self) -> u8 {
        match self {
            Ethertype::IPv4 => 32,
            Ethertype::IPv6 => 128,
        }
    }
}

/// An address prefix, stored as the 16 bytes the datapath uses (IPv4 in the first four).
/// Serialized as its text, `10.0.0.0/24` (`prefix_serde`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub ethertype: Ethertype,
    pub addr: [u8; 16],
    pub len: u8,
}

impl Prefix {
    /// The prefix matching every address of `ethertype`.
    pub const fn any(ethertype: Ethertype) -> Self {
        Self { ethertype, addr: [0; 16], len: 0 }
    }

    /// An address's family and its 16 bytes as a prefix stores them (IPv4 in the first four).
    fn bytes_of(ip: IpAddr) -> (Ethertype, [u8; 16]) {
        match ip {
            IpAddr::V4(v4) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&v4.octets());
                (Ethertype::IPv4, b)
            }
            IpAddr::V6(v6) => (Ethertype::IPv6, v6.octets()),
        }
    }

    /// Parses `10.0.0.0/24`, `2001:db8::/32` or a bare address (a host prefix). Host bits must be
    /// clear: `10.0.0.1/24` is refused with the prefix that was probably meant.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = a.trim().parse().map_err(|_| format!("'{s}' is not an IP prefix"))?;
        let (ethertype, bytes) = Self::bytes_of(ip);
        let max = ethertype.addr_bits();
        let len = match l {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("'{s}': prefix length must be 0..={max}"))?,
        };
        let p = Self { ethertype, addr: bytes, len };
        if p.masked() != p {
            return Err(format!(
                "'{s}' has host bits set (did you mean {}?)",
                p.masked()
            ));
        }
        Ok(p)
    }

    /// The same prefix with the bits past `len` cleared.
    #[must_use]
    pub fn masked(self) -> Self {
        let mut addr = self.addr;
        for (i, b) in addr.iter_mut().enumerate() {
            let bit = i * 8;
            let keep = usize::from(self.len).saturating_sub(bit).min(8);
            *b &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        }
        Self { addr, ..self }
    }

    /// Whether every address in `other` is in `self`.
    pub fn contains(&self, other: &Prefix) -> bool {
        self.ethertype == other.ethertype
            && self.len <= other.len
            && Prefix { len: self.len, ..*other }.masked().addr == self.addr
    }

    /// Whether some address is in both (prefixes overlap only by nesting).
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// Whether `addr` (16 bytes, IPv4 in the first four) is in the prefix.
    pub fn contains_addr(&self, addr: &[u8; 16]) -> bool {
        Prefix { ethertype: self.ethertype, addr: *addr, len: self.len }.masked().addr == self.addr
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ethertype {
            Ethertype::IPv4 => {
                let a = std::net::Ipv4Addr::new(self.addr[0], self.addr[1], self.addr[2], self.addr[3]);
                write!(f, "{a}/{}", self.len)
            }
            Ethertype::IPv6 => write!(f, "{}/{}", std::net::Ipv6Addr::from(self.addr), self.len),
        }
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange { min: 0, max: u16::MAX };
    pub fn contains(&self, o: &PortRange) -> bool {
        self.min <= o.min && o.max <= self.max
    }
    pub fn overlaps(&self, o: &PortRange) -> bool {
        self.min <= o.max && o.min <= self.max
    }
    pub fn contains_port(&self, p: u16) -> bool {
        self.min <= p && p <= self.max
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailurePolicy {
    FailClosed,
    FailOpen,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Correlation {
    #[default]
    None,
    Mpls,
    Nsh,
}

impl Correlation {
    /// The header's name (`mpls`, `nsh`) as the chain file and networking-sfc write it; `None`
    /// for an SFC-unaware function.
    pub const fn header(self) -> Option<&'static str> {
        match self {
            Correlation::None => None,
            Correlation::Mpls => Some("mpls"),
            Correlation::Nsh => Some("nsh"),
        }
    }
}

/// What an SFC-aware member gets (`correlation` on its port pair; `None` for the SFC-unaware).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aware {
    pub correlation: Correlation,
    /// NSH MD type (1 or 2).
    pub md_type: u8,
    /// NSH MD type 1's context, as sent.
    pub context: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPair {
    pub name: String,
    pub ingress: String,
    pub egress: String,
    pub weight: u32,
    /// The service function's MAC behind `ingress` / `egress`, as the file gives it (else it
    /// comes from the veth peer).
    #[serde(default)]
    pub ingress_mac: Option<[u8; 6]>,
    #[serde(default)]
    pub egress_mac: Option<[u8; 6]>,
    /// An SFC-aware function: the header it gets and sends back.
    #[serde(default)]
    pub aware: Aware,
}

/// A MAC address as `52:54:00:12:34:56` (or with `-`): a unicast one, not all zeros.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("'{s}' is not a unicast MAC address like 52:54:00:12:34:56");
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac == [0; 6] || mac[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(mac)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPairGroup {
    pub name: String,
    /// Indexes into `Model::port_pairs`.
    pub port_pairs: Vec<usize>,
    /// `LB_*` bits.
    pub lb_fields: u32,
    pub failure_policy: FailurePolicy,
    pub tap_enabled: bool,
    /// What a tap group copies.
    #[serde(default)]
    pub tap_sample: TapSample,
    /// A NAT-ing group: the classifier fields its members' output has instead of the chain's
    /// (`ppg_n_tuple_mapping.egress_n_tuple`); packets coming back are matched with them.
    #[serde(default)]
    pub egress_n_tuple: Option<NTuple>,
    /// Probes through each member (`health_check:`); `None`: link state only.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}


#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlowClassifier {
    pub name: String,
    pub ethertype: Ethertype,
    /// `None`: any protocol.
    pub protocol: Option<u8>,
    pub source_prefix: Prefix,
    pub destination_prefix: Prefix,
    pub source_ports: PortRange,
    pub destination_ports: PortRange,
    pub logical_source_port: String,
    pub logical_destination_port: Option<String>,
}

impl FlowClassifier {
    /// Whether every packet `other` matches is matched by `self` too.
    pub fn contains(&self, other: &FlowClassifier) -> bool {
        self.logical_source_port == other.logical_source_port
            && self.ethertype == other.ethertype
            && (self.protocol.is_none() || self.protocol == other.protocol)
            && self.source_prefix.contains(&other.source_prefix)
            && self.destination_prefix.contains(&other.destination_prefix)
            && self.source_ports.contains(&other.source_ports)
            && self.destination_ports.contains(&other.destination_ports)
    }

    /// Whether some packet matches both.
    pub fn overlaps(&self, other: &FlowClassifier) -> bool {
        self.logical_source_port == other.logical_source_port
            && self.ethertype == other.ethertype
            && (self.protocol.is_none() || other.protocol.is_none() || self.protocol == other.protocol)
            && self.source_prefix.overlaps(&other.source_prefix)
            && self.destination_prefix.overlaps(&other.destination_prefix)
            && self.source_ports.overlaps(&other.source_ports)
            && self.destination_ports.overlaps(&other.destination_ports)
    }

    /// Whether a packet with flow key `key` (as the kernel parser fills it) arriving on the
    /// classifier's logical source port matches. The reference the classifier tables are tested
    /// against.
    pub fn matches(&self, key: &FlowKey) -> bool {
        let ethertype = if key.family == FAMILY_V6 { Ethertype::IPv6 } else { Ethertype::IPv4 };
        self.ethertype == ethertype
            && self.protocol.is_none_or(|p| p == key.proto)
            && self.source_prefix.contains_addr(&key.src)
            && self.destination_prefix.contains_addr(&key.dst)
            && self.source_ports.contains_port(u16::from_be_bytes(key.sport))
            && self.destination_ports.contains_port(u16::from_be_bytes(key.dport))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortChain {
    pub name: String,
    pub chain_id: u32,
    /// Indexes into `Model::port_pair_groups`, in hop order.
    pub port_pair_groups: Vec<usize>,
    /// Indexes into `Model::flow_classifiers`.
    pub flow_classifiers: Vec<usize>,
    pub symmetric: bool,
    pub correlation: Correlation,
    /// A path through service graphs (`pc1 -> pc2`), made by sfc from the file's chains: their
    /// names in order. Empty for the file's own chains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graph: Vec<String>,
}

/// A service graph as the file gives it: each branch a source chain and its destination chains
/// (indexes into `Model::port_chains`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceGraph {
    pub name: String,
    pub id: Option<String>,
    pub description: Option<String>,
    pub branches: Vec<(usize, Vec<usize>)>,
}

/// How sfc's program runs on an interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// tc ingress (a tcx link): sees skbs, keeps GSO and checksum offload; the default.
    #[default]
    Tc,
    /// Native XDP (an XDP link): sees frames before an skb exists; redirects through a devmap.
    Xdp,
}

impl AttachMode {
    pub const fn name(self) -> &'static str {
        match self {
            AttachMode::Tc => "tc",
            AttachMode::Xdp => "xdp",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tc" => Ok(AttachMode::Tc),
            "xdp" => Ok(AttachMode::Xdp),
            other => Err(format!("unknown mode '{other}' (tc or xdp)")),
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated chain file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub port_pairs: Vec<PortPair>,
    pub port_pair_groups: Vec<PortPairGroup>,
    pub flow_classifiers: Vec<FlowClassifier>,
    pub port_chains: Vec<PortChain>,
    /// Interfaces whose attach mode the file sets (the rest take `sfc apply --mode`).
    #[serde(default)]
    pub interface_modes: std::collections::BTreeMap<String, AttachMode>,
    /// The MACs behind interfaces as `interfaces:` gives them (a VM's, behind a tap).
    #[serde(default)]
    pub interface_macs: std::collections::BTreeMap<String, [u8; 6]>,
    /// Interfaces the file names by a neutron port id: tap name -> port id (for messages).
    #[serde(default)]
    pub port_ids: std::collections::BTreeMap<String, String>,
    /// The neutron ids and descriptions the file gives its resources (`sfc export neutron`).
    #[serde(default)]
    pub identities: Identities,
    /// The file's service graphs; their paths are chains (`PortChain::graph`) after the file's.
    #[serde(default)]
    pub service_graphs: Vec<ServiceGraph>,
}

/// Classifier fields a NAT-ing function's output has: each `Some` replaces the chain
/// classifier's field when packets coming back from it are matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NTuple {
    pub source_prefix: Option<Prefix>,
    pub destination_prefix: Option<Prefix>,
    pub source_ports: Option<PortRange>,
    pub destination_ports: Option<PortRange>,
}

impl NTuple {
    /// `fc` as the function's output matches it.
    pub fn translate(&self, fc: &FlowClassifier) -> FlowClassifier {
        FlowClassifier {
            source_prefix: self.source_prefix.unwrap_or(fc.source_prefix),
            destination_prefix: self.destination_prefix.unwrap_or(fc.destination_prefix),
            source_ports: self.source_ports.unwrap_or(fc.source_ports),
            destination_ports: self.destination_ports.unwrap_or(fc.destination_ports),
            ..fc.clone()
        }
    }
}

/// Which packets a tap group copies: 1 in `every` (per CPU), and of those the share
/// `threshold / 2^32` (`u32::MAX`: all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapSample {
    pub every: u32,
    pub threshold: u32,
}

impl Default for TapSample {
    fn default() -> Self {
        TapSample { every: 1, threshold: u32::MAX }
    }
}

/// A resource's neutron id and description, as the file gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub id: Option<String>,
    pub description: Option<String>,
}

/// [`Identity`] of each resource that has one, by kind and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identities {
    pub port_pairs: std::collections::BTreeMap<String, Identity>,
    pub port_pair_groups: std::collections::BTreeMap<String, Identity>,
    pub flow_classifiers: std::collections::BTreeMap<String, Identity>,
    pub port_chains: std::collections::BTreeMap<String, Identity>,
}



impl Model {
    /// The attach mode of interface `name` when the default is `default`.
    pub fn mode_of(&self, name: &str, default: AttachMode) -> AttachMode {
        self.interface_modes.get(name).copied().unwrap_or(default)
    }

    /// `name`, and the neutron port it stands for when the file named it by port id.
    pub fn describe_iface(&self, name: &str) -> String {
        match self.port_ids.get(name) {
            Some(id) => format!("'{name}' (neutron port {id})"),
            None => format!("'{name}'"),
        }
    }

    /// The chain with `chain_id`.
    pub fn chain_by_id(&self, chain_id: u32) -> Option<&PortChain> {
        self.port_chains.iter().find(|c| c.chain_id == chain_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::parse(s).expect("prefix")
    }

    #[test]
    fn prefixes_parse_mask_and_display() {
        assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(p("10.1.2.3").len, 32);
        assert_eq!(p("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(p("0.0.0.0/0"), Prefix::any(Ethertype::IPv4));
        assert_eq!(Prefix { len: 8, ..p("10.1.2.3") }.masked(), p("10.0.0.0/8"));
        assert!(Prefix::parse(" 10.0.0.0 / 8 ").is_ok());
    }

    #[test]
    fn prefixes_nest() {
        assert!(p("10.0.0.0/8").contains(&p("10.1.0.0/16")));
        assert!(!p("10.1.0.0/16").contains(&p("10.0.0.0/8")));
        assert!(p("10.0.0.0/8").overlaps(&p("10.1.0.0/16")) && p("10.1.0.0/16").overlaps(&p("10.0.0.0/8")));
        assert!(!p("10.0.0.0/8").overlaps(&p("11.0.0.0/8")));
        assert!(!p("::/0").overlaps(&p("0.0.0.0/0")));
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[10, 200, 0, 1]);
        assert!(p("10.0.0.0/8").contains_addr(&a) && !p("10.1.0.0/16").contains_addr(&a));
    }

    #[test]
    fn port_ranges() {
        let r = PortRange { min: 80, max: 90 };
        assert!(PortRange::ANY.contains(&r) && !r.contains(&PortRange::ANY));
        assert!(r.overlaps(&PortRange { min: 90, max: 95 }) && !r.overlaps(&PortRange { min: 91, max: 95 }));
        assert!(r.contains_port(80) && r.contains_port(90) && !r.contains_port(91));
    }

    #[test]
    fn protocols_by_name_and_number() {
        assert_eq!(parse_protocol("TCP"), Ok(6));
        assert_eq!(parse_protocol("ipv6-icmp"), Ok(58));
        assert_eq!(parse_protocol("47"), Ok(47));
        assert!(parse_protocol("256").is_err());
        for n in [1, 6, 17, 58, 132, 136, 47] {
            assert_eq!(parse_protocol(&protocol_name(n)), Ok(n));
        }
        assert!(carries_ports(6) && carries_ports(136) && !carries_ports(1));
    }

    #[test]
    fn classifier_matches_a_flow_key() {
        let f = FlowClassifier {
            name: "web".into(),
            ethertype: Ethertype::IPv4,
            protocol: Some(IPPROTO_TCP),
            source_prefix: Prefix::any(Ethertype::IPv4),
            destination_prefix: p("10.0.0.0/24"),
            source_ports: PortRange::ANY,
            destination_ports: PortRange { min: 80, max: 80 },
            logical_source_port: "src".into(),
            logical_destination_port: None,
        };
        let mut k = FlowKey { proto: 6, family: 4, dport: [0, 80], ..FlowKey::default() };
        k.dst[..4].copy_from_slice(&[10, 0, 0, 9]);
        assert!(f.matches(&k));
        assert!(!f.matches(&FlowKey { dport: [0, 81], ..k }));
        assert!(!f.matches(&FlowKey { proto: 17, ..k }));
        assert!(!f.matches(&FlowKey { family: 6, ..k }));
    }
}
