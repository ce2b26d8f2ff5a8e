//! One test per error message of `config::parse` + `model::validate`: a small file with exactly
//! that problem, and the exact section, resource, field, line and message it must produce.
//! (Files start right after the opening quote's newline: the first line shown is line 1.)

use std::fmt::Write as _;

use sfc::{config, model};

/// Every problem of `yaml`, as (kind, resource, field, line, message).
fn problems(yaml: &str) -> Vec<(String, String, String, u32, String)> {
    let yaml = yaml.strip_prefix('\n').unwrap_or(yaml);
    let cfg = config::parse("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    match model::validate(&cfg) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| (e.kind, e.resource, e.field, e.line, e.message)).collect(),
    }
}

/// Asserts `yaml` has exactly one problem, this one.
#[track_caller]
fn only(yaml: &str, kind: &str, resource: &str, field: &str, line: u32, message: &str) {
    let got = problems(yaml);
    let want = vec![(kind.to_owned(), resource.to_owned(), field.to_owned(), line, message.to_owned())];
    assert_eq!(got, want);
}

/// A valid file to build on: one port pair, group, classifier and chain (lines 1-8).
const BASE: &str = "
port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
flow_classifiers:
  - {name: web, protocol: tcp, destination_port_range_min: 80, destination_port_range_max: 80, logical_source_port: src}
port_chains:
  - {name: pc1, port_pair_groups: [pg1], flow_classifiers: [web]}
";

#[test]
fn base_is_valid() {
    assert_eq!(problems(BASE), vec![]);
}

#[test]
fn display_names_resource_field_and_line() {
    let e = model::ValidationError {
        kind: "port_chains".into(),
        resource: "pc1".into(),
        field: "port_pair_groups".into(),
        line: 31,
        message: "unknown group 'pg9'".into(),
    };
    assert_eq!(e.to_string(), "port_chains[pc1].port_pair_groups: unknown group 'pg9' (line 31)");
    let e = model::ValidationError { kind: String::new(), resource: String::new(), field: String::new(), line: 0, ..e };
    assert_eq!(e.to_string(), "unknown group 'pg9'");
}

// ---- the file's shape (config::parse) ----------------------------------------------------------

#[test]
fn file_not_a_mapping() {
    only("\n- a\n- b\n", "", "", "", 1, "a chain file is a mapping of port_pairs, port_pair_groups, flow_classifiers, port_chains, interfaces, found a list");
}

#[test]
fn section_name_not_a_string() {
    only("\n? [a]\n: 1\n", "", "", "", 1, "expected a section name (port_pairs, port_pair_groups, flow_classifiers, port_chains, interfaces), found a list");
}

#[test]
fn unknown_section() {
    only("\nport_pair: []\n", "port_pair", "", "", 1, "unknown section (did you mean 'port_pairs'?)");
    only("\nservices: []\n", "services", "", "", 1, "unknown section (expected one of: port_pairs, port_pair_groups, flow_classifiers, port_chains, interfaces)");
}

#[test]
fn section_given_twice() {
    only("\nport_pairs: []\nport_pairs: []\n", "port_pairs", "", "", 2, "section given twice (first on line 1); put all its entries in one list");
}

#[test]
fn section_not_a_list() {
    only("\nport_pairs: {name: pp1}\n", "port_pairs", "", "", 1, "expected a list of port pairs, found a mapping");
}

#[test]
fn resource_not_a_mapping() {
    only("\nport_chains:\n  - pc1\n", "port_chains", "#0", "", 2, "expected a mapping (one port chain), found a string");
}

#[test]
fn field_name_not_a_string() {
    only(
        "\nport_pairs:\n  - name: pp1\n    ingress: a\n    egress: b\n    [x]: 1\n",
        "port_pairs",
        "pp1",
        "",
        5,
        "expected a field name, found a list",
    );
}

#[test]
fn unknown_field_with_suggestion() {
    only("\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, wieght: 2}\n", "port_pairs", "pp1", "wieght", 2, "unknown field (did you mean 'weight'?)");
}

#[test]
fn unknown_field_without_suggestion() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, colour: red}\n",
        "port_pairs",
        "pp1",
        "colour",
        2,
        "unknown field (expected one of: name, description, ingress, egress, weight)",
    );
}

#[test]
fn networking_sfc_nested_parameters_are_pointed_at_their_flat_form() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, service_function_parameters: {weight: 2}}\n",
        "port_pairs",
        "pp1",
        "service_function_parameters",
        2,
        "unknown field (sfc takes `weight` directly on the port pair)",
    );
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1], port_pair_group_parameters: {}}\n",
        "port_pair_groups",
        "pg1",
        "port_pair_group_parameters",
        4,
        "unknown field (sfc takes `lb_fields` directly on the group)",
    );
}

#[test]
fn field_given_twice() {
    only("\nport_pairs:\n  - name: pp1\n    ingress: a\n    egress: b\n    ingress: c\n", "port_pairs", "pp1", "ingress", 5, "given twice (first on line 3)");
}

#[test]
fn string_expected() {
    only("\nport_pairs:\n  - {name: pp1, ingress: [a], egress: b}\n", "port_pairs", "pp1", "ingress", 2, "expected a string, found a list");
}

#[test]
fn whole_number_expected() {
    only("\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, weight: heavy}\n", "port_pairs", "pp1", "weight", 2, "expected a whole number, found 'heavy'");
    only("\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, weight: 1.5}\n", "port_pairs", "pp1", "weight", 2, "expected a whole number, found '1.5'");
}

#[test]
fn boolean_expected() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1], tap_enabled: sometimes}\n",
        "port_pair_groups",
        "pg1",
        "tap_enabled",
        4,
        "expected true or false, found a string",
    );
}

#[test]
fn protocol_expected() {
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: [tcp], logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "protocol",
        2,
        "expected a protocol name or number, found a list",
    );
}

#[test]
fn list_expected() {
    only("\nport_pair_groups:\n  - {name: pg1, port_pairs: pp1}\n", "port_pair_groups", "pg1", "port_pairs", 2, "expected a list, found a string (write [pp1])");
}

#[test]
fn name_expected_in_a_list() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nport_pair_groups:\n  - name: pg1\n    port_pairs:\n      - pp1\n      - {x: 1}\n",
        "port_pair_groups",
        "pg1",
        "port_pairs",
        7,
        "expected a name, found a mapping",
    );
}

#[test]
fn chain_parameters_not_a_mapping() {
    only(
        &BASE.replace("flow_classifiers: [web]}", "flow_classifiers: [web], chain_parameters: symmetric}"),
        "port_chains",
        "pc1",
        "chain_parameters",
        8,
        "expected a mapping (symmetric, correlation), found a string",
    );
}

#[test]
fn unknown_chain_parameter() {
    only(
        &BASE.replace("flow_classifiers: [web]}", "flow_classifiers: [web], chain_parameters: {symetric: true}}"),
        "port_chains",
        "pc1",
        "chain_parameters.symetric",
        8,
        "unknown field (did you mean 'symmetric'?)",
    );
}

#[test]
fn yaml_syntax_error_is_one_error_with_its_line() {
    let e = config::parse("t.yaml", "port_pairs:\n  - {name: pp1\n").map(|_| ()).expect_err("not YAML");
    let config::ConfigError::Syntax { line, .. } = &e else { panic!("{e}") };
    assert_eq!(*line, 2, "{e}");
    assert!(e.to_string().starts_with("t.yaml: YAML syntax error: "), "{e}");
}

// ---- names ---------------------------------------------------------------------------------------

#[test]
fn name_missing() {
    only("\nport_pairs:\n  - {ingress: a, egress: b}\n", "port_pairs", "#0", "name", 2, "required field is missing (every resource is named; references use the name)");
}

#[test]
fn name_empty() {
    only("\nport_pairs:\n  - {name: ' ', ingress: a, egress: b}\n", "port_pairs", "#0", "name", 2, "name must not be empty");
}

#[test]
fn name_too_long() {
    let long = "n".repeat(256);
    only(
        &format!("\nport_pairs:\n  - {{name: {long}, ingress: a, egress: b}}\n"),
        "port_pairs",
        &long,
        "name",
        2,
        "name is 256 bytes long, at most 255",
    );
}

#[test]
fn name_duplicate() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\n  - {name: pp1, ingress: c, egress: d}\n",
        "port_pairs",
        "pp1",
        "name",
        3,
        "duplicate name (first defined on line 2)",
    );
}

#[test]
fn too_many_resources() {
    let mut y = String::from("port_pairs:\n");
    for i in 0..=sfc_common::limits::MAX_PORT_PAIRS {
        writeln!(y, "  - {{name: p{i}, ingress: i{i}, egress: e{i}}}").unwrap();
    }
    let max = sfc_common::limits::MAX_PORT_PAIRS;
    only(&y, "port_pairs", "", "", 0, &format!("{} resources, at most {max} are supported", max + 1));
}

// ---- port pairs -----------------------------------------------------------------------------------

#[test]
fn ingress_missing() {
    only(
        "\nport_pairs:\n  - {name: pp1, egress: b}\n",
        "port_pairs",
        "pp1",
        "ingress",
        2,
        "required field is missing (the interface through which traffic is sent into the service function)",
    );
}

#[test]
fn egress_missing() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a}\n",
        "port_pairs",
        "pp1",
        "egress",
        2,
        "required field is missing (the interface on which the service function sends traffic back; may equal ingress)",
    );
}

#[test]
fn wrong_type_is_reported_once_not_also_as_missing() {
    let p = problems("\nport_pairs:\n  - {name: pp1, ingress: {}, egress: b}\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].4, "expected a string, found a mapping");
}

#[test]
fn interface_name_invalid() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: sf1/in, egress: b}\n",
        "port_pairs",
        "pp1",
        "ingress",
        2,
        "'sf1/in' is not a valid interface name (1-15 bytes, no '/', ':' or spaces)",
    );
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a-very-long-interface, egress: b}\n",
        "port_pairs",
        "pp1",
        "ingress",
        2,
        "'a-very-long-interface' is not a valid interface name (1-15 bytes, no '/', ':' or spaces)",
    );
}

#[test]
fn weight_out_of_range() {
    only("\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, weight: 0}\n", "port_pairs", "pp1", "weight", 2, "weight 0 is out of range 1..=1000");
    only("\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, weight: -3}\n", "port_pairs", "pp1", "weight", 2, "weight -3 is out of range 1..=1000");
}

#[test]
fn interface_already_used_by_another_port_pair() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\n  - {name: pp2, ingress: c, egress: a}\n",
        "port_pairs",
        "pp2",
        "egress",
        3,
        "interface 'a' is already the ingress of port pair 'pp1'",
    );
}

#[test]
fn ingress_may_equal_egress() {
    assert_eq!(problems("\nport_pairs:\n  - {name: pp1, ingress: a, egress: a}\n"), vec![]);
}

// ---- port pair groups -----------------------------------------------------------------------------

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
fn tap_group_with_two_members() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\n  - {name: pp2, ingress: c, egress: d}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1, pp2], tap_enabled: true}\n",
        "port_pair_groups",
        "pg1",
        "tap_enabled",
        5,
        "a tap group has exactly one port pair (networking-sfc rule), this one has 2",
    );
}

// ---- flow classifiers -------------------------------------------------------------------------------

#[test]
fn ethertype_unknown() {
    only("\nflow_classifiers:\n  - {name: f, ethertype: ARP, logical_source_port: s}\n", "flow_classifiers", "f", "ethertype", 2, "unknown ethertype 'arp' (IPv4 or IPv6)");
}

#[test]
fn protocol_number_out_of_range() {
    only("\nflow_classifiers:\n  - {name: f, protocol: 300, logical_source_port: s}\n", "flow_classifiers", "f", "protocol", 2, "protocol number 300 is out of range 0..=255");
}

#[test]
fn protocol_name_unknown() {
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: quic, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "protocol",
        2,
        "unknown protocol 'quic' (tcp, udp, icmp, icmpv6, sctp, udplite or a number 0..=255)",
    );
}

#[test]
fn protocol_by_name_or_number() {
    let y = "\nflow_classifiers:\n  - {name: a, protocol: 6, logical_source_port: s}\n  - {name: b, protocol: '17', logical_source_port: s}\n  - {name: c, protocol: UDP, logical_source_port: s}\n";
    let m = model::validate(&config::parse("t", y).expect("parses")).expect("valid");
    let p: Vec<Option<u8>> = m.flow_classifiers.iter().map(|f| f.protocol).collect();
    assert_eq!(p, [Some(6), Some(17), Some(17)]);
}

#[test]
fn protocol_of_the_other_ip_version() {
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: icmpv6, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "protocol",
        2,
        "protocol icmpv6 does not exist with ethertype IPv4 (use icmp)",
    );
    only(
        "\nflow_classifiers:\n  - {name: f, ethertype: IPv6, protocol: 1, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "protocol",
        2,
        "protocol icmp does not exist with ethertype IPv6 (use icmpv6)",
    );
}

#[test]
fn prefix_not_an_address() {
    only("\nflow_classifiers:\n  - {name: f, source_ip_prefix: web-servers, logical_source_port: s}\n", "flow_classifiers", "f", "source_ip_prefix", 2, "'web-servers' is not an IP prefix");
}

#[test]
fn prefix_length_out_of_range() {
    only(
        "\nflow_classifiers:\n  - {name: f, destination_ip_prefix: 10.0.0.0/33, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "destination_ip_prefix",
        2,
        "'10.0.0.0/33': prefix length must be 0..=32",
    );
}

#[test]
fn prefix_with_host_bits() {
    only(
        "\nflow_classifiers:\n  - {name: f, destination_ip_prefix: 10.0.0.1/24, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "destination_ip_prefix",
        2,
        "'10.0.0.1/24' has host bits set (did you mean 10.0.0.0/24?)",
    );
}

#[test]
fn prefix_of_the_other_ethertype() {
    only(
        "\nflow_classifiers:\n  - {name: f, source_ip_prefix: '2001:db8::/32', logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "source_ip_prefix",
        2,
        "2001:db8::/32 is IPv6 but the classifier's ethertype is IPv4",
    );
}

#[test]
fn ports_without_a_protocol_that_has_them() {
    only(
        "\nflow_classifiers:\n  - {name: f, destination_port_range_max: 80, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "destination_port_range_max",
        2,
        "port ranges need protocol tcp, udp, sctp or udplite; this classifier has no protocol",
    );
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: icmp, source_port_range_min: 1, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "source_port_range_min",
        2,
        "port ranges need protocol tcp, udp, sctp or udplite; this classifier has protocol icmp",
    );
}

#[test]
fn port_out_of_range() {
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: udp, source_port_range_max: 70000, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "source_port_range_max",
        2,
        "port 70000 is out of range 0..=65535",
    );
}

#[test]
fn port_range_reversed() {
    only(
        "
flow_classifiers:
  - name: f
    protocol: tcp
    destination_port_range_min: 90
    destination_port_range_max: 80
    logical_source_port: s
",
        "flow_classifiers",
        "f",
        "destination_port_range_min",
        4,
        "destination_port_range_min 90 is above destination_port_range_max 80: the range is empty",
    );
}

#[test]
fn logical_source_port_missing() {
    only("\nflow_classifiers:\n  - {name: f}\n", "flow_classifiers", "f", "logical_source_port", 2, "required field is missing (the interface the traffic arrives on)");
}

#[test]
fn logical_port_is_a_service_function_interface() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nflow_classifiers:\n  - {name: f, logical_source_port: s, logical_destination_port: b}\n",
        "flow_classifiers",
        "f",
        "logical_destination_port",
        4,
        "interface 'b' is the egress of port pair 'pp1', it cannot also be a logical port",
    );
}

// ---- port chains -------------------------------------------------------------------------------------

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

#[test]
fn consecutive_tap_groups() {
    only(
        "
port_pairs:
  - {name: pp1, ingress: a, egress: b}
  - {name: pp2, ingress: c, egress: d}
port_pair_groups:
  - {name: tap1, port_pairs: [pp1], tap_enabled: true}
  - {name: tap2, port_pairs: [pp2], tap_enabled: true}
port_chains:
  - {name: pc1, port_pair_groups: [tap1, tap2]}
",
        "port_chains",
        "pc1",
        "port_pair_groups",
        8,
        "tap group 'tap2' follows tap group 'tap1': consecutive tap groups are not supported (networking-sfc rule)",
    );
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

#[test]
fn correlation_not_supported_yet() {
    let y = BASE.replace("flow_classifiers: [web]}", "flow_classifiers: [web], chain_parameters: {correlation: mpls}}");
    only(&y, "port_chains", "pc1", "chain_parameters.correlation", 8, "correlation 'mpls' (SFC-aware service functions) is not supported yet; use none");
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

// ---- overlapping classifiers ---------------------------------------------------------------------

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

// ---- all problems at once ----------------------------------------------------------------------------

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
        "port_pairs[pp2].colour: unknown field (expected one of: name, description, ingress, egress, weight) (line 3)",
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

// ---- interfaces (attach mode per interface) ---------------------------------------------------

fn with_interfaces(entries: &str) -> String {
    format!("{BASE}interfaces:\n{entries}")
}

#[test]
fn interface_modes_are_read() {
    let cfg = config::parse("t.yaml", &with_interfaces("  - {name: sf1-out, mode: xdp}\n  - {name: src, mode: TC}\n")).expect("parses");
    let m = model::validate(&cfg).expect("valid");
    assert_eq!(m.mode_of("sf1-out", model::AttachMode::Tc), model::AttachMode::Xdp);
    assert_eq!(m.mode_of("src", model::AttachMode::Xdp), model::AttachMode::Tc);
    assert_eq!(m.mode_of("sf1-in", model::AttachMode::Xdp), model::AttachMode::Xdp, "not listed: the default");
}

#[test]
fn interface_not_used_by_the_file() {
    only(&with_interfaces("  - {name: sf1-ot, mode: xdp}\n"), "interfaces", "sf1-ot", "name", 10, "'sf1-ot' is not an interface of any port pair or flow classifier (did you mean 'sf1-out'?)");
    only(&with_interfaces("  - {name: eth7, mode: xdp}\n"), "interfaces", "eth7", "name", 10, "'eth7' is not an interface of any port pair or flow classifier");
}

#[test]
fn interface_mode_missing_or_unknown() {
    only(&with_interfaces("  - {name: src}\n"), "interfaces", "src", "mode", 10, "required field is missing (tc or xdp)");
    only(&with_interfaces("  - {name: src, mode: skb}\n"), "interfaces", "src", "mode", 10, "unknown mode 'skb' (tc or xdp)");
}

#[test]
fn interface_listed_twice_or_with_unknown_field() {
    only(&with_interfaces("  - {name: src, mode: xdp}\n  - {name: src, mode: tc}\n"), "interfaces", "src", "name", 11, "duplicate name (first defined on line 10)");
    only(&with_interfaces("  - {name: src, mdoe: xdp, mode: tc}\n"), "interfaces", "src", "mdoe", 10, "unknown field (did you mean 'mode'?)");
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
