//! The classifier tables against a plain matcher: for random classifier sets and packets, the
//! trie walk over the compiled entries (the kernel's rule, `compile::cls::lookup`) must end in the
//! class whose set is exactly the classifiers that match the packet, and a validated model must
//! send every packet to the chain of its most specific classifier.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use proptest::prelude::*;
use sfc::{
    compile::{self, IfaceFacts, cls, incr as cls_incr},
    config,
    model::{self, Ethertype, FlowClassifier, PortRange, Prefix},
};
use sfc_common::maps::{CLS_CLASSIFIER_SHARED, FAMILY_V4, FAMILY_V6, FlowKey};

const V4_PREFIXES: [&str; 6] = ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.168.0.0/16"];
const V6_PREFIXES: [&str; 4] = ["::/0", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::5/128"];
const RANGES: [(u16, u16); 6] = [(0, 65535), (80, 80), (0, 1023), (1024, 65535), (53, 80), (443, 8443)];
const PORTS: [u16; 10] = [0, 1, 53, 79, 80, 81, 443, 1023, 1024, 65535];
const PROTOS: [Option<u8>; 4] = [None, Some(6), Some(17), Some(1)];

fn v4_addrs() -> Vec<[u8; 16]> {
    let mut out = Vec::new();
    for a in [[10, 1, 2, 3], [10, 1, 2, 4], [10, 1, 3, 1], [10, 2, 0, 1], [11, 0, 0, 1], [192, 168, 5, 5], [0, 0, 0, 0]] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&a);
        out.push(b);
    }
    out
}

fn v6_addrs() -> Vec<[u8; 16]> {
    ["2001:db8:1::5", "2001:db8:1::6", "2001:db8:2::1", "2001:dead::1", "::"]
        .iter()
        .map(|s| s.parse::<std::net::Ipv6Addr>().expect("address").octets())
        .collect()
}

#[derive(Debug, Clone)]
struct Spec {
    v6: bool,
    src: usize,
    dst: usize,
    proto: usize,
    sports: usize,
    dports: usize,
    port: usize,
}

fn spec() -> impl Strategy<Value = Spec> {
    (prop::bool::weighted(0.25), 0..6usize, 0..6usize, 0..4usize, 0..6usize, 0..6usize, 0..2usize)
        .prop_map(|(v6, src, dst, proto, sports, dports, port)| Spec { v6, src, dst, proto, sports, dports, port })
}

fn classifier(i: usize, s: &Spec) -> FlowClassifier {
    let (ethertype, pool): (Ethertype, &[&str]) = if s.v6 { (Ethertype::IPv6, &V6_PREFIXES) } else { (Ethertype::IPv4, &V4_PREFIXES) };
    // ICMP is a different protocol number in IPv6.
    let protocol = PROTOS[s.proto].map(|p| if p == 1 && s.v6 { 58 } else { p });
    let ports = |r: usize| {
        if matches!(protocol, Some(6 | 17)) { PortRange { min: RANGES[r].0, max: RANGES[r].1 } } else { PortRange::ANY }
    };
    FlowClassifier {
        name: format!("fc{i}"),
        ethertype,
        protocol,
        source_prefix: Prefix::parse(pool[s.src % pool.len()]).expect("prefix"),
        destination_prefix: Prefix::parse(pool[s.dst % pool.len()]).expect("prefix"),
        source_ports: ports(s.sports),
        destination_ports: ports(s.dports),
        logical_source_port: ["s1", "s2"][s.port].to_owned(),
        logical_destination_port: None,
    }
}

#[derive(Debug, Clone)]
struct Pkt {
    ifindex: u32,
    key: FlowKey,
}

fn packet() -> impl Strategy<Value = Pkt> {
    (1u32..=3, prop::bool::weighted(0.25), 0..7usize, 0..7usize, 0..4usize, 0..10usize, 0..10usize).prop_map(
        |(ifindex, v6, s, d, p, sp, dp)| {
            let pool = if v6 { v6_addrs() } else { v4_addrs() };
            let proto = [1u8, 6, 17, 58][p];
            let mut key = FlowKey {
                src: pool[s % pool.len()],
                dst: pool[d % pool.len()],
                proto,
                family: if v6 { FAMILY_V6 } else { FAMILY_V4 },
                ..FlowKey::default()
            };
            // The kernel parser fills ports only for protocols that have them.
            if matches!(proto, 6 | 17) {
                key.sport = PORTS[sp].to_be_bytes();
                key.dport = PORTS[dp].to_be_bytes();
            }
            Pkt { ifindex, key }
        },
    )
}

fn ifindex_of(port: &str) -> u32 {
    if port == "s1" { 1 } else { 2 }
}

fn ethertype(key: &FlowKey) -> u16 {
    if key.family == FAMILY_V6 { 0x86dd } else { 0x0800 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]

    /// The trie's final set is exactly the set of matching classifiers.
    #[test]
    fn trie_walk_finds_exactly_the_matching_classifiers(
        specs in prop::collection::vec(spec(), 1..10),
        before in prop::collection::vec(spec(), 0..10),
        packets in prop::collection::vec(packet(), 48),
    ) {
        let fcs: Vec<FlowClassifier> = specs.iter().enumerate().map(|(i, s)| classifier(i, s)).collect();
        let input: Vec<(usize, &FlowClassifier, u32)> =
            fcs.iter().enumerate().map(|(i, f)| (i, f, ifindex_of(&f.logical_source_port))).collect();
        // Numbered after an earlier compile of other classifiers under the same names (the
        // numbers it reuses must not change what a packet finds).
        let old: Vec<FlowClassifier> = before.iter().enumerate().map(|(i, s)| classifier(i, s)).collect();
        let old_input: Vec<(usize, &FlowClassifier, u32)> =
            old.iter().enumerate().map(|(i, f)| (i, f, ifindex_of(&f.logical_source_port))).collect();
        let tables = cls::compile_stable(&input, &cls::compile(&old_input).ids);
        prop_assert!(cls::canonical(&tables.entries));
        for p in &packets {
            let want: BTreeSet<usize> = fcs
                .iter()
                .enumerate()
                .filter(|(_, f)| ifindex_of(&f.logical_source_port) == p.ifindex && f.matches(&p.key))
                .map(|(i, _)| i)
                .collect();
            let got = cls::lookup(&tables.entries, &tables.hash, p.ifindex, ethertype(&p.key), &p.key).map(|c| tables.finals[&c].clone());
            if want.is_empty() {
                prop_assert_eq!(got, None, "{:?}", p);
            } else {
                prop_assert_eq!(got, Some(want), "{:?}", p);
            }
        }
    }
}

/// Interfaces of a test file, with made-up indexes (`s1` = 1, `s2` = 2 as above).
fn facts(model: &model::Model) -> BTreeMap<String, IfaceFacts> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for p in &model.port_pairs {
        names.extend([p.ingress.clone(), p.egress.clone()]);
    }
    for f in &model.flow_classifiers {
        names.insert(f.logical_source_port.clone());
        names.extend(f.logical_destination_port.clone());
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let ifindex = match n.as_str() {
                "s1" => 1,
                "s2" => 2,
                _ => 10 + u32::try_from(i).expect("few interfaces"),
            };
            (n, IfaceFacts { ifindex, peer_mac: Some([2, 0, 0, 0, 0, 1]), peer_in_other_netns: true, ..Default::default() })
        })
        .collect()
}

fn yaml_classifier(f: &FlowClassifier) -> String {
    let mut s = format!("  - {{name: {}, ethertype: {:?}, logical_source_port: {}", f.name, f.ethertype, f.logical_source_port);
    if let Some(p) = f.protocol {
        write!(s, ", protocol: {p}").unwrap();
    }
    write!(s, ", source_ip_prefix: '{}', destination_ip_prefix: '{}'", f.source_prefix, f.destination_prefix).unwrap();
    if f.protocol.is_some_and(|p| p == 6 || p == 17) {
        write!(
            s,
            ", source_port_range_min: {}, source_port_range_max: {}, destination_port_range_min: {}, destination_port_range_max: {}",
            f.source_ports.min, f.source_ports.max, f.destination_ports.min, f.destination_ports.max
        )
        .unwrap();
    }
    s.push_str("}\n");
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Through the whole pipeline: a file that validates sends each packet to the chain of the
    /// most specific matching classifier (validation rejected every case where that is not
    /// well defined), and the compiled result names that classifier.
    #[test]
    fn validated_files_send_packets_to_the_most_specific_classifier(
        specs in prop::collection::vec((spec(), 0..3usize), 1..7),
        packets in prop::collection::vec(packet(), 32),
    ) {
        let fcs: Vec<FlowClassifier> = specs.iter().enumerate().map(|(i, (s, _))| classifier(i, s)).collect();
        let mut y = String::from(
            "port_pairs:\n  - {name: pp1, ingress: i1, egress: e1}\nport_pair_groups:\n  - {name: g1, port_pairs: [pp1]}\n  - {name: g2, port_pairs: [pp1x]}\n  - {name: g3, port_pairs: [pp1y]}\n",
        );
        y = y.replace("port_pair_groups:", "  - {name: pp1x, ingress: i2, egress: e2}\n  - {name: pp1y, ingress: i3, egress: e3}\nport_pair_groups:");
        y.push_str("flow_classifiers:\n");
        for f in &fcs {
            y.push_str(&yaml_classifier(f));
        }
        y.push_str("port_chains:\n");
        for (c, g) in ["g1", "g2", "g3"].iter().enumerate() {
            let mine: Vec<&str> = specs.iter().zip(&fcs).filter(|((_, ch), _)| *ch == c).map(|(_, f)| f.name.as_str()).collect();
            writeln!(y, "  - {{name: pc{c}, chain_id: {}, port_pair_groups: [{g}], flow_classifiers: [{}]}}", c + 1, mine.join(", ")).unwrap();
        }
        let cfg = config::parse("t", &y).expect("parses");
        let m = match model::validate(&cfg) {
            Ok(m) => m,
            Err(e) => {
                // Only overlaps may be rejected here; anything else is a bug in the generator.
                prop_assert!(e.0.iter().all(|e| e.message.contains("overlaps") || e.message.contains("exactly the same")), "{}", e);
                return Ok(());
            }
        };
        let compiled = compile::compile(&m, &facts(&m), None).expect("compiles");
        let chain_of = |i: usize| m.port_chains.iter().find(|c| c.flow_classifiers.contains(&i)).map(|c| c.chain_id);
        for p in &packets {
            let matching: BTreeSet<usize> = m
                .flow_classifiers
                .iter()
                .enumerate()
                .filter(|(_, f)| ifindex_of(&f.logical_source_port) == p.ifindex && f.matches(&p.key))
                .map(|(i, _)| i)
                .collect();
            let got = cls::lookup(&compiled.cls, &compiled.cls_hash, p.ifindex, ethertype(&p.key), &p.key).and_then(|c| compiled.cls_res.get(&c));
            match cls::most_specific(&matching, &m.flow_classifiers) {
                None => prop_assert!(got.is_none()),
                Some(best) => {
                    let got = got.expect("a result");
                    prop_assert_eq!(Some(got.chain_id), chain_of(best));
                    // No matching classifier of another chain is strictly more specific. A
                    // result shared by several classifiers (same chain and ports) names none:
                    // it is then the most specific matching one of its chain.
                    let chosen = if got.classifier == CLS_CLASSIFIER_SHARED {
                        let mine: BTreeSet<usize> = matching.iter().copied().filter(|&j| chain_of(j) == Some(got.chain_id)).collect();
                        &m.flow_classifiers[cls::most_specific(&mine, &m.flow_classifiers).expect("one of its chain matches")]
                    } else {
                        &m.flow_classifiers[got.classifier as usize]
                    };
                    for &j in &matching {
                        let other = &m.flow_classifiers[j];
                        if chain_of(j) != Some(got.chain_id) {
                            prop_assert!(other.contains(chosen) && !chosen.contains(other), "{} vs {}", chosen.name, other.name);
                        }
                    }
                }
            }
        }
    }
}

/// 20,000 classifiers of distinct /32 destinations on one port (the shape of large
/// configurations): the tables grow linearly (one entry per classifier per stage) and compiling
/// them does not compare every pair (a quadratic compiler took minutes for 100,000).
#[test]
fn many_classifiers_compile_to_linear_tables() {
    const N: u32 = 20_000;
    let template = classifier(0, &Spec { v6: false, src: 0, dst: 4, proto: 2, sports: 0, dports: 1, port: 0 });
    let fcs: Vec<FlowClassifier> = (0..N)
        .map(|i| {
            let mut f = template.clone();
            f.destination_prefix.addr[..4].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
            f
        })
        .collect();
    let input: Vec<(usize, &FlowClassifier, u32)> = fcs.iter().enumerate().map(|(i, f)| (i, f, 1)).collect();
    let t = cls::compile(&input);
    // Host destinations, one protocol and one port are whole fields, the source "any": every
    // entry goes to the hash, none to the trie.
    assert_eq!(t.entries.len() + t.hash.len(), 5 * N as usize);
    assert_eq!(t.entries.len(), 0);
    assert_eq!(t.finals.len(), N as usize);
    // Compiled again with its own classes (every classifier has the same name here, as a
    // NAT-ing group's translated copy has its original's): the very same tables.
    let again = cls::compile_stable(&input, &t.ids);
    assert!(again.entries == t.entries && again.hash == t.hash && again.finals == t.finals, "a compile with its own classes renumbered");
    for i in [0u32, 1, 4_095, 19_999] {
        let mut key = FlowKey { family: FAMILY_V4, proto: 17, dport: 80u16.to_be_bytes(), ..FlowKey::default() };
        key.dst[..4].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
        let class = cls::lookup(&t.entries, &t.hash, 1, 0x0800, &key).expect("matches");
        assert_eq!(t.finals[&class], BTreeSet::from([usize::try_from(i).unwrap()]));
    }
}

/// Moving one classifier of 2,000 (its destination) changes that classifier's entries, not the
/// numbering of every class after it: with the previous compile's classes the tables differ in
/// a handful of entries; numbered afresh, in thousands.
#[test]
fn one_changed_classifier_changes_a_handful_of_entries() {
    const N: u32 = 2_000;
    let template = classifier(0, &Spec { v6: false, src: 0, dst: 4, proto: 2, sports: 0, dports: 1, port: 0 });
    let with_dst = |moved: Option<u32>| -> Vec<FlowClassifier> {
        (0..N)
            .map(|i| {
                let mut f = template.clone();
                f.name = format!("c{i}");
                let d = match moved {
                    Some(m) if i == 7 => 0x0b00_0000 | m,
                    _ => 0x0a00_0000 | i,
                };
                f.destination_prefix.addr[..4].copy_from_slice(&d.to_be_bytes());
                f
            })
            .collect()
    };
    let changed = |a: &cls::ClsTables, b: &cls::ClsTables| {
        let hash = a.hash.iter().filter(|(k, v)| b.hash.get(k) != Some(v)).count() + b.hash.keys().filter(|k| !a.hash.contains_key(k)).count();
        let finals = a.finals.iter().filter(|(k, v)| b.finals.get(k) != Some(v)).count() + b.finals.keys().filter(|k| !a.finals.contains_key(k)).count();
        hash + finals
    };
    let (first, second) = (with_dst(None), with_dst(Some(1)));
    let a_in: Vec<(usize, &FlowClassifier, u32)> = first.iter().enumerate().map(|(i, f)| (i, f, 1)).collect();
    let b_in: Vec<(usize, &FlowClassifier, u32)> = second.iter().enumerate().map(|(i, f)| (i, f, 1)).collect();
    let a = cls::compile(&a_in);
    let stable = cls::compile_stable(&b_in, &a.ids);
    let fresh = cls::compile(&b_in);
    assert!(changed(&a, &stable) <= 12, "{} entries changed with the previous classes", changed(&a, &stable));
    assert!(changed(&a, &fresh) > 1000, "numbered afresh, only {} changed: the test does not move anything", changed(&a, &fresh));
    // Both find the same classifiers.
    for i in [0u32, 6, 8, 1_999] {
        let mut key = FlowKey { family: FAMILY_V4, proto: 17, dport: 80u16.to_be_bytes(), ..FlowKey::default() };
        key.dst[..4].copy_from_slice(&(0x0a00_0000 | i).to_be_bytes());
        let s = cls::lookup(&stable.entries, &stable.hash, 1, 0x0800, &key).map(|c| stable.finals[&c].clone());
        let f = cls::lookup(&fresh.entries, &fresh.hash, 1, 0x0800, &key).map(|c| fresh.finals[&c].clone());
        assert_eq!(s, f);
        assert_eq!(s, Some(BTreeSet::from([usize::try_from(i).unwrap()])));
    }
    let mut key = FlowKey { family: FAMILY_V4, proto: 17, dport: 80u16.to_be_bytes(), ..FlowKey::default() };
    key.dst[..4].copy_from_slice(&0x0b00_0001u32.to_be_bytes());
    let moved = cls::lookup(&stable.entries, &stable.hash, 1, 0x0800, &key).map(|c| stable.finals[&c].clone());
    assert_eq!(moved, Some(BTreeSet::from([7])));
}

/// 2,000 classifiers into one chain, one destination prefix, each its own source host: the
/// stage-1 class holds all of them. Editing one (its destination port) changes that class's
/// content, and the class rebuilt keeps its number by its classifiers' names: the update
/// rewrites a handful of entries, not one per classifier. A new process given the classes the
/// state saved builds the very same tables.
#[test]
fn an_edit_under_a_shared_class_rewrites_a_handful_of_entries() {
    const N: u32 = 2_000;
    let template = classifier(0, &Spec { v6: false, src: 4, dst: 1, proto: 2, sports: 0, dports: 0, port: 0 });
    let with = |edited: bool| -> Vec<FlowClassifier> {
        (0..N)
            .map(|i| {
                let mut f = template.clone();
                f.name = format!("c{i}");
                f.source_prefix = Prefix::parse(&format!("192.168.{}.{}/32", i >> 8, i & 255)).expect("prefix");
                if edited && i == 7 {
                    f.destination_ports = PortRange { min: 80, max: 80 };
                }
                f
            })
            .collect()
    };
    let place = |_: usize| Some([1, 0, 0]);
    let (first, second) = (with(false), with(true));
    let first_in: Vec<(usize, &FlowClassifier, u32)> = first.iter().enumerate().map(|(i, f)| (i, f, 1)).collect();
    let second_in: Vec<(usize, &FlowClassifier, u32)> = second.iter().enumerate().map(|(i, f)| (i, f, 1)).collect();
    let mut inc = cls_incr::Incremental::new(&cls::ClassIds::new());
    inc.update(&first_in, &place);
    let _ = inc.take_changes();
    // One root entry (the /8), then a class of 2,000 source entries; the rest is shared.
    assert!(inc.hash.len() + inc.entries.len() < usize::try_from(N).unwrap() + 10, "{} entries", inc.hash.len() + inc.entries.len());
    inc.update(&second_in, &place);
    let log = inc.take_changes();
    let rewritten = log.trie.iter().filter(|(k, old)| inc.entries.get(k) != old.as_ref()).count()
        + log.hash.iter().filter(|(k, old)| inc.hash.get(k) != old.as_ref()).count();
    assert!(rewritten <= 12, "{rewritten} entries rewritten for one edited classifier");
    let mut key = FlowKey { family: FAMILY_V4, proto: 17, dport: 80u16.to_be_bytes(), ..FlowKey::default() };
    key.src[..4].copy_from_slice(&[192, 168, 0, 7]);
    key.dst[..4].copy_from_slice(&[10, 9, 9, 9]);
    let class = cls::lookup(&inc.entries, &inc.hash, 1, 0x0800, &key).expect("c7 matches");
    assert_eq!(inc.places.get(&class), Some(&Some([1, 0, 0])));
    key.dport = 81u16.to_be_bytes();
    assert_eq!(cls::lookup(&inc.entries, &inc.hash, 1, 0x0800, &key), None, "c7 is port 80 only now");
    let mut cold = cls_incr::Incremental::new(&inc.ids);
    cold.update(&second_in, &place);
    assert!(cold.entries == inc.entries && cold.hash == inc.hash && cold.finals == inc.finals, "a new process numbered the classes otherwise");
}

/// The numbers saved for the next process (`ids`) as classifiers go, one after the other: every
/// class still in use keeps its key, the one-place final classes that the remaining
/// classifiers share included (such a class's key is its place's, not a classifier's).
#[test]
fn removed_classifiers_leave_the_classes_of_the_others_numbered() {
    let template = classifier(0, &Spec { v6: false, src: 4, dst: 1, proto: 2, sports: 0, dports: 0, port: 0 });
    let fcs: Vec<FlowClassifier> = (0..12)
        .map(|i| {
            let mut f = template.clone();
            f.name = format!("c{i}");
            f.source_prefix = Prefix::parse(&format!("192.168.0.{}/32", i % 4)).expect("prefix");
            f.destination_prefix = Prefix::parse(&format!("10.0.0.{}/32", i / 4)).expect("prefix");
            f
        })
        .collect();
    let place = place_of(Some(3));
    let mut live: Vec<usize> = (0..fcs.len()).collect();
    let mut inc = cls_incr::Incremental::new(&cls::ClassIds::new());
    let keys = |ids: &cls::ClassIds| ids.keys().copied().collect::<Vec<_>>();
    for gone in [5, 0, 7, 11, 2, 9] {
        live.retain(|i| *i != gone);
        let input: Vec<(usize, &FlowClassifier, u32)> = live.iter().map(|&i| (i, &fcs[i], 1)).collect();
        inc.update(&input, &place);
        let mut fresh = cls_incr::Incremental::new(&cls::ClassIds::new());
        fresh.update(&input, &place);
        assert_eq!(keys(&inc.ids), keys(&fresh.ids), "the classes saved after c{gone} went");
        let mut cold = cls_incr::Incremental::new(&inc.ids);
        cold.update(&input, &place);
        assert!(cold.entries == inc.entries && cold.hash == inc.hash && cold.finals == inc.finals, "a new process numbered the classes otherwise (c{gone} gone)");
    }
}

/// Roots of the incremental test: each classifier under its source port, and the even ones
/// also under one reclassification-like class (as a chain's classifiers are), so sets are
/// shared between roots.
fn rooted(fcs: &[FlowClassifier]) -> Vec<(usize, &FlowClassifier, u32)> {
    let mut out: Vec<(usize, &FlowClassifier, u32)> = fcs.iter().enumerate().map(|(i, f)| (i, f, ifindex_of(&f.logical_source_port))).collect();
    out.extend(fcs.iter().enumerate().filter(|(i, _)| i % 2 == 0).map(|(i, f)| (i, f, 3)));
    out
}

/// Where classifier `i` leads in the incremental tests: a place of its own (`None`), or one of
/// `k` shared ones.
fn place_of(shared: Option<u32>) -> impl Fn(usize) -> cls::Place {
    move |i| {
        let i = u32::try_from(i).expect("small");
        Some([shared.map_or(i, |k| i % k), 0, 0])
    }
}

/// The incremental compiler, step after step of edits (a classifier changed, added,
/// removed): its tables are those of a fresh compile of the same input with the classes that
/// behave the same merged (`cls::merged`, up to numbering), packets find their matching
/// classifiers, and its log of writes, replayed over the tables before the step, gives the
/// tables after it.
fn incremental_steps(first: Vec<Spec>, steps: Vec<Vec<(usize, Option<Spec>)>>, packets: &[Pkt], shared: Option<u32>) -> Result<(), TestCaseError> {
    let place = place_of(shared);
    let mut specs: Vec<Spec> = first;
    let mut inc = cls_incr::Incremental::new(&cls::ClassIds::new());
    for (n, edits) in std::iter::once(Vec::new()).chain(steps).enumerate() {
        for (at, s) in edits {
            match s {
                Some(s) if at < specs.len() => specs[at] = s,
                Some(s) => specs.push(s),
                None if at < specs.len() => { specs.remove(at); }
                None => {}
            }
        }
        let fcs: Vec<FlowClassifier> = specs.iter().enumerate().map(|(i, s)| classifier(i, s)).collect();
        let input = rooted(&fcs);
        let (entries, hash) = (inc.entries.clone(), inc.hash.clone());
        inc.update(&input, &place);
        let log = inc.take_changes();
        let fresh = cls::merged(&cls::compile(&input), &place);
        let pair = match cls::equivalent((&inc.entries, &inc.hash, &inc.finals), (&fresh.entries, &fresh.hash, &fresh.finals)) {
            Ok(pair) => pair,
            Err(e) => return Err(TestCaseError::fail(format!("step {n}: {e}"))),
        };
        for (a, b) in &pair {
            prop_assert_eq!(inc.places.get(a), fresh.places.get(b), "step {}: the place of final class {:#x}", n, a);
        }
        prop_assert!(cls::canonical(&inc.entries));
        // The log: every key it names had the logged value before, every other key is as it was.
        let mut replay = entries.clone();
        for (k, old) in &log.trie {
            prop_assert_eq!(entries.get(k), old.as_ref());
            match inc.entries.get(k) { Some(v) => { replay.insert(*k, *v); } None => { replay.remove(k); } }
        }
        prop_assert_eq!(&replay, &inc.entries);
        let mut replay = hash.clone();
        for (k, old) in &log.hash {
            prop_assert_eq!(hash.get(k), old.as_ref());
            match inc.hash.get(k) { Some(v) => { replay.insert(*k, *v); } None => { replay.remove(k); } }
        }
        prop_assert_eq!(&replay, &inc.hash);
        for p in packets {
            let want: BTreeSet<usize> = fcs
                .iter()
                .enumerate()
                .filter(|(i, f)| (ifindex_of(&f.logical_source_port) == p.ifindex || (p.ifindex == 3 && i % 2 == 0)) && f.matches(&p.key))
                .map(|(i, _)| i)
                .collect();
            let got = cls::lookup(&inc.entries, &inc.hash, p.ifindex, ethertype(&p.key), &p.key);
            let Some(c) = got else {
                prop_assert!(want.is_empty(), "step {}: {:?} matches {:?} but finds no class", n, p, want);
                continue;
            };
            // Matching classifiers of one place end in that place's class (which all of them
            // reach); of several, in the class of exactly them.
            let places: BTreeSet<cls::Place> = want.iter().map(|&i| place(i)).collect();
            if places.len() == 1 {
                prop_assert_eq!(inc.places.get(&c), places.first(), "step {}: {:?}", n, p);
                prop_assert!(want.is_subset(&inc.finals[&c]), "step {}: {:?}", n, p);
            } else {
                prop_assert_eq!(&inc.finals[&c], &want, "step {}: {:?}", n, p);
                prop_assert!(!inc.places.contains_key(&c));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every classifier to a place of its own: no two sets behave the same, nothing merges.
    #[test]
    fn the_incremental_compile_is_a_fresh_compile(
        first in prop::collection::vec(spec(), 0..10),
        steps in prop::collection::vec(prop::collection::vec((0..12usize, prop::option::weighted(0.8, spec())), 1..4), 1..6),
        packets in prop::collection::vec(packet(), 24),
    ) {
        incremental_steps(first, steps, &packets, None)?;
    }

    /// Classifiers sharing two places: the sets that behave the same share classes, as a
    /// fresh compile merged.
    #[test]
    fn the_incremental_compile_merges_as_a_fresh_compile(
        first in prop::collection::vec(spec(), 0..10),
        steps in prop::collection::vec(prop::collection::vec((0..12usize, prop::option::weighted(0.8, spec())), 1..4), 1..6),
        packets in prop::collection::vec(packet(), 24),
    ) {
        incremental_steps(first, steps, &packets, Some(2))?;
    }
}
