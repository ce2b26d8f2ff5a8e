//! Service graphs: validated as networking-sfc validates them, compiled into one chain per path
//! (`pc1->pc2`) whose classifiers are the intersections along it, so that the classifier tables
//! send a packet down the longest path it matches; imported from and exported to neutron.

use std::{collections::BTreeMap, fmt::Write as _};

use sfc::{
    compile::{self, IfaceFacts, cls},
    config, model,
};
use sfc_common::maps::FlowKey;

/// pc1 (pg1) branches to pc2 (pg2, UDP to port 5000) or pc3 (pg3, UDP to 6000); pc2 goes on
/// to pc4 (pg4) for traffic from 10.1.0.0/16. pc2..pc4's classifiers have no source port.
const FILE: &str = "
port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out}
  - {name: pp2, ingress: sf2-in, egress: sf2-out}
  - {name: pp3, ingress: sf3-in, egress: sf3-out}
  - {name: pp4, ingress: sf4-in, egress: sf4-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - {name: pg2, port_pairs: [pp2]}
  - {name: pg3, port_pairs: [pp3]}
  - {name: pg4, port_pairs: [pp4]}
flow_classifiers:
  - {name: all, protocol: udp, logical_source_port: src, logical_destination_port: dst}
  - {name: to5000, protocol: udp, destination_port_range_min: 5000, destination_port_range_max: 5000}
  - {name: to6000, protocol: udp, destination_port_range_min: 6000, destination_port_range_max: 6000, logical_destination_port: dst6}
  - {name: from-lab, source_ip_prefix: 10.1.0.0/16}
port_chains:
  - {name: pc1, chain_id: 1, port_pair_groups: [pg1], flow_classifiers: [all]}
  - {name: pc2, chain_id: 2, port_pair_groups: [pg2], flow_classifiers: [to5000]}
  - {name: pc3, chain_id: 3, port_pair_groups: [pg3], flow_classifiers: [to6000]}
  - {name: pc4, chain_id: 4, port_pair_groups: [pg4], flow_classifiers: [from-lab]}
service_graphs:
  - name: g
    port_chains:
      pc1: [pc2, pc3]
      pc2: [pc4]
";

fn problems(text: &str) -> Vec<String> {
    let cfg = config::parse("t.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    match model::validate(&cfg) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| e.to_string()).collect(),
    }
}

fn validated(text: &str) -> model::Model {
    model::validate(&config::parse("t.yaml", text).unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{e}"))
}

/// Every interface the model names, as a veth with an index.
fn facts(m: &model::Model) -> BTreeMap<String, IfaceFacts> {
    sfc::cli::synthetic_facts(m)
}

fn key(src: [u8; 4], dport: u16) -> FlowKey {
    let mut k = FlowKey { proto: 17, family: 4, sport: 999u16.to_be_bytes(), dport: dport.to_be_bytes(), ..Default::default() };
    k.src[..4].copy_from_slice(&src);
    k.dst[..4].copy_from_slice(&[10, 0, 0, 20]);
    k
}

#[test]
fn every_path_is_a_chain_and_a_packet_takes_the_longest_it_matches() {
    let m = validated(FILE);
    let paths: Vec<(&str, Vec<&str>, usize)> = m
        .port_chains
        .iter()
        .filter(|c| !c.graph.is_empty())
        .map(|c| (c.name.as_str(), c.port_pair_groups.iter().map(|&g| m.port_pair_groups[g].name.as_str()).collect(), c.flow_classifiers.len()))
        .collect();
    assert_eq!(
        paths,
        [("pc1->pc2", vec!["pg1", "pg2"], 1), ("pc1->pc2->pc4", vec!["pg1", "pg2", "pg4"], 1), ("pc1->pc3", vec!["pg1", "pg3"], 1), ("pc2->pc4", vec!["pg2", "pg4"], 0)]
            .into_iter()
            .filter(|p| p.2 > 0)
            .collect::<Vec<_>>(),
        "pc2->pc4 has no classifier with a source port: no chain"
    );
    let facts = facts(&m);
    let c = compile::compile(&m, &facts, None).unwrap_or_else(|e| panic!("{e:?}"));
    let src = facts["src"].ifindex;
    let chain_of = |k: &FlowKey| cls::lookup(&c.cls, &c.cls_hash, src, 0x0800, k).map(|class| m.chain_by_id(c.cls_res[&class].chain_id).map(|x| x.name.clone()));
    assert_eq!(chain_of(&key([192, 168, 0, 1], 5000)), Some(Some("pc1->pc2".into())));
    assert_eq!(chain_of(&key([10, 1, 2, 3], 5000)), Some(Some("pc1->pc2->pc4".into())));
    assert_eq!(chain_of(&key([10, 1, 2, 3], 6000)), Some(Some("pc1->pc3".into())));
    assert_eq!(chain_of(&key([192, 168, 0, 1], 7000)), Some(Some("pc1".into())), "no branch taken: pc1's own way");
    // Where a path ends: the last classifier's destination port, else the first's.
    let dst = |name: &str| {
        let ch = m.port_chains.iter().find(|x| x.name == name).expect("chain");
        m.flow_classifiers[ch.flow_classifiers[0]].logical_destination_port.clone()
    };
    assert_eq!((dst("pc1->pc2").as_deref(), dst("pc1->pc3").as_deref()), (Some("dst"), Some("dst6")));
    // The paths get the lowest free ids; the file's chains keep theirs.
    let ids: Vec<u32> = m.port_chains.iter().map(|c| c.chain_id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn the_branch_classifier_may_be_the_source_chains_own() {
    // pc2's classifier takes all UDP: every packet of pc1 goes on to pc2.
    let file = FILE.replace("{name: to5000, protocol: udp, destination_port_range_min: 5000, destination_port_range_max: 5000}", "{name: to5000, protocol: udp}")
        .replace("      pc1: [pc2, pc3]\n", "      pc1: [pc2]\n")
        .replace("logical_destination_port: dst6}", "logical_source_port: src6, logical_destination_port: dst6}");
    let m = validated(&file);
    let facts = facts(&m);
    let c = compile::compile(&m, &facts, None).unwrap_or_else(|e| panic!("{e:?}"));
    let class = cls::lookup(&c.cls, &c.cls_hash, facts["src"].ifindex, 0x0800, &key([192, 168, 0, 1], 7000)).expect("classified");
    assert_eq!(m.chain_by_id(c.cls_res[&class].chain_id).map(|x| x.name.as_str()), Some("pc1->pc2"));
}

#[test]
fn graphs_are_validated_as_networking_sfc_does() {
    let graph = |g: &str| FILE.replace("      pc1: [pc2, pc3]\n      pc2: [pc4]\n", g);
    let cases = [
        (graph("      pc1: [pc9]\n"), "unknown chain 'pc9'"),
        (graph("      pc1: [pc2, pc2]\n"), "chain 'pc2' is listed twice at the branch of 'pc1'"),
        (graph("      pc1: [pc2]\n      pc2: [pc1]\n"), "a loop: pc1 -> pc2 -> pc1"),
        (graph("      pc1: []\n"), "source chain 'pc1' has no destination chain"),
        (graph("      pc1: [pc2, pc3]\n").replace("destination_port_range_min: 6000, destination_port_range_max: 6000", "destination_port_range_min: 4000, destination_port_range_max: 6000"),
            "at the branch of 'pc1', classifier 'to5000' of chain 'pc2' and 'to6000' of chain 'pc3' overlap"),
        (FILE.replace("  - name: g\n", "  - name: g\n    port_chains: {pc3: [pc4]}\n  - name: h\n"), "chain 'pc4' is already in graph 'g'"),
        (FILE.replace("flow_classifiers: [all]}", "flow_classifiers: [all], chain_parameters: {symmetric: true}}"), "chain 'pc1' is symmetric: service graphs take asymmetric chains only"),
        (graph("      pc1: [pc2]\n").replace("flow_classifiers: [to6000]", "flow_classifiers: [to6000, from-lab]"),
            "flow_classifiers[to6000].logical_source_port: required field is missing (the interface the traffic arrives on; only the classifiers of a service graph's destination chains may leave it out)"),
        (graph("      pc1: [pc2]\n    colour: blue\n"), "unknown field"),
        (FILE.replace("    port_chains:\n      pc1: [pc2, pc3]\n      pc2: [pc4]\n", ""), "service_graphs[g].port_chains: required field is missing"),
    ];
    for (text, want) in cases {
        let got = problems(&text);
        assert!(got.iter().any(|p| p.contains(want)), "want {want:?}, got {got:#?}\n{text}");
    }
    // Nine groups on one path: more hops than a chain has.
    let (mut pps, mut pgs) = (String::new(), String::new());
    for i in 5..=10 {
        let _ = writeln!(pps, "  - {{name: pp{i}, ingress: sf{i}-in, egress: sf{i}-out}}");
        let _ = writeln!(pgs, "  - {{name: pg{i}, port_pairs: [pp{i}]}}");
    }
    let long = FILE
        .replace("port_pair_groups: [pg1], flow_classifiers: [all]", "port_pair_groups: [pg1, pg5, pg6, pg7, pg8, pg9, pg10], flow_classifiers: [all]")
        .replace("  - {name: pg4, port_pairs: [pp4]}\n", &format!("  - {{name: pg4, port_pairs: [pp4]}}\n{pgs}"))
        .replace("  - {name: pp4, ingress: sf4-in, egress: sf4-out}\n", &format!("  - {{name: pp4, ingress: sf4-in, egress: sf4-out}}\n{pps}"));
    let got = problems(&long);
    assert!(got.iter().any(|p| p.contains("the path pc1->pc2->pc4 crosses 9 groups, at most 8 hops")), "{got:#?}");
    let twice = FILE.replace("port_pair_groups: [pg4], flow_classifiers: [from-lab]", "port_pair_groups: [pg4, pg1], flow_classifiers: [from-lab]");
    let nat = FILE.replace("  - {name: pg2, port_pairs: [pp2]}", "  - {name: pg2, port_pairs: [pp2], ppg_n_tuple_mapping: {egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}}}");
    let got = problems(&nat);
    assert!(got.iter().any(|p| p.contains("crosses NAT-ing group 'pg2': service graphs take chains without NAT-ing groups")), "{got:#?}");
    let got = problems(&twice);
    assert!(got.iter().any(|p| p.contains("the path pc1->pc2->pc4 crosses group 'pg1' twice")), "{got:#?}");
}

#[test]
fn a_graph_round_trips_through_neutron() {
    let m = validated(FILE);
    let (body, _) = model::neutron::export(&m);
    assert_eq!(body["port_chains"].as_array().map(Vec::len), Some(4), "the paths are sfc's, not exported");
    assert_eq!(body["flow_classifiers"].as_array().map(Vec::len), Some(4));
    assert_eq!(body["flow_classifiers"][1]["logical_source_port"], serde_json::Value::Null);
    assert_eq!(body["service_graphs"][0]["port_chains"], serde_json::json!({"pc1": ["pc2", "pc3"], "pc2": ["pc4"]}));
    let text = serde_json::to_string(&body).unwrap_or_else(|e| panic!("{e}"));
    let back = config::neutron::import(&[("in.json".to_owned(), text)]).unwrap_or_else(|e| panic!("{e:?}"));
    let again = validated(&back.yaml);
    assert_eq!(again.service_graphs, m.service_graphs);
    assert_eq!(again.port_chains.iter().map(|c| &c.name).collect::<Vec<_>>(), m.port_chains.iter().map(|c| &c.name).collect::<Vec<_>>());
}
