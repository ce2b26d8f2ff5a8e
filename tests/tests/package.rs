//! The Debian package (issue 18), installed on this machine as an operator would: `dpkg -i` in
//! a clean state, its files where Debian puts them, `sfc --version` and `sfc validate` on the
//! example, the unit's own `ExecStart` run under exactly the unit's `CapabilityBoundingSet` (with
//! systemd's notify socket: READY=1, then a chain forwarding real packets through the SFs and
//! scraped), then `dpkg --purge`, which leaves nothing behind.
//!
//! The package comes from `SFC_DEB` (`cargo xtask test` builds it with `cargo xtask package`),
//! else `target/debian/sfc_<version>_<arch>.deb`; missing, the test fails and says how to build
//! it. Root; `--test-threads=1`. It refuses to touch an `sfc` installed by other means.

use std::{
    net::{Ipv4Addr, SocketAddr},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Command, Output},
    thread::sleep,
    time::Duration,
};

use sfc_tests::{
    Sfc, TopologyConfig,
    failover::chain_over,
    process::{ChildGuard, indent},
    scenario::Fixture,
    sfc::sports_for_members,
    stream::{SeqStream, StreamSpec},
    topology::End,
};

fn sh(argv: &[&str]) -> Output {
    Command::new(argv[0]).args(&argv[1..]).output().unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn installed() -> bool {
    let o = sh(&["dpkg-query", "-W", "-f=${Status}", "sfc"]);
    o.status.success() && String::from_utf8_lossy(&o.stdout).contains("installed")
}

fn deb() -> PathBuf {
    if let Some(p) = std::env::var_os("SFC_DEB") {
        return PathBuf::from(p);
    }
    let arch = String::from_utf8_lossy(&sh(&["dpkg", "--print-architecture"]).stdout).trim().to_owned();
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/debian/sfc_{}_{arch}.deb", env!("CARGO_PKG_VERSION")))
}

/// Purges the package when dropped (also when the test fails).
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let o = sh(&["dpkg", "--purge", "sfc"]);
        if !o.status.success() {
            eprintln!("dpkg --purge sfc failed:\n{}", text(&o));
        }
    }
}

const FILES: [&str; 10] = [
    "/usr/bin/sfc",
    "/lib/systemd/system/sfc.service",
    "/etc/sfc/chains.yaml",
    "/etc/default/sfc",
    "/usr/share/man/man1/sfc.1.gz",
    "/usr/share/man/man1/sfc-run.1.gz",
    "/usr/share/bash-completion/completions/sfc",
    "/usr/share/zsh/vendor-completions/_sfc",
    "/usr/share/fish/vendor_completions.d/sfc.fish",
    "/usr/share/doc/sfc/copyright",
];

/// `Key=value` of the unit's `[Service]` section.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("sfc.service has no {key}=:\n{unit}"))
        .trim()
        .to_owned()
}

#[test]
fn the_package_installs_runs_under_its_unit_and_purges() {
    let deb = deb();
    assert!(deb.is_file(), "{} does not exist: build it with `cargo xtask package` (cargo xtask test does)", deb.display());
    if installed() {
        // A run that died before its purge.
        eprintln!("sfc was installed (a previous run's leftover?): purging it first");
        drop(Installed);
    }
    assert!(!installed(), "sfc is still installed");
    assert!(!Path::new("/usr/bin/sfc").exists(), "/usr/bin/sfc exists but no package owns it: not touching it");

    let o = sh(&["dpkg", "-i", &deb.to_string_lossy()]);
    let guard = Installed;
    assert!(o.status.success(), "dpkg -i failed:\n{}", text(&o));
    assert!(installed());
    let listed = text(&sh(&["dpkg", "-L", "sfc"]));
    for f in FILES {
        assert!(Path::new(f).is_file(), "{f} missing after dpkg -i");
        assert!(listed.lines().any(|l| l == f), "dpkg -L sfc does not list {f}:\n{listed}");
    }
    let conffiles = text(&sh(&["dpkg-query", "-W", "-f=${Conffiles}", "sfc"]));
    assert!(conffiles.contains("/etc/sfc/chains.yaml") && conffiles.contains("/etc/default/sfc"), "{conffiles}");
    let man = sh(&["sh", "-c", "gzip -dc /usr/share/man/man1/sfc-run.1.gz | head -5"]);
    assert!(text(&man).contains(".TH sfc-run 1"), "{}", text(&man));

    // The packaged binary is the build's: same version, git revision and eBPF object.
    let version = text(&sh(&["/usr/bin/sfc", "--version"]));
    let dev = sfc_tests::sfc::bin_from_env();
    let dev_version = text(&sh(&[&dev.to_string_lossy(), "--version"]));
    assert!(version.starts_with(&format!("sfc {} (git ", env!("CARGO_PKG_VERSION"))) && version.contains("eBPF object sha256 "), "{version}");
    let hash = |v: &str| v.split("sha256 ").nth(1).map(|h| h.trim().trim_end_matches(')').to_owned());
    assert_eq!(hash(&version), hash(&dev_version), "the package embeds another eBPF object than {}", dev.display());
    assert_eq!(hash(&version).map(|h| h.len()), Some(64), "{version}");
    let v = sh(&["/usr/bin/sfc", "validate", "-f", "/etc/sfc/chains.yaml"]);
    assert!(v.status.success(), "the example does not validate:\n{}", text(&v));
    let completion = text(&sh(&["/usr/bin/sfc", "completions", "bash"]));
    assert_eq!(completion, std::fs::read_to_string("/usr/share/bash-completion/completions/sfc").expect("read"), "installed completion differs");

    let unit = std::fs::read_to_string("/lib/systemd/system/sfc.service").expect("read the unit");
    assert_eq!(unit_value(&unit, "Type"), "notify");
    assert_eq!(unit_value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(unit_value(&unit, "ExecStart"), "/usr/bin/sfc run $SFC_ARGS");
    let defaults = std::fs::read_to_string("/etc/default/sfc").expect("read /etc/default/sfc");
    assert!(defaults.lines().any(|l| l == "SFC_ARGS=\"-f /etc/sfc/chains.yaml\""), "{defaults}");
    let verify = sh(&["systemd-analyze", "verify", "/lib/systemd/system/sfc.service"]);
    assert!(verify.status.success() && text(&verify).trim().is_empty(), "systemd-analyze verify:\n{}", text(&verify));

    run_as_the_unit(&unit);

    drop(guard);
    assert!(!installed(), "still installed after dpkg --purge");
    for f in FILES {
        assert!(!Path::new(f).exists(), "{f} left after dpkg --purge");
    }
    assert!(!Path::new("/etc/sfc").exists(), "/etc/sfc left after dpkg --purge");
    println!("package: {} installed, {} files checked, daemon ran under the unit's capabilities, purged", deb.display(), FILES.len());
}

/// The unit's daemon, as systemd would start it: the packaged binary, only the unit's bounding
/// set of capabilities, `NOTIFY_SOCKET`; in a test topology's hub namespace (entered before,
/// as the unit runs in the host's) with the topology's chain file and pin directory.
fn run_as_the_unit(unit: &str) {
    let caps: Vec<String> = unit_value(unit, "CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    assert!(!caps.iter().any(|c| c == "+sys_admin"), "the unit grants CAP_SYS_ADMIN: {caps:?}");
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let file = fx.write("chains.yaml", &chain_over(&fx.topo, &["pg1", "pg2"]));
    let sock_path = fx.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let log = fx.dir.path().join("daemon.log");
    let out = std::fs::File::create(&log).expect("log");
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", fx.topo.hub()))
        .arg("setpriv")
        .arg(format!("--bounding-set=-all,{}", caps.join(",")))
        .args(["/usr/bin/sfc", "--pin-dir", &sfc.pin_dir().to_string_lossy(), "run", "-f", &file.to_string_lossy()])
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(out.try_clone().expect("dup"))
        .stderr(out);
    let mut daemon = ChildGuard::spawn(cmd).unwrap_or_else(|e| panic!("{e:#}"));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap_or_else(|e| panic!("no READY=1 within 20 s ({e}):\n{}", indent(&read_log())));
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(!read_log().contains("health probes disabled"), "the unit's capabilities do not cover the probes:\n{}", read_log());

    // Real packets through the chain: every datagram through sf3, as the SFs' own counters say.
    let src = fx.topo.hub_dev(End::Source);
    let sports = sports_for_members(&sfc, &src, 0, &["pp1", "pp2"]).unwrap_or_else(|e| panic!("{e:#}"));
    let before = fx.topo.counters().unwrap_or_else(|e| panic!("{e:#}"));
    let spec = StreamSpec { rate: 1000, sports, limit: Duration::from_secs(10) };
    let s = SeqStream::start(&fx.topo.source(), &fx.topo.dest(), spec).unwrap_or_else(|e| panic!("{e:#}"));
    sleep(Duration::from_millis(300));
    let report = s.finish().unwrap_or_else(|e| panic!("{e:#}"));
    let (after, _) = fx.settled(&sfc);
    let delta = after.since(&before);
    assert!(report.sent() > 0 && report.lost() == 0, "{report}");
    assert_eq!(delta.get(End::SfIn(3)).rx_packets, report.sent(), "sf3 in: {report}\n{delta}");
    assert_eq!(delta.get(End::Dest).rx_packets, report.sent(), "dest: {report}\n{delta}");

    // Scraped: the daemon's metrics, inside the hub, count the same packets through sf3.
    let metrics = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 9469);
    let reply = sfc_tests::http::http_get_in(&fx.topo.hub(), metrics, "/metrics").unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let e = sfc_tests::prometheus::Exposition::parse(&reply.body).unwrap_or_else(|e| panic!("{e:#}"));
    let pp3: u64 = e.samples.iter().filter(|s| s.name == "sfc_hop_packets_total" && s.labels.get("port_pair").is_some_and(|p| p == "pp3")).filter_map(|s| s.value.parse::<u64>().ok()).sum();
    assert!(pp3 >= report.sent(), "sfc_hop_packets_total{{port_pair=pp3}} = {pp3}, sent {}:\n{}", report.sent(), reply.body);

    let (status, running) = daemon.kill().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(running, "the daemon exited by itself ({status}):\n{}", read_log());
}
