//! Classifiers that compete for the same packets.
//!
//! Two classifiers in use overlap when some packet arriving on their (common) logical source port
//! matches both. That is fine when one is strictly more specific (it wins, as a longest-prefix
//! match would), or when both lead to the same place (same chain, same destination). Anything
//! else would make the chain a packet enters depend on table order, so it is rejected with both
//! names and a packet that matches both. networking-sfc rejects every overlap between chains;
//! allowing the nested case is what lets "web traffic to pc2, the rest of 10.0.0.0/8 to pc1" be
//! written at all.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use super::{
    Ethertype, FlowClassifier, PortChain, Prefix, carries_ports, protocol_name,
    checker::{Checker, PC},
};

/// Classifier references grouped by (logical source port, ethertype): (classifier, chain, line).
type Buckets<'a> = BTreeMap<(&'a str, Ethertype), Vec<(usize, usize, u32)>>;

/// Reports ambiguous overlaps between the classifiers chains use (`broken` ones, which already
/// have a problem, are left out).
/// Where each chain refers to its classifiers: (classifier index, line of the reference).
pub(super) type ClassifierRefs = Vec<Vec<(usize, u32)>>;

pub(super) fn check(c: &mut Checker, classifiers: &[FlowClassifier], chains: &[PortChain], refs: &ClassifierRefs, broken: &[bool]) {
    // Only classifiers on the same port with the same ethertype can overlap: compare within those.
    let mut buckets: Buckets<'_> = BTreeMap::new();
    for (ci, r) in refs.iter().enumerate() {
        for &(fi, line) in r {
            if broken.get(fi).copied().unwrap_or(true) {
                continue;
            }
            // Without a logical source port (a graph's destination chain) it is matched only at a
            // branch, where `graph` checks it.
            let Some(f) = classifiers.get(fi).filter(|f| !f.logical_source_port.is_empty()) else { continue };
            buckets.entry((f.logical_source_port.as_str(), f.ethertype)).or_default().push((fi, ci, line));
        }
    }
    for users in buckets.values() {
        // Prefixes overlap only by nesting, so each classifier need only meet those whose
        // destination prefix is its own cut to some length: with many distinct destinations (the
        // large configurations) that is linear, not a comparison of every pair.
        let dst = |pos: usize| classifiers[users[pos].0].destination_prefix;
        let mut by_prefix: BTreeMap<(u8, [u8; 16]), Vec<usize>> = BTreeMap::new();
        for pos in 0..users.len() {
            let p = dst(pos);
            by_prefix.entry((p.len, p.addr)).or_default().push(pos);
        }
        // Only the lengths some destination has can hold one (one length, not 33, for host
        // routes).
        let lengths: std::collections::BTreeSet<u8> = by_prefix.keys().map(|(len, _)| *len).collect();
        for pos in 0..users.len() {
            let p = dst(pos);
            for &len in lengths.range(..=p.len) {
                let cut = Prefix { len, ..p }.masked();
                for &other in by_prefix.get(&(len, cut.addr)).into_iter().flatten() {
                    // Shorter prefixes are met from the longer side only, equal ones once.
                    if len < p.len || other < pos {
                        let (x, y) = (other.min(pos), other.max(pos));
                        compare(c, classifiers, chains, users[x], users[y]);
                    }
                }
            }
        }
    }
}

/// Reports `b` (the later reference) if it overlaps `a` ambiguously.
fn compare(c: &mut Checker, classifiers: &[FlowClassifier], chains: &[PortChain], a: (usize, usize, u32), b: (usize, usize, u32)) {
    let ((a, ca, _), (b, cb, line_b)) = (a, b);
    let (fa, fb) = (&classifiers[a], &classifiers[b]);
    if !fa.overlaps(fb) {
        return;
    }
    let same_target = ca == cb && fa.logical_destination_port == fb.logical_destination_port;
    let (a_in_b, b_in_a) = (fb.contains(fa), fa.contains(fb));
    if same_target || a_in_b != b_in_a {
        return;
    }
    let chain_a = &chains[ca].name;
    let mut msg = if a_in_b && b_in_a {
        format!("flow classifier '{}' matches exactly the same packets as flow classifier '{}' (chain '{chain_a}')", fb.name, fa.name)
    } else {
        format!(
            "flow classifier '{}' overlaps flow classifier '{}' (chain '{chain_a}') and neither is more specific: {} arriving on '{}' matches both",
            fb.name,
            fa.name,
            example(fa, fb),
            fa.logical_source_port
        )
    };
    if ca == cb {
        msg.push_str("; they deliver to different logical_destination_ports");
    }
    c.err(PC, &chains[cb].name, "flow_classifiers", line_b, msg);
}

/// A packet both classifiers match (they overlap, so nested prefixes and crossing port ranges).
fn example(a: &FlowClassifier, b: &FlowClassifier) -> String {
    let longer = |p: &Prefix, q: &Prefix| if p.len >= q.len { *p } else { *q };
    let (src, dst) = (longer(&a.source_prefix, &b.source_prefix), longer(&a.destination_prefix, &b.destination_prefix));
    let addr = |p: &Prefix| match p.ethertype {
        Ethertype::IPv4 => Ipv4Addr::new(p.addr[0], p.addr[1], p.addr[2], p.addr[3]).to_string(),
        Ethertype::IPv6 => Ipv6Addr::from(p.addr).to_string(),
    };
    match a.protocol.or(b.protocol) {
        Some(p) if carries_ports(p) => {
            let sport = a.source_ports.min.max(b.source_ports.min);
            let dport = a.destination_ports.min.max(b.destination_ports.min);
            format!("{} {} port {sport} -> {} port {dport}", protocol_name(p), addr(&src), addr(&dst))
        }
        Some(p) => format!("{} {} -> {}", protocol_name(p), addr(&src), addr(&dst)),
        None => format!("a packet {} -> {}", addr(&src), addr(&dst)),
    }
}
