//! `sfc import neutron` / `sfc export neutron` on networking-sfc's own API samples (its api-ref,
//! in `tests/neutron/api-ref`), on a deployment's worth of API bodies and the openstack client's
//! output of the same objects, and on hostile input: exact chain files out, or errors naming the
//! object.

use std::path::{Path, PathBuf};

use sfc::{config, model};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/neutron")
}

fn source(rel: &str) -> (String, String) {
    let p = dir().join(rel);
    (rel.to_owned(), std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn import(rels: &[&str]) -> Result<config::neutron::Imported, Vec<String>> {
    config::neutron::import(&rels.iter().map(|r| source(r)).collect::<Vec<_>>())
}

fn import_text(texts: &[&str]) -> Result<config::neutron::Imported, Vec<String>> {
    let sources: Vec<(String, String)> = texts.iter().enumerate().map(|(i, t)| (format!("in{i}.json"), (*t).to_owned())).collect();
    config::neutron::import(&sources)
}

fn golden() -> String {
    source("blog.yaml").1
}

fn validated(yaml: &str) -> model::Model {
    let cfg = config::parse("imported.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    model::validate(&cfg).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

#[test]
fn api_bodies_import_to_the_golden_chain_file() {
    let got = import(&["blog-api.json"]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(got.yaml, golden(), "the import of blog-api.json changed:\n{}", got.yaml);
    assert!(got.notes.iter().any(|n| n.contains("PC1") && n.contains("correlation 'mpls'")), "{:?}", got.notes);
    assert!(got.notes.iter().any(|n| n.contains("project ids are not kept")), "{:?}", got.notes);
    let m = validated(&got.yaml);
    assert_eq!(m.port_pairs[0].ingress, "tap897df85a-26", "ports become their taps");
    assert_eq!(m.port_pairs[1].weight, 2);
    assert_eq!((m.port_chains[0].chain_id, m.port_chains[0].correlation), (1, model::Correlation::None));
    let pc1 = &m.identities.port_chains["PC1"];
    assert_eq!(pc1.id.as_deref(), Some("1278dcd4-459f-62ed-754b-87fc5e4a6751"));
    assert_eq!(m.identities.port_pairs["PP1"].description.as_deref(), Some("vm1"));
}

#[test]
fn openstack_client_output_imports_to_the_same_file() {
    let files = ["osc-port-chains.json", "osc-flow-classifiers.json", "osc-port-pair-groups.json", "osc-port-pairs.json"];
    let got = import(&files).unwrap_or_else(|e| panic!("{e:?}"));
    // The client shows no chain_id: sfc gives the chain the lowest free one.
    let want: String = golden().lines().filter(|l| !l.contains("chain_id:")).flat_map(|l| [l, "\n"]).collect();
    assert_eq!(got.yaml, want);
    assert_eq!(validated(&got.yaml).port_chains[0].chain_id, 1);
    // A list and a show of the same objects: read once.
    let twice = import(&["osc-port-pairs.json", "blog-api.json"]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(twice.yaml.matches("name: \"PP1\"").count(), 1, "{}", twice.yaml);
    let short = import(&["osc-flow-classifiers-short.json"]).expect_err("a summary is not a classifier");
    assert!(short[0].contains("FC_demo") && short[0].contains("--long"), "{short:?}");
}

#[test]
fn export_then_import_gives_the_same_file() {
    let m = validated(&golden());
    let (body, notes) = model::neutron::export(&m);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(body["port_pairs"][0]["ingress"], "897df85a-26c3-4491-888e-8cc58f19cea1", "ports as their neutron ids");
    assert_eq!(body["port_pair_groups"][0]["port_pairs"][1], "4f3c1c2e-2b8f-4a59-9d6e-2b1f0c7e6a02", "references by id");
    assert_eq!(body["port_chains"][0]["chain_parameters"]["correlation"], "mpls");
    let text = serde_json::to_string_pretty(&body).unwrap_or_else(|e| panic!("{e}"));
    let again = import_text(&[&text]).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(again.yaml, golden());
}

#[test]
fn a_file_without_ids_exports_references_by_name() {
    let yaml = "port_pairs:\n  - {name: pp1, ingress: sf1-in, egress: sf1-out}\nport_pair_groups:\n  - {name: pg1, port_pairs: [pp1], health_check: {destination: 10.0.0.2}}\n\
                flow_classifiers:\n  - {name: fc, protocol: udp, logical_source_port: src}\nport_chains:\n  - {name: pc, port_pair_groups: [pg1], flow_classifiers: [fc]}\n";
    let (body, notes) = model::neutron::export(&validated(yaml));
    assert_eq!(body["port_pair_groups"][0]["port_pairs"][0], "pp1");
    assert_eq!(body["port_pairs"][0]["ingress"], "sf1-in");
    assert!(body["port_pairs"][0].get("id").is_none());
    assert!(notes.iter().any(|n| n.contains("pg1") && n.contains("health_check")), "{notes:?}");
}

#[test]
fn the_api_reference_samples_are_read_and_what_they_lack_is_named() {
    let all = [
        "api-ref/port-pair-list-resp.json",
        "api-ref/port-pair-group-list-resp.json",
        "api-ref/flow-classifier-list-resp.json",
        "api-ref/port-chain-list-resp.json",
        "api-ref/service-graph-list-resp.json",
    ];
    let errors = import(&all).expect_err("the samples refer to objects they do not include");
    let want = [
        "api-ref/port-chain-list-resp.json: port chain PC1: port_pair_groups: '4a634d49-76dc-4fae-af4b-321c5e23d651' is not among the imported port pair groups",
        "api-ref/port-chain-list-resp.json: port chain PC1: flow_classifiers: '105a4b0a-73d6-11e5-b392-2c27d72acb4c' is not among the imported flow classifiers",
        "api-ref/service-graph-list-resp.json: service graph graph: port_chains: '07d0bf74-4293-4e4a-b66f-561ba30bcf76' is not among the imported port chains",
        "api-ref/service-graph-list-resp.json: service graph simpler-graph: port_chains: 'ff90b009-396d-4ce7-b387-82a702125e46' is not among the imported port chains",
        "api-ref/service-graph-list-resp.json: service graph simpler-graph: port_chains: '1da89f39-db34-401d-b54b-468e1c648cd1' is not among the imported port chains",
    ];
    for w in want {
        assert!(errors.iter().any(|e| e == w), "missing {w:?} in {errors:#?}");
    }
    // The graph refers to six chains the samples do not include: each is named once.
    assert_eq!(errors.iter().filter(|e| e.contains("service graph graph: port_chains:")).count(), 6, "{errors:#?}");
    // The samples that do fit together import; the classifier has no logical_source_port,
    // which the chain file then needs.
    let fits = ["api-ref/port-pair-create-resp.json", "api-ref/port-pair-group-get-resp.json", "api-ref/flow-classifier-get-resp.json"];
    let got = import(&fits).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(got.yaml.contains("port_pairs: [\"SF1\"]") && got.yaml.contains("protocol: \"tcp\""), "{}", got.yaml);
    let cfg = config::parse("x.yaml", &got.yaml).unwrap_or_else(|e| panic!("{e}"));
    let e = model::validate(&cfg).expect_err("no logical_source_port").to_string();
    assert!(e.contains("FC1") && e.contains("logical_source_port"), "{e}");
}

#[test]
fn hostile_input_is_refused_with_the_object_named() {
    let pp = |extra: &str| format!(r#"{{"port_pairs": [{{"id": "78dcd363-fc23-aeb6-f44b-56dc5e2fb3ae", "name": "SF1", "ingress": "a", "egress": "b"{extra}}}]}}"#);
    let cases: Vec<(String, &str)> = vec![
        ("not json".to_owned(), "in0.json: not JSON"),
        ("[1, 2]".to_owned(), "a list of objects was expected"),
        ("42".to_owned(), "JSON objects, found 42"),
        (r#"{"hello": "world"}"#.to_owned(), "not a networking-sfc object (fields: hello)"),
        (pp(r#", "colour": "red""#), "port pair SF1: unknown field 'colour'"),
        (pp(r#", "service_function_parameters": {"correlation": "vxlan"}"#), "service_function_parameters.correlation \"vxlan\": not none, mpls or nsh"),
        (pp(r#", "service_function_parameters": {"weight": "heavy"}"#), "service_function_parameters.weight \"heavy\" has no counterpart"),
        (pp(r#", "service_function_parameters": 7"#), "service_function_parameters is 7, not an object"),
        (
            r#"{"port_pair_groups": [{"name": "G", "port_pairs": [], "port_pair_group_parameters": {"ppg_n_tuple_mapping": {"ingress_n_tuple": {"source_ip_address": "10.0.0.1"}}}}]}"#.to_owned(),
            "ingress_n_tuple.source_ip_address is not a field a NAT-ing function rewrites",
        ),
        (
            r#"{"port_pair_groups": [{"name": "G", "port_pairs": [], "port_pair_group_parameters": {"ppg_n_tuple_mapping": {"egress_n_tuple": {"source_port_range_min": "x"}}}}]}"#.to_owned(),
            "egress_n_tuple.source_port_range_min is \"x\"",
        ),
        (
            r#"{"port_pair_groups": [{"name": "G", "port_pairs": [], "port_pair_group_parameters": {"ppg_n_tuple_mapping": {"both_n_tuple": {}}}}]}"#.to_owned(),
            "both_n_tuple has no counterpart in sfc",
        ),
        (r#"{"port_pair_groups": [{"name": "G", "port_pairs": [], "tap_enabled": "yes"}]}"#.to_owned(), "tap_enabled is \"yes\""),
        (r#"{"port_pair_groups": [{"name": "G", "port_pairs": ["nope"]}]}"#.to_owned(), "port pair group G: port_pairs: 'nope' is not among the imported port pairs"),
        (r#"{"port_pair_groups": [{"name": "G", "port_pairs": [3]}]}"#.to_owned(), "port_pairs: 3 is not an id or a name"),
        (r#"{"flow_classifiers": [{"name": "F", "l7_parameters": {"url": "/x"}}]}"#.to_owned(), "l7_parameters"),
        (r#"{"flow_classifiers": [{"name": "F", "protocol": "tcp", "source_port_range_min": "low"}]}"#.to_owned(), "source_port_range_min is \"low\", not an integer"),
        (r#"{"port_chains": [{"name": "C", "port_pair_groups": [], "chain_parameters": {"colour": 1}}]}"#.to_owned(), "chain_parameters.colour 1 has no counterpart"),
        (r#"{"port_pairs": [{"ingress": "a", "egress": "b"}]}"#.to_owned(), "has neither a unique name nor an id"),
        (r#"{"port_pairs": [], "port_pairs_links": [{"rel": "next", "href": "http://x/?marker=1"}]}"#.to_owned(), "one page of a paginated list"),
        (r#"{"port_pairs": [], "colour": 1}"#.to_owned(), "unknown top-level field 'colour'"),
        (r#"{"port_pairs": [{"id": "x\n    tap_enabled: true", "name": "A", "ingress": "a", "egress": "b"}]}"#.to_owned(), "is not a neutron id (a UUID)"),
        (
            r#"[{"ID": "11111111-1111-4111-8111-111111111111", "Name": "A", "Ingress Logical Port": "a", "Egress Logical Port": "b"},
                {"ID": "11111111-1111-4111-8111-111111111111", "Name": "A", "Ingress Logical Port": "c", "Egress Logical Port": "b"}]"#.to_owned(),
            "is given twice, differently",
        ),
    ];
    for (text, want) in cases {
        let e = import_text(&[&text]).expect_err(&text);
        assert!(e.iter().any(|m| m.contains(want)), "{text}\nwant {want:?}\ngot {e:?}");
    }
    // Names repeated or missing: made from the id, and said.
    let two = r#"{"port_pairs": [
        {"id": "11111111-1111-4111-8111-111111111111", "name": "sf", "ingress": "a", "egress": "b"},
        {"id": "22222222-2222-4222-8222-222222222222", "name": "sf", "ingress": "c", "egress": "d"},
        {"id": "33333333-3333-4333-8333-333333333333", "ingress": "e", "egress": "f"}]}"#;
    let got = import_text(&[two]).unwrap_or_else(|e| panic!("{e:?}"));
    for made in ["port-pair-11111111", "port-pair-22222222", "port-pair-33333333"] {
        assert!(got.yaml.contains(&format!("name: \"{made}\"")), "{}", got.yaml);
    }
    assert_eq!(got.notes.len(), 3, "{:?}", got.notes);
    // Strings that need quoting stay strings.
    let odd = r#"{"port_pairs": [{"name": "a: \"b\"\n#c", "description": "yes", "ingress": "a", "egress": "b"}]}"#;
    let got = import_text(&[odd]).unwrap_or_else(|e| panic!("{e:?}"));
    let cfg = config::parse("odd.yaml", &got.yaml).unwrap_or_else(|e| panic!("{e}\n{}", got.yaml));
    assert_eq!(cfg.port_pairs[0].value.name.as_ref().map(|n| n.value.as_str()), Some("a: \"b\"\n#c"));
    assert_eq!(cfg.port_pairs[0].value.description.as_ref().map(|n| n.value.as_str()), Some("yes"));
}

#[test]
fn ids_in_a_chain_file_are_checked() {
    let yaml = "port_pairs:\n  - {name: a, id: not-a-uuid, ingress: i1, egress: e1}\n  - {name: b, id: 11111111-1111-4111-8111-111111111111, ingress: i2, egress: e2}\n  - {name: c, id: 11111111-1111-4111-8111-111111111111, ingress: i3, egress: e3}\n";
    let cfg = config::parse("ids.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let e = model::validate(&cfg).expect_err("bad ids").to_string();
    assert!(e.contains("'not-a-uuid' is not a neutron id"), "{e}");
    assert!(e.contains("id 11111111-1111-4111-8111-111111111111 is also the id of 'b'"), "{e}");
}

/// A NAT-ing group: its egress tuple is imported, validated, and exported as it came.
#[test]
fn a_nat_ing_group_round_trips() {
    let body = r#"{"port_pairs": [{"name": "nat1", "ingress": "a", "egress": "b"}],
        "port_pair_groups": [{"name": "nat", "port_pairs": ["nat1"], "port_pair_group_parameters": {"lb_fields": [],
            "ppg_n_tuple_mapping": {"ingress_n_tuple": {}, "egress_n_tuple": {"source_ip_prefix": "203.0.113.7/32", "source_port_range_min": 1024, "source_port_range_max": 65535, "destination_ip_prefix": null}}}}],
        "flow_classifiers": [{"name": "fc", "protocol": "tcp", "logical_source_port": "src"}],
        "port_chains": [{"name": "pc", "port_pair_groups": ["nat"], "flow_classifiers": ["fc"]}]}"#;
    let got = import_text(&[body]).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        got.yaml.contains("ppg_n_tuple_mapping: {egress_n_tuple: {source_ip_prefix: \"203.0.113.7/32\", source_port_range_min: 1024, source_port_range_max: 65535}}"),
        "{}",
        got.yaml
    );
    let m = validated(&got.yaml);
    let (out, _) = model::neutron::export(&m);
    let mapping = &out["port_pair_groups"][0]["port_pair_group_parameters"]["ppg_n_tuple_mapping"];
    assert_eq!(mapping["ingress_n_tuple"], serde_json::json!({}));
    assert_eq!(
        mapping["egress_n_tuple"],
        serde_json::json!({"source_ip_prefix": "203.0.113.7/32", "source_port_range_min": 1024, "source_port_range_max": 65535})
    );
}
