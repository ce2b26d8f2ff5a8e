//! The Grafana dashboard (`deploy/grafana`, issue 14) is real and checked: `sfc.json` is what
//! grafyaml makes of `sfc.yaml`, grafyaml accepts the YAML, and every query of every panel (read
//! from the JSON, so a new panel is checked as soon as it is written) returns data from a real
//! Prometheus that scraped `sfc run` while UDP and TCP flowed through two chains and a member
//! failed over.
//!
//! Needs grafyaml (`cargo xtask setup` puts it in a venv under the target directory; the
//! tests fail, not skip, without it), and for the last test Debian's `prometheus`, the `sfc`
//! binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with `--test-threads=1`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::Command,
    time::{Duration, Instant},
};

use sfc_tests::{
    Sfc, TopologyConfig,
    chain::{FlowClassifier, PortChain, line_diff},
    dashboard::{self, RATE_WINDOW},
    failover::{self, Fault},
    observe,
    process::{Daemon, indent},
    prometheus_server::{JOB, PrometheusServer, Series},
    scenario::Fixture,
    send::datagrams_from,
    stream::STREAM_PORT,
    topology::{DEST_IP, End},
    traffic::{TcpServer, tcp_requests},
};

/// `sfc run`'s metrics and Prometheus' API, both on the hub's loopback.
const METRICS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9474);
const PROMETHEUS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);

/// Runs `program args` in `deploy/grafana`; its stdout, or a panic with everything it said.
fn run_in_deploy(program: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dashboard::dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "`{} {}` failed ({}):\nstdout: {stdout}\nstderr: {}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_json_is_what_grafyaml_makes_of_the_yaml() {
    let python = dashboard::grafyaml_venv().join("bin/python");
    let made = run_in_deploy(&python, &["generate.py", "--stdout"]);
    let path = dashboard::dir().join("sfc.json");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        committed == made,
        "{} is not what grafyaml makes of sfc.yaml; run `{} deploy/grafana/generate.py` and \
         commit both. What grafyaml makes (+) against the file (-):\n{}",
        path.display(),
        python.display(),
        line_diff(&committed, &made, 3)
    );
}

#[test]
fn grafyaml_validates_the_yaml() {
    let tool = dashboard::grafyaml_venv().join("bin/grafana-dashboard");
    let out = run_in_deploy(&tool, &["validate", "sfc.yaml"]);
    assert!(out.contains("SUCCESS!"), "{out}");
}

/// What Prometheus and the daemon said, after `what`, for a failure message.
fn context(prom: &PrometheusServer, daemon: &Daemon, what: &str) -> String {
    format!(
        "{what}\n{}\nprometheus log:\n{}\ndaemon log:\n{}",
        prom.targets(),
        indent(&prom.log()),
        indent(&daemon.log())
    )
}

/// A query's series (labels and value), for messages.
fn summary(series: &[Series]) -> String {
    series
        .iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{{{}}} {}", labels.join(","), s.value)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Traffic and a failover under `sfc run` scraped by Prometheus; then every variable and panel
/// query of the dashboard, run through Prometheus' HTTP API, returns data.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn every_panel_query_returns_data_from_prometheus() {
    let started = Instant::now();
    let board = dashboard::json();
    let targets = dashboard::targets(&board);
    let variables = dashboard::variables(&board);
    assert!(targets.len() >= 10, "too few panel queries: {targets:?}");

    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    // pc1: UDP to the stream port through PG1 (probed) and PG2; pc2: TCP to port 80 through PG2.
    let mut file = failover::chain(topo, true);
    file.flow_classifiers.push(FlowClassifier::to_port(
        "web",
        "tcp",
        80,
        &topo.hub_dev(End::Source),
    ));
    file.port_chains
        .push(PortChain::new("pc2", 2, &["pg2"], &["web"]));
    let path = fx.write("chains.yaml", &file);
    let log = fx.dir.path().join("daemon.log");
    let metrics = METRICS.to_string();
    let mut daemon = Daemon::start(
        &sfc,
        &["-f", &path.to_string_lossy(), "--metrics", &metrics],
        &log,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    // Declared after the daemon and the fixture: dropped (killed) before them.
    let prom = PrometheusServer::start(
        &topo.hub(),
        PROMETHEUS,
        &[METRICS],
        &fx.dir.path().join("prometheus"),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    prom.wait_for(
        &format!("up{{job=\"{JOB}\"}}"),
        Duration::from_secs(10),
        |s| s.iter().any(|s| s.value == "1"),
    )
    .unwrap_or_else(|e| panic!("{}", context(&prom, &daemon, &format!("{e:#}"))));
    let ready = started.elapsed();

    // TCP through pc2, then a UDP stream through pc1 during which the member carrying it hangs
    // (found by probes, failed over, back).
    let web = SocketAddr::new(DEST_IP.into(), 80);
    let _server = TcpServer::start(&topo.dest(), web).unwrap_or_else(|e| panic!("{e:#}"));
    let tcp = tcp_requests(&topo.source(), web, 50).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(tcp.ok, 50, "{:?}", tcp.errors);
    let fo = failover::run(
        topo,
        &sfc,
        &mut daemon,
        METRICS,
        Fault::Hang,
        Duration::from_millis(1500),
    )
    .unwrap_or_else(|e| panic!("{}", context(&prom, &daemon, &format!("{e:#}"))));
    assert!(fo.report.received() > 0, "{}", fo.report);
    // Prometheus has scraped the end of it: the failover, and both chains' packets.
    prom.wait_for("sfc_failovers_total", Duration::from_secs(10), |s| {
        s.iter().any(|s| s.as_f64().is_some_and(|v| v >= 1.0))
    })
    .unwrap_or_else(|e| panic!("{}", context(&prom, &daemon, &format!("{e:#}"))));
    let entered = prom
        .query(r#"sum by (chain) (sfc_hop_packets_total{hop="0", direction="forward"})"#)
        .unwrap_or_else(|e| panic!("{}", context(&prom, &daemon, &format!("{e:#}"))));
    for chain in ["pc1", "pc2"] {
        assert!(
            entered
                .iter()
                .any(|s| s.labels["chain"] == chain && s.as_f64().is_some_and(|v| v > 0.0)),
            "{}",
            context(
                &prom,
                &daemon,
                &format!(
                    "Prometheus saw no packets of {chain}: {}",
                    summary(&entered)
                )
            )
        );
    }

    let mut failures = Vec::new();
    for v in variables.iter().filter(|v| v.kind == "query") {
        let answer = dashboard::label_values(&v.query).and_then(|(selector, label)| {
            let selector = dashboard::runnable(&selector, &variables)?;
            prom.label_values(&selector, &label)
        });
        match answer {
            Ok(values) if !values.is_empty() => {
                println!("variable ${}: {}", v.name, values.join(", "));
            }
            other => failures.push(format!("variable ${} ({}): {other:?}", v.name, v.query)),
        }
    }
    for t in &targets {
        let answer = dashboard::runnable(&t.expr, &variables).and_then(|q| prom.query(&q));
        match answer {
            Ok(series) if !series.is_empty() => {
                println!(
                    "{} [{}]: {} series, e.g. {}",
                    t.panel,
                    t.ref_id,
                    series.len(),
                    summary(&series[..1])
                );
            }
            other => failures.push(format!(
                "panel {:?} query {} ({}): {other:?}",
                t.panel, t.ref_id, t.expr
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{}",
        context(
            &prom,
            &daemon,
            &format!(
                "dashboard queries without data ($__rate_interval = {RATE_WINDOW}):\n{}",
                failures.join("\n")
            )
        )
    );
    println!(
        "every_panel_query_returns_data_from_prometheus: {} panel queries and {} variables \
         answered; Prometheus scraping after {:.1} s, whole test {:.1} s",
        targets.len(),
        variables.iter().filter(|v| v.kind == "query").count(),
        ready.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Stops what `observe::start` left in a directory, also when the test fails half way.
struct ObserveGuard(std::path::PathBuf);

impl Drop for ObserveGuard {
    fn drop(&mut self) {
        let _ = observe::stop(&self.0);
    }
}

/// The demo's `--observe`: `sfc run` and Prometheus left running as detached processes scrape
/// the chain's traffic; `stop` (what `cargo xtask demo --down` calls) finds both by their pid
/// files and ends them, and the datapath stays installed and forwarding.
#[test]
fn a_kept_observer_scrapes_the_chain_and_stops_cleanly() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let path = fx.write("chains.yaml", &failover::chain(topo, false));
    sfc.apply(&path);
    let dir = fx.dir.path().join("observe");
    let _guard = ObserveGuard(dir.clone());
    let kept = observe::start(&sfc, &path, &dir).unwrap_or_else(|e| panic!("{e:#}"));
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), STREAM_PORT);
    datagrams_from(&topo.source(), 41_100, dest, &[64; 20], Duration::from_millis(5)).unwrap_or_else(|e| panic!("{e:#}"));
    let series = kept
        .prometheus
        .wait_for("sum(sfc_hop_packets_total{chain=\"pc1\",hop=\"1\"})", Duration::from_secs(20), |s| {
            s.first().and_then(Series::as_f64).is_some_and(|v| v >= 20.0)
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", std::fs::read_to_string(&kept.log).unwrap_or_default()));
    assert_eq!(series.len(), 1, "{}", summary(&series));

    let stopped = observe::stop(&dir).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(stopped.len(), 2, "{stopped:?}");
    for pid in [kept.sfc_run_pid, kept.prometheus_pid] {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still runs");
    }
    assert!(observe::stop(&dir).unwrap_or_else(|e| panic!("{e:#}")).is_empty(), "a second stop finds nothing");
    // `sfc run` ended with SIGTERM: the datapath is left as it was, and forwards.
    let ((), w) = fx.window(&sfc, "after the observer stopped", || {
        datagrams_from(&topo.source(), 41_101, dest, &[64; 5], Duration::from_millis(5)).unwrap_or_else(|e| panic!("{e:#}"));
    });
    assert_eq!(w.link(End::SfIn(3)).rx_packets, 5, "{}", w.report());
}
