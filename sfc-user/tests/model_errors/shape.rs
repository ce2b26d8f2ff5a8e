//! The file's shape, as `config::parse` checks it: sections, resources, fields and their types,
//! YAML syntax.

use sfc::config;

use super::{BASE, only};

#[test]
fn file_not_a_mapping() {
    only("\n- a\n- b\n", "", "", "", 1, "a chain file is a mapping of port_pairs, port_pair_groups, flow_classifiers, port_chains, service_graphs, interfaces, found a list");
}

#[test]
fn section_name_not_a_string() {
    only("\n? [a]\n: 1\n", "", "", "", 1, "expected a section name (port_pairs, port_pair_groups, flow_classifiers, port_chains, service_graphs, interfaces), found a list");
}

#[test]
fn unknown_section() {
    only("\nport_pair: []\n", "port_pair", "", "", 1, "unknown section (did you mean 'port_pairs'?)");
    only("\nservices: []\n", "services", "", "", 1, "unknown section (expected one of: port_pairs, port_pair_groups, flow_classifiers, port_chains, service_graphs, interfaces)");
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
        "unknown field (expected one of: name, id, description, ingress, egress, weight, ingress_mac, egress_mac, correlation, nsh_md_type, nsh_context)",
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
