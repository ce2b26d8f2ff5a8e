//! The inspection commands and the daemon from the outside, where no kernel is needed: errors a
//! user meets before anything is installed, and the command-line surface. (The decoding itself
//! is unit-tested in `view::inspect`; real output needs a namespace topology.)

use std::{
    path::Path,
    process::{Command, Output},
};

/// A scratch directory removed on drop (also on panic).
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("sfc-cli-inspect-{tag}-")).tempdir().unwrap_or_else(|e| panic!("creating a temporary directory: {e}"))
}

fn sfc(pin_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfc"))
        .arg("--pin-dir")
        .arg(pin_dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running sfc {args:?}: {e}"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_map_name_lists_the_valid_ones() {
    let d = temp_dir("unknown-map");
    let o = sfc(&d.path().join("pins"), &["map", "dump", "SFC_NOPE"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("no map called 'SFC_NOPE'"), "{e}");
    for name in ["SFC_FLOWS", "SFC_CLS", "SFC_IFACES_V4", "SFC_DROPS"] {
        assert!(e.contains(name), "{name} missing from: {e}");
    }
}

#[test]
fn nothing_installed_is_a_clear_error() {
    let d = temp_dir("not-installed");
    let pins = d.path().join("pins");
    for args in [&["status"][..], &["status", "--json"], &["flows"], &["map", "list"], &["map", "dump", "flows"]] {
        let o = sfc(&pins, args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = stderr(&o);
        assert!(e.starts_with("error: nothing is installed at"), "{args:?}: {e}");
        assert!(!e.contains("panicked"), "{args:?}: {e}");
    }
}

#[test]
fn run_refuses_a_bad_file_before_changing_anything() {
    let d = temp_dir("run-bad-file");
    let pins = d.path().join("pins");
    // The daemon's lock lives under /run/sfc, beside where the datapath's state would: removed
    // with the test, also when it fails.
    let _run = RunDir(sfc::datapath::Location::new(None, Some(pins.clone())).state_dir().parent().map(Path::to_owned));
    let missing = d.path().join("missing.yaml");
    let o = sfc(&pins, &["run", "-f", missing.to_str().unwrap_or_default(), "--metrics", "127.0.0.1:0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing.yaml"), "{}", stderr(&o));

    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, "port_pairs:\n  - {name: pp1, ingress: a}\n").unwrap_or_else(|e| panic!("writing: {e}"));
    let o = sfc(&pins, &["run", "-f", bad.to_str().unwrap_or_default(), "--metrics", "127.0.0.1:0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.yaml"), "{}", stderr(&o));
    assert!(!pins.exists(), "run created {} for a file it rejected", pins.display());
}

/// Removes a directory under /run/sfc on drop.
struct RunDir(Option<std::path::PathBuf>);

impl Drop for RunDir {
    fn drop(&mut self) {
        if let Some(d) = self.0.as_ref().filter(|d| d.starts_with("/run/sfc/") && d.exists()) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
fn help_lists_the_commands() {
    let o = Command::new(env!("CARGO_BIN_EXE_sfc")).arg("--help").output().unwrap_or_else(|e| panic!("{e}"));
    let out = String::from_utf8_lossy(&o.stdout);
    for c in ["status", "flows", "map", "run"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(c)), "{c} missing from --help:\n{out}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_sfc")).args(["run", "--help"]).output().unwrap_or_else(|e| panic!("{e}"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("127.0.0.1:9469") && out.contains("--interval"), "{out}");
}
