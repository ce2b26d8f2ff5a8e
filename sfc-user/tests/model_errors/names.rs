//! Resource names (missing, empty, too long, duplicate) and the number of resources.

use std::fmt::Write as _;

use super::only;

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
