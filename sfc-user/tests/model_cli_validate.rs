//! `sfc validate -f FILE` through the binary: exit status, and every problem on its own line
//! with its line number. No kernel involved.

use std::process::{Command, Output};

/// Writes `text` to a fresh temporary file, removed when the guard drops.
struct TempFile(tempfile::NamedTempFile);

impl TempFile {
    fn new(ext: &str, text: &str) -> Self {
        let f = tempfile::Builder::new().prefix("sfc-validate-").suffix(&format!(".{ext}")).tempfile().expect("creating a temporary file");
        std::fs::write(f.path(), text).unwrap_or_else(|e| panic!("writing {}: {e}", f.path().display()));
        Self(f)
    }
    fn path(&self) -> &str {
        self.0.path().to_str().expect("utf-8 path")
    }
}

fn sfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfc")).args(args).output().expect("running sfc")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const BROKEN: &str = "port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out}
  - {name: pp2, ingress: sf2-in, egress: sf2-out, wieght: 2}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1, pp3]}
flow_classifiers:
  - {name: web, protocol: tcp, destination_port_range_min: 90, destination_port_range_max: 80, logical_source_port: src}
port_chains:
  - {name: pc1, port_pair_groups: [pg1, pg9], flow_classifiers: [web]}
";

#[test]
fn broken_file_lists_every_problem_with_its_line_and_exits_1() {
    let f = TempFile::new("yaml", BROKEN);
    let out = sfc(&["validate", "-f", f.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines, [
        format!("{}: 4 problems:", f.path()).as_str(),
        "  port_pairs[pp2].wieght: unknown field (did you mean 'weight'?) (line 3)",
        "  port_pair_groups[pg1].port_pairs: unknown port pair 'pp3' (line 5)",
        "  flow_classifiers[web].destination_port_range_min: destination_port_range_min 90 is above destination_port_range_max 80: the range is empty (line 7)",
        "  port_chains[pc1].port_pair_groups: unknown group 'pg9' (line 9)",
    ]);
    assert!(out.stdout.is_empty());
}

#[test]
fn valid_file_exits_0() {
    let ok = BROKEN.replace(", wieght: 2", "").replace("pp3", "pp2").replace("min: 90", "min: 80").replace(", pg9", "");
    let f = TempFile::new("yaml", &ok);
    let out = sfc(&["validate", "-f", f.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{}: ok (1 port chains, 1 port pair groups, 2 port pairs, 1 flow classifiers)\n", f.path()));
}

#[test]
fn json_report() {
    let f = TempFile::new("yaml", BROKEN);
    let out = sfc(&["validate", "--json", "-f", f.path()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(4));
    assert_eq!(v["problems"][3], serde_json::json!({
        "kind": "port_chains", "resource": "pc1", "field": "port_pair_groups", "line": 9, "message": "unknown group 'pg9'"
    }));
}

#[test]
fn json_input_file() {
    let f = TempFile::new("json", "{\n  \"port_pairs\": [\n    {\"name\": \"pp1\", \"ingress\": \"a\"}\n  ]\n}\n");
    let out = sfc(&["validate", "-f", f.path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("  port_pairs[pp1].egress: required field is missing (the interface on which the service function sends traffic back; may equal ingress) (line 3)"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let f = TempFile::new("yaml", "port_pairs:\n  - {name: pp1\n");
    let out = sfc(&["validate", "-f", f.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("  YAML syntax error at column 5: unclosed bracket '{' (line 2)"), "{err}");
}

#[test]
fn missing_file_is_an_error() {
    let out = sfc(&["validate", "-f", "/nonexistent/chains.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: /nonexistent/chains.yaml: "), "{}", text(&out.stderr));
}
