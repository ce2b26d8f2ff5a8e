//! One test per error message of `config::parse` + `model::validate`: a small file with exactly
//! that problem, and the exact section, resource, field, line and message it must produce.
//! (Files start right after the opening quote's newline: the first line shown is line 1.)
//!
//! One module per part of the file; this root holds what they share.

mod chains;
mod classifiers;
mod groups;
mod interfaces;
mod names;
mod overlaps;
mod port_pairs;
mod shape;
mod whole_file;

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
