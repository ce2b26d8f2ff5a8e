//! `cargo xtask demo --keep`, `--observe` and `--down`: leaving the demo up to look around (and
//! with `--observe` scraped by Prometheus, with traffic), and finding and removing what a kept
//! (or killed) demo left.

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result};
use sfc_tests::{
    Sfc, Topology, netns, observe,
    blog::HTTP_PORT,
    topology::{DEST_IP, End},
    traffic::{spawn_detached_requests, spawn_detached_tcp_server, stop_detached_server},
};

use super::{
    DEMO_ID, Guests, KEPT_SERVER_LIFETIME, SERVER_PID_FILE, WORK_DIR, command, section, vms,
};

/// `--observe`'s request loop from source: one request every this long, for as long as the
/// kept web server lives.
const OBSERVE_REQUEST_EVERY: Duration = Duration::from_secs(1);
const REQUESTS_PID_FILE: &str = "source-requests.pid";
/// Where `--observe` keeps `sfc run`'s and Prometheus' files.
const OBSERVE_DIR: &str = "observe";

/// `--keep`: directions for looking around, and for namespaces a web server process for dest
/// (this process's server thread ends with it). VMs go on running by themselves once
/// [`Topology::keep`] has kept them.
pub(super) fn keep_running(
    topo: &Topology,
    sfc: &Sfc<'_>,
    chain_path: &Path,
    guests: Guests,
    observed: bool,
) -> Result<()> {
    match guests {
        Guests::Namespaces => keep_namespaces_running(topo, sfc, chain_path, observed),
        Guests::Vms => {
            if observed {
                sfc_tests::prometheus_server::ensure_installed()?;
                start_vm_requests(topo)?;
                start_observer(sfc, chain_path)?;
            }
            section(if observed { "The demo stays up, observed (--observe)" } else { "The demo stays up (--keep)" });
            vms::print_kept(topo);
            println!("Look around:");
            let mut lines = vms::look_around(topo);
            lines.extend(sfc_lines(sfc, chain_path));
            print_look_around(&lines);
            if observed {
                print_observe(sfc);
            }
            Ok(())
        }
    }
}

/// Requests a detached process would send in the kept web server's lifetime.
fn observe_requests() -> usize {
    usize::try_from(KEPT_SERVER_LIFETIME.as_secs() / OBSERVE_REQUEST_EVERY.as_secs().max(1)).unwrap_or(3600)
}

/// `--observe` with VMs: a background loop in source's shell, as bounded as the namespaces' one.
fn start_vm_requests(topo: &Topology) -> Result<()> {
    let vm = topo.vm_for(End::Source).context("source is not a VM")?;
    let every = OBSERVE_REQUEST_EVERY.as_secs().max(1);
    let cmd = format!(
        "for i in $(seq {}); do timeout 2 wget -q -O /dev/null http://{DEST_IP}:{HTTP_PORT}/; sleep {every}; done >/dev/null 2>&1 &",
        observe_requests()
    );
    vm.exec(&cmd).with_context(|| format!("starting the request loop in {}", vm.name()))?;
    Ok(())
}

/// `--observe`: `sfc run` with metrics and Prometheus, detached (`sfc_tests::observe`).
fn start_observer(sfc: &Sfc<'_>, chain_path: &Path) -> Result<()> {
    command(&sfc.command_line(&["run", "-f", &chain_path.to_string_lossy(), "--metrics", &observe::METRICS.to_string()]));
    let dir = Path::new(WORK_DIR).join(OBSERVE_DIR);
    let kept = observe::start(sfc, chain_path, &dir)?;
    println!(
        "`sfc run` (process {}) took over the datapath and serves metrics on {} in {};\n\
         Prometheus (process {}) scrapes it every second and answers on {}.",
        kept.sfc_run_pid,
        observe::METRICS,
        sfc.netns(),
        kept.prometheus_pid,
        observe::PROMETHEUS
    );
    Ok(())
}

/// How to see the metrics: Prometheus' API, and Grafana with the repository's dashboard.
fn print_observe(sfc: &Sfc<'_>) {
    let hub = sfc.netns();
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/sfc.json");
    let dashboard = dashboard.canonicalize().unwrap_or(dashboard);
    println!(
        "\nPrometheus listens on {prom} inside namespace {hub} (never on the host's addresses):\n    \
         ip netns exec {hub} curl -sg 'http://{prom}/api/v1/query?query=rate(sfc_hop_packets_total[1m])'\n\n\
         Grafana: run it in the same namespace, so that it reaches Prometheus on loopback, and reach\n\
         its UI from there (e.g. `ip netns exec {hub} curl`, or an SSH tunnel into the namespace):\n    \
         ip netns exec {hub} grafana-server --homepath /usr/share/grafana\n\
         then add a Prometheus data source with URL http://{prom} and import the dashboard\n    \
         {dash}\n\
         (Connections > Data sources > Add > Prometheus; Dashboards > New > Import > Upload JSON file;\n\
         pick that data source for the dashboard's `datasource` variable.) Source sends a request a\n\
         second for {mins} minutes: the throughput, share and latency panels fill.",
        prom = observe::PROMETHEUS,
        dash = dashboard.display(),
        mins = KEPT_SERVER_LIFETIME.as_secs() / 60,
    );
}

fn keep_namespaces_running(topo: &Topology, sfc: &Sfc<'_>, chain_path: &Path, observed: bool) -> Result<()> {
    // Only the main thread runs now (the server thread was joined), so forking is sound.
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
    if observed {
        // Before anything is left running: without Prometheus there is nothing to observe.
        sfc_tests::prometheus_server::ensure_installed()?;
    }
    let pid = spawn_detached_tcp_server(&topo.dest(), dest, KEPT_SERVER_LIFETIME)?;
    write_pid_or_stop(SERVER_PID_FILE, pid)?;
    if observed {
        // Still single-threaded: fork before anything starts a thread.
        let requests = spawn_detached_requests(&topo.source(), dest, OBSERVE_REQUEST_EVERY, observe_requests());
        let started = requests.and_then(|r| write_pid_or_stop(REQUESTS_PID_FILE, r).map(|()| r));
        if let Err(e) = started.and_then(|r| start_observer(sfc, chain_path).inspect_err(|_| { stop_detached_server(r); })) {
            // The caller removes everything else; what was detached goes too.
            stop_detached_server(pid);
            return Err(e);
        }
    }

    section(if observed { "The demo stays up, observed (--observe)" } else { "The demo stays up (--keep)" });
    println!(
        "dest's web server is now process {pid} (it stops by itself after {} minutes).\n",
        KEPT_SERVER_LIFETIME.as_secs() / 60
    );
    println!("Look around:");
    let sf3 = topo.sf(3);
    let mut lines = vec![
        (
            format!("ip netns exec {} curl -s http://{DEST_IP}/", topo.source()),
            "a request from source".to_owned(),
        ),
        (
            format!("ip netns exec {sf3} tcpdump -ni out port {HTTP_PORT}"),
            "the blog's tcpdump, on sf3's outgoing interface".to_owned(),
        ),
        (
            format!("ip -n {} -s link show in", topo.sf(1)),
            "sf1's own counters".to_owned(),
        ),
    ];
    lines.extend(sfc_lines(sfc, chain_path));
    print_look_around(&lines);
    if observed {
        print_observe(sfc);
    }
    Ok(())
}

/// Records a detached process's pid for `--down`; without its pid file `--down` could not find
/// it, so it is stopped when the file cannot be written.
fn write_pid_or_stop(file: &str, pid: i32) -> Result<()> {
    let pid_file = Path::new(WORK_DIR).join(file);
    if let Err(e) = std::fs::write(&pid_file, format!("{pid}\n")) {
        stop_detached_server(pid);
        return Err(e).with_context(|| format!("write {}", pid_file.display()));
    }
    Ok(())
}

/// The look-around lines about sfc itself: its counters, and applying an edited chain file.
fn sfc_lines(sfc: &Sfc<'_>, chain_path: &Path) -> [(String, String); 2] {
    [
        (sfc.command_line(&["stats"]), "sfc's counters".to_owned()),
        (
            sfc.command_line(&["apply", "-f", &chain_path.to_string_lossy()]),
            "after editing the chain file".to_owned(),
        ),
    ]
}

/// Command lines, each with what it shows, and how to remove it all.
fn print_look_around(lines: &[(String, String)]) {
    for (line, what) in lines {
        println!("    {line}\n        # {what}");
    }
    println!("\nRemove it all:\n    cargo xtask demo --down");
}

pub(super) fn leftover_exists() -> bool {
    !netns::list(&format!("sfc-{DEMO_ID}-")).is_empty()
        || Path::new(sfc_tests::sfc::PIN_ROOT)
            .join(format!("sfc-{DEMO_ID}-hub"))
            .exists()
        || Path::new(WORK_DIR).exists()
}

/// Removes a kept demo: datapath, web server process, VMs, namespaces, files.
pub(super) fn tear_down(sfc_bin: &Path) -> Result<()> {
    let hub = format!("sfc-{DEMO_ID}-hub");
    let sfc = Sfc::for_netns(sfc_bin, &hub);
    let mut removed = Vec::new();
    if let Some(pid) = stop_kept_process(REQUESTS_PID_FILE, "source")? {
        removed.push(format!("source's request loop (process {pid})"));
    }
    // `sfc run` first: stopped, it leaves the datapath for `sfc down`.
    removed.extend(observe::stop(&Path::new(WORK_DIR).join(OBSERVE_DIR))?);
    if sfc.pin_dir().exists() {
        command(&sfc.command_line(&["down"]));
        if let Err(e) = sfc.try_run(&["down"]) {
            println!("warning: {e:#}");
        }
        if sfc.pin_dir().exists() {
            std::fs::remove_dir_all(sfc.pin_dir())
                .with_context(|| format!("remove {}", sfc.pin_dir().display()))?;
        }
        removed.push(format!(
            "the datapath (pins in {})",
            sfc.pin_dir().display()
        ));
    }
    if let Some(pid) = stop_kept_process(SERVER_PID_FILE, "dest")? {
        removed.push(format!("dest's web server (process {pid})"));
    }
    let gone = Topology::remove_by_id(DEMO_ID)?;
    if !gone.vms.is_empty() {
        removed.push(format!("the VMs {}", gone.vms.join(" ")));
    }
    if !gone.namespaces.is_empty() {
        removed.push(format!("the namespaces {}", gone.namespaces.join(" ")));
    }
    if Path::new(WORK_DIR).exists() {
        std::fs::remove_dir_all(WORK_DIR).with_context(|| format!("remove {WORK_DIR}"))?;
        removed.push(WORK_DIR.to_owned());
    }
    if removed.is_empty() {
        println!("No kept demo found: nothing to remove.");
    } else {
        println!("Removed {}.", removed.join(", "));
    }
    Ok(())
}

/// Stops a process a kept demo left (dest's web server, source's request loop), if its pid file
/// names a live process that is ours: the same executable as this one, or a process inside the
/// demo's `role` namespace.
fn stop_kept_process(file: &str, role: &str) -> Result<Option<i32>> {
    let pid_file = Path::new(WORK_DIR).join(file);
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return Ok(None);
    };
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a pid: {text:?}", pid_file.display()))?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let same_exe = std::fs::read_link(proc_dir.join("exe")).ok() == std::env::current_exe().ok();
    let dest_ns = netns::path(&format!("sfc-{DEMO_ID}-{role}"));
    let in_dest = match (
        std::fs::metadata(&dest_ns),
        std::fs::metadata(proc_dir.join("ns/net")),
    ) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    };
    if !(same_exe || in_dest) {
        return Ok(None);
    }
    Ok(stop_detached_server(pid).then_some(pid))
}
