//! Service graphs (networking-sfc's `service_graphs`): traffic that leaves the last hop of a
//! source chain enters the destination chain whose classifiers it matches, else it goes where
//! the source chain's traffic goes.
//!
//! sfc compiles a graph away: every path through it (`pc1 -> pc2`, `pc1 -> pc2 -> pc4`) becomes
//! a chain of its own (`PortChain::graph`), crossing the groups of each chain in turn, with the
//! intersections of their classifiers (on the first chain's logical source port). Such a
//! classifier is inside the first chain's, so the most specific match sends a packet down the
//! longest path it matches, and a packet that matches no branch stays on the source chain. The
//! datapath needs nothing new: a path is one chain to it, and it is updated with the rest of the
//! file in one flip. The branch decision is made where the packet enters, on the tuple it
//! carries there; networking-sfc makes it at the source chain's last hop, on the packet as that
//! member sent it, which is the same tuple for SFC-unaware functions (a NAT-ing group translates
//! the later classifiers, as on any chain).
//!
//! Validated as networking-sfc does: known chains, no chain in two graphs, no chain twice at one
//! branch, no loop, no symmetric chain, and the classifiers of a branch's destination chains
//! disjoint. A destination chain's classifiers may leave out `logical_source_port`: they are only
//! matched at the branch.

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::{
    limits::{MAX_CHAINS, MAX_CHAIN_ID, MAX_HOPS},
    maps::MAX_TAPS_IN_A_ROW,
};

use super::{
    FlowClassifier, Model, PortChain, PortRange, Prefix, ServiceGraph,
    checker::{Checker, FC},
};
use crate::config::{ConfigFile, line};

const SG: &str = "service_graphs";
/// The most paths (chains made of graphs) a file may produce.
const MAX_PATHS: usize = 1024;

/// The graphs of `cfg` over `chains`; problems go into `c`.
pub(super) fn graphs(c: &mut Checker, cfg: &ConfigFile, chains: &[PortChain], classifiers: &[FlowClassifier]) -> Vec<ServiceGraph> {
    let by_name: BTreeMap<&str, usize> = chains.iter().enumerate().map(|(i, ch)| (ch.name.as_str(), i)).collect();
    let mut out = Vec::new();
    let mut in_graph: BTreeMap<usize, String> = BTreeMap::new();
    let mut names = BTreeSet::new();
    for (gi, s) in cfg.service_graphs.iter().enumerate() {
        let g = &s.value;
        let name = g.name.as_ref().map_or_else(|| format!("#{gi}"), |n| n.value.trim().to_owned());
        if g.name.is_none() {
            c.err(SG, &name, "name", line(s), "required field is missing (the graph's name)");
        } else if !names.insert(name.clone()) {
            c.err(SG, &name, "name", line(s), format!("graph '{name}' is given twice"));
        }
        let Some(map) = &g.port_chains else {
            c.err(SG, &name, "port_chains", line(s), "required field is missing (source chain: [destination chains])");
            continue;
        };
        if map.value.is_empty() {
            c.err(SG, &name, "port_chains", line(map), "a graph needs at least one source chain");
        }
        let mut branches = Vec::new();
        let mut mine = BTreeSet::new();
        let mut chain = |c: &mut Checker, n: &str, at: u32| -> Option<usize> {
            let Some(&i) = by_name.get(n.trim()) else {
                c.err(SG, &name, "port_chains", at, format!("unknown chain '{}'", n.trim()));
                return None;
            };
            if let Some(other) = in_graph.get(&i).filter(|o| **o != name) {
                c.err(SG, &name, "port_chains", at, format!("chain '{}' is already in graph '{other}' (a chain is in one graph at most)", n.trim()));
            }
            if chains[i].symmetric {
                c.err(SG, &name, "port_chains", at, format!("chain '{}' is symmetric: service graphs take asymmetric chains only (as networking-sfc)", n.trim()));
            }
            mine.insert(i);
            Some(i)
        };
        for (src, dsts) in &map.value {
            let at = line(dsts);
            let Some(si) = chain(c, src, at) else { continue };
            if dsts.value.is_empty() {
                c.err(SG, &name, "port_chains", at, format!("source chain '{src}' has no destination chain"));
            }
            let mut to = Vec::new();
            for d in &dsts.value {
                let Some(di) = chain(c, &d.value, line(d)) else { continue };
                if to.contains(&di) {
                    c.err(SG, &name, "port_chains", line(d), format!("chain '{}' is listed twice at the branch of '{src}'", d.value.trim()));
                    continue;
                }
                to.push(di);
            }
            disjoint(c, &name, at, src, &to, chains, classifiers);
            branches.push((si, to));
        }
        for i in mine {
            in_graph.entry(i).or_insert_with(|| name.clone());
        }
        out.push(ServiceGraph {
            name,
            id: g.id.as_ref().map(|v| v.value.trim().to_ascii_lowercase()),
            description: g.description.as_ref().map(|v| v.value.clone()),
            branches,
        });
    }
    loops(c, &out, chains);
    out
}

/// The classifiers of a branch's destination chains must not overlap: a packet would have two
/// ways to go (networking-sfc's rule; their logical source ports do not count).
fn disjoint(c: &mut Checker, graph: &str, at: u32, src: &str, to: &[usize], chains: &[PortChain], classifiers: &[FlowClassifier]) {
    let fcs: Vec<(usize, usize)> = to.iter().flat_map(|&d| chains[d].flow_classifiers.iter().map(move |&f| (d, f))).collect();
    for (k, &(da, fa)) in fcs.iter().enumerate() {
        for &(db, fb) in &fcs[k + 1..] {
            let (a, b) = (&classifiers[fa], &classifiers[fb]);
            if da != db && intersect(a, b).is_some() {
                c.err(SG, graph, "port_chains", at, format!(
                    "at the branch of '{src}', classifier '{}' of chain '{}' and '{}' of chain '{}' overlap: a packet matching both would have two ways to go",
                    a.name, chains[da].name, b.name, chains[db].name
                ));
            }
        }
    }
}

/// No chain may lead back to itself through the graphs: a depth-first walk that keeps the
/// chains on its current path, each chain walked from once (linear in chains and branches).
fn loops(c: &mut Checker, graphs: &[ServiceGraph], chains: &[PortChain]) {
    let edges = edges(graphs);
    let mut done: BTreeSet<usize> = BTreeSet::new();
    for &start in edges.keys() {
        if done.contains(&start) {
            continue;
        }
        // (chain, next branch to follow); `path` is the chains on the stack.
        let mut stack = vec![(start, 0usize)];
        let mut path = vec![start];
        while let Some((at, k)) = stack.last_mut() {
            let next = edges.get(at).and_then(|to| to.get(*k)).copied();
            *k += 1;
            match next {
                None => {
                    done.insert(*at);
                    stack.pop();
                    path.pop();
                }
                Some(n) if path.contains(&n) => {
                    let from = path.iter().position(|&x| x == n).unwrap_or(0);
                    let names: Vec<&str> = path[from..].iter().chain([&n]).map(|&i| chains[i].name.as_str()).collect();
                    let graph = graphs.iter().find(|g| g.branches.iter().any(|(s, _)| *s == n)).map_or("", |g| g.name.as_str());
                    c.err(SG, graph, "port_chains", 0, format!("a loop: {}", names.join(" -> ")));
                    return;
                }
                Some(n) if done.contains(&n) => {}
                Some(n) => {
                    stack.push((n, 0));
                    path.push(n);
                }
            }
        }
    }
}

fn edges(graphs: &[ServiceGraph]) -> BTreeMap<usize, Vec<usize>> {
    let mut edges: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for g in graphs {
        for (src, to) in &g.branches {
            edges.entry(*src).or_default().extend(to);
        }
    }
    edges
}

/// Classifiers without `logical_source_port` (`""`) are only matched at a branch: every chain
/// using one must be a graph's destination chain.
pub(super) fn check_sources(c: &mut Checker, cfg: &ConfigFile, graphs: &[ServiceGraph], chains: &[PortChain], classifiers: &[FlowClassifier]) {
    let destinations: BTreeSet<usize> = graphs.iter().flat_map(|g| g.branches.iter().flat_map(|(_, to)| to.iter().copied())).collect();
    for (i, f) in classifiers.iter().enumerate() {
        let Some(res) = cfg.flow_classifiers.get(i) else { continue };
        if !f.logical_source_port.is_empty() || res.value.logical_source_port.is_some() {
            continue;
        }
        let users: Vec<usize> = (0..chains.len()).filter(|&ci| chains[ci].flow_classifiers.contains(&i)).collect();
        if users.is_empty() || users.iter().any(|ci| !destinations.contains(ci)) {
            c.err(FC, &f.name, "logical_source_port", line(res), "required field is missing (the interface the traffic arrives on; only the classifiers of a service graph's destination chains may leave it out)");
        }
    }
}

/// What both `a` and `b` match, on `a`'s logical ports (`b`'s destination port when it has
/// one); `None` when nothing does.
pub fn intersect(a: &FlowClassifier, b: &FlowClassifier) -> Option<FlowClassifier> {
    if a.ethertype != b.ethertype {
        return None;
    }
    let protocol = match (a.protocol, b.protocol) {
        (Some(x), Some(y)) if x != y => return None,
        (x, y) => x.or(y),
    };
    let prefix = |x: Prefix, y: Prefix| -> Option<Prefix> {
        if x.contains(&y) {
            Some(y)
        } else if y.contains(&x) {
            Some(x)
        } else {
            None
        }
    };
    let ports = |x: PortRange, y: PortRange| -> Option<PortRange> {
        let r = PortRange { min: x.min.max(y.min), max: x.max.min(y.max) };
        (r.min <= r.max).then_some(r)
    };
    Some(FlowClassifier {
        name: format!("{}&{}", a.name, b.name),
        ethertype: a.ethertype,
        protocol,
        source_prefix: prefix(a.source_prefix, b.source_prefix)?,
        destination_prefix: prefix(a.destination_prefix, b.destination_prefix)?,
        source_ports: ports(a.source_ports, b.source_ports)?,
        destination_ports: ports(a.destination_ports, b.destination_ports)?,
        logical_source_port: a.logical_source_port.clone(),
        logical_destination_port: b.logical_destination_port.clone().or_else(|| a.logical_destination_port.clone()),
    })
}

/// Adds a chain for every path through the graphs (after the file's own chains and
/// classifiers), or says why it cannot.
pub(super) fn expand(m: &mut Model) -> Result<(), String> {
    let edges = edges(&m.service_graphs);
    let mut used: BTreeSet<u32> = m.port_chains.iter().map(|c| c.chain_id).collect();
    // The lowest free ids (networking-sfc's rule for chains without one): small enough for an
    // MPLS label on a path with an MPLS member whenever the file leaves one free.
    let mut next_id = 1u32;
    let user_chains = m.port_chains.len();
    let mut paths: Vec<Vec<usize>> = Vec::new();
    for start in 0..user_chains {
        let mut stack = vec![vec![start]];
        while let Some(path) = stack.pop() {
            let Some(&last) = path.last() else { continue };
            for &next in edges.get(&last).into_iter().flatten() {
                let mut p = path.clone();
                p.push(next);
                paths.push(p.clone());
                stack.push(p);
            }
            if paths.len() > MAX_PATHS {
                return Err(format!("the service graphs make more than {MAX_PATHS} paths"));
            }
        }
    }
    paths.sort();
    for path in paths {
        let chains: Vec<&PortChain> = path.iter().map(|&i| &m.port_chains[i]).collect();
        let name = chains.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join("->");
        let groups: Vec<usize> = chains.iter().flat_map(|c| c.port_pair_groups.iter().copied()).collect();
        if let Some(g) = groups.iter().enumerate().find(|(k, g)| groups[..*k].contains(g)).map(|(_, &g)| &m.port_pair_groups[g].name) {
            return Err(format!("the path {name} crosses group '{g}' twice (a port pair is used at most once per chain)"));
        }
        if groups.len() > MAX_HOPS {
            return Err(format!("the path {name} crosses {} groups, at most {MAX_HOPS} hops are supported", groups.len()));
        }
        // Tap groups in a row across the chains' boundaries (a fail-open group does not end a
        // row: it may be skipped), as `validate` counts them within a chain.
        let mut row = 0;
        for &g in &groups {
            let g = &m.port_pair_groups[g];
            row = if g.tap_enabled { row + 1 } else if g.failure_policy == super::FailurePolicy::FailOpen { row } else { 0 };
            if row > MAX_TAPS_IN_A_ROW {
                return Err(format!("the path {name} has more than {MAX_TAPS_IN_A_ROW} tap groups in a row"));
            }
        }
        // A NAT-ing group translates the later classifiers; a branch decided on the entry tuple
        // could not see what it rewrote.
        if let Some(g) = groups.iter().map(|&g| &m.port_pair_groups[g]).find(|g| g.egress_n_tuple.is_some()) {
            return Err(format!("the path {name} crosses NAT-ing group '{}': service graphs take chains without NAT-ing groups", g.name));
        }
        // Classifiers: the first chain's (those with a logical source port), cut by each next.
        let mut fcs: Vec<FlowClassifier> =
            chains[0].flow_classifiers.iter().map(|&i| m.flow_classifiers[i].clone()).filter(|f| !f.logical_source_port.is_empty()).collect();
        for c in &chains[1..] {
            fcs = fcs.iter().flat_map(|a| c.flow_classifiers.iter().filter_map(|&i| intersect(a, &m.flow_classifiers[i]))).collect();
        }
        if fcs.is_empty() {
            continue;
        }
        while used.contains(&next_id) {
            next_id += 1;
        }
        if next_id > MAX_CHAIN_ID || m.port_chains.len() >= MAX_CHAINS as usize {
            return Err(format!("the service graphs' paths and the file's chains are more than {MAX_CHAINS} chains"));
        }
        let mpls = groups.iter().flat_map(|&g| m.port_pair_groups[g].port_pairs.iter()).find(|&&p| m.port_pairs[p].aware.correlation == super::Correlation::Mpls);
        if let Some(&p) = mpls
            && next_id > super::aware::MAX_MPLS_CHAIN_ID
        {
            return Err(format!(
                "the path {name} has MPLS member '{}' but no chain id below {} is free for it (an MPLS label holds chain_id << 8 | SI in 20 bits)",
                m.port_pairs[p].name,
                super::aware::MAX_MPLS_CHAIN_ID + 1
            ));
        }
        used.insert(next_id);
        let first = m.flow_classifiers.len();
        m.flow_classifiers.extend(fcs);
        let template = chains[0];
        let chain = PortChain {
            name,
            chain_id: next_id,
            port_pair_groups: groups,
            flow_classifiers: (first..m.flow_classifiers.len()).collect(),
            symmetric: false,
            correlation: template.correlation,
            graph: path.iter().map(|&i| m.port_chains[i].name.clone()).collect(),
        };
        m.port_chains.push(chain);
    }
    Ok(())
}
