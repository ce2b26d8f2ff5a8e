//! Bounded fuzzing of the config reader, validator and compiler: no input may panic.
//!
//! Three generators, 4,600 pipeline runs in all (about 4 s in a debug build on 2 cores, so it
//! runs with every `cargo test`):
//! - arbitrary text, and text over YAML's punctuation (unbalanced brackets, anchors, tags, tabs);
//! - documents in the schema's shape with random keys and values of every type, each as JSON and
//!   as block YAML;
//! - a valid file with random mutations (fields dropped, retyped, renamed, entries duplicated),
//!   which reaches the deep rules and, when it still validates, the compiler and the classifier
//!   lookup.
//!
//! Whatever the input, a file that does not validate must come back as a list of problems, each
//! naming where it is.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sfc::{
    compile::{self, IfaceFacts, cls},
    config, model,
};
use sfc_common::maps::FlowKey;

/// The schema's own names (from the config structs' serde derive), so a field added there is
/// fuzzed without a list to keep here.
fn fields() -> Vec<&'static str> {
    config::field_names().into_iter().collect()
}
use config::SECTIONS;
const WORDS: &[&str] = &[
    "pp1", "pp2", "pg1", "pg2", "web", "dns", "pc1", "pc2", "src", "dst", "sf1-in", "sf1-out", "tcp", "udp", "icmp", "IPv6",
    "10.0.0.0/8", "10.0.0.1/24", "::/0", "2001:db8::/32", "fail-open", "ip_src", "l4_dst", "mpls", "none", "", " ", "a/b",
    "0x10", "1e3", "~", "yes", "-1", "xdp", "tc",
];

/// Runs the whole pure pipeline on `text`. Panics only on a broken invariant.
fn pipeline(text: &str) {
    let Ok(cfg) = config::parse("fuzz.yaml", text) else { return };
    match model::validate(&cfg) {
        Err(errs) => {
            assert!(!errs.0.is_empty());
            let lines: Vec<u32> = errs.0.iter().map(|e| e.line).collect();
            assert!(lines.windows(2).all(|w| w[0] <= w[1]), "not in line order: {lines:?}");
            for e in &errs.0 {
                assert!(!e.message.is_empty());
                assert!(e.line > 0 || e.message.contains("at most"), "no line: {e}");
                let _ = e.to_string();
            }
        }
        Ok(m) => {
            let facts = facts(&m);
            let c = compile::compile(&m, &facts, Some("fuzz")).expect("every interface has facts");
            assert!(cls::canonical(&c.cls));
            for ifindex in facts.values().map(|f| f.ifindex) {
                for (family, proto) in [(4, 6), (4, 17), (6, 58), (4, 1)] {
                    let key = FlowKey { family, proto, dport: [0, 80], sport: [4, 0], ..FlowKey::default() };
                    let et = if family == 6 { 0x86dd } else { 0x0800 };
                    if let Some(class) = cls::lookup(&c.cls, &c.cls_hash, ifindex, et, &key) {
                        assert!(c.cls_res.contains_key(&class), "final class {class:#x} without a result");
                    }
                }
            }
            assert!(compile::diff::diff(&c, &c).is_empty());
        }
    }
}

fn facts(m: &model::Model) -> BTreeMap<String, IfaceFacts> {
    let mut names = BTreeSet::new();
    for p in &m.port_pairs {
        names.extend([p.ingress.clone(), p.egress.clone()]);
    }
    for f in &m.flow_classifiers {
        names.insert(f.logical_source_port.clone());
        names.extend(f.logical_destination_port.clone());
    }
    names
        .into_iter()
        .zip(1u32..)
        .map(|(n, i)| (n, IfaceFacts { ifindex: i, peer_mac: Some([2, 0, 0, 0, 0, 1]), peer_in_other_netns: i % 2 == 0, ..Default::default() }))
        .collect()
}

// ---- random values in the schema's shape ---------------------------------------------------------

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0i64..70_000).prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
        "[ -~]{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(fields()).prop_map(str::to_owned), 1 => "[a-z_]{1,10}"]
}

fn resource() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), value()), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

fn document() -> impl Strategy<Value = Value> {
    let section = prop_oneof![8 => prop::collection::vec(resource(), 0..5).prop_map(Value::Array), 1 => value()];
    let name = prop_oneof![6 => prop::sample::select(&SECTIONS[..]).prop_map(str::to_owned), 1 => "[a-z_]{1,12}"];
    prop::collection::vec((name, section), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

/// Block-style YAML for a JSON value (strings double-quoted, which YAML reads as JSON does).
fn yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                write!(out, "\n{pad}-").unwrap();
                yaml(item, indent + 2, out);
            }
        }
        Value::Object(map) if !map.is_empty() => {
            for (k, item) in map {
                write!(out, "\n{pad}{}:", Value::String(k.clone())).unwrap();
                yaml(item, indent + 2, out);
            }
        }
        other => write!(out, " {other}").unwrap(),
    }
}

// ---- mutations of a valid file --------------------------------------------------------------------

fn valid() -> Value {
    json!({
        "port_pairs": [
            {"name": "pp1", "ingress": "sf1-in", "egress": "sf1-out"},
            {"name": "pp2", "ingress": "sf2-in", "egress": "sf2-out", "weight": 3},
            {"name": "pp3", "ingress": "sf3", "egress": "sf3"}
        ],
        "port_pair_groups": [
            {"name": "pg1", "port_pairs": ["pp1", "pp2"], "lb_fields": ["ip_src", "ip_dst"],
             "health_check": {"destination": "10.0.0.20", "interval_ms": 100, "failures": 3, "recoveries": 2}},
            {"name": "pg2", "port_pairs": ["pp3"], "failure_policy": "fail-open", "tap_enabled": false}
        ],
        "flow_classifiers": [
            {"name": "web", "protocol": "tcp", "destination_ip_prefix": "10.0.0.0/24", "destination_port_range_min": 80,
             "destination_port_range_max": 80, "logical_source_port": "src", "logical_destination_port": "dst"},
            {"name": "net", "destination_ip_prefix": "10.0.0.0/8", "logical_source_port": "src"},
            {"name": "v6", "ethertype": "IPv6", "protocol": 17, "source_ip_prefix": "2001:db8::/32", "logical_source_port": "src"}
        ],
        "port_chains": [
            {"name": "pc1", "port_pair_groups": ["pg1", "pg2"], "flow_classifiers": ["web"], "chain_parameters": {"symmetric": true}},
            {"name": "pc2", "chain_id": 7, "port_pair_groups": ["pg2"], "flow_classifiers": ["net", "v6"],
             "chain_parameters": {"correlation": "none"}}
        ],
        "interfaces": [
            {"name": "sf1-out", "mode": "xdp"},
            {"name": "src", "mode": "tc"}
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Drop(usize, usize, usize),
    Set(usize, usize, String, Value),
    Duplicate(usize, usize),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..5usize, 0..4usize, 0..8usize).prop_map(|(s, r, f)| Mutation::Drop(s, r, f)),
        (0..5usize, 0..4usize, key(), value()).prop_map(|(s, r, k, v)| Mutation::Set(s, r, k, v)),
        (0..5usize, 0..4usize).prop_map(|(s, r)| Mutation::Duplicate(s, r)),
        (0..5usize, 0..4usize).prop_map(|(s, r)| Mutation::Remove(s, r)),
    ]
}

fn mutate(doc: &mut Value, m: &Mutation) {
    let (section, at) = match m {
        Mutation::Drop(s, r, _) | Mutation::Set(s, r, ..) | Mutation::Duplicate(s, r) | Mutation::Remove(s, r) => (*s, *r),
    };
    let Some(Value::Array(list)) = doc.get_mut(SECTIONS[section]) else { return };
    if list.is_empty() {
        return;
    }
    let r = at % list.len();
    match m {
        Mutation::Drop(_, _, field) => {
            if let Value::Object(o) = &mut list[r]
                && let Some(k) = o.keys().nth(field % o.len().max(1)).cloned()
            {
                o.remove(&k);
            }
        }
        Mutation::Set(_, _, k, v) => {
            if let Value::Object(o) = &mut list[r] {
                o.insert(k.clone(), v.clone());
            }
        }
        Mutation::Duplicate(..) => {
            let copy = list[r].clone();
            list.push(copy);
        }
        Mutation::Remove(..) => {
            list.remove(r);
        }
    }
}

/// `cases`, times `SFC_FUZZ_SCALE` (default 1) for a longer run: `SFC_FUZZ_SCALE=100 cargo test
/// --release --test fuzz_config`.
fn cfg(cases: u32) -> ProptestConfig {
    let scale = std::env::var("SFC_FUZZ_SCALE").ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(1);
    ProptestConfig { cases: cases.saturating_mul(scale.max(1)), failure_persistence: None, ..ProptestConfig::default() }
}

#[test]
fn the_valid_base_file_is_valid() {
    let text = serde_json::to_string_pretty(&valid()).expect("json");
    let m = model::validate(&config::parse("t", &text).expect("parses")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.port_chains.len(), 2);
}

proptest! {
    #![proptest_config(cfg(1500))]
    #[test]
    fn arbitrary_text(text in any::<String>()) {
        pipeline(&text);
    }
}

proptest! {
    #![proptest_config(cfg(1500))]
    #[test]
    fn yaml_punctuation(text in "[a-z0-9_ :{}\\[\\],\\-\n\t'\"#&*!|>%@`.?~]{0,160}") {
        pipeline(&text);
    }
}

proptest! {
    #![proptest_config(cfg(400))]
    #[test]
    fn schema_shaped_documents(doc in document()) {
        pipeline(&serde_json::to_string_pretty(&doc).expect("json"));
        let mut text = String::new();
        yaml(&doc, 0, &mut text);
        pipeline(&text);
    }
}

proptest! {
    #![proptest_config(cfg(400))]
    #[test]
    fn mutated_valid_files(mutations in prop::collection::vec(mutation(), 1..5)) {
        let mut doc = valid();
        for m in &mutations {
            mutate(&mut doc, m);
        }
        pipeline(&serde_json::to_string_pretty(&doc).expect("json"));
        let mut text = String::new();
        yaml(&doc, 0, &mut text);
        pipeline(&text);
    }
}
