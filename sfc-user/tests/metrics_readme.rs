//! README.md's "Metrics" table documents exactly the series the daemon serves: every family that
//! `metrics::render` writes has a row with its name as Prometheus stores it (`_total` on a
//! counter's samples), its type and its labels, and no row names a series that does not exist.
//! A new family fails here until its row is written.

use std::collections::{BTreeMap, BTreeSet};

use sfc::{
    metrics::{Snapshot, render},
    view::stats::{ChainStats, FlowTableStats, HopStats, IfaceStats, Latency, MemberStats, Stats},
};

/// A snapshot with something in every family, so every label set shows up.
fn snapshot() -> Snapshot {
    let latency = Latency { samples: 1, p50_seconds: 2e-6, p99_seconds: 2e-6, buckets: vec![1; 32] };
    let member = |name: Option<&str>| MemberStats {
        port_pair: name.unwrap_or("pp1").into(),
        packets: 1,
        bytes: 100,
        reverse_packets: 1,
        reverse_bytes: 100,
        latency: Some(latency.clone()),
        reverse_latency: Some(latency.clone()),
    };
    Snapshot {
        stats: Stats {
            chains: vec![ChainStats {
                name: "pc1".into(),
                chain_id: 1,
                hops: vec![
                    HopStats { group: "pg1".into(), tap: false, members: vec![member(None)] },
                    HopStats { group: "pgt".into(), tap: true, members: vec![member(Some("pp2"))] },
                ],
            }],
            drops: BTreeMap::from([("no_member", 1)]),
            interfaces: vec![IfaceStats { name: "src".into(), ifindex: 2, classified: 1, unclassified: 1, from_sf: 1, malformed: 1, recomputed: 1 }],
            failovers: 1,
            flow_table: FlowTableStats { entries: 1, capacity: 2, created: 1, capped: 1, removed: 1, evicted: 1 },
            trace: sfc::datapath::trace::TraceStats { emitted: 1, lost_budget: 1, lost_ring_full: 1 },
        },
        port_pairs_up: vec![("pp1".into(), true)],
    }
}

/// Series name -> (type, label names), from the exposition (a counter's series is its samples'
/// name, `_total`; a histogram's is its family's name).
fn served() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let text = render(&snapshot());
    let mut types = BTreeMap::new();
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            // A counter family's samples are `<family>_total`, the name a query uses.
            let series = if kind == "counter" { format!("{family}_total") } else { family.to_owned() };
            types.insert(series.clone(), kind.to_owned());
            out.insert(series, (kind.to_owned(), BTreeSet::new()));
        } else if !line.starts_with('#') {
            let (name, rest) = line.split_at(line.find(['{', ' ']).unwrap());
            // A histogram's samples are `<family>_bucket{...,le}`, `_sum` and `_count`: the
            // series a README row names is the family, its labels those besides `le`.
            let series = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|f| types.get(*f).is_some_and(|k| k == "histogram")))
                .unwrap_or(name);
            let labels = out.get_mut(series).unwrap_or_else(|| panic!("sample of an untyped series: {line}"));
            if let Some(inner) = rest.strip_prefix('{') {
                for pair in inner.split("\",") {
                    let label = pair.split_once('=').unwrap().0;
                    if label != "le" {
                        labels.1.insert(label.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// Series name -> (type, label names), from the README's table: the first table of the
/// "## Metrics" section, `| `name` | type [(unit)] | `label`, ... | meaning |`.
fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let section = readme.split("\n## Metrics\n").nth(1).expect("README has a ## Metrics section");
    let table = section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    let mut out = BTreeMap::new();
    for row in table.skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let [name, kind, labels, meaning] = cells[..] else { panic!("README metrics row without 4 cells: {row}") };
        assert!(!meaning.is_empty(), "README: {name} has no meaning");
        let name = name.trim_matches('`').to_owned();
        let kind = kind.split_whitespace().next().unwrap_or_default().to_owned();
        let labels = labels.split(',').map(|l| l.trim().trim_matches('`')).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        assert!(out.insert(name.clone(), (kind, labels)).is_none(), "README documents {name} twice");
    }
    out
}

#[test]
fn readme_documents_every_series_with_its_type_and_labels() {
    let served = served();
    let documented = documented();
    assert!(served.len() > 10, "{served:?}");
    for (name, (kind, labels)) in &served {
        let doc = documented.get(name).unwrap_or_else(|| panic!("{name} ({kind}) is served but not in README.md's Metrics table"));
        assert_eq!(&doc.0, kind, "README.md: type of {name}");
        assert_eq!(&doc.1, labels, "README.md: labels of {name}");
    }
    for name in documented.keys() {
        assert!(served.contains_key(name), "README.md documents {name}, which sfc does not serve");
    }
}
