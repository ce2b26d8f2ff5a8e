//! `sfc explain`: which classifier, chain, members and interfaces a packet takes, answered from
//! the compiled map entries the way the kernel walks them (classifier trie, chain, per-group
//! Maglev table indexed by `flow_hash`). From a chain file (`-f`: nothing installed needed, the
//! interfaces get made-up indexes) or from the state saved by `sfc apply`. Never reads a map.

use std::{collections::BTreeMap, net::IpAddr, process::ExitCode};

use serde::Serialize;
use sfc_common::{
    hash::flow_hash,
    limits::LB_TABLE_SIZE,
    maps::{
        CHAIN_TAPS_SHIFT, FAIL_OPEN, FAMILY_V4, FAMILY_V6, FlowKey, LB_FIELDS,
        ROLE_SF_EGRESS, ROLE_SOURCE,
    },
};

use crate::{
    compile::{self, Compiled, IfaceFacts, Ids, LbKey, cls},
    datapath::Location,
    model::{Ethertype, Model, carries_ports, parse_protocol, protocol_name},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Answer from this chain file instead of the installed state (no kernel needed).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
    /// The interface the packet arrives on.
    #[arg(long = "in", value_name = "IFACE")]
    in_iface: String,
    /// IP protocol: tcp, udp, icmp, icmpv6, sctp, udplite or a number.
    #[arg(long, value_name = "P")]
    proto: String,
    /// Source address.
    #[arg(long, value_name = "A")]
    src: IpAddr,
    /// Destination address.
    #[arg(long, value_name = "B")]
    dst: IpAddr,
    /// Source port (protocols with ports only; 0 when not given).
    #[arg(long, value_name = "N")]
    sport: Option<u16>,
    /// Destination port (protocols with ports only; 0 when not given).
    #[arg(long, value_name = "M")]
    dport: Option<u16>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The packet, as given on the command line.
#[derive(Debug, Clone, Serialize)]
pub struct Packet {
    pub in_iface: String,
    pub protocol: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// The answer. `classifier` is `None` when no classifier matches: the packet is not touched.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub packet: Packet,
    pub classifier: Option<String>,
    pub chain: Option<ChainRef>,
    pub hops: Vec<Hop>,
    /// After the last hop: the `logical_destination_port`, or `None` (back to the host).
    pub deliver_to: Option<String>,
    /// Replies cross the same members backwards (symmetric chain).
    pub symmetric: bool,
    /// Why nothing happens, when nothing does.
    pub untouched_because: Option<String>,
    /// A path through a service graph: the graph and its chains in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_graph: Option<GraphPath>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphPath {
    pub graph: String,
    pub chains: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainRef {
    pub name: String,
    pub chain_id: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    /// 0-based; the service index is 255 - hop.
    #[serde(rename = "hop")]
    pub index: usize,
    pub group: String,
    pub lb_fields: Vec<&'static str>,
    pub hash: u32,
    pub bucket: u32,
    /// The member picked; `None` when the group has no member (then `skipped` or dropped).
    pub port_pair: Option<String>,
    pub ingress: Option<String>,
    pub egress: Option<String>,
    /// A fail-open group with no member: the hop is skipped.
    pub skipped: bool,
    /// A tap group: its member gets a copy (as the group samples), the packet goes on.
    pub tap: bool,
    /// A NAT-ing group: what its members rewrite (`ppg_n_tuple_mapping`), as `field value` pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrites: Option<String>,
    /// An SFC-aware member: the header it gets (`nsh`, `mpls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encap: Option<&'static str>,
}

/// Made-up interface facts for a pure explain: every interface the model names gets an index
/// (1, 2, ... in name order) and a MAC, as if all existed as veths.
pub fn synthetic_facts(model: &Model) -> BTreeMap<String, IfaceFacts> {
    let mut names: Vec<&str> = Vec::new();
    for p in &model.port_pairs {
        names.extend([p.ingress.as_str(), p.egress.as_str()]);
    }
    for f in &model.flow_classifiers {
        names.extend(Some(f.logical_source_port.as_str()).filter(|p| !p.is_empty()));
        names.extend(f.logical_destination_port.as_deref());
    }
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .zip(1u32..)
        .map(|(n, i)| {
            let b = i.to_be_bytes();
            let facts = IfaceFacts { ifindex: i, peer_mac: Some([0x02, 0, b[0], b[1], b[2], b[3]]), peer_in_other_netns: true, ..Default::default() };
            (n.to_owned(), facts)
        })
        .collect()
}

/// The flow key the kernel parser would build: IPv4 in the first 4 bytes of 16, ports big endian
/// and only for protocols that have them.
pub fn flow_key(p: &Packet, proto: u8) -> FlowKey {
    let mut k = FlowKey { proto, ..FlowKey::default() };
    for (out, a) in [(&mut k.src, p.src), (&mut k.dst, p.dst)] {
        match a {
            IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => *out = v6.octets(),
        }
    }
    k.family = if p.src.is_ipv6() { FAMILY_V6 } else { FAMILY_V4 };
    if carries_ports(proto) {
        k.sport = p.sport.to_be_bytes();
        k.dport = p.dport.to_be_bytes();
    }
    k
}

fn lb_names(bits: u32) -> Vec<&'static str> {
    LB_FIELDS
        .into_iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n)
        .collect()
}

fn reverse(m: &BTreeMap<String, u32>, id: u32) -> Option<String> {
    m.iter().find(|(_, v)| **v == id).map(|(n, _)| n.clone())
}

/// Explains `p` against a compiled state. `facts` names the interfaces (`compiled.names` too,
/// for the ones in use); `ids` names the port pairs and groups.
pub fn explain(model: &Model, compiled: &Compiled, facts: &BTreeMap<String, IfaceFacts>, ids: &Ids, p: &Packet, proto: u8) -> Explanation {
    let key = flow_key(p, proto);
    let mut out = Explanation {
        packet: p.clone(),
        classifier: None,
        chain: None,
        hops: Vec::new(),
        deliver_to: None,
        symmetric: false,
        untouched_because: None,
        service_graph: None,
    };
    let ifname = |i: u32| compiled.names.ifaces.get(&i).cloned().unwrap_or_else(|| format!("ifindex {i}"));
    let entry = facts.get(&p.in_iface).and_then(|f| compiled.ifaces.get(&f.ifindex).map(|e| (f.ifindex, e)));
    let Some(ifindex) = entry.filter(|(_, e)| e.roles & ROLE_SOURCE != 0).map(|(i, _)| i) else {
        let why = match entry {
            Some((_, e)) if e.roles & ROLE_SF_EGRESS != 0 => format!(
                "'{}' is a service function's egress, not a logical source port: packets there continue the flow they belong to (explain the flow from its logical source port)",
                p.in_iface
            ),
            _ => format!("'{}' is not the logical_source_port of any flow classifier in use", p.in_iface),
        };
        out.untouched_because = Some(why);
        return out;
    };
    let ethertype = if key.family == FAMILY_V6 { Ethertype::IPv6 } else { Ethertype::IPv4 };
    let res = cls::lookup(&compiled.cls, &compiled.cls_hash, ifindex, ethertype.value(), &key).and_then(|class| compiled.cls_res.get(&class));
    let Some(res) = res else {
        out.untouched_because = Some("no flow classifier matches".to_owned());
        return out;
    };
    out.classifier = usize::try_from(res.classifier)
        .ok()
        .and_then(|i| model.flow_classifiers.get(i))
        .or_else(|| shared_classifier(model, &p.in_iface, res.chain_id, &key))
        .map(|f| f.name.clone());
    let chain = model.chain_by_id(res.chain_id);
    out.chain = Some(ChainRef { name: chain.map_or_else(|| "?".to_owned(), |c| c.name.clone()), chain_id: res.chain_id });
    out.symmetric = chain.is_some_and(|c| c.symmetric);
    out.service_graph = chain.filter(|c| !c.graph.is_empty()).map(|c| {
        let first = model.port_chains.iter().position(|x| Some(&x.name) == c.graph.first());
        let graph = model.service_graphs.iter().find(|g| g.branches.iter().any(|(src, _)| Some(*src) == first));
        GraphPath { graph: graph.map_or_else(|| "?".to_owned(), |g| g.name.clone()), chains: c.graph.clone() }
    });
    out.deliver_to = (res.dst_ifindex != 0).then(|| ifname(res.dst_ifindex));
    let Some(entry) = compiled.chains.get(&res.chain_id) else { return out };
    let n_hops = (entry.n_hops as usize).min(entry.groups.len());
    for (h, &gid) in entry.groups[..n_hops].iter().enumerate() {
        let group = reverse(&ids.groups, gid).unwrap_or_else(|| format!("group #{gid}"));
        let g = compiled.groups.get(&gid).copied().unwrap_or_default();
        let hash = flow_hash(&key, g.lb_fields);
        let bucket = hash % LB_TABLE_SIZE;
        let member = (g.n_members > 0).then(|| compiled.lb.get(&LbKey { group: gid, bucket }).copied()).flatten();
        let pp = member.and_then(|id| compiled.port_pairs.get(&id));
        let rewrites = model.port_pair_groups.iter().find(|x| x.name == group).and_then(|x| x.egress_n_tuple).map(|t| rewrites(&t));
        let member_name = member.map(|id| reverse(&ids.port_pairs, id).unwrap_or_else(|| format!("port pair #{id}")));
        let encap = member_name.as_ref().and_then(|n| model.port_pairs.iter().find(|p| &p.name == n)).and_then(|p| p.aware.correlation.header());
        out.hops.push(Hop {
            index: h,
            group,
            lb_fields: lb_names(g.lb_fields),
            hash,
            bucket,
            port_pair: member_name,
            ingress: pp.map(|pp| ifname(pp.ingress_ifindex)),
            egress: pp.map(|pp| ifname(pp.egress_ifindex)),
            skipped: member.is_none() && g.failure_policy == FAIL_OPEN,
            tap: entry.flags >> CHAIN_TAPS_SHIFT & (1 << h) != 0,
            rewrites,
            encap,
        });
    }
    out
}

/// The classifier a packet matched when its result is shared by several
/// (`CLS_CLASSIFIER_SHARED`: they lead to the same chain and ports): the most specific of the
/// chain's classifiers on the port that match it.
/// (Any matching classifier on the port should the chain have none: the packet is steered, so
/// the answer must name one.)
fn shared_classifier<'a>(model: &'a Model, port: &str, chain_id: u32, key: &FlowKey) -> Option<&'a crate::model::FlowClassifier> {
    let matching = |i: &usize| model.flow_classifiers.get(*i).is_some_and(|f| f.logical_source_port == port && f.matches(key));
    let mine: std::collections::BTreeSet<usize> = model.chain_by_id(chain_id).into_iter().flat_map(|c| c.flow_classifiers.iter().copied()).filter(matching).collect();
    let set = if mine.is_empty() { (0..model.flow_classifiers.len()).filter(matching).collect() } else { mine };
    cls::most_specific(&set, &model.flow_classifiers).map(|i| &model.flow_classifiers[i])
}

fn print(e: &Explanation) {
    let p = &e.packet;
    let ports = |a: IpAddr, port: u16| match (carries_ports_name(&p.protocol), a) {
        (false, _) => a.to_string(),
        (true, IpAddr::V6(_)) => format!("[{a}]:{port}"),
        (true, IpAddr::V4(_)) => format!("{a}:{port}"),
    };
    println!("packet: {} {} -> {} arriving on {}", p.protocol, ports(p.src, p.sport), ports(p.dst, p.dport), p.in_iface);
    let (Some(fc), Some(chain)) = (&e.classifier, &e.chain) else {
        println!("no classifier matches: the packet is not touched");
        if let Some(why) = &e.untouched_because {
            println!("  ({why})");
        }
        return;
    };
    println!("classifier: {fc}");
    println!("chain: {} (chain_id {})", chain.name, chain.chain_id);
    if let Some(g) = &e.service_graph {
        println!("  a path through service graph {}: {} in turn (the packet matches a classifier of each)", g.graph, g.chains.join(", then "));
    }
    for h in &e.hops {
        let how = format!("hash {:#010x} on {} -> bucket {} of {LB_TABLE_SIZE}", h.hash, h.lb_fields.join(","), h.bucket);
        match (&h.port_pair, h.skipped) {
            (Some(pp), _) if h.tap => {
                println!("  hop {} tap group {}: a copy to {pp} ({how}), sent into {}; the packet goes on", h.index + 1, h.group, h.ingress.as_deref().unwrap_or("?"));
            }
            (None, _) if h.tap => println!("  hop {} tap group {}: no member up: no copy", h.index + 1, h.group),
            (Some(pp), _) => {
                println!("  hop {} (SI {}) group {}: member {pp} ({how})", h.index + 1, 255 - h.index, h.group);
                let si = 255u32.saturating_sub(u32::try_from(h.index).unwrap_or(255));
                let header = match h.encap {
                    Some("nsh") => format!(" with an NSH header (SPI {}, SI {si})", chain.chain_id),
                    Some(_) => format!(" with an MPLS label ({:#x}: chain {} << 8 | SI {si})", (chain.chain_id << 8) | si, chain.chain_id),
                    None => String::new(),
                };
                println!(
                    "      sent into {}{header}, comes back on {}{}",
                    h.ingress.as_deref().unwrap_or("?"),
                    h.egress.as_deref().unwrap_or("?"),
                    if h.encap.is_some() { " with the SI the function chose (one lower: the next hop)" } else { "" }
                );
            }
            (None, true) if h.rewrites.is_some() => println!("  hop {} (SI {}) group {}: no member up, fail-open: hop skipped (nothing rewritten)", h.index + 1, 255 - h.index, h.group),
            (None, true) => println!("  hop {} (SI {}) group {}: no member up, fail-open: hop skipped", h.index + 1, 255 - h.index, h.group),
            (None, false) => println!("  hop {} (SI {}) group {}: no member up, fail-closed: dropped", h.index + 1, 255 - h.index, h.group),
        }
    }
    if let Some(nat) = e.hops.iter().find(|h| h.rewrites.is_some() && h.port_pair.is_some()) {
        println!(
            "note: group {} rewrites {}: what comes back from it is matched by the rewritten tuple, and later groups pick their member by it (the members above are picked by this packet's tuple)",
            nat.group,
            nat.rewrites.as_deref().unwrap_or_default()
        );
    }
    match &e.deliver_to {
        Some(d) => println!("then: delivered to {d}"),
        None => println!("then: handed back to the host (ordinary switching/routing)"),
    }
    if e.symmetric {
        let back: Vec<&str> = e.hops.iter().rev().filter(|h| !h.tap).filter_map(|h| h.port_pair.as_deref()).collect();
        println!(
            "replies (symmetric chain): arrive on {}, cross {} backwards (into each egress, back from its ingress), leave on {}",
            e.deliver_to.as_deref().unwrap_or("?"),
            back.join(", "),
            p.in_iface
        );
    }
}

/// What a NAT-ing group's members rewrite: `source 203.0.113.7/32, source ports 1024-65535`.
fn rewrites(t: &crate::model::NTuple) -> String {
    let mut out = Vec::new();
    for (what, p) in [("source", t.source_prefix), ("destination", t.destination_prefix)] {
        out.extend(p.map(|p| format!("{what} to {p}")));
    }
    for (what, r) in [("source", t.source_ports), ("destination", t.destination_ports)] {
        out.extend(r.map(|r| if r.min == r.max { format!("{what} port to {}", r.min) } else { format!("{what} port to {}-{}", r.min, r.max) }));
    }
    out.join(", ")
}

fn carries_ports_name(proto: &str) -> bool {
    parse_protocol(proto).is_ok_and(carries_ports)
}

/// Checks the command line and builds the packet.
fn packet(a: &Args) -> anyhow::Result<(Packet, u8)> {
    let proto = parse_protocol(&a.proto).map_err(|m| super::exit::invalid!("--proto: {m}"))?;
    if a.src.is_ipv4() != a.dst.is_ipv4() {
        return Err(super::exit::invalid!("--src {} and --dst {} are of different address families", a.src, a.dst));
    }
    if !carries_ports(proto) && (a.sport.is_some() || a.dport.is_some()) {
        return Err(super::exit::invalid!("protocol {} has no ports: drop --sport/--dport", protocol_name(proto)));
    }
    let packet = Packet {
        in_iface: a.in_iface.clone(),
        protocol: protocol_name(proto),
        src: a.src,
        dst: a.dst,
        sport: a.sport.unwrap_or(0),
        dport: a.dport.unwrap_or(0),
    };
    Ok((packet, proto))
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    let (packet, proto) = packet(a)?;
    let (model, facts, ids, netns, down) = if let Some(path) = &a.file {
        let model = super::load_model(path)?;
        let facts = synthetic_facts(&model);
        let ids = Ids::by_index(&model);
        (model, facts, ids, None, std::collections::BTreeSet::new())
    } else {
        let state = crate::view::inspect::load_state(loc)?;
        let ids = if state.ids.port_pairs.is_empty() { Ids::by_index(&state.model) } else { state.ids.clone() };
        // Members installed down are out of their groups' tables: explain what the datapath does.
        let down: std::collections::BTreeSet<String> = state
            .model
            .port_pairs
            .iter()
            .filter(|p| state.down.contains(&p.name))
            .flat_map(|p| [p.ingress.clone(), p.egress.clone()])
            .collect();
        (std::sync::Arc::unwrap_or_clone(state.model), state.facts, ids, state.netns, down)
    };
    // Installed state: what was absent at the last apply (`sfc run`) is absent here too.
    let absent_ok = a.file.is_none();
    let inputs = compile::Inputs { facts: &facts, netns: netns.as_deref(), ids: ids.clone(), down_ifaces: down, draining: std::collections::BTreeMap::new(), absent_ok, overlay: None, class_ids: None, stats_slots: compile::slots::Slots::new() };
    let compiled = compile::compile_with(&model, &inputs)
        .map_err(|errs| anyhow::anyhow!("{}", errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))?;
    let e = explain(&model, &compiled, &facts, &ids, &packet, proto);
    if a.json {
        println!("{}", serde_json::to_string(&e)?);
    } else {
        print(&e);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::{config, model};

    const FILE: &str = "
port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out}
  - {name: pp2, ingress: sf2-in, egress: sf2-out, weight: 3}
  - {name: pp3, ingress: sf3-in, egress: sf3-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1, pp2]}
  - {name: pg2, port_pairs: [pp3], lb_fields: [ip_src]}
flow_classifiers:
  - {name: web, protocol: tcp, destination_ip_prefix: 10.0.0.20/32, destination_port_range_min: 80,
     destination_port_range_max: 80, logical_source_port: src, logical_destination_port: dst}
  - {name: net, destination_ip_prefix: 10.0.0.0/8, logical_source_port: src}
port_chains:
  - {name: pc1, port_pair_groups: [pg1, pg2], flow_classifiers: [web], chain_parameters: {symmetric: true}}
  - {name: pc2, chain_id: 7, port_pair_groups: [pg2], flow_classifiers: [net]}
";

    fn run(p: &Packet) -> Explanation {
        run_file(FILE, p)
    }

    fn run_file(file: &str, p: &Packet) -> Explanation {
        let model = model::validate(&config::parse("t", file).expect("parses")).expect("valid");
        let facts = synthetic_facts(&model);
        let ids = Ids::by_index(&model);
        let compiled = compile::compile(&model, &facts, None).expect("compiles");
        let proto = parse_protocol(&p.protocol).expect("protocol");
        explain(&model, &compiled, &facts, &ids, p, proto)
    }

    fn tcp(in_iface: &str, dst: [u8; 4], dport: u16) -> Packet {
        Packet {
            in_iface: in_iface.to_owned(),
            protocol: "tcp".to_owned(),
            src: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)),
            dst: IpAddr::V4(Ipv4Addr::from(dst)),
            sport: 40_000,
            dport,
        }
    }

    #[test]
    fn web_traffic_takes_the_specific_classifier_and_both_hops() {
        let e = run(&tcp("src", [10, 0, 0, 20], 80));
        assert_eq!(e.classifier.as_deref(), Some("web"));
        assert_eq!(e.chain.as_ref().map(|c| (c.name.as_str(), c.chain_id)), Some(("pc1", 1)));
        assert_eq!(e.hops.iter().map(|h| h.group.as_str()).collect::<Vec<_>>(), ["pg1", "pg2"]);
        assert!(matches!(e.hops[0].port_pair.as_deref(), Some("pp1" | "pp2")));
        assert_eq!(e.hops[1].port_pair.as_deref(), Some("pp3"));
        assert_eq!((e.hops[1].ingress.as_deref(), e.hops[1].egress.as_deref()), (Some("sf3-in"), Some("sf3-out")));
        assert_eq!(e.deliver_to.as_deref(), Some("dst"));
        assert!(e.symmetric);
    }

    #[test]
    fn the_member_is_the_maglev_bucket_of_the_kernel_hash() {
        let p = tcp("src", [10, 0, 0, 20], 80);
        let e = run(&p);
        let key = flow_key(&p, 6);
        assert_eq!(key.family, FAMILY_V4);
        assert_eq!(&key.dst[..4], &[10, 0, 0, 20]);
        assert_eq!(key.dport, [0, 80]);
        let h = flow_hash(&key, sfc_common::maps::LB_DEFAULT);
        assert_eq!((e.hops[0].hash, e.hops[0].bucket), (h, h % LB_TABLE_SIZE));
        // Same table as compile builds, so same pick.
        let t = crate::maglev::table(
            &[
                crate::maglev::Member { id: 0, name: "pp1", weight: 1 },
                crate::maglev::Member { id: 1, name: "pp2", weight: 3 },
            ],
            LB_TABLE_SIZE,
        );
        let want = if t[h as usize % t.len()] == 0 { "pp1" } else { "pp2" };
        assert_eq!(e.hops[0].port_pair.as_deref(), Some(want));
    }

    #[test]
    fn other_traffic_to_10_8_takes_the_broad_classifier() {
        let e = run(&tcp("src", [10, 9, 9, 9], 22));
        assert_eq!(e.classifier.as_deref(), Some("net"));
        assert_eq!(e.chain.as_ref().map(|c| c.chain_id), Some(7));
        assert_eq!(e.deliver_to, None);
        assert!(!e.symmetric);
    }

    /// Two classifiers into one chain with the same ports share their classes down to the
    /// result, which then names neither: explain finds the one the packet matched.
    #[test]
    fn a_shared_result_names_the_classifier_the_packet_matched() {
        let file = FILE.replace(
            "flow_classifiers: [net]}",
            "flow_classifiers: [net, lan]}",
        )
        .replace(
            "  - {name: net, destination_ip_prefix: 10.0.0.0/8, logical_source_port: src}",
            "  - {name: net, destination_ip_prefix: 10.0.0.0/8, logical_source_port: src}\n  - {name: lan, destination_ip_prefix: 192.168.0.0/16, logical_source_port: src}",
        );
        let model = model::validate(&config::parse("t", &file).expect("parses")).expect("valid");
        let compiled = compile::compile(&model, &synthetic_facts(&model), None).expect("compiles");
        assert!(compiled.cls_res.values().any(|r| r.chain_id == 7 && r.classifier == sfc_common::maps::CLS_CLASSIFIER_SHARED), "the two share a result");
        for (dst, want) in [([10, 9, 9, 9], "net"), ([192, 168, 3, 4], "lan")] {
            let e = run_file(&file, &tcp("src", dst, 22));
            assert_eq!((e.classifier.as_deref(), e.chain.as_ref().map(|c| c.chain_id)), (Some(want), Some(7)));
        }
        assert_eq!(run_file(&file, &tcp("src", [10, 0, 0, 20], 80)).classifier.as_deref(), Some("web"));
    }

    #[test]
    fn unmatched_packets_are_not_touched() {
        let e = run(&tcp("src", [11, 0, 0, 1], 80));
        assert!(e.classifier.is_none() && e.hops.is_empty());
        assert_eq!(e.untouched_because.as_deref(), Some("no flow classifier matches"));
        let e = run(&tcp("elsewhere", [10, 0, 0, 20], 80));
        assert!(e.untouched_because.is_some_and(|w| w.contains("not the logical_source_port")));
        let e = run(&tcp("sf1-out", [10, 0, 0, 20], 80));
        assert!(e.untouched_because.is_some_and(|w| w.contains("egress")));
    }

    #[test]
    fn ports_only_exist_for_protocols_that_have_them() {
        let p = Packet { protocol: "icmp".to_owned(), sport: 5, dport: 6, ..tcp("src", [10, 0, 0, 20], 80) };
        let k = flow_key(&p, 1);
        assert_eq!((k.sport, k.dport), ([0, 0], [0, 0]));
        // icmp to 10.0.0.20 is not web (tcp) but is in 10/8.
        assert_eq!(run(&p).classifier.as_deref(), Some("net"));
    }

    #[test]
    fn a_nat_ing_hop_says_what_its_members_rewrite() {
        let file = FILE.replace("{name: pg1, port_pairs: [pp1, pp2]}", "{name: pg1, port_pairs: [pp1, pp2], ppg_n_tuple_mapping: {egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}}}");
        let e = run_file(&file, &tcp("src", [10, 0, 0, 20], 80));
        let rewrites: Vec<Option<&str>> = e.hops.iter().map(|h| h.rewrites.as_deref()).collect();
        assert_eq!(rewrites, [Some("source to 10.9.9.9/32"), None]);
    }

    #[test]
    fn synthetic_facts_cover_every_interface_once() {
        let model = model::validate(&config::parse("t", FILE).expect("parses")).expect("valid");
        let f = synthetic_facts(&model);
        assert_eq!(f.len(), 8);
        let mut idx: Vec<u32> = f.values().map(|x| x.ifindex).collect();
        idx.sort_unstable();
        assert_eq!(idx, (1..=8).collect::<Vec<_>>());
    }
}
