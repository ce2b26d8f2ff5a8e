//! Port chains: chain ids, groups, classifiers, correlation, symmetry.

use std::fmt::Write as _;

use sfc::{config, model};

use super::{BASE, only, problems};

#[test]
fn chain_id_out_of_range() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1]}\nport_chains:\n  - {name: pc1, chain_id: 65536, port_pair_groups: [pg1]}\n",
        "port_chains",
        "pc1",
        "chain_id",
        6,
        "chain_id 65536 is out of range 1..=65535",
    );
}

#[test]
fn chain_id_taken() {
    only(
        "
port_pairs:
  - {name: pp1, ingress: a, egress: b}
  - {name: pp2, ingress: c, egress: d}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - {name: pg2, port_pairs: [pp2]}
port_chains:
  - {name: pc1, chain_id: 4, port_pair_groups: [pg1]}
  - {name: pc2, chain_id: 4, port_pair_groups: [pg1, pg2]}
",
        "port_chains",
        "pc2",
        "chain_id",
        9,
        "chain_id 4 is already used by chain 'pc1'",
    );
}

#[test]
fn chain_groups_missing() {
    only("\nport_chains:\n  - {name: pc1}\n", "port_chains", "pc1", "port_pair_groups", 2, "required field is missing (the groups the traffic crosses, in order)");
}

#[test]
fn chain_without_groups() {
    only("\nport_chains:\n  - {name: pc1, port_pair_groups: []}\n", "port_chains", "pc1", "port_pair_groups", 2, "a chain needs at least one port pair group");
}

#[test]
fn chain_too_long() {
    let mut y = String::from("port_pairs:\n");
    let mut groups = String::from("port_pair_groups:\n");
    let mut names = Vec::new();
    for i in 0..=sfc_common::limits::MAX_HOPS {
        writeln!(y, "  - {{name: p{i}, ingress: i{i}, egress: e{i}}}").unwrap();
        writeln!(groups, "  - {{name: g{i}, port_pairs: [p{i}]}}").unwrap();
        names.push(format!("g{i}"));
    }
    y.push_str(&groups);
    writeln!(y, "port_chains:\n  - {{name: pc1, port_pair_groups: [{}]}}", names.join(", ")).unwrap();
    let max = sfc_common::limits::MAX_HOPS;
    let line = u32::try_from(2 * max + 6).unwrap();
    only(&y, "port_chains", "pc1", "port_pair_groups", line, &format!("{} groups, at most {max} hops are supported", max + 1));
}

#[test]
fn chain_unknown_group() {
    only("\nport_chains:\n  - {name: pc1, port_pair_groups: [pg9]}\n", "port_chains", "pc1", "port_pair_groups", 2, "unknown group 'pg9'");
}

#[test]
fn chain_lists_group_twice() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1]}\nport_chains:\n  - name: pc1\n    port_pair_groups: [pg1,\n      pg1]\n",
        "port_chains",
        "pc1",
        "port_pair_groups",
        8,
        "group 'pg1' is listed twice (a port pair is used at most once per chain)",
    );
}

/// Consecutive taps are fine (networking-sfc refuses them); five in a row are more than one hop
/// decision copies to.
#[test]
fn five_tap_groups_in_a_row() {
    use std::fmt::Write as _;
    let (mut pps, mut pgs) = (String::new(), String::new());
    for i in 1..=5 {
        let _ = writeln!(pps, "  - {{name: pp{i}, ingress: i{i}, egress: e{i}}}");
        let _ = writeln!(pgs, "  - {{name: tap{i}, port_pairs: [pp{i}], tap_enabled: true}}");
    }
    let text = format!("\nport_pairs:\n{pps}port_pair_groups:\n{pgs}port_chains:\n  - {{name: pc1, port_pair_groups: [tap1, tap2, tap3, tap4, tap5]}}\n");
    only(&text, "port_chains", "pc1", "port_pair_groups", 14, "more than 4 tap groups in a row");
}

/// A fail-open inline group may be skipped: the taps on both sides of it are one row.
#[test]
fn a_fail_open_group_does_not_end_a_row_of_taps() {
    use std::fmt::Write as _;
    let (mut pps, mut pgs) = (String::new(), String::new());
    for i in 1..=5 {
        let _ = writeln!(pps, "  - {{name: pp{i}, ingress: i{i}, egress: e{i}}}");
        let _ = writeln!(pgs, "  - {{name: tap{i}, port_pairs: [pp{i}], tap_enabled: true}}");
    }
    let text = format!(
        "\nport_pairs:\n{pps}  - {{name: pp9, ingress: i9, egress: e9}}\nport_pair_groups:\n{pgs}  - {{name: open, port_pairs: [pp9], failure_policy: fail-open}}\nport_chains:\n  - {{name: pc1, port_pair_groups: [tap1, tap2, open, tap3, tap4, tap5]}}\n"
    );
    only(&text, "port_chains", "pc1", "port_pair_groups", 16, "more than 4 tap groups in a row");
}

#[test]
fn tap_groups_in_a_row_first_and_last_are_accepted() {
    let text = "
port_pairs:
  - {name: pp1, ingress: a, egress: b}
  - {name: pp2, ingress: c, egress: d}
  - {name: pp3, ingress: e, egress: f}
port_pair_groups:
  - {name: tap1, port_pairs: [pp1], tap_enabled: true}
  - {name: tap2, port_pairs: [pp2], tap_enabled: true, tap_sample_every: 10}
  - {name: pg3, port_pairs: [pp3]}
flow_classifiers:
  - {name: fc, protocol: tcp, logical_source_port: src}
port_chains:
  - {name: pc1, port_pair_groups: [tap1, tap2, pg3], flow_classifiers: [fc]}
  - {name: pc2, port_pair_groups: [pg3, tap1]}
";
    let cfg = sfc::config::parse("t.yaml", text).expect("parses");
    sfc::model::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn two_chains_with_the_same_path() {
    only(
        "
port_pairs:
  - {name: pp1, ingress: a, egress: b}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
port_chains:
  - {name: pc1, port_pair_groups: [pg1]}
  - {name: pc2, port_pair_groups: [pg1]}
",
        "port_chains",
        "pc2",
        "port_pair_groups",
        7,
        "chain 'pc1' already crosses exactly these groups (networking-sfc rule): give its flow classifiers to that chain",
    );
}

#[test]
fn a_group_may_serve_several_chains() {
    let y = "
port_pairs:
  - {name: pp1, ingress: a, egress: b}
  - {name: pp2, ingress: c, egress: d}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - {name: pg2, port_pairs: [pp2]}
port_chains:
  - {name: pc1, port_pair_groups: [pg1]}
  - {name: pc2, port_pair_groups: [pg1, pg2]}
";
    assert_eq!(problems(y), vec![]);
}

#[test]
fn chain_unknown_classifier() {
    let y = BASE.replace("flow_classifiers: [web]", "flow_classifiers: [web, nope]");
    only(&y, "port_chains", "pc1", "flow_classifiers", 8, "unknown flow classifier 'nope'");
}

#[test]
fn chain_lists_classifier_twice() {
    let y = BASE.replace("flow_classifiers: [web]", "flow_classifiers: [web, web]");
    only(&y, "port_chains", "pc1", "flow_classifiers", 8, "flow classifier 'web' is listed twice");
}

#[test]
fn classifier_in_two_chains() {
    let y = "
port_pairs:
  - {name: pp1, ingress: a, egress: b}
  - {name: pp2, ingress: c, egress: d}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - {name: pg2, port_pairs: [pp2]}
flow_classifiers:
  - {name: web, logical_source_port: s}
port_chains:
  - {name: pc1, port_pair_groups: [pg1], flow_classifiers: [web]}
  - {name: pc2, port_pair_groups: [pg2], flow_classifiers: [web]}
";
    only(y, "port_chains", "pc2", "flow_classifiers", 11, "flow classifier 'web' is already used by chain 'pc1' (a classifier belongs to one chain)");
}

/// SFC-aware members (`correlation` on a port pair): what the chains and the file must give them.
#[test]
fn sfc_aware_members_are_checked() {
    let aware = |pp: &str| BASE.replace("{name: pp1, ingress: sf1-in, egress: sf1-out}", &format!("{{name: pp1, ingress: sf1-in, egress: sf1-out, {pp}}}"));
    assert_eq!(super::problems(&aware("correlation: nsh")), vec![]);
    assert_eq!(super::problems(&aware("correlation: mpls")), vec![]);
    assert_eq!(super::problems(&aware("correlation: nsh, nsh_md_type: 2")), vec![]);
    assert_eq!(super::problems(&aware("correlation: nsh, nsh_context: [1, 2, 3, 4]")), vec![]);
    // A chain naming its correlation: accepted, and it must be the members'.
    let chain = |c: &str| BASE.replace("flow_classifiers: [web]}", &format!("flow_classifiers: [web], chain_parameters: {{correlation: {c}}}}}"));
    assert_eq!(super::problems(&chain("mpls")), vec![]);
    let both = chain("mpls").replace("egress: sf1-out}", "egress: sf1-out, correlation: nsh}");
    only(&both, "port_pairs", "pp1", "correlation", 2, "nsh but chain 'pc1' says mpls");
    only(&aware("correlation: vxlan"), "port_pairs", "pp1", "correlation", 2, "unknown correlation 'vxlan' (none, mpls or nsh)");
    only(&aware("nsh_md_type: 2"), "port_pairs", "pp1", "nsh_md_type", 2, "only an NSH function (correlation: nsh) has an MD type");
    only(&aware("correlation: nsh, nsh_md_type: 3"), "port_pairs", "pp1", "nsh_md_type", 2, "MD type 3 is not 1 (fixed context) or 2 (no metadata)");
    only(&aware("correlation: nsh, nsh_md_type: 2, nsh_context: [1, 2, 3, 4]"), "port_pairs", "pp1", "nsh_context", 2, "only NSH MD type 1 carries a fixed context");
    only(&aware("correlation: nsh, nsh_context: [1, 2]"), "port_pairs", "pp1", "nsh_context", 2, "2 words, MD type 1's context is 4 32-bit words");
    only(&aware("correlation: nsh, nsh_context: [1, 2, 3, 4294967296]"), "port_pairs", "pp1", "nsh_context", 2, "4294967296 is not a 32-bit word (0..=4294967295)");
    let symmetric = aware("correlation: nsh").replace("flow_classifiers: [web]}", "flow_classifiers: [web], chain_parameters: {symmetric: true}}").replace("logical_source_port: src}", "logical_source_port: src, logical_destination_port: dst}");
    only(&symmetric, "port_chains", "pc1", "chain_parameters.symmetric", 0, "group 'pg1' has an SFC-aware member ('pp1'): sfc pushes its header on the forward path only; make the chain asymmetric");
    let big_id = aware("correlation: mpls").replace("{name: pc1,", "{name: pc1, chain_id: 4096,");
    only(&big_id, "port_chains", "pc1", "chain_id", 0, "chain_id 4096 does not fit an MPLS label (chain_id << 8 | SI in 20 bits: at most 4095) and member 'pp1' is MPLS");
    let tap = aware("correlation: nsh").replace("{name: pg1, port_pairs: [pp1]}", "{name: pg1, port_pairs: [pp1], tap_enabled: true}");
    only(&tap, "port_pairs", "pp1", "correlation", 2, "port pair 'pp1' is in tap group 'pg1': a tap sends nothing back, there is no header to read");
    let probed = aware("correlation: nsh").replace("{name: pg1, port_pairs: [pp1]}", "{name: pg1, port_pairs: [pp1], health_check: {destination: 10.0.0.1}}");
    only(&probed, "port_pairs", "pp1", "correlation", 2, "group 'pg1' has a health_check: its probes carry no header, which an SFC-aware function need not answer");
    let with_tap = aware("correlation: nsh")
        .replace("port_pair_groups:\n", "  - {name: pp9, ingress: t-in, egress: t-out}\nport_pair_groups:\n  - {name: tap, port_pairs: [pp9], tap_enabled: true}\n")
        .replace("port_pair_groups: [pg1]", "port_pair_groups: [pg1, tap]");
    only(&with_tap, "port_chains", "pc1", "port_pair_groups", 0, "tap group 'tap' needs tc on the chain's members' interfaces, and SFC-aware member 'pp1' needs XDP on its egress");
    let tc = format!("{}interfaces:\n  - {{name: sf1-out, mode: tc}}\n", aware("correlation: nsh"));
    only(&tc, "port_pairs", "pp1", "egress", 2, "'sf1-out' is set to tc in interfaces:, but the header an SFC-aware function sends back can only be removed by XDP");
}

#[test]
fn correlation_unknown() {
    let y = BASE.replace("flow_classifiers: [web]}", "flow_classifiers: [web], chain_parameters: {correlation: vxlan}}");
    only(&y, "port_chains", "pc1", "chain_parameters.correlation", 8, "unknown correlation 'vxlan' (none, mpls or nsh)");
}

#[test]
fn symmetric_chain_needs_a_destination_port() {
    let y = BASE.replace("flow_classifiers: [web]}", "flow_classifiers: [web],\n     chain_parameters: {symmetric: true}}");
    only(
        &y,
        "port_chains",
        "pc1",
        "chain_parameters.symmetric",
        9,
        "a symmetric chain needs logical_destination_port on its flow classifiers (the reverse path starts there); 'web' has none",
    );
    let ok = y.replace("logical_source_port: src}", "logical_source_port: src, logical_destination_port: dst}");
    assert_eq!(problems(&ok), vec![]);
}

#[test]
fn lowest_free_chain_id_is_assigned() {
    let y = "
port_pairs:
  - {name: pp1, ingress: a, egress: b}
  - {name: pp2, ingress: c, egress: d}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - {name: pg2, port_pairs: [pp2]}
port_chains:
  - {name: pc1, port_pair_groups: [pg1]}
  - {name: pc2, chain_id: 1, port_pair_groups: [pg2]}
  - {name: pc3, port_pair_groups: [pg1, pg2]}
  - {name: pc4, chain_id: 3, port_pair_groups: [pg2, pg1]}
";
    let m = model::validate(&config::parse("t", y).expect("parses")).expect("valid");
    let ids: Vec<(&str, u32)> = m.port_chains.iter().map(|c| (c.name.as_str(), c.chain_id)).collect();
    assert_eq!(ids, [("pc1", 2), ("pc2", 1), ("pc3", 4), ("pc4", 3)]);
}
