//! Classifiers of different chains that overlap with neither more specific, and those that may.

use super::{only, problems};

/// Two chains on port `s`, with classifiers `a` (chain pc1) and `b` (chain pc2) from `fcs`.
fn two_chains(fcs: &str) -> String {
    format!(
        "
port_pairs:
  - {{name: pp1, ingress: i1, egress: e1}}
  - {{name: pp2, ingress: i2, egress: e2}}
port_pair_groups:
  - {{name: pg1, port_pairs: [pp1]}}
  - {{name: pg2, port_pairs: [pp2]}}
flow_classifiers:
{fcs}port_chains:
  - {{name: pc1, port_pair_groups: [pg1], flow_classifiers: [a]}}
  - {{name: pc2, port_pair_groups: [pg2], flow_classifiers: [b]}}
"
    )
}

#[test]
fn identical_classifiers_of_two_chains() {
    let y = two_chains("  - {name: a, protocol: tcp, logical_source_port: s}\n  - {name: b, protocol: 6, logical_source_port: s}\n");
    only(&y, "port_chains", "pc2", "flow_classifiers", 12, "flow classifier 'b' matches exactly the same packets as flow classifier 'a' (chain 'pc1')");
}

#[test]
fn crossing_classifiers_of_two_chains() {
    let y = two_chains(
        "  - {name: a, source_ip_prefix: 10.1.0.0/16, logical_source_port: s}\n  - {name: b, protocol: udp, destination_port_range_min: 53, destination_port_range_max: 53, logical_source_port: s}\n",
    );
    only(
        &y,
        "port_chains",
        "pc2",
        "flow_classifiers",
        12,
        "flow classifier 'b' overlaps flow classifier 'a' (chain 'pc1') and neither is more specific: udp 10.1.0.0 port 0 -> 0.0.0.0 port 53 arriving on 's' matches both",
    );
}

#[test]
fn nested_classifiers_are_fine_the_specific_one_wins() {
    let y = two_chains("  - {name: a, destination_ip_prefix: 10.0.0.0/8, logical_source_port: s}\n  - {name: b, protocol: tcp, destination_ip_prefix: 10.0.0.0/24, logical_source_port: s}\n");
    assert_eq!(problems(&y), vec![]);
}

#[test]
fn classifiers_on_different_ports_or_ethertypes_never_overlap() {
    let y = two_chains("  - {name: a, logical_source_port: s}\n  - {name: b, logical_source_port: t}\n");
    assert_eq!(problems(&y), vec![]);
    let y = two_chains("  - {name: a, logical_source_port: s}\n  - {name: b, ethertype: IPv6, logical_source_port: s}\n");
    assert_eq!(problems(&y), vec![]);
}

#[test]
fn a_classifier_with_a_problem_is_not_also_reported_as_overlapping() {
    // `a`'s prefix is refused, so it is compared with nothing (its default would overlap `b`).
    let y = two_chains("  - {name: a, source_ip_prefix: 10.0.0.1/8, logical_source_port: s}\n  - {name: b, destination_ip_prefix: 10.2.0.0/16, logical_source_port: s}\n");
    only(&y, "flow_classifiers", "a", "source_ip_prefix", 8, "'10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)");
}

#[test]
fn same_chain_crossing_classifiers_with_different_destinations() {
    let y = "
port_pairs:
  - {name: pp1, ingress: i1, egress: e1}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
flow_classifiers:
  - {name: a, source_ip_prefix: 10.1.0.0/16, logical_source_port: s, logical_destination_port: d1}
  - {name: b, destination_ip_prefix: 10.2.0.0/16, logical_source_port: s, logical_destination_port: d2}
  - {name: c, destination_ip_prefix: 10.3.0.0/16, logical_source_port: s, logical_destination_port: d1}
port_chains:
  - name: pc1
    port_pair_groups: [pg1]
    flow_classifiers: [a,
      b, c]
";
    only(
        y,
        "port_chains",
        "pc1",
        "flow_classifiers",
        13,
        "flow classifier 'b' overlaps flow classifier 'a' (chain 'pc1') and neither is more specific: a packet 10.1.0.0 -> 10.2.0.0 arriving on 's' matches both; they deliver to different logical_destination_ports",
    );
}
