//! The validated chain model: names resolved to indexes, defaults filled in, every rule checked.
//! Pure: no kernel, no interfaces looked up.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
};

use serde::{Deserialize, Serialize};
use sfc_common::{
    limits::{MAX_CHAIN_ID, MAX_GROUP_MEMBERS, MAX_HOPS, MAX_PORT_PAIRS},
    maps::{LB_IP_DST, LB_IP_PROTO, LB_IP_SRC, LB_L4_DST, LB_L4_SRC, LB_DEFAULT},
};

use crate::config::{ConfigFile, ProtocolCfg, S};

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;
/// Linux interface names are at most 15 bytes.
const IFNAMSIZ_MAX: usize = 15;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = a.trim().parse().map_err(|_| format!("'{s}' is not an IP prefix"))?;
        let (ethertype, bytes) = match ip {
            IpAddr::V4(v4) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&v4.octets());
                (Ethertype::IPv4, b)
            }
            IpAddr::V6(v6) => (Ethertype::IPv6, v6.octets()),
        };
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

    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other) || other.contains(self)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Correlation {
    None,
    Mpls,
    Nsh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortPair {
    pub name: String,
    pub ingress: String,
    pub egress: String,
    pub weight: u32,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whether every packet this classifier matches is matched by `self`... of `other`.
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
}

/// A validated chain file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub port_pairs: Vec<PortPair>,
    pub port_pair_groups: Vec<PortPairGroup>,
    pub flow_classifiers: Vec<FlowClassifier>,
    pub port_chains: Vec<PortChain>,
}

/// One problem in a chain file: which resource, which field, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// `port_pairs`, `port_pair_groups`, `flow_classifiers` or `port_chains`.
    pub kind: &'static str,
    /// The resource's name (or its position when it has none).
    pub resource: String,
    pub field: &'static str,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.kind, self.resource)?;
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if self.line > 0 {
            write!(f, " (line {})", self.line)?;
        }
        Ok(())
    }
}

/// Every problem found in a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn line<T>(s: &S<T>) -> u32 {
    u32::try_from(s.referenced.line()).unwrap_or(0)
}

struct Checker {
    errors: Vec<ValidationError>,
}

impl Checker {
    fn err(&mut self, kind: &'static str, resource: &str, field: &'static str, line: u32, message: impl Into<String>) {
        self.errors.push(ValidationError {
            kind,
            resource: resource.to_owned(),
            field,
            line,
            message: message.into(),
        });
    }

    /// Names must be unique per kind and non-empty; returns name -> index of the first one.
    fn names<'a>(&mut self, kind: &'static str, names: impl Iterator<Item = &'a S<String>>) -> BTreeMap<String, usize> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut first_line: BTreeMap<String, u32> = BTreeMap::new();
        for (i, n) in names.enumerate() {
            let name = n.value.trim();
            if name.is_empty() {
                self.err(kind, &format!("#{i}"), "name", line(n), "name must not be empty");
                continue;
            }
            if let Some(prev) = first_line.get(name) {
                self.err(kind, name, "name", line(n), format!("duplicate name (first defined on line {prev})"));
                continue;
            }
            seen.insert(name.to_owned(), i);
            first_line.insert(name.to_owned(), line(n));
        }
        seen
    }

    fn ifname(&mut self, kind: &'static str, resource: &str, field: &'static str, v: &S<String>) -> String {
        let n = v.value.trim();
        if n.is_empty() || n.len() > IFNAMSIZ_MAX || n.contains(['/', ' ', '\t']) || n == "." || n == ".." {
            self.err(kind, resource, field, line(v), format!("'{n}' is not a valid interface name (1-15 characters, no '/' or spaces)"));
        }
        n.to_owned()
    }
}

fn parse_protocol(p: &ProtocolCfg) -> Result<u8, String> {
    match p {
        ProtocolCfg::Number(n) => u8::try_from(*n).map_err(|_| format!("protocol number {n} is out of range 0..=255")),
        ProtocolCfg::Name(s) => match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(IPPROTO_TCP),
            "udp" => Ok(IPPROTO_UDP),
            "icmp" => Ok(IPPROTO_ICMP),
            "icmpv6" | "ipv6-icmp" => Ok(IPPROTO_ICMPV6),
            "sctp" => Ok(IPPROTO_SCTP),
            other => other.parse::<u8>().map_err(|_| {
                format!("unknown protocol '{s}' (tcp, udp, icmp, icmpv6, sctp or a number 0..=255)")
            }),
        },
    }
}

fn parse_lb_field(s: &str) -> Option<u32> {
    Some(match s.trim() {
        "ip_src" => LB_IP_SRC,
        "ip_dst" => LB_IP_DST,
        "ip_proto" => LB_IP_PROTO,
        "l4_src" | "l4_src_port" => LB_L4_SRC,
        "l4_dst" | "l4_dst_port" => LB_L4_DST,
        _ => return None,
    })
}

/// Validates a parsed file into a model, reporting every problem at once.
#[expect(clippy::too_many_lines, reason = "one pass per resource kind, in file order, reads best as one function")]
pub fn validate(cfg: &ConfigFile) -> Result<Model, ValidationErrors> {
    let mut c = Checker { errors: Vec::new() };
    const PP: &str = "port_pairs";
    const PG: &str = "port_pair_groups";
    const FC: &str = "flow_classifiers";
    const PC: &str = "port_chains";

    let pp_idx = c.names(PP, cfg.port_pairs.iter().map(|p| &p.value.name));
    let pg_idx = c.names(PG, cfg.port_pair_groups.iter().map(|p| &p.value.name));
    let fc_idx = c.names(FC, cfg.flow_classifiers.iter().map(|p| &p.value.name));
    let pc_idx = c.names(PC, cfg.port_chains.iter().map(|p| &p.value.name));
    if cfg.port_pairs.len() > MAX_PORT_PAIRS as usize {
        c.err(PP, "*", "", 0, format!("{} port pairs, at most {MAX_PORT_PAIRS} are supported", cfg.port_pairs.len()));
    }

    // Port pairs. An interface belongs to one port pair at most (it identifies the SF).
    let mut iface_owner: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
    let mut port_pairs = Vec::new();
    for s in &cfg.port_pairs {
        let p = &s.value;
        let name = p.name.value.trim().to_owned();
        let ingress = c.ifname(PP, &name, "ingress", &p.ingress);
        let egress = c.ifname(PP, &name, "egress", &p.egress);
        let weight = match &p.weight {
            None => 1,
            Some(w) if (1..=1000).contains(&w.value) => w.value,
            Some(w) => {
                c.err(PP, &name, "weight", line(w), format!("weight {} is out of range 1..=1000", w.value));
                1
            }
        };
        for (iface, field, l) in [(&ingress, "ingress", line(&p.ingress)), (&egress, "egress", line(&p.egress))] {
            if field == "egress" && egress == ingress {
                continue;
            }
            if let Some((owner, f)) = iface_owner.get(iface) {
                if *owner != name {
                    c.err(PP, &name, field, l, format!("interface '{iface}' is already the {f} of port pair '{owner}'"));
                }
            } else {
                iface_owner.insert(iface.clone(), (name.clone(), field));
            }
        }
        port_pairs.push(PortPair { name, ingress, egress, weight });
    }

    // Port pair groups. A port pair belongs to one group at most (as in networking-sfc).
    let mut pp_group: BTreeMap<usize, String> = BTreeMap::new();
    let mut groups = Vec::new();
    for s in &cfg.port_pair_groups {
        let g = &s.value;
        let name = g.name.value.trim().to_owned();
        let mut members = Vec::new();
        if g.port_pairs.value.is_empty() {
            c.err(PG, &name, "port_pairs", line(&g.port_pairs), "a group needs at least one port pair");
        }
        if g.port_pairs.value.len() > MAX_GROUP_MEMBERS as usize {
            c.err(PG, &name, "port_pairs", line(&g.port_pairs), format!("{} port pairs, at most {MAX_GROUP_MEMBERS} per group", g.port_pairs.value.len()));
        }
        for r in &g.port_pairs.value {
            let rn = r.value.trim();
            match pp_idx.get(rn) {
                None => c.err(PG, &name, "port_pairs", line(r), format!("unknown port pair '{rn}'")),
                Some(&i) if members.contains(&i) => c.err(PG, &name, "port_pairs", line(r), format!("port pair '{rn}' is listed twice")),
                Some(&i) => {
                    if let Some(other) = pp_group.get(&i) {
                        c.err(PG, &name, "port_pairs", line(r), format!("port pair '{rn}' is already in group '{other}'"));
                    } else {
                        pp_group.insert(i, name.clone());
                    }
                    members.push(i);
                }
            }
        }
        let lb_fields = match &g.lb_fields {
            None => LB_DEFAULT,
            Some(f) => {
                let mut bits = 0;
                for x in &f.value {
                    match parse_lb_field(&x.value) {
                        Some(b) => bits |= b,
                        None => c.err(PG, &name, "lb_fields", line(x), format!("unknown field '{}' (ip_src, ip_dst, ip_proto, l4_src, l4_dst)", x.value)),
                    }
                }
                if f.value.is_empty() {
                    c.err(PG, &name, "lb_fields", line(f), "lb_fields must name at least one field (or be omitted for the 5-tuple)");
                }
                bits
            }
        };
        let failure_policy = match g.failure_policy.as_ref().map(|f| (f.value.trim(), line(f))) {
            None | Some(("fail-closed", _)) => FailurePolicy::FailClosed,
            Some(("fail-open", _)) => FailurePolicy::FailOpen,
            Some((other, l)) => {
                c.err(PG, &name, "failure_policy", l, format!("unknown policy '{other}' (fail-closed or fail-open)"));
                FailurePolicy::FailClosed
            }
        };
        let tap_enabled = g.tap_enabled.as_ref().is_some_and(|t| t.value);
        groups.push(PortPairGroup { name, port_pairs: members, lb_fields, failure_policy, tap_enabled });
    }

    // Flow classifiers.
    let mut classifiers = Vec::new();
    for s in &cfg.flow_classifiers {
        let f = &s.value;
        let name = f.name.value.trim().to_owned();
        let ethertype = match f.ethertype.as_ref().map(|e| (e.value.trim().to_ascii_lowercase(), line(e))) {
            None => Ethertype::IPv4,
            Some((e, _)) if e == "ipv4" => Ethertype::IPv4,
            Some((e, _)) if e == "ipv6" => Ethertype::IPv6,
            Some((e, l)) => {
                c.err(FC, &name, "ethertype", l, format!("unknown ethertype '{e}' (IPv4 or IPv6)"));
                Ethertype::IPv4
            }
        };
        let protocol = match &f.protocol {
            None => None,
            Some(p) => match parse_protocol(&p.value) {
                Ok(v) => Some(v),
                Err(m) => {
                    c.err(FC, &name, "protocol", line(p), m);
                    None
                }
            },
        };
        if let Some(p) = protocol {
            let bad = match ethertype {
                Ethertype::IPv4 => p == IPPROTO_ICMPV6,
                Ethertype::IPv6 => p == IPPROTO_ICMP,
            };
            if bad {
                let l = f.protocol.as_ref().map_or(0, line);
                c.err(FC, &name, "protocol", l, format!("protocol {p} does not exist with ethertype {ethertype:?}"));
            }
        }
        let mut prefix = |field: &'static str, v: &Option<S<String>>| -> Prefix {
            let Some(v) = v else { return Prefix::any(ethertype) };
            match Prefix::parse(&v.value) {
                Ok(p) if p.ethertype == ethertype => p,
                Ok(p) => {
                    c.err(FC, &name, field, line(v), format!("{p} is {:?} but the classifier's ethertype is {ethertype:?}", p.ethertype));
                    Prefix::any(ethertype)
                }
                Err(m) => {
                    c.err(FC, &name, field, line(v), m);
                    Prefix::any(ethertype)
                }
            }
        };
        let source_prefix = prefix("source_ip_prefix", &f.source_ip_prefix);
        let destination_prefix = prefix("destination_ip_prefix", &f.destination_ip_prefix);
        let has_ports = matches!(protocol, Some(IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP));
        let mut range = |field: &'static str, lo: &Option<S<u32>>, hi: &Option<S<u32>>| -> PortRange {
            if lo.is_none() && hi.is_none() {
                return PortRange::ANY;
            }
            let l = lo.as_ref().or(hi.as_ref()).map_or(0, line);
            if !has_ports {
                c.err(FC, &name, field, l, "port ranges need protocol tcp, udp or sctp");
                return PortRange::ANY;
            }
            let mut get = |v: &Option<S<u32>>, default: u16| -> u16 {
                match v {
                    None => default,
                    Some(v) => u16::try_from(v.value).unwrap_or_else(|_| {
                        c.err(FC, &name, field, line(v), format!("port {} is out of range 0..=65535", v.value));
                        default
                    }),
                }
            };
            let (min, max) = (get(lo, 0), get(hi, u16::MAX));
            if min > max {
                c.err(FC, &name, field, l, format!("range {min}..{max} is empty (min > max)"));
                return PortRange::ANY;
            }
            PortRange { min, max }
        };
        let source_ports = range("source_port_range", &f.source_port_range_min, &f.source_port_range_max);
        let destination_ports = range("destination_port_range", &f.destination_port_range_min, &f.destination_port_range_max);
        let logical_source_port = match &f.logical_source_port {
            Some(v) => c.ifname(FC, &name, "logical_source_port", v),
            None => {
                c.err(FC, &name, "logical_source_port", line(s), "required: the interface the traffic arrives on");
                String::new()
            }
        };
        let logical_destination_port = f.logical_destination_port.as_ref().map(|v| c.ifname(FC, &name, "logical_destination_port", v));
        for (field, iface, l) in [
            ("logical_source_port", Some(&logical_source_port), f.logical_source_port.as_ref().map_or(0, line)),
            ("logical_destination_port", logical_destination_port.as_ref(), f.logical_destination_port.as_ref().map_or(0, line)),
        ] {
            if let Some(iface) = iface {
                if let Some((owner, of)) = iface_owner.get(iface) {
                    c.err(FC, &name, field, l, format!("interface '{iface}' is the {of} of port pair '{owner}', it cannot also be a logical port"));
                }
            }
        }
        classifiers.push(FlowClassifier {
            name,
            ethertype,
            protocol,
            source_prefix,
            destination_prefix,
            source_ports,
            destination_ports,
            logical_source_port,
            logical_destination_port,
        });
    }

    // Port chains: explicit ids first, then the lowest free id for the rest.
    let mut used_ids: BTreeMap<u32, String> = BTreeMap::new();
    for s in &cfg.port_chains {
        let p = &s.value;
        if let Some(id) = &p.chain_id {
            let name = p.name.value.trim();
            if id.value == 0 || id.value > MAX_CHAIN_ID {
                c.err(PC, name, "chain_id", line(id), format!("chain_id {} is out of range 1..={MAX_CHAIN_ID}", id.value));
            } else if let Some(other) = used_ids.get(&id.value) {
                c.err(PC, name, "chain_id", line(id), format!("chain_id {} is already used by chain '{other}'", id.value));
            } else {
                used_ids.insert(id.value, name.to_owned());
            }
        }
    }
    let mut next_free = 1u32;
    let mut group_chain: BTreeMap<usize, String> = BTreeMap::new();
    let mut fc_chain: BTreeMap<usize, String> = BTreeMap::new();
    let mut chains = Vec::new();
    for s in &cfg.port_chains {
        let p = &s.value;
        let name = p.name.value.trim().to_owned();
        let chain_id = match &p.chain_id {
            Some(id) if used_ids.get(&id.value) == Some(&name) => id.value,
            Some(_) => 0,
            None => {
                while used_ids.contains_key(&next_free) {
                    next_free += 1;
                }
                used_ids.insert(next_free, name.clone());
                next_free
            }
        };
        let mut hops = Vec::new();
        if p.port_pair_groups.value.is_empty() {
            c.err(PC, &name, "port_pair_groups", line(&p.port_pair_groups), "a chain needs at least one port pair group");
        }
        if p.port_pair_groups.value.len() > MAX_HOPS {
            c.err(PC, &name, "port_pair_groups", line(&p.port_pair_groups), format!("{} groups, at most {MAX_HOPS} hops are supported", p.port_pair_groups.value.len()));
        }
        for r in &p.port_pair_groups.value {
            let rn = r.value.trim();
            match pg_idx.get(rn) {
                None => c.err(PC, &name, "port_pair_groups", line(r), format!("unknown group '{rn}'")),
                Some(&i) if hops.contains(&i) => c.err(PC, &name, "port_pair_groups", line(r), format!("group '{rn}' is listed twice (a port pair is used at most once per chain)")),
                Some(&i) => {
                    if let Some(other) = group_chain.get(&i) {
                        c.err(PC, &name, "port_pair_groups", line(r), format!("group '{rn}' is already used by chain '{other}'"));
                    } else {
                        group_chain.insert(i, name.clone());
                    }
                    hops.push(i);
                }
            }
        }
        let mut fcs = Vec::new();
        for r in p.flow_classifiers.iter().flat_map(|f| f.value.iter()) {
            let rn = r.value.trim();
            match fc_idx.get(rn) {
                None => c.err(PC, &name, "flow_classifiers", line(r), format!("unknown flow classifier '{rn}'")),
                Some(&i) if fcs.contains(&i) => c.err(PC, &name, "flow_classifiers", line(r), format!("flow classifier '{rn}' is listed twice")),
                Some(&i) => {
                    if let Some(other) = fc_chain.get(&i) {
                        c.err(PC, &name, "flow_classifiers", line(r), format!("flow classifier '{rn}' is already used by chain '{other}'"));
                    } else {
                        fc_chain.insert(i, name.clone());
                    }
                    fcs.push(i);
                }
            }
        }
        let params = p.chain_parameters.as_ref().map(|x| &x.value);
        let symmetric = params.and_then(|x| x.symmetric.as_ref()).is_some_and(|x| x.value);
        let correlation = match params.and_then(|x| x.correlation.as_ref()).map(|x| (x.value.trim().to_ascii_lowercase(), line(x))) {
            None => Correlation::None,
            Some((v, _)) if v == "none" => Correlation::None,
            Some((v, l)) if v == "mpls" || v == "nsh" => {
                c.err(PC, &name, "chain_parameters.correlation", l, format!("correlation '{v}' (SFC-aware service functions) is not supported yet; use none"));
                if v == "mpls" { Correlation::Mpls } else { Correlation::Nsh }
            }
            Some((v, l)) => {
                c.err(PC, &name, "chain_parameters.correlation", l, format!("unknown correlation '{v}' (none, mpls or nsh)"));
                Correlation::None
            }
        };
        if symmetric {
            for &i in &fcs {
                if classifiers.get(i).is_some_and(|f| f.logical_destination_port.is_none()) {
                    let l = p.chain_parameters.as_ref().map_or(0, line);
                    c.err(PC, &name, "chain_parameters.symmetric", l, format!("a symmetric chain needs logical_destination_port on its classifiers (the reverse path starts there); '{}' has none", classifiers[i].name));
                }
            }
        }
        chains.push(PortChain { name, chain_id, port_pair_groups: hops, flow_classifiers: fcs, symmetric, correlation });
    }
    let _ = &pc_idx;

    // Ambiguous overlaps: two classifiers in use that can match the same packet, where neither
    // is more specific, or that send it to different places.
    let in_use: Vec<(usize, &PortChain)> = chains.iter().flat_map(|ch| ch.flow_classifiers.iter().map(move |&i| (i, ch))).collect();
    let mut reported = BTreeSet::new();
    for (a_pos, &(a, ca)) in in_use.iter().enumerate() {
        for &(b, cb) in &in_use[a_pos + 1..] {
            let (fa, fb) = (&classifiers[a], &classifiers[b]);
            if !fa.overlaps(fb) {
                continue;
            }
            let same_target = ca.chain_id == cb.chain_id && fa.logical_destination_port == fb.logical_destination_port;
            let nested = fa.contains(fb) != fb.contains(fa);
            if same_target || nested {
                continue;
            }
            if reported.insert((a.min(b), a.max(b))) {
                let l = line(&cfg.flow_classifiers[b].value.name);
                c.err(FC, &fb.name, "", l, format!(
                    "overlaps flow classifier '{}' (chain '{}') ambiguously: some packets match both and neither is more specific",
                    fa.name, ca.name
                ));
            }
        }
    }

    if c.errors.is_empty() {
        Ok(Model { port_pairs, port_pair_groups: groups, flow_classifiers: classifiers, port_chains: chains })
    } else {
        c.errors.sort_by_key(|e| e.line);
        Err(ValidationErrors(c.errors))
    }
}
