//! `validate`: a parsed chain file -> a `Model`, with every problem reported at once.
//!
//! One pass per resource kind, in dependency order (port pairs, groups, classifiers, chains),
//! then the classifier overlap check. A resource with a problem still goes into the (discarded)
//! model with a harmless default, so later passes keep checking what refers to it instead of
//! stopping at the first error. Errors are sorted by line at the end.

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::{
    limits::{LB_TABLE_SIZE, MAX_CHAIN_ID, MAX_CHAINS, MAX_GROUP_MEMBERS, MAX_GROUPS, MAX_HOPS, MAX_PORT_PAIRS},
    maps::{LB_DEFAULT, LB_FIELDS, LB_L4_DST, LB_L4_SRC, MAX_TAPS_IN_A_ROW},
};

use super::{
    Correlation, Ethertype, FailurePolicy, FlowClassifier, IPPROTO_ICMP, IPPROTO_ICMPV6, Model, PortChain,
    PortPair, PortPairGroup, PortRange, Prefix, ValidationErrors, carries_ports,
    checker::{Checker, FC, PC, PG, PP},
    overlap::{self, ClassifierRefs},
    parse_protocol,
};
use crate::{
    config::{ConfigFile, FlowClassifierCfg, PortChainCfg, ProtocolCfg, S, ValidationError, line},
    maglev,
};

/// Port pair weights (networking-sfc leaves the range to the driver).
const WEIGHT_MAX: i128 = 1000;
// The lowest free chain_id always exists when the chain count is within its limit.
const _: () = assert!(MAX_CHAINS < MAX_CHAIN_ID);

/// The state the passes share: labels and name indexes of every kind, and who owns which
/// interface.
pub(super) struct Ctx {
    pub pp: (Vec<String>, BTreeMap<String, usize>),
    pub pg: (Vec<String>, BTreeMap<String, usize>),
    pub fc: (Vec<String>, BTreeMap<String, usize>),
    pub pc: (Vec<String>, BTreeMap<String, usize>),
    /// interface -> (port pair, "ingress" or "egress").
    pub iface_owner: BTreeMap<String, (String, &'static str)>,
}

/// Validates a parsed file into a model, reporting every problem at once (the file's shape
/// problems from `config::parse` included), in line order.
pub fn validate(cfg: &ConfigFile) -> Result<Model, ValidationErrors> {
    let mut c = Checker { errors: cfg.problems.clone(), port_ids: BTreeMap::new() };
    let pp: Vec<_> = cfg.port_pairs.iter().map(|r| (r.value.name.as_ref(), line(r))).collect();
    let pg: Vec<_> = cfg.port_pair_groups.iter().map(|r| (r.value.name.as_ref(), line(r))).collect();
    let fc: Vec<_> = cfg.flow_classifiers.iter().map(|r| (r.value.name.as_ref(), line(r))).collect();
    let pc: Vec<_> = cfg.port_chains.iter().map(|r| (r.value.name.as_ref(), line(r))).collect();
    let mut ctx = Ctx {
        pp: c.names(PP, &pp),
        pg: c.names(PG, &pg),
        fc: c.names(FC, &fc),
        pc: c.names(PC, &pc),
        iface_owner: BTreeMap::new(),
    };
    for (kind, n, max) in [
        (PP, cfg.port_pairs.len(), MAX_PORT_PAIRS),
        (PG, cfg.port_pair_groups.len(), MAX_GROUPS),
        (PC, cfg.port_chains.len(), MAX_CHAINS),
    ] {
        if n > max as usize {
            c.err(kind, "", "", 0, format!("{n} resources, at most {max} are supported"));
        }
    }

    let port_pairs = port_pairs(&mut c, &mut ctx, cfg);
    let groups = groups(&mut c, &ctx, cfg, &port_pairs);
    let classifiers: Vec<FlowClassifier> =
        cfg.flow_classifiers.iter().enumerate().map(|(i, s)| classifier(&mut c, &ctx, &ctx.fc.0[i], s)).collect();
    // A classifier with a problem has defaults in place of what was written: comparing it with
    // others would report overlaps that are not there.
    let broken: Vec<bool> = ctx.fc.0.iter().map(|label| c.errors.iter().any(|e| e.kind == FC && e.resource == *label)).collect();
    let (chains, refs) = chains(&mut c, &ctx, cfg, &groups, &classifiers);
    overlap::check(&mut c, &classifiers, &chains, &refs, &broken);
    super::ntuple::check_chains(&mut c, cfg, &groups, &chains, &classifiers);
    let service_graphs = super::graph::graphs(&mut c, cfg, &chains, &classifiers);
    super::graph::check_sources(&mut c, cfg, &service_graphs, &chains, &classifiers);
    let (mut interface_modes, interface_macs) = super::interfaces::interfaces(&mut c, cfg, &port_pairs, &classifiers);
    super::aware::check(&mut c, cfg, &port_pairs, &groups, &chains, &mut interface_modes);
    let identities = super::identity::identities(&mut c, &ctx, cfg);

    if c.errors.is_empty() {
        let port_ids = std::mem::take(&mut c.port_ids);
        let mut m = Model {
            port_pairs,
            port_pair_groups: groups,
            flow_classifiers: classifiers,
            port_chains: chains,
            interface_modes,
            interface_macs,
            port_ids,
            identities,
            service_graphs,
        };
        match super::graph::expand(&mut m) {
            Ok(()) => Ok(m),
            Err(e) => Err(ValidationErrors(vec![ValidationError { kind: "service_graphs".into(), resource: String::new(), field: String::new(), line: 0, message: e }])),
        }
    } else {
        c.errors.sort_by_key(|e| e.line);
        Err(ValidationErrors(c.errors))
    }
}

fn port_pairs(c: &mut Checker, ctx: &mut Ctx, cfg: &ConfigFile) -> Vec<PortPair> {
    let mut out = Vec::new();
    for (i, s) in cfg.port_pairs.iter().enumerate() {
        let p = &s.value;
        let name = ctx.pp.0[i].clone();
        let at = (PP, name.as_str());
        let iface = |c: &mut Checker, field: &str, v: Option<&S<String>>, what: &str| {
            c.required(at, field, line(s), v, what).map(|v| (c.ifname(at, field, v), line(v)))
        };
        let ingress = iface(c, "ingress", p.ingress.as_ref(), "the interface through which traffic is sent into the service function");
        let egress = iface(c, "egress", p.egress.as_ref(), "the interface on which the service function sends traffic back; may equal ingress");
        let weight = match &p.weight {
            None => 1,
            Some(w) if let Some(v) = u32::try_from(w.value).ok().filter(|_| (1..=WEIGHT_MAX).contains(&w.value)) => v,
            Some(w) => {
                c.err(PP, &name, "weight", line(w), format!("weight {} is out of range 1..={WEIGHT_MAX}", w.value));
                1
            }
        };
        // An interface identifies one service function: it belongs to one port pair at most.
        for (field, v) in [("ingress", &ingress), ("egress", &egress)] {
            let Some((ifname, l)) = v else { continue };
            if field == "egress" && ingress.as_ref().is_some_and(|(n, _)| n == ifname) {
                continue;
            }
            match ctx.iface_owner.get(ifname) {
                Some((owner, f)) => {
                    c.err(PP, &name, field, *l, format!("interface '{ifname}' is already the {f} of port pair '{owner}'"));
                }
                None => {
                    ctx.iface_owner.insert(ifname.clone(), (name.clone(), if field == "ingress" { "ingress" } else { "egress" }));
                }
            }
        }
        let mut mac = |field: &str, v: &Option<S<String>>| {
            let v = v.as_ref()?;
            crate::model::parse_mac(&v.value).map_err(|e| c.err(PP, &name, field, line(v), e)).ok()
        };
        let (ingress_mac, egress_mac) = (mac("ingress_mac", &p.ingress_mac), mac("egress_mac", &p.egress_mac));
        let aware = super::aware::parameters(c, &name, p);
        out.push(PortPair {
            name,
            ingress: ingress.map(|v| v.0).unwrap_or_default(),
            egress: egress.map(|v| v.0).unwrap_or_default(),
            weight,
            ingress_mac,
            egress_mac,
            aware,
        });
    }
    out
}

fn parse_lb_field(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if let Some((bit, _)) = LB_FIELDS.iter().find(|(_, n)| *n == s) {
        return Ok(*bit);
    }
    Ok(match s {
        // networking-sfc spells the ports per protocol; the hash reads the same bytes for both.
        "l4_src_port" | "tcp_src" | "udp_src" => LB_L4_SRC,
        "l4_dst_port" | "tcp_dst" | "udp_dst" => LB_L4_DST,
        "eth_src" | "eth_dst" => {
            return Err(format!("'{s}' is not supported: members are picked when the flow is classified, from its IP fields"));
        }
        other => {
            let names: Vec<&str> = LB_FIELDS.iter().map(|(_, n)| *n).collect();
            return Err(format!("unknown field '{other}' ({})", names.join(", ")));
        }
    })
}

/// Most packets a tap group may skip between two copies.
const TAP_EVERY_MAX: i128 = 1_000_000;

/// A group's tap sampling (`tap_sample_every`, `tap_sample_probability`), and what a tap group
/// cannot have: probes (nothing comes back through a tap) and a failure policy (a tap never
/// stops traffic: with no member up, nothing is copied).
fn tap_sample(c: &mut Checker, name: &str, g: &crate::config::PortPairGroupCfg, tap: bool) -> super::TapSample {
    let mut out = super::TapSample::default();
    if !tap {
        for (field, l) in [("tap_sample_every", g.tap_sample_every.as_ref().map(line)), ("tap_sample_probability", g.tap_sample_probability.as_ref().map(line))] {
            if let Some(l) = l {
                c.err(PG, name, field, l, "only a tap group (tap_enabled: true) samples");
            }
        }
        return out;
    }
    if let Some(h) = &g.health_check {
        c.err(PG, name, "health_check", line(h), "a tap group's members send nothing back: probes cannot go through them");
    }
    if let Some(f) = &g.failure_policy {
        c.err(PG, name, "failure_policy", line(f), "a tap group never stops traffic (with no member up nothing is copied): leave failure_policy out");
    }
    if let Some(e) = &g.tap_sample_every {
        if (1..=TAP_EVERY_MAX).contains(&e.value) {
            out.every = u32::try_from(e.value).unwrap_or(1);
        } else {
            c.err(PG, name, "tap_sample_every", line(e), format!("{} is out of range 1..={TAP_EVERY_MAX} (copy 1 packet in N)", e.value));
        }
    }
    if let Some(p) = &g.tap_sample_probability {
        match p.value.trim().parse::<f64>() {
            Ok(x) if x > 0.0 && x <= 1.0 => {
                #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "0 < x <= 1: the product is within u32")]
                let t = (x * 4_294_967_296.0).min(4_294_967_295.0) as u32;
                out.threshold = t;
            }
            _ => c.err(PG, name, "tap_sample_probability", line(p), format!("'{}' is not a probability in (0, 1]", p.value.trim())),
        }
    }
    out
}

fn groups(c: &mut Checker, ctx: &Ctx, cfg: &ConfigFile, port_pairs: &[PortPair]) -> Vec<PortPairGroup> {
    // A port pair belongs to one group at most (as in networking-sfc).
    let mut pp_group: BTreeMap<usize, String> = BTreeMap::new();
    let mut out = Vec::new();
    for (gi, s) in cfg.port_pair_groups.iter().enumerate() {
        let g = &s.value;
        let name = ctx.pg.0[gi].clone();
        let at = (PG, name.as_str());
        let mut members = Vec::new();
        let mut member_lines = Vec::new();
        if let Some(list) = c.required(at, "port_pairs", line(s), g.port_pairs.as_ref(), "the port pairs (service function instances) of the group") {
            if list.value.is_empty() {
                c.err(PG, &name, "port_pairs", line(list), "a group needs at least one port pair");
            }
            if list.value.len() > MAX_GROUP_MEMBERS as usize {
                c.err(PG, &name, "port_pairs", line(list), format!("{} port pairs, at most {MAX_GROUP_MEMBERS} per group", list.value.len()));
            }
            for r in &list.value {
                let rn = r.value.trim();
                match ctx.pp.1.get(rn) {
                    None => c.err(PG, &name, "port_pairs", line(r), format!("unknown port pair '{rn}'")),
                    Some(&i) if members.contains(&i) => c.err(PG, &name, "port_pairs", line(r), format!("port pair '{rn}' is listed twice")),
                    Some(&i) => {
                        if let Some(other) = pp_group.get(&i) {
                            c.err(PG, &name, "port_pairs", line(r), format!("port pair '{rn}' is already in group '{other}' (a port pair belongs to one group)"));
                        } else {
                            pp_group.insert(i, name.clone());
                        }
                        members.push(i);
                        member_lines.push(line(r));
                    }
                }
            }
        }
        check_weights(c, &name, &members, &member_lines, port_pairs);
        let lb_fields = match &g.lb_fields {
            None => LB_DEFAULT,
            Some(f) => {
                let mut bits = 0;
                for x in &f.value {
                    match parse_lb_field(&x.value) {
                        Ok(b) => bits |= b,
                        Err(m) => c.err(PG, &name, "lb_fields", line(x), m),
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
        let tap_sample = tap_sample(c, &name, g, tap_enabled);
        let egress_n_tuple = super::ntuple::mapping(c, &name, g, tap_enabled);
        let health_check = g.health_check.as_ref().and_then(|h| super::health::validate(c, &name, h));
        out.push(PortPairGroup { name, port_pairs: members, lb_fields, failure_policy, tap_enabled, tap_sample, egress_n_tuple, health_check });
    }
    out
}

/// Every member must own at least one bucket of the group's table, or it would never get a flow
/// (a weight of 1 next to members of weight 1000 rounds down to nothing).
fn check_weights(c: &mut Checker, group: &str, members: &[usize], lines: &[u32], port_pairs: &[PortPair]) {
    if members.len() < 2 {
        return;
    }
    let ms: Vec<maglev::Member<'_>> = members
        .iter()
        .map(|&i| maglev::Member { id: u32::try_from(i).unwrap_or(u32::MAX), name: &port_pairs[i].name, weight: port_pairs[i].weight })
        .collect();
    let table = maglev::table(&ms, LB_TABLE_SIZE);
    let total: u64 = ms.iter().map(|m| u64::from(m.weight)).sum();
    for (m, l) in ms.iter().zip(lines) {
        if !table.contains(&m.id) {
            c.err(PG, group, "port_pairs", *l, format!(
                "port pair '{}' (weight {}) gets no share of the group's {LB_TABLE_SIZE}-bucket table next to a total weight of {total}, so it would never get a flow: raise its weight or lower the others'",
                m.name, m.weight
            ));
        }
    }
}

fn classifier(c: &mut Checker, ctx: &Ctx, name: &str, res: &S<FlowClassifierCfg>) -> FlowClassifier {
    let fc = &res.value;
    let at = (FC, name);
    let ethertype = match fc.ethertype.as_ref().map(|e| (e.value.trim().to_ascii_lowercase(), line(e))) {
        None => Ethertype::IPv4,
        Some((e, _)) if e == "ipv4" => Ethertype::IPv4,
        Some((e, _)) if e == "ipv6" => Ethertype::IPv6,
        Some((e, l)) => {
            c.err(FC, name, "ethertype", l, format!("unknown ethertype '{e}' (IPv4 or IPv6)"));
            Ethertype::IPv4
        }
    };
    let protocol = fc.protocol.as_ref().and_then(|p| {
        let parsed = match &p.value {
            ProtocolCfg::Number(n) => u8::try_from(*n).map_err(|_| format!("protocol number {n} is out of range 0..=255")),
            ProtocolCfg::Name(s) => parse_protocol(s),
        };
        match parsed {
            Ok(v) if (ethertype == Ethertype::IPv4 && v == IPPROTO_ICMPV6) || (ethertype == Ethertype::IPv6 && v == IPPROTO_ICMP) => {
                let hint = if v == IPPROTO_ICMP { "icmpv6" } else { "icmp" };
                c.err(FC, name, "protocol", line(p), format!("protocol {} does not exist with ethertype {ethertype:?} (use {hint})", super::protocol_name(v)));
                None
            }
            Ok(v) => Some(v),
            Err(m) => {
                c.err(FC, name, "protocol", line(p), m);
                None
            }
        }
    });
    let mut prefix = |field: &str, v: &Option<S<String>>| -> Prefix {
        let Some(v) = v else { return Prefix::any(ethertype) };
        match Prefix::parse(&v.value) {
            Ok(p) if p.ethertype == ethertype => p,
            Ok(p) => {
                c.err(FC, name, field, line(v), format!("{p} is {:?} but the classifier's ethertype is {ethertype:?}", p.ethertype));
                Prefix::any(ethertype)
            }
            Err(m) => {
                c.err(FC, name, field, line(v), m);
                Prefix::any(ethertype)
            }
        }
    };
    let source_prefix = prefix("source_ip_prefix", &fc.source_ip_prefix);
    let destination_prefix = prefix("destination_ip_prefix", &fc.destination_ip_prefix);
    let source_ports = port_range(c, name, "source", protocol, fc.source_port_range_min.as_ref(), fc.source_port_range_max.as_ref());
    let destination_ports =
        port_range(c, name, "destination", protocol, fc.destination_port_range_min.as_ref(), fc.destination_port_range_max.as_ref());
    // Left out only by a service graph's destination chains' classifiers (`graph::check_sources`).
    let logical_source_port = fc.logical_source_port.as_ref().map(|v| c.ifname(at, "logical_source_port", v)).unwrap_or_default();
    let logical_destination_port = fc.logical_destination_port.as_ref().map(|v| c.ifname(at, "logical_destination_port", v));
    for (field, iface, v) in [
        ("logical_source_port", Some(&logical_source_port).filter(|p| !p.is_empty()), &fc.logical_source_port),
        ("logical_destination_port", logical_destination_port.as_ref(), &fc.logical_destination_port),
    ] {
        if let (Some(iface), Some(v)) = (iface, v)
            && let Some((owner, of)) = ctx.iface_owner.get(iface)
        {
            c.err(FC, name, field, line(v), format!("interface '{iface}' is the {of} of port pair '{owner}', it cannot also be a logical port"));
        }
    }
    FlowClassifier {
        name: name.to_owned(),
        ethertype,
        protocol,
        source_prefix,
        destination_prefix,
        source_ports,
        destination_ports,
        logical_source_port,
        logical_destination_port,
    }
}

/// `source_port_range_min/max` or `destination_port_range_min/max`.
fn port_range(c: &mut Checker, name: &str, dir: &str, protocol: Option<u8>, lo: Option<&S<i128>>, hi: Option<&S<i128>>) -> PortRange {
    let (f_min, f_max) = (format!("{dir}_port_range_min"), format!("{dir}_port_range_max"));
    let (field, v) = match (lo, hi) {
        (None, None) => return PortRange::ANY,
        (Some(v), _) => (&f_min, v),
        (None, Some(v)) => (&f_max, v),
    };
    if !protocol.is_some_and(carries_ports) {
        let what = protocol.map_or_else(|| "no protocol".to_owned(), |p| format!("protocol {}", super::protocol_name(p)));
        c.err(FC, name, field, line(v), format!("port ranges need protocol tcp, udp, sctp or udplite; this classifier has {what}"));
        return PortRange::ANY;
    }
    let mut get = |field: &str, v: Option<&S<i128>>, default: u16| -> Option<u16> {
        match v {
            None => Some(default),
            Some(v) => u16::try_from(v.value).ok().or_else(|| {
                c.err(FC, name, field, line(v), format!("port {} is out of range 0..=65535", v.value));
                None
            }),
        }
    };
    let (Some(min), Some(max)) = (get(&f_min, lo, 0), get(&f_max, hi, u16::MAX)) else { return PortRange::ANY };
    if min > max {
        let l = lo.map_or(0, line);
        c.err(FC, name, &f_min, l, format!("{f_min} {min} is above {f_max} {max}: the range is empty"));
        return PortRange::ANY;
    }
    PortRange { min, max }
}


#[expect(clippy::too_many_lines, reason = "one rule after the other over a chain's fields, in file order")]
fn chains(c: &mut Checker, ctx: &Ctx, cfg: &ConfigFile, groups: &[PortPairGroup], classifiers: &[FlowClassifier]) -> (Vec<PortChain>, ClassifierRefs) {
    // Explicit ids first, then the lowest free id for the rest (networking-sfc's rule).
    let mut used_ids: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, s) in cfg.port_chains.iter().enumerate() {
        let Some(id) = &s.value.chain_id else { continue };
        let name = &ctx.pc.0[i];
        match u32::try_from(id.value).ok().filter(|v| (1..=MAX_CHAIN_ID).contains(v)) {
            None => c.err(PC, name, "chain_id", line(id), format!("chain_id {} is out of range 1..={MAX_CHAIN_ID}", id.value)),
            Some(v) => {
                if let Some(&other) = used_ids.get(&v) {
                    c.err(PC, name, "chain_id", line(id), format!("chain_id {v} is already used by chain '{}'", ctx.pc.0[other]));
                } else {
                    used_ids.insert(v, i);
                }
            }
        }
    }
    let mut next_free = 1u32;
    let mut fc_chain: BTreeMap<usize, String> = BTreeMap::new();
    let mut paths: BTreeMap<Vec<usize>, String> = BTreeMap::new();
    let mut chains = Vec::new();
    let mut refs = Vec::new();
    for (ci, s) in cfg.port_chains.iter().enumerate() {
        let p: &PortChainCfg = &s.value;
        let name = ctx.pc.0[ci].clone();
        let at = (PC, name.as_str());
        let chain_id = if let Some(id) = &p.chain_id {
            u32::try_from(id.value).ok().filter(|v| used_ids.get(v) == Some(&ci)).unwrap_or(0)
        } else {
            // There is always a free id: at most MAX_CHAINS chains pass (see the assertion).
            while used_ids.contains_key(&next_free) {
                next_free += 1;
            }
            used_ids.insert(next_free, ci);
            next_free
        };
        let mut hops = Vec::new();
        let list = c.required(at, "port_pair_groups", line(s), p.port_pair_groups.as_ref(), "the groups the traffic crosses, in order");
        if let Some(list) = list {
            if list.value.is_empty() {
                c.err(PC, &name, "port_pair_groups", line(list), "a chain needs at least one port pair group");
            }
            if list.value.len() > MAX_HOPS {
                c.err(PC, &name, "port_pair_groups", line(list), format!("{} groups, at most {MAX_HOPS} hops are supported", list.value.len()));
            }
            let mut taps_in_a_row = 0;
            for r in &list.value {
                let rn = r.value.trim();
                match ctx.pg.1.get(rn) {
                    None => c.err(PC, &name, "port_pair_groups", line(r), format!("unknown group '{rn}'")),
                    Some(&i) if hops.contains(&i) => {
                        c.err(PC, &name, "port_pair_groups", line(r), format!("group '{rn}' is listed twice (a port pair is used at most once per chain)"));
                    }
                    Some(&i) => {
                        // One hop decision copies to the tap groups before the next inline one; a
                        // fail-open inline group may be skipped, so only a fail-closed one ends a row.
                        taps_in_a_row = match groups.get(i) {
                            Some(g) if g.tap_enabled => taps_in_a_row + 1,
                            Some(g) if g.failure_policy == FailurePolicy::FailOpen => taps_in_a_row,
                            _ => 0,
                        };
                        if taps_in_a_row == MAX_TAPS_IN_A_ROW + 1 {
                            c.err(PC, &name, "port_pair_groups", line(r), format!("more than {MAX_TAPS_IN_A_ROW} tap groups in a row"));
                        }
                        hops.push(i);
                    }
                }
            }
            if !hops.is_empty() && hops.len() == list.value.len() {
                if let Some(other) = paths.get(&hops) {
                    c.err(PC, &name, "port_pair_groups", line(list), format!(
                        "chain '{other}' already crosses exactly these groups (networking-sfc rule): give its flow classifiers to that chain"
                    ));
                } else {
                    paths.insert(hops.clone(), name.clone());
                }
            }
        }
        let mut fcs = Vec::new();
        let mut listed = BTreeSet::new();
        let mut fc_refs = Vec::new();
        for r in p.flow_classifiers.iter().flat_map(|f| f.value.iter()) {
            let rn = r.value.trim();
            match ctx.fc.1.get(rn) {
                None => c.err(PC, &name, "flow_classifiers", line(r), format!("unknown flow classifier '{rn}'")),
                Some(&i) if !listed.insert(i) => c.err(PC, &name, "flow_classifiers", line(r), format!("flow classifier '{rn}' is listed twice")),
                Some(&i) => {
                    if let Some(other) = fc_chain.get(&i) {
                        c.err(PC, &name, "flow_classifiers", line(r), format!("flow classifier '{rn}' is already used by chain '{other}' (a classifier belongs to one chain)"));
                    } else {
                        fc_chain.insert(i, name.clone());
                        fc_refs.push((i, line(r)));
                    }
                    fcs.push(i);
                }
            }
        }
        let params = p.chain_parameters.as_ref().map(|x| &x.value);
        let symmetric = params.and_then(|x| x.symmetric.as_ref());
        let correlation = match params.and_then(|x| x.correlation.as_ref()).map(|x| (x.value.trim().to_ascii_lowercase(), line(x))) {
            None => Correlation::None,
            Some((v, _)) if v == "none" => Correlation::None,
            // The chain's encapsulation for its SFC-aware members (`aware::check` matches them).
            Some((v, _)) if v == "mpls" => Correlation::Mpls,
            Some((v, _)) if v == "nsh" => Correlation::Nsh,
            Some((v, l)) => {
                c.err(PC, &name, "chain_parameters.correlation", l, format!("unknown correlation '{v}' (none, mpls or nsh)"));
                Correlation::None
            }
        };
        // The reverse path of a symmetric chain starts where the forward path ends.
        if let Some(sym) = symmetric.filter(|s| s.value) {
            for &i in &fcs {
                if let Some(f) = classifiers.get(i).filter(|f| f.logical_destination_port.is_none()) {
                    c.err(PC, &name, "chain_parameters.symmetric", line(sym), format!(
                        "a symmetric chain needs logical_destination_port on its flow classifiers (the reverse path starts there); '{}' has none",
                        f.name
                    ));
                }
            }
        }
        chains.push(PortChain {
            name,
            chain_id,
            port_pair_groups: hops,
            flow_classifiers: fcs,
            symmetric: symmetric.is_some_and(|s| s.value),
            correlation,
            graph: Vec::new(),
        });
        refs.push(fc_refs);
    }
    (chains, refs)
}
