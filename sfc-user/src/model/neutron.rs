//! `sfc export neutron`: a validated chain file as networking-sfc's API objects, the bodies of
//! `GET /v2.0/sfc/port_pairs` and the other lists merged into one object. Pure.
//!
//! Resources carry their neutron ids when the file gives them (`id:`) and refer to each other
//! by id where the target has one, else by name (which the openstack client resolves). Ports
//! the file names by a neutron port id are written as that id, others as the interface name.
//! What networking-sfc cannot hold (sfc's extensions: health checks, failure policies, MACs,
//! attach modes, `ip_proto` in `lb_fields`) is listed in the notes, not written.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sfc_common::maps::{LB_DEFAULT, LB_IP_DST, LB_IP_PROTO, LB_IP_SRC, LB_L4_DST, LB_L4_SRC};

use super::{Ethertype, FailurePolicy, Identity, Model, NTuple, PortRange, Prefix, protocol_name};

/// The API objects, and what could not be written.
pub fn export(m: &Model) -> (Value, Vec<String>) {
    let mut notes = Vec::new();
    let body = json!({
        "port_pairs": port_pairs(m, &mut notes),
        "port_pair_groups": groups(m, &mut notes),
        "flow_classifiers": classifiers(m),
        "port_chains": chains(m, &mut notes),
        "service_graphs": graphs(m),
    });
    // XDP on an SFC-aware member's egress is sfc's own doing, not the file's.
    let aware_egress: std::collections::BTreeSet<&str> =
        m.port_pairs.iter().filter(|p| p.aware.correlation != super::Correlation::None).map(|p| p.egress.as_str()).collect();
    if m.interface_modes.keys().any(|i| !aware_egress.contains(i.as_str())) || !m.interface_macs.is_empty() {
        notes.push("interfaces: attach modes and MACs are sfc's (not exported)".to_owned());
    }
    (body, notes)
}

type Ids = BTreeMap<String, Identity>;

/// A port as neutron knows it: its port id when the file gave one, else the interface name.
fn port(m: &Model, iface: &str) -> String {
    m.port_ids.get(iface).cloned().unwrap_or_else(|| iface.to_owned())
}

/// A reference to `name`: its id when it has one, else the name.
fn reference(ids: &Ids, name: &str) -> String {
    ids.get(name).and_then(|i| i.id.clone()).unwrap_or_else(|| name.to_owned())
}

/// `fields` with the resource's id (when it has one) and description.
fn with_identity(fields: Value, ids: &Ids, name: &str) -> Value {
    let Value::Object(mut o) = fields else { return fields };
    let i = ids.get(name).cloned().unwrap_or_default();
    if let Some(id) = i.id {
        o.insert("id".into(), json!(id));
    }
    o.insert("description".into(), json!(i.description.unwrap_or_default()));
    Value::Object(o)
}

fn port_pairs(m: &Model, notes: &mut Vec<String>) -> Vec<Value> {
    m.port_pairs
        .iter()
        .map(|p| {
            if p.ingress_mac.is_some() || p.egress_mac.is_some() {
                notes.push(format!("port pair {}: the MACs behind its interfaces are sfc's (not exported)", p.name));
            }
            if p.aware.correlation == super::Correlation::Nsh && (p.aware.md_type != 1 || p.aware.context != [0; 16]) {
                notes.push(format!("port pair {}: the NSH MD type and context are sfc's (not exported)", p.name));
            }
            let fields = json!({
                "name": p.name,
                "ingress": port(m, &p.ingress),
                "egress": port(m, &p.egress),
                "service_function_parameters": {"correlation": p.aware.correlation.header(), "weight": p.weight},
            });
            with_identity(fields, &m.identities.port_pairs, &p.name)
        })
        .collect()
}

fn groups(m: &Model, notes: &mut Vec<String>) -> Vec<Value> {
    m.port_pair_groups
        .iter()
        .map(|g| {
            if g.health_check.is_some() {
                notes.push(format!("port pair group {}: health_check is sfc's (not exported)", g.name));
            }
            if g.tap_enabled && g.port_pairs.len() > 1 {
                notes.push(format!("port pair group {}: networking-sfc takes a tap group of one port pair only (exported as it is)", g.name));
            }
            if g.tap_sample != super::TapSample::default() {
                notes.push(format!("port pair group {}: tap sampling is sfc's (not exported: networking-sfc copies every packet)", g.name));
            }
            if g.failure_policy == FailurePolicy::FailOpen && !g.tap_enabled {
                notes.push(format!("port pair group {}: failure_policy fail_open is sfc's (not exported)", g.name));
            }
            let members: Vec<String> = g.port_pairs.iter().map(|&i| reference(&m.identities.port_pairs, &m.port_pairs[i].name)).collect();
            let fields = json!({
                "name": g.name,
                "port_pairs": members,
                "port_pair_group_parameters": {
                    "lb_fields": lb_fields(&g.name, g.lb_fields, notes),
                    "ppg_n_tuple_mapping": {"ingress_n_tuple": {}, "egress_n_tuple": g.egress_n_tuple.map_or_else(|| json!({}), |t| n_tuple(&t))},
                },
                "tap_enabled": g.tap_enabled,
            });
            with_identity(fields, &m.identities.port_pair_groups, &g.name)
        })
        .collect()
}

fn classifiers(m: &Model) -> Vec<Value> {
    // Those sfc made for the paths of service graphs come after the file's own.
    let made: std::collections::BTreeSet<usize> = m.port_chains.iter().filter(|c| !c.graph.is_empty()).flat_map(|c| c.flow_classifiers.iter().copied()).collect();
    m.flow_classifiers
        .iter()
        .enumerate()
        .filter(|(i, _)| !made.contains(i))
        .map(|(_, f)| {
            let (sp, dp) = (ports(f.source_ports), ports(f.destination_ports));
            let fields = json!({
                "name": f.name,
                "ethertype": match f.ethertype { Ethertype::IPv4 => "IPv4", Ethertype::IPv6 => "IPv6" },
                "protocol": f.protocol.map(protocol_name),
                "source_ip_prefix": prefix(&f.source_prefix),
                "destination_ip_prefix": prefix(&f.destination_prefix),
                "source_port_range_min": sp.0,
                "source_port_range_max": sp.1,
                "destination_port_range_min": dp.0,
                "destination_port_range_max": dp.1,
                "logical_source_port": Some(f.logical_source_port.as_str()).filter(|p| !p.is_empty()).map(|p| port(m, p)),
                "logical_destination_port": f.logical_destination_port.as_deref().map(|p| port(m, p)),
                "l7_parameters": {},
            });
            with_identity(fields, &m.identities.flow_classifiers, &f.name)
        })
        .collect()
}

/// The file's service graphs, references by id where the chains have one.
fn graphs(m: &Model) -> Vec<Value> {
    m.service_graphs
        .iter()
        .map(|g| {
            let chain = |i: usize| reference(&m.identities.port_chains, &m.port_chains[i].name);
            let map: serde_json::Map<String, Value> = g.branches.iter().map(|(src, to)| (chain(*src), json!(to.iter().map(|&d| chain(d)).collect::<Vec<_>>()))).collect();
            let mut o = serde_json::Map::new();
            o.insert("name".into(), json!(g.name));
            if let Some(id) = &g.id {
                o.insert("id".into(), json!(id));
            }
            o.insert("description".into(), json!(g.description.clone().unwrap_or_default()));
            o.insert("port_chains".into(), Value::Object(map));
            Value::Object(o)
        })
        .collect()
}

/// The file's own chains: not the paths sfc makes of its service graphs.
fn own_chains(m: &Model) -> impl Iterator<Item = &super::PortChain> {
    m.port_chains.iter().filter(|c| c.graph.is_empty())
}

fn chains(m: &Model, notes: &mut Vec<String>) -> Vec<Value> {
    own_chains(m)
        .map(|c| {
            let groups: Vec<String> =
                c.port_pair_groups.iter().map(|&i| reference(&m.identities.port_pair_groups, &m.port_pair_groups[i].name)).collect();
            let fcs: Vec<String> =
                c.flow_classifiers.iter().map(|&i| reference(&m.identities.flow_classifiers, &m.flow_classifiers[i].name)).collect();
            let fields = json!({
                "name": c.name,
                "chain_id": c.chain_id,
                "port_pair_groups": groups,
                "flow_classifiers": fcs,
                // The chain's own, else its SFC-aware members' (networking-sfc matches them),
                // else networking-sfc's default (how its OVS driver carries the chain).
                "chain_parameters": {"correlation": chain_correlation(m, c, notes), "symmetric": c.symmetric},
            });
            with_identity(fields, &m.identities.port_chains, &c.name)
        })
        .collect()
}

fn chain_correlation(m: &Model, c: &super::PortChain, notes: &mut Vec<String>) -> &'static str {
    let kinds: std::collections::BTreeSet<&str> = c
        .port_pair_groups
        .iter()
        .flat_map(|&g| m.port_pair_groups[g].port_pairs.iter())
        .filter_map(|&p| m.port_pairs[p].aware.correlation.header())
        .collect();
    if kinds.len() > 1 {
        notes.push(format!("port chain {}: its members mix MPLS and NSH, which networking-sfc refuses in one chain", c.name));
    }
    let members = c.port_pair_groups.iter().flat_map(|&g| m.port_pair_groups[g].port_pairs.iter()).map(|&p| m.port_pairs[p].aware.correlation);
    let kind = if c.correlation == super::Correlation::None { members.into_iter().find(|k| *k != super::Correlation::None) } else { Some(c.correlation) };
    match kind {
        Some(super::Correlation::Nsh) => "nsh",
        _ => "mpls",
    }
}

/// networking-sfc's names of the hashed fields (`[]`: its default). Its ports are per protocol:
/// sfc's L4 bits hash the same bytes for TCP and UDP, so both are written.
fn lb_fields(group: &str, bits: u32, notes: &mut Vec<String>) -> Vec<&'static str> {
    if bits == LB_DEFAULT {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (bit, names) in [
        (LB_IP_SRC, &["ip_src"][..]),
        (LB_IP_DST, &["ip_dst"]),
        (LB_L4_SRC, &["tcp_src", "udp_src"]),
        (LB_L4_DST, &["tcp_dst", "udp_dst"]),
    ] {
        if bits & bit != 0 {
            out.extend_from_slice(names);
        }
    }
    if bits & LB_IP_PROTO != 0 {
        notes.push(format!("port pair group {group}: lb_fields ip_proto has no networking-sfc name (not exported)"));
    }
    out
}

/// A NAT-ing group's output tuple: only the fields it rewrites.
fn n_tuple(t: &NTuple) -> Value {
    let mut out = serde_json::Map::new();
    for (field, p) in [("source_ip_prefix", t.source_prefix), ("destination_ip_prefix", t.destination_prefix)] {
        if let Some(p) = p {
            out.insert(field.to_owned(), json!(p.to_string()));
        }
    }
    for (dir, r) in [("source", t.source_ports), ("destination", t.destination_ports)] {
        if let Some(r) = r {
            out.insert(format!("{dir}_port_range_min"), json!(r.min));
            out.insert(format!("{dir}_port_range_max"), json!(r.max));
        }
    }
    Value::Object(out)
}

/// A prefix as networking-sfc writes it; `None` for "any".
fn prefix(p: &Prefix) -> Option<String> {
    (p.len != 0).then(|| p.to_string())
}

/// A port range as networking-sfc writes it; `None`s for "any".
fn ports(r: PortRange) -> (Option<u16>, Option<u16>) {
    if r == PortRange::ANY { (None, None) } else { (Some(r.min), Some(r.max)) }
}
