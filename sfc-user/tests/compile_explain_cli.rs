//! `sfc explain` through the binary: from a chain file (pure), and from a saved state the way an
//! installed datapath leaves it (no kernel maps are read either way).

use std::{
    path::PathBuf,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use sfc::{
    compile::Ids,
    config,
    datapath::{Location, State},
    model,
};

static N: AtomicU32 = AtomicU32::new(0);

fn unique(what: &str) -> String {
    format!("sfc-explain-{what}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}


/// A state directory: removed with the parents the test created (those left empty).
struct StateDir(PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // `/run/sfc/tmp`, when no one else uses it (remove_dir only removes empty directories).
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

const FILE: &str = "
port_pairs:
  - {name: pp1, ingress: sf1-in, egress: sf1-out}
  - {name: pp2, ingress: sf2-in, egress: sf2-out}
  - {name: pp3, ingress: sf3-in, egress: sf3-out}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1, pp2]}
  - {name: pg2, port_pairs: [pp3]}
flow_classifiers:
  - {name: web, protocol: tcp, source_ip_prefix: 10.0.0.0/24, destination_ip_prefix: 10.0.0.20/32,
     destination_port_range_min: 80, destination_port_range_max: 80,
     logical_source_port: src-port, logical_destination_port: dst-port}
port_chains:
  - {name: pc1, chain_id: 1, port_pair_groups: [pg1, pg2], flow_classifiers: [web]}
";

/// The chain file, removed when dropped.
fn file() -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().prefix("sfc-explain-").suffix(".yaml").tempfile().expect("creating the chain file");
    std::fs::write(f.path(), FILE).expect("writing the chain file");
    f
}

fn sfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sfc")).args(args).output().expect("running sfc")
}

fn stdout(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const WEB: &[&str] = &["--in", "src-port", "--proto", "tcp", "--src", "10.0.0.5", "--dst", "10.0.0.20", "--sport", "40000", "--dport", "80"];

#[test]
fn explains_classifier_chain_members_and_interfaces() {
    let f = file();
    let mut args = vec!["explain", "-f", f.path().to_str().expect("path")];
    args.extend_from_slice(WEB);
    let out = stdout(&sfc(&args));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "packet: tcp 10.0.0.5:40000 -> 10.0.0.20:80 arriving on src-port");
    assert_eq!(lines[1], "classifier: web");
    assert_eq!(lines[2], "chain: pc1 (chain_id 1)");
    assert!(lines[3].starts_with("  hop 1 (SI 255) group pg1: member pp"), "{out}");
    assert!(lines[3].contains("on ip_src,ip_dst,ip_proto,l4_src,l4_dst -> bucket "), "{out}");
    assert!(matches!(lines[4], "      sent into sf1-in, comes back on sf1-out" | "      sent into sf2-in, comes back on sf2-out"), "{out}");
    assert!(lines[5].starts_with("  hop 2 (SI 254) group pg2: member pp3 ("), "{out}");
    assert_eq!(lines[6], "      sent into sf3-in, comes back on sf3-out");
    assert_eq!(lines[7], "then: delivered to dst-port");
    assert_eq!(lines.len(), 8, "{out}");
}

#[test]
fn json_output() {
    let f = file();
    let mut args = vec!["explain", "--json", "-f", f.path().to_str().expect("path")];
    args.extend_from_slice(WEB);
    let v: serde_json::Value = serde_json::from_str(&stdout(&sfc(&args))).expect("json");
    assert_eq!(v["classifier"], "web");
    assert_eq!(v["chain"], serde_json::json!({"name": "pc1", "chain_id": 1}));
    assert_eq!(v["hops"][1]["port_pair"], "pp3");
    assert_eq!(v["hops"][1]["ingress"], "sf3-in");
    assert_eq!(v["deliver_to"], "dst-port");
}

#[test]
fn unmatched_packet_is_not_touched() {
    let f = file();
    let out = stdout(&sfc(&[
        "explain", "-f", f.path().to_str().expect("path"), "--in", "src-port", "--proto", "udp", "--src", "10.0.0.5", "--dst",
        "10.0.0.20", "--dport", "80",
    ]));
    assert_eq!(out, "packet: udp 10.0.0.5:0 -> 10.0.0.20:80 arriving on src-port\nno classifier matches: the packet is not touched\n  (no flow classifier matches)\n");
}

#[test]
fn bad_arguments_are_errors() {
    let f = file();
    let path = f.path().to_str().expect("path");
    let out = sfc(&["explain", "-f", path, "--in", "src-port", "--proto", "icmp", "--src", "10.0.0.5", "--dst", "10.0.0.20", "--dport", "80"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: protocol icmp has no ports: drop --sport/--dport\n");
    let out = sfc(&["explain", "-f", path, "--in", "src-port", "--proto", "tcp", "--src", "10.0.0.5", "--dst", "::1"]);
    assert_eq!(out.status.code(), Some(1));
    let out = sfc(&["explain", "-f", path, "--in", "src-port", "--proto", "tls", "--src", "10.0.0.5", "--dst", "10.0.0.1"]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: --proto: unknown protocol 'tls'"));
}

/// Without `-f` the answer comes from the state `sfc apply` saved (model, interface facts, ids),
/// which lives under /run/sfc (root only).
#[test]
fn installed_state_gives_the_same_answer() {
    let pin = std::env::temp_dir().join(unique("pins"));
    let loc = Location::new(None, Some(pin.clone()));
    let dir = loc.state_dir();
    // Root only: a run that cannot create it fails, it is not skipped.
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {} (this test needs root): {e}", dir.display()));
    let _cleanup = StateDir(dir.clone());
    let m = model::validate(&config::parse("t", FILE).expect("parses")).expect("valid");
    let facts = serde_json::json!({
        "src-port": {"ifindex": 11, "peer_mac": [2, 0, 0, 0, 0, 11], "peer_in_other_netns": true},
        "dst-port": {"ifindex": 12, "peer_mac": [2, 0, 0, 0, 0, 12], "peer_in_other_netns": true},
        "sf1-in": {"ifindex": 13, "peer_mac": [2, 0, 0, 0, 0, 13], "peer_in_other_netns": true},
        "sf1-out": {"ifindex": 14, "peer_mac": [2, 0, 0, 0, 0, 14], "peer_in_other_netns": true},
        "sf2-in": {"ifindex": 15, "peer_mac": [2, 0, 0, 0, 0, 15], "peer_in_other_netns": true},
        "sf2-out": {"ifindex": 16, "peer_mac": [2, 0, 0, 0, 0, 16], "peer_in_other_netns": true},
        "sf3-in": {"ifindex": 17, "peer_mac": [2, 0, 0, 0, 0, 17], "peer_in_other_netns": true},
        "sf3-out": {"ifindex": 18, "peer_mac": [2, 0, 0, 0, 0, 18], "peer_in_other_netns": true},
    });
    let state: State = serde_json::from_value(serde_json::json!({
        "model": serde_json::to_value(&m).expect("model"),
        "facts": facts,
        "flow_table_size": 1024,
        "netns": null,
        "ids": serde_json::to_value(Ids::by_index(&m)).expect("ids"),
    }))
    .expect("a state");
    state.save(&dir).expect("saving the state");

    let f = file();
    let mut from_file = vec!["explain", "-f", f.path().to_str().expect("path")];
    from_file.extend_from_slice(WEB);
    let pin_s = pin.to_str().expect("path");
    let mut installed = vec!["--pin-dir", pin_s, "explain"];
    installed.extend_from_slice(WEB);
    assert_eq!(stdout(&sfc(&installed)), stdout(&sfc(&from_file)));
}

#[test]
fn nothing_installed_is_an_error() {
    let pin = std::env::temp_dir().join(unique("none"));
    let mut args = vec!["--pin-dir", pin.to_str().expect("path"), "explain"];
    args.extend_from_slice(WEB);
    let out = sfc(&args);
    assert_eq!(out.status.code(), Some(3), "exit code 3: nothing installed");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing is installed"), "{}", String::from_utf8_lossy(&out.stderr));
}
