//! Port pair groups: members, weights too light for any flow, load-balancing fields, failure
//! policies, tap groups, health checks.

use std::fmt::Write as _;

use super::{BASE, only, problems};

#[test]
fn group_port_pairs_missing() {
    only(
        "\nport_pair_groups:\n  - {name: pg1}\n",
        "port_pair_groups",
        "pg1",
        "port_pairs",
        2,
        "required field is missing (the port pairs (service function instances) of the group)",
    );
}

#[test]
fn group_empty() {
    only("\nport_pair_groups:\n  - {name: pg1, port_pairs: []}\n", "port_pair_groups", "pg1", "port_pairs", 2, "a group needs at least one port pair");
}

#[test]
fn group_too_big() {
    let mut y = String::from("port_pairs:\n");
    let mut names = Vec::new();
    for i in 0..=sfc_common::limits::MAX_GROUP_MEMBERS {
        writeln!(y, "  - {{name: p{i}, ingress: i{i}, egress: e{i}}}").unwrap();
        names.push(format!("p{i}"));
    }
    writeln!(y, "port_pair_groups:\n  - {{name: pg1, port_pairs: [{}]}}", names.join(", ")).unwrap();
    let max = sfc_common::limits::MAX_GROUP_MEMBERS;
    only(&y, "port_pair_groups", "pg1", "port_pairs", max + 4, &format!("{} port pairs, at most {max} per group", max + 1));
}

#[test]
fn group_unknown_port_pair() {
    only("\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp9]}\n", "port_pair_groups", "pg1", "port_pairs", 2, "unknown port pair 'pp9'");
}

#[test]
fn group_lists_port_pair_twice() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - name: pg1\n    port_pairs:\n      - pp1\n      - pp1\n",
        "port_pair_groups",
        "pg1",
        "port_pairs",
        7,
        "port pair 'pp1' is listed twice",
    );
}

#[test]
fn port_pair_in_two_groups() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1]}\n  - {name: pg2, port_pairs: [pp1]}\n",
        "port_pair_groups",
        "pg2",
        "port_pairs",
        5,
        "port pair 'pp1' is already in group 'pg1' (a port pair belongs to one group)",
    );
}

/// Shares are rounded by largest remainders: one light member next to two heavy ones gets the
/// bucket its half-bucket share rounds to, but of two light ones only the first gets one.
#[test]
fn weight_too_small_to_get_any_flow() {
    only(
        "
port_pairs:
  - {name: heavy1, ingress: a, egress: b, weight: 1000}
  - {name: heavy2, ingress: c, egress: d, weight: 1000}
  - {name: light1, ingress: e, egress: f, weight: 1}
  - {name: light2, ingress: g, egress: h, weight: 1}
port_pair_groups:
  - name: pg1
    port_pairs: [heavy1, heavy2, light1,
                 light2]
",
        "port_pair_groups",
        "pg1",
        "port_pairs",
        9,
        "port pair 'light2' (weight 1) gets no share of the group's 1021-bucket table next to a total weight of 2002, so it would never get a flow: raise its weight or lower the others'",
    );
    let one_light = "
port_pairs:
  - {name: heavy1, ingress: a, egress: b, weight: 1000}
  - {name: heavy2, ingress: c, egress: d, weight: 1000}
  - {name: light, ingress: e, egress: f, weight: 1}
port_pair_groups:
  - {name: pg1, port_pairs: [heavy1, heavy2, light]}
";
    assert_eq!(problems(one_light), vec![]);
}

#[test]
fn lb_field_unknown() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1], lb_fields: [ip_src, vlan]}\n",
        "port_pair_groups",
        "pg1",
        "lb_fields",
        4,
        "unknown field 'vlan' (ip_src, ip_dst, ip_proto, l4_src, l4_dst)",
    );
}

#[test]
fn lb_field_ethernet_not_supported() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1], lb_fields: [eth_src]}\n",
        "port_pair_groups",
        "pg1",
        "lb_fields",
        4,
        "'eth_src' is not supported: members are picked when the flow is classified, from its IP fields",
    );
}

#[test]
fn lb_fields_empty() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1], lb_fields: []}\n",
        "port_pair_groups",
        "pg1",
        "lb_fields",
        4,
        "lb_fields must name at least one field (or be omitted for the 5-tuple)",
    );
}

#[test]
fn failure_policy_unknown() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1], failure_policy: retry}\n",
        "port_pair_groups",
        "pg1",
        "failure_policy",
        4,
        "unknown policy 'retry' (fail-closed or fail-open)",
    );
}

#[test]
fn tap_sampling_is_checked() {
    let pp = "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\n  - {name: pp2, ingress: c, egress: d}\nport_pair_groups:\n";
    only(&format!("{pp}  - {{name: pg1, port_pairs: [pp1], tap_sample_every: 2}}\n"), "port_pair_groups", "pg1", "tap_sample_every", 5, "only a tap group (tap_enabled: true) samples");
    only(&format!("{pp}  - {{name: pg1, port_pairs: [pp1, pp2], tap_enabled: true, tap_sample_every: 0}}\n"), "port_pair_groups", "pg1", "tap_sample_every", 5, "0 is out of range 1..=1000000 (copy 1 packet in N)");
    only(&format!("{pp}  - {{name: pg1, port_pairs: [pp1], tap_enabled: true, tap_sample_probability: 1.5}}\n"), "port_pair_groups", "pg1", "tap_sample_probability", 5, "'1.5' is not a probability in (0, 1]");
    only(&format!("{pp}  - {{name: pg1, port_pairs: [pp1], tap_enabled: true, failure_policy: fail-closed}}\n"), "port_pair_groups", "pg1", "failure_policy", 5, "a tap group never stops traffic (with no member up nothing is copied): leave failure_policy out");
    only(&format!("{pp}  - {{name: pg1, port_pairs: [pp1], tap_enabled: true, health_check: {{destination: 10.0.0.1}}}}\n"), "port_pair_groups", "pg1", "health_check", 5, "a tap group's members send nothing back: probes cannot go through them");
}


/// `BASE` with `health_check` on pg1 (line 4).
fn with_health(h: &str) -> String {
    BASE.replace("{name: pg1, port_pairs: [pp1]}", &format!("{{name: pg1, port_pairs: [pp1], health_check: {h}}}"))
}

#[test]
fn health_check_values() {
    assert_eq!(problems(&with_health("{destination: 10.0.0.20}")), vec![]);
    assert_eq!(problems(&with_health("{destination: 10.0.0.20, source: 10.0.0.1, interval_ms: 50, failures: 2, recoveries: 5}")), vec![]);
    assert_eq!(problems(&with_health("{destination: \"2001:db8::1\", source: \"2001:db8::2\"}")), vec![]);
    let pg = "port_pair_groups";
    only(&with_health("{interval_ms: 100}"), pg, "pg1", "health_check.destination", 4,
        "a probe needs a destination: an address the group's functions forward out of their egress (the chain's destination, for routing functions)");
    only(&with_health("{destination: 10.0.0.20, interval_ms: 5}"), pg, "pg1", "health_check.interval_ms", 4, "5 is not in 10..=60000");
    only(&with_health("{destination: 10.0.0.20, failures: 0}"), pg, "pg1", "health_check.failures", 4, "0 is not in 1..=100");
    only(&with_health("{destination: 10.0.0.20, recoveries: 101}"), pg, "pg1", "health_check.recoveries", 4, "101 is not in 1..=100");
    only(&with_health("{destination: dest-vm}"), pg, "pg1", "health_check.destination", 4, "'dest-vm' is not a unicast IP address");
    only(&with_health("{destination: 224.0.0.1}"), pg, "pg1", "health_check.destination", 4, "'224.0.0.1' is not a unicast IP address");
    only(&with_health("{destination: 10.0.0.20, source: \"2001:db8::2\"}"), pg, "pg1", "health_check.source", 4, "2001:db8::2 and the destination 10.0.0.20 are not of one family");
    only(&with_health("{destination: \"2001:db8::1\"}"), pg, "pg1", "health_check.source", 4, "an IPv6 probe needs a source (no default: a link-local one would not be forwarded)");
    only(&with_health("{destination: 10.0.0.20, timeout: 3}"), pg, "pg1", "health_check.timeout", 4,
        "unknown field (expected one of: interval_ms, failures, recoveries, source, destination)");
    only(&with_health("every-second"), pg, "pg1", "health_check", 4,
        "expected a mapping (interval_ms, failures, recoveries, source, destination), found a string");
}

/// `BASE` with `ppg_n_tuple_mapping` `m` on pg1 (line 4).
fn with_mapping(m: &str) -> String {
    BASE.replace("{name: pg1, port_pairs: [pp1]}", &format!("{{name: pg1, port_pairs: [pp1], ppg_n_tuple_mapping: {m}}}"))
}

#[test]
fn n_tuple_mapping_is_checked() {
    let g = |field: &str, message: &str| ("port_pair_groups".to_owned(), "pg1".to_owned(), field.to_owned(), 4, message.to_owned());
    assert_eq!(problems(&with_mapping("{egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}}")), vec![]);
    assert_eq!(problems(&with_mapping("{egress_n_tuple: {destination_ip_prefix: 10.0.0.0/24, destination_port_range_min: 8080, destination_port_range_max: 8080}}")), vec![]);
    // networking-sfc's own shape, with an empty ingress tuple, is accepted.
    assert_eq!(problems(&with_mapping("{ingress_n_tuple: {}, egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}}")), vec![]);
    let ingress = "sfc remembers each flow by the tuple it entered with: only egress_n_tuple (what the functions send back) is needed; leave ingress_n_tuple out";
    assert_eq!(problems(&with_mapping("{ingress_n_tuple: {source_ip_prefix: 10.0.0.1/32}, egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}}")), vec![g("ppg_n_tuple_mapping.ingress_n_tuple", ingress)]);
    let bad = problems(&with_mapping("{egress_n_tuple: {source_ip_prefix: 10.9.9.300/32}}"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!((bad[0].2.as_str(), bad[0].3), ("ppg_n_tuple_mapping.egress_n_tuple.source_ip_prefix", 4), "{bad:?}");
    assert_eq!(
        problems(&with_mapping("{egress_n_tuple: {source_ip_prefix: \"2001:db8::9/128\"}}")),
        vec![g("ppg_n_tuple_mapping", "2001:db8::9/128 is IPv6 but classifier 'web' of chain 'pc1' is IPv4")]
    );
    assert_eq!(
        problems(&with_mapping("{egress_n_tuple: {source_port_range_min: 70000}}")),
        vec![g("ppg_n_tuple_mapping.egress_n_tuple.source_port_range_min", "port 70000 is out of range 0..=65535")]
    );
    assert_eq!(
        problems(&with_mapping("{egress_n_tuple: {destination_port_range_min: 90, destination_port_range_max: 80}}")),
        vec![g("ppg_n_tuple_mapping.egress_n_tuple.destination_port_range_min", "90 is above 80: the range is empty")]
    );
    let no_ports = with_mapping("{egress_n_tuple: {destination_port_range_min: 8080}}").replace("protocol: tcp, destination_port_range_min: 80, destination_port_range_max: 80, ", "");
    assert_eq!(problems(&no_ports), vec![g("ppg_n_tuple_mapping", "port ranges need a protocol with ports; classifier 'web' of chain 'pc1' has none")]);
    let tap = with_mapping("{egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}}").replace("port_pairs: [pp1],", "port_pairs: [pp1], tap_enabled: true,");
    assert_eq!(problems(&tap), vec![g("ppg_n_tuple_mapping", "a tap group's members send nothing back: there is no output to match")]);
    let two = format!("{}  - {{name: pc2, port_pair_groups: [pg1], flow_classifiers: [web2]}}\n", with_mapping("{egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}}"))
        .replace("flow_classifiers:\n", "flow_classifiers:\n  - {name: web2, protocol: tcp, destination_port_range_min: 81, destination_port_range_max: 81, logical_source_port: src2}\n");
    let got = problems(&two);
    assert!(got.iter().any(|p| p.4 == "a NAT-ing group serves one chain; chains pc1, pc2 all cross it"), "{got:?}");
    let unknown = problems(&with_mapping("{egress_n_tuple: {protocol: udp}}"));
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(unknown[0].4.contains("unknown field"), "{unknown:?}");
}
