use std::collections::BTreeMap;

use sfc_common::maps::{CLASS_BASE, ClsResult, FAMILY_V4, FAMILY_V6, FLOW_F_REVERSE, FlowEntry, FlowKey};

use super::{Namer, bank_name, cls_entries, decode_cls, decode_flow, cls::port_prefix, resolve_map_name, unbank_class, unbank_id};
use crate::{
    compile::{Ids, cls},
    datapath::State,
};

const CHAINS: &str = "
port_pairs:
  - {name: pp1, ingress: pp1-in, egress: pp1-out}
  - {name: pp2, ingress: pp2-in, egress: pp2-out}
  - {name: pp3, ingress: pp3-in, egress: pp3-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1, pp2]}
  - {name: pg2, port_pairs: [pp3]}
flow_classifiers:
  - name: web
    protocol: tcp
    destination_ip_prefix: 198.18.0.2/32
    destination_port_range_min: 80
    destination_port_range_max: 80
    logical_source_port: src
    logical_destination_port: dst
port_chains:
  - {name: pc1, chain_id: 7, port_pair_groups: [pg1, pg2], flow_classifiers: [web], chain_parameters: {symmetric: true}}
";

/// The state `apply` would save for `CHAINS` with `src` at ifindex 3 and `dst` at 4. Built
/// through serde so fields added to `State` later take their defaults here too.
fn state() -> State {
    let cfg = crate::config::parse("chains.yaml", CHAINS).expect("parse");
    let model = crate::model::validate(&cfg).expect("valid");
    let facts: BTreeMap<String, crate::compile::IfaceFacts> = [("src", 3), ("dst", 4)]
        .into_iter()
        .map(|(n, i)| (n.to_owned(), crate::compile::IfaceFacts { ifindex: i, peer_mac: None, peer_in_other_netns: true, ..Default::default() }))
        .collect();
    let ids = Ids::by_index(&model);
    serde_json::from_value(serde_json::json!({
        "model": model, "facts": facts, "flow_table_size": 1024, "netns": null, "ids": ids,
    }))
    .expect("state")
}

fn key(family: u8, src: &[u8], dst: &[u8], sport: u16, dport: u16, proto: u8) -> FlowKey {
    let mut k = FlowKey { proto, family, sport: sport.to_be_bytes(), dport: dport.to_be_bytes(), ..FlowKey::default() };
    k.src[..src.len()].copy_from_slice(src);
    k.dst[..dst.len()].copy_from_slice(dst);
    k
}

fn hops(h: &[super::FlowHop]) -> Vec<(usize, Option<&str>, Option<&str>)> {
    h.iter().map(|h| (h.hop, h.group.as_deref(), h.port_pair.as_deref())).collect()
}

#[test]
fn forward_flow_in_names() {
    let s = state();
    let n = Namer { state: &s };
    let mut e = FlowEntry { chain_id: 7, dst_ifindex: 4, n_hops: 2, generation: 3, ..FlowEntry::default() };
    e.members[0] = 1;
    e.members[1] = 2;
    let f = decode_flow(&n, &key(FAMILY_V4, &[198, 18, 0, 1], &[198, 18, 0, 2], 40000, 80, 6), &e);
    assert_eq!((f.src.as_str(), f.dst.as_str(), f.sport, f.dport), ("198.18.0.1", "198.18.0.2", 40000, 80));
    assert_eq!((f.protocol.as_str(), f.chain.as_str(), f.family, f.generation), ("tcp", "pc1", "ipv4", 3));
    assert_eq!(f.destination, "dst");
    assert!(!f.reverse);
    assert_eq!(hops(&f.hops), [(0, Some("pg1"), Some("pp2")), (1, Some("pg2"), Some("pp3"))]);
    assert!(f.previous_hops.is_empty());
}

#[test]
fn reverse_flow_lists_groups_backwards_and_skipped_hops() {
    let s = state();
    let n = Namer { state: &s };
    let mut e = FlowEntry { chain_id: 7, n_hops: 2, flags: FLOW_F_REVERSE, prev_n_hops: 2, ..FlowEntry::default() };
    e.members[0] = 2;
    e.prev_members[0] = 2;
    e.prev_members[1] = 0;
    let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let f = decode_flow(&n, &key(FAMILY_V6, &v6, &v6, 0, 0, 58), &e);
    assert_eq!((f.src.as_str(), f.protocol.as_str(), f.family), ("2001:db8::1", "icmpv6", "ipv6"));
    assert!(f.reverse);
    assert_eq!(f.destination, "host");
    assert_eq!(hops(&f.hops), [(1, Some("pg2"), Some("pp3")), (0, Some("pg1"), None)]);
    assert_eq!(hops(&f.previous_hops), [(1, Some("pg2"), Some("pp3")), (0, Some("pg1"), Some("pp1"))]);
}

#[test]
fn unknown_and_unmatched_chains_are_named_not_hidden() {
    let s = state();
    let n = Namer { state: &s };
    let f = decode_flow(&n, &FlowKey::default(), &FlowEntry { chain_id: 99, n_hops: 1, ..FlowEntry::default() });
    assert!(f.chain.contains("99"), "{}", f.chain);
    assert_eq!(f.hops[0].group, None);
    let f = decode_flow(&n, &FlowKey::default(), &FlowEntry::default());
    assert_eq!(f.chain, "none");
    assert!(f.hops.is_empty());
    assert_eq!(n.port_pair(77), "port pair #77");
    assert_eq!(n.group(1), "pg2");
}

#[test]
fn classifier_trie_decodes_every_stage() {
    let s = state();
    let n = Namer { state: &s };
    let fc = &s.model.flow_classifiers[0];
    let tables = cls::compile(&[(0, fc, 3)]);
    let entries = cls_entries(tables.entries.iter().map(|((len, k), v)| (*len, *k, *v)), tables.hash.clone());
    let results: BTreeMap<u32, ClsResult> = tables
        .finals
        .keys()
        .map(|c| (*c, ClsResult { chain_id: 7, classifier: 0, dst_ifindex: 4, src_ifindex: 3 }))
        .collect();
    let rows = decode_cls(&n, "live", &entries, &results);
    let got: Vec<_> = rows.iter().map(|r| (r.stage, r.field.as_str())).collect();
    assert_eq!(got, [(1, "IPv4 dst 198.18.0.2/32"), (2, "src any"), (3, "proto tcp"), (4, "dport 80"), (5, "sport any")]);
    // A host destination, one protocol, one port, and "any" for the rest: all hash entries.
    assert!(rows.iter().all(|r| r.table == "hash"), "{:?}", rows.iter().map(|r| r.table).collect::<Vec<_>>());
    assert_eq!(rows[0].class, "src");
    // Stage 2's class takes any source: marked so (0x8... | CLS_ANY_BIT).
    assert!(rows[1].class.starts_with("0x9"), "{}", rows[1].class);
    assert!(rows[2].class.starts_with("0x8"), "{}", rows[2].class);
    assert_eq!(rows[4].result.as_deref(), Some("chain pc1 (classifier web)"));
    assert!(rows[..4].iter().all(|r| r.result.is_none()));
    // A result shared by several classifiers names none (`CLS_CLASSIFIER_SHARED`).
    let shared: BTreeMap<u32, ClsResult> = results.iter().map(|(c, r)| (*c, ClsResult { classifier: sfc_common::maps::CLS_CLASSIFIER_SHARED, ..*r })).collect();
    assert_eq!(decode_cls(&n, "live", &entries, &shared)[4].result.as_deref(), Some("chain pc1 (several classifiers)"));
    assert_eq!(n.classifier(sfc_common::maps::CLS_CLASSIFIER_SHARED), "(several)");
    assert!(u32::from_str_radix(rows[0].next_class.trim_start_matches("0x"), 16).unwrap() >= CLASS_BASE);
}

#[test]
fn port_ranges_decode_as_ranges() {
    assert_eq!(port_prefix("dport", &[0x04, 0x00], 6), "dport 1024-2047");
    assert_eq!(port_prefix("dport", &[0, 0], 0), "dport any");
    assert_eq!(port_prefix("sport", &[0xff, 0xff], 16), "sport 65535");
}

#[test]
fn banks() {
    assert_eq!(unbank_id(0x8000_0007), (1, 7));
    assert_eq!(unbank_id(7), (0, 7));
    assert_eq!(unbank_class(0xC000_0001), (1, 0x8000_0001));
    assert_eq!(unbank_class(0x4000_0005), (1, 5));
    assert_eq!((bank_name(1, 1), bank_name(0, 1), bank_name(0, 2)), ("live", "standby", "live"));
}

#[test]
fn map_names_resolve_loosely() {
    assert_eq!(resolve_map_name("SFC_FLOWS"), Some("SFC_FLOWS_V2"));
    assert_eq!(resolve_map_name("SFC_FLOWS_V2"), Some("SFC_FLOWS_V2"));
    assert_eq!(resolve_map_name("sfc_cls_res"), Some("SFC_CLS_RES"));
    assert_eq!(resolve_map_name("flows"), Some("SFC_FLOWS_V2"));
    assert_eq!(resolve_map_name("port_pairs"), Some("SFC_PORT_PAIRS2"));
    assert_eq!(resolve_map_name("SFC_SCRATCH"), None);
    assert_eq!(resolve_map_name(""), None);
}
