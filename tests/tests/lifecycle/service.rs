//! (f) `sfc run` as systemd runs it (`deploy/systemd/sfc.service`, `Type=notify`): `READY=1` on
//! `NOTIFY_SOCKET` once the datapath forwards, `RELOADING=1` then `READY=1` around a SIGHUP
//! (`systemctl reload`), which re-applies the file; `STOPPING=1` on SIGTERM, after which the
//! datapath keeps forwarding; a second daemon on the same datapath is refused with the pid of
//! the first; `--json` log lines are JSON objects.

use std::{
    os::unix::net::UnixDatagram,
    process::Command,
    thread::sleep,
    time::Duration,
};

use sfc_tests::{
    Sfc, TopologyConfig,
    process::{Daemon, indent},
    scenario::Fixture,
};

use super::{
    assert_every_datagram_crossed_sf3_once, chain_files, context, settled_since, sports_on_both_pg1_members,
    stream,
};

/// The first notification with the line `want` (`READY=1`), skipping others (STATUS updates);
/// at most 15 s.
pub(super) fn notification(sock: &UnixDatagram, daemon: &Daemon, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut skipped = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                if m.lines().any(|l| l == want) {
                    return m;
                }
                skipped.push(m);
            }
            Err(e) => panic!("no {want} within 15 s ({e}); other messages {skipped:?}; daemon log:\n{}", indent(&daemon.log())),
        }
    }
    panic!("no {want} within 15 s; other messages {skipped:?}; daemon log:\n{}", indent(&daemon.log()));
}

pub(super) fn signal(daemon: &Daemon, sig: &str) {
    let st = Command::new("kill").args([sig, &daemon.pid().to_string()]).status().expect("kill");
    assert!(st.success(), "kill {sig}");
}

/// Traffic through the chain while the datapath is up: every datagram crossed sf3 once.
fn assert_forwarding(fx: &Fixture, sfc: &Sfc<'_>, what: &str) {
    let sports = sports_on_both_pg1_members(fx, sfc);
    let before = fx.topo.counters().unwrap_or_else(|e| panic!("{e:#}"));
    let s = stream(fx, sports);
    sleep(Duration::from_millis(300));
    let report = s.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let (delta, stats) = settled_since(fx, sfc, &before);
    assert!(report.sent() > 0, "{what}: nothing sent");
    assert_every_datagram_crossed_sf3_once(&report, &delta, &stats, &context(what, fx, &report, &delta, &stats));
}

#[test]
fn runs_as_a_systemd_notify_service() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, _) = chain_files(&fx);
    let sock_path = fx.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    let log = fx.dir.path().join("daemon.log");
    let a_s = a.to_string_lossy().into_owned();
    let mut daemon = Daemon::spawn_env(&sfc, &["--json", "-f", &a_s], &log, &[("NOTIFY_SOCKET", &sock_path)])
        .unwrap_or_else(|e| panic!("{e:#}"));

    // Ready means live: at that moment the chain forwards.
    let ready = notification(&sock, &daemon, "READY=1");
    assert!(ready.contains("STATUS=") && ready.contains("1 port chains live"), "{ready}");
    assert_forwarding(&fx, &sfc, "after READY=1");

    // A second daemon on the same datapath: refused, exit code 2, names the first one's pid.
    let log2 = fx.dir.path().join("second.log");
    let mut second = Daemon::spawn(&sfc, &["-f", &a_s, "--metrics", "127.0.0.1:9470"], &log2).unwrap_or_else(|e| panic!("{e:#}"));
    let st = second.wait_exit(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(st.and_then(|s| s.code()), Some(2), "the second daemon must exit 2:\n{}", second.log());
    assert!(second.log().contains(&format!("another `sfc run` (pid {}) already manages", daemon.pid())), "{}", second.log());

    // SIGHUP: RELOADING=1, then READY=1 after the file was applied again.
    signal(&daemon, "-HUP");
    let reloading = notification(&sock, &daemon, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    notification(&sock, &daemon, "READY=1");
    daemon.wait_for_log("no change (generation", Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_forwarding(&fx, &sfc, "after the reload");

    // A reload that finds the file broken: still READY=1 (systemd would wait otherwise), the
    // status says so, the running chain keeps forwarding.
    let good = std::fs::read(&a).expect("read");
    std::fs::write(&a, "port_pairs:\n  - {name: pp1, ingress: x}\n").expect("write");
    signal(&daemon, "-HUP");
    notification(&sock, &daemon, "RELOADING=1");
    let broken = notification(&sock, &daemon, "READY=1");
    assert!(broken.contains("rejected"), "{broken}");
    assert_forwarding(&fx, &sfc, "after a reload of a broken file");
    std::fs::write(&a, good).expect("write");

    // SIGTERM: STOPPING=1, exit 0, and the datapath keeps forwarding without the daemon.
    signal(&daemon, "-TERM");
    notification(&sock, &daemon, "STOPPING=1");
    let st = daemon.wait_exit(Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", daemon.log());
    assert_forwarding(&fx, &sfc, "after the daemon stopped");

    // --json: every line is an object with ts, level and msg.
    let text = daemon.log();
    let mut levels = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{text}"));
        assert!(v["ts"].as_f64().is_some_and(|t| t > 1.0e9) && v["msg"].is_string(), "{line}");
        levels.push(v["level"].as_str().unwrap_or_default().to_owned());
    }
    assert!(levels.iter().any(|l| l == "info"), "{text}");
    assert!(text.contains("SIGHUP: re-applying"), "{text}");
    // The daemon's lock file stays while it runs; `sfc down` takes it away with the datapath.
    let lock = std::path::PathBuf::from(format!("/run/sfc{}.daemon.lock", sfc.pin_dir().display()));
    assert!(lock.exists(), "{} missing", lock.display());
    sfc.run(&["down"]);
    assert!(!lock.exists(), "{} left after sfc down", lock.display());
    println!("runs_as_a_systemd_notify_service: ready {:?}, {} JSON log lines", ready, levels.len());
}

/// What `sfc` with `args` printed on stderr and its exit code; `wrap` runs before it (setpriv,
/// unshare), `netns` adds `--netns`.
fn sfc_exit(sfc: &Sfc<'_>, wrap: &[&str], netns: bool, args: &[&str]) -> (Option<i32>, String) {
    let bin = sfc.bin().to_string_lossy().into_owned();
    let mut line: Vec<&str> = wrap.to_vec();
    line.push(&bin);
    if netns {
        line.extend(["--netns", sfc.netns()]);
    }
    line.extend_from_slice(args);
    let out = Command::new(line[0]).args(&line[1..]).output().expect("run sfc");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout)))
}

/// (g) The commonest operator mistakes get an error that names the fix, and the documented exit
/// code: not root (2), bpffs missing and not mountable (2), the file's interfaces in another
/// namespace than the one sfc looks in (2), an invalid chain file (1), nothing installed (3),
/// `sfc down` with nothing installed (0, `--json` says so). Nothing is installed by any of them.
#[test]
fn operator_mistakes_name_the_fix() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, _) = chain_files(&fx);
    let a = a.to_string_lossy().into_owned();

    let nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    let (code, err) = sfc_exit(&sfc, &nobody, true, &["apply", "-f", &a]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`sfc apply` needs CAP_BPF") && err.contains("run it as root"), "{err}");
    let (code, err) = sfc_exit(&sfc, &nobody, false, &["stats"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`sfc stats` needs CAP_BPF"), "{err}");

    // bpffs unmounted in a mount namespace of its own, and no CAP_SYS_ADMIN to mount it. The
    // namespace is entered by the shell (nsenter), so sfc needs no setns either.
    let script = format!(
        "umount /sys/fs/bpf && exec nsenter --net=/run/netns/{} setpriv --bounding-set=-all,+bpf,+net_admin,+perfmon {} --pin-dir {} apply -f {a}",
        sfc.netns(),
        sfc.bin().display(),
        sfc.pin_dir().display()
    );
    let (code, err) = sfc_exit_cmd(Command::new("unshare").args(["-m", "sh", "-c", &script]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bpffs is not mounted at /sys/fs/bpf and mounting it failed") && err.contains("mount -t bpf bpf /sys/fs/bpf"), "{err}");

    // The hub's interfaces, looked for in the host namespace (no --netns).
    let (code, err) = sfc_exit(&sfc, &[], false, &["--pin-dir", &sfc.pin_dir().to_string_lossy(), "apply", "-f", &a]);
    assert_eq!(code, Some(2), "{err}");
    let hint = format!("(it is in network namespace '{}': use --netns {})", sfc.netns(), sfc.netns());
    assert!(err.contains("does not exist in the host namespace") && err.contains(&hint), "{err}");

    let broken = fx.dir.path().join("broken.yaml");
    std::fs::write(&broken, "port_pairs:\n  - {name: pp1, ingress: x}\n").expect("write");
    let (code, err) = sfc_exit(&sfc, &[], true, &["apply", "-f", &broken.to_string_lossy()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("egress: required field is missing"), "{err}");

    let (code, err) = sfc_exit(&sfc, &[], true, &["stats"]);
    assert_eq!(code, Some(3), "{err}");
    let (code, out) = sfc_exit(&sfc, &[], true, &["down", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["installed"], false, "{out}");
    assert!(!sfc.pin_dir().join("prog_tc_ingress").exists() && !sfc.state_dir().join("state.json").exists(), "a refused command installed something");
}

fn sfc_exit_cmd(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().expect("run");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout)))
}
