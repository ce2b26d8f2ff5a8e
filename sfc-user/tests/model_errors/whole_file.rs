//! Every problem of a file at once, in line order, and line numbers for JSON input.

use sfc::{config, model};

use super::problems;

#[test]
fn every_problem_is_reported_in_line_order() {
    let y = "
port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out, weight: 0}
  - {name: pp2, ingress: sf1-in, egress: sf2-out, colour: blue}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1, pp9]}
flow_classifiers:
  - {name: web, protocol: icmp, destination_port_range_min: 80, logical_source_port: src}
  - {name: web, protocol: tcp, logical_source_port: src}
port_chains:
  - {name: pc1, chain_id: 0, port_pair_groups: [pg1, pg9], flow_classifiers: [web, dns]}
";
    let got: Vec<String> = {
        let cfg = config::parse("t.yaml", y.strip_prefix('\n').unwrap_or(y)).expect("parses");
        model::validate(&cfg).expect_err("broken").0.iter().map(ToString::to_string).collect()
    };
    assert_eq!(got, [
        "port_pairs[pp1].weight: weight 0 is out of range 1..=1000 (line 2)",
        "port_pairs[pp2].colour: unknown field (expected one of: name, id, description, ingress, egress, weight, ingress_mac, egress_mac, correlation, nsh_md_type, nsh_context) (line 3)",
        "port_pairs[pp2].ingress: interface 'sf1-in' is already the ingress of port pair 'pp1' (line 3)",
        "port_pair_groups[pg1].port_pairs: unknown port pair 'pp9' (line 5)",
        "flow_classifiers[web].destination_port_range_min: port ranges need protocol tcp, udp, sctp or udplite; this classifier has protocol icmp (line 7)",
        "flow_classifiers[web].name: duplicate name (first defined on line 7) (line 8)",
        "port_chains[pc1].chain_id: chain_id 0 is out of range 1..=65535 (line 10)",
        "port_chains[pc1].port_pair_groups: unknown group 'pg9' (line 10)",
        "port_chains[pc1].flow_classifiers: unknown flow classifier 'dns' (line 10)",
    ]);
}

#[test]
fn json_input_gets_line_numbers_too() {
    let y = r#"{
  "port_pairs": [
    {"name": "pp1", "ingress": "a", "egress": "b"}
  ],
  "port_pair_groups": [
    {"name": "pg1", "port_pairs": ["pp1", "pp2"]}
  ]
}"#;
    assert_eq!(problems(y), vec![("port_pair_groups".into(), "pg1".into(), "port_pairs".into(), 6, "unknown port pair 'pp2'".into())]);
}
