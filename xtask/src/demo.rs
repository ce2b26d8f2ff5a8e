//! `cargo xtask demo`: the networking-sfc blog's "Service Function Chaining demo with devstack",
//! replayed in network namespaces instead of devstack VMs.
//!
//! The blog routes HTTP from `source_vm` to `dest_vm` through port pair groups PG1 {VM1, VM2}
//! and PG2 {VM3} (port chain PC1, flow classifier `FC_demo`) and checks with tcpdump on the tap
//! devices that the service VMs see the packets. Here every VM is a namespace, the compute node
//! is the `hub` namespace, and instead of tcpdump the service functions' own interface counters
//! are shown next to sfc's counters, which must agree exactly.
//!
//! The walkthrough is a list of [`Step`]s, each a desired chain state plus which service
//! functions must then see traffic: the blog's initial chain, then its update sequence (remove
//! the classifier, keep only PG1, PG1 = {PP2}, restore), each applied by editing the chain file
//! and re-running `sfc apply`, and each verified with the request loop. The steps live in
//! `sfc_tests::blog`, which the namespace suite checks too (`tests/update_sequence.rs`).
//! `--keep` leaves everything up (with a web server process in dest) under the fixed id `demo`,
//! and `--down` finds and removes it.

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use sfc_tests::{
    Sfc, Topology, TopologyConfig,
    blog::{self, HTTP_PORT, SFS, SfSeen, Step, group_of},
    chain::{ChainFile, line_diff},
    counters::settled,
    interrupt, netns,
    topology::{DEST_IP, End},
    traffic::{TcpServer, spawn_detached_tcp_server, stop_detached_server, tcp_requests_with},
};

/// Fixed, so that `--down` (and the next run) can find a kept demo.
const DEMO_ID: &str = "demo";
/// Chain file and the kept web server's pid file live here.
const WORK_DIR: &str = "/tmp/sfc-demo";
const CHAIN_FILE: &str = "chains.yaml";
const SERVER_PID_FILE: &str = "dest-web-server.pid";
/// Requests per step: enough for both members of PG1 to get flows.
const REQUESTS: usize = 30;
const REQUEST_PACE: Duration = Duration::from_millis(20);
/// "Welcome to dest-vm" lines shown per step.
const SHOWN_REPLIES: usize = 3;
/// How long the web server of a kept demo lives.
const KEPT_SERVER_LIFETIME: Duration = Duration::from_hours(1);

pub fn run(sfc_bin: &Path, keep: bool, down: bool, mode: &str) -> anyhow::Result<()> {
    if down {
        return tear_down(sfc_bin);
    }
    interrupt::install()?;
    if leftover_exists() {
        println!("A demo kept from an earlier run (--keep) is still up; removing it first.");
        tear_down(sfc_bin)?;
        println!();
    }
    let result = walkthrough(sfc_bin, keep, mode);
    if interrupt::requested() {
        println!("\nInterrupted: the topology and the datapath have been removed.");
    }
    result
}

/// The blog's sequence: the initial chain and its four updates (`sfc_tests::blog`).
fn steps(topo: &Topology) -> Vec<Step> {
    blog::steps(topo)
}

/// Removes the work directory when dropped, unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn walkthrough(sfc_bin: &Path, keep: bool, mode: &str) -> Result<()> {
    println!("sfc demo: the networking-sfc devstack demo, in network namespaces");
    println!(
        "(blog: \"Service Function Chaining demo with devstack\"; sfc is {})",
        sfc_bin.display()
    );

    // Declaration order is cleanup order reversed: web server, datapath, namespaces, files.
    let mut work = WorkDir {
        path: PathBuf::from(WORK_DIR),
        keep: false,
    };
    std::fs::create_dir_all(&work.path).with_context(|| format!("create {WORK_DIR}"))?;
    let chain_path = work.path.join(CHAIN_FILE);

    section("Build the topology");
    let topo = TopologyConfig::new(&SFS).id(DEMO_ID).build()?;
    print_topology(&topo);
    interrupt::check()?;

    let sfc = Sfc::with_bin(sfc_bin, &topo);
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
    let web = TcpServer::start(&topo.dest(), dest)?;
    println!(
        "\ndest runs a small web server on port {HTTP_PORT} answering \"Welcome to dest-vm\"."
    );

    let mut failures = Vec::new();
    let mut previous: Option<ChainFile> = None;
    for (i, step) in steps(&topo).into_iter().enumerate() {
        interrupt::check()?;
        let update = previous.as_ref().map(|p| (p, i == 1));
        failures.extend(run_step(&topo, &sfc, &chain_path, update, &step, mode)?);
        previous = Some(step.chain);
    }

    if keep {
        drop(web);
        keep_running(&topo, &sfc, &chain_path)?;
        work.keep = true;
        sfc.keep();
        topo.keep();
    } else {
        section("Clean up");
        command(&sfc.command_line(&["down"]));
        print_output(&sfc.try_run(&["down"])?);
        drop(web);
        let namespaces = topo.namespaces().join(" ");
        drop(sfc);
        drop(topo);
        println!("removed the namespaces {namespaces} and {WORK_DIR}");
        println!("(`cargo xtask demo --keep` leaves everything up to look around)");
    }
    if !failures.is_empty() {
        bail!(
            "the chain did not behave as the blog's did:\n  {}",
            failures.join("\n  ")
        );
    }
    Ok(())
}

fn print_topology(topo: &Topology) {
    println!(
        "The blog's devstack node is namespace {} with Linux bridge br0 (its br-int); every VM",
        topo.hub()
    );
    println!(
        "is a namespace plugged into it with a veth pair (the tap device is the bridge port):\n"
    );
    println!(
        "  {:<16} {:<9} {:<16} bridge port",
        "namespace", "interface", "address"
    );
    for end in topo.ends() {
        let ns = topo.ns(&end.role());
        let (addr, len) = end.addr();
        let shown_ns = if matches!(end, End::SfOut(_)) {
            ""
        } else {
            &ns
        };
        println!(
            "  {:<16} {:<9} {:<16} {}",
            shown_ns,
            end.dev(),
            format!("{addr}/{len}"),
            topo.hub_dev(end)
        );
    }
    println!(
        "\nService functions are plain routers (ip_forward=1): what comes in on `in` leaves by \
         `out`.\nNeighbours are static and IPv6 is off, so an SF interface counts only chain traffic."
    );
}

/// Applies `step`'s chain, runs the request loop and shows what sfc and the SFs saw; returns
/// the checks that failed. `update`: `None` for the first chain (installed), else the chain
/// it replaces and whether this is the first update (which explains the drain timeout).
fn run_step(
    topo: &Topology,
    sfc: &Sfc<'_>,
    chain_path: &Path,
    update: Option<(&ChainFile, bool)>,
    step: &Step,
    mode: &str,
) -> Result<Vec<String>> {
    section(step.title);
    println!("The blog:");
    print_output(&blog::blog_lines(step));
    step.chain.write(chain_path)?;
    let path = chain_path.to_string_lossy();
    let mut apply = vec!["apply", "-f", &path];
    if mode != "tc" {
        apply.extend(["--mode", mode]);
    }
    match update {
        None => {
            println!("\nsfc's chain file {}:\n", chain_path.display());
            for line in step.chain.to_yaml().lines() {
                println!("    {line}");
            }
        }
        Some((before, _)) => {
            println!(
                "\nIn sfc: {}. The edit to {}:\n",
                step.change,
                chain_path.display()
            );
            print_output(&line_diff(&before.to_yaml(), &step.chain.to_yaml(), 1));
            apply.extend(["--drain-timeout", "0"]);
        }
    }
    println!();
    command(&sfc.command_line(&apply));
    print_output(&sfc.try_run(&apply)?);
    match update {
        None => println!(
            "({} programs now sit on the bridge ports; everything else is still plain bridging)",
            if mode == "xdp" { "XDP" } else { "tc" }
        ),
        Some((_, true)) => println!(
            "(The update switches to the new state in one step. With `--drain-timeout 0`, flows \
             pinned to a member\nthat left its group move at once; by default they would keep \
             draining to it for 30 s. The\nrequest loop opens new connections anyway, and new \
             connections always take the new state.)"
        ),
        Some(_) => {}
    }
    interrupt::check()?;

    let before = (topo.counters()?, sfc.try_stats()?.packets_by_port_pair());
    request_loop(topo)?;
    let (after, stats) = settled(Duration::from_secs(3), Duration::from_millis(150), || {
        Ok((topo.counters()?, sfc.try_stats()?))
    })?;
    let delta = after.since(&before.0);
    let seen = Step::seen(&delta, &before.1, &stats.packets_by_port_pair());

    println!();
    command(&sfc.command_line(&["stats"]));
    print_output(&sfc.try_run(&["stats"])?);

    Ok(sf_table(step, &seen))
}

/// The blog's `while true; do curl ...; done`, bounded.
fn request_loop(topo: &Topology) -> Result<()> {
    println!(
        "\nThe request loop, {REQUESTS} HTTP requests from source to dest, one connection each"
    );
    command(&format!(
        "for i in $(seq {REQUESTS}); do ip netns exec {} curl -s http://{DEST_IP}/; done",
        topo.source()
    ));
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
    let outcome = tcp_requests_with(&topo.source(), dest, REQUESTS, REQUEST_PACE, |i, reply| {
        match reply {
            Ok(body) if i < SHOWN_REPLIES => print!("    {body}"),
            Ok(_) => {}
            Err(e) => println!("    request {i} failed: {e}"),
        }
        !interrupt::requested()
    })?;
    interrupt::check()?;
    let more = outcome.ok.saturating_sub(SHOWN_REPLIES);
    if more > 0 {
        println!("    ... and {more} more");
    }
    println!("{}/{} requests answered", outcome.ok, outcome.attempted);
    if outcome.ok != REQUESTS {
        bail!(
            "only {}/{REQUESTS} requests were answered: {}",
            outcome.ok,
            outcome.errors.join("; ")
        );
    }
    Ok(())
}

/// Prints, per SF, its interface counters next to what sfc sent it, and checks them against
/// the step's expectation; returns the failed checks.
fn sf_table(step: &Step, seen: &[SfSeen]) -> Vec<String> {
    println!(
        "\nWhat the service functions saw (the blog ran tcpdump on their tap devices; these are \
         their own\ninterface counters for this request loop, and what sfc counted into each):\n"
    );
    println!(
        "  {:<4} {:<6} {:>13} {:>14} {:>14}",
        "SF", "group", "in: rx pkts", "out: tx pkts", "sfc: packets"
    );
    let failures = step.check(seen);
    for s in seen {
        let group = group_of(&step.chain, s.sf);
        let group = if group.is_empty() { "-" } else { &group };
        let prefix = format!("{}: sf{}: ", step.title, s.sf);
        let mark = if failures.iter().any(|f| f.starts_with(&prefix)) {
            "MISMATCH"
        } else {
            "ok"
        };
        println!(
            "  sf{:<2} {group:<6} {:>13} {:>14} {:>14}  {mark}",
            s.sf, s.in_rx, s.out_tx, s.sfc
        );
    }
    println!();
    if failures.is_empty() {
        if step.expect.is_empty() {
            println!(
                "No service function saw the requests: they went straight to dest, and all \
                 were answered."
            );
        } else {
            let quiet: Vec<String> = SFS
                .iter()
                .filter(|n| !step.expect.contains(n))
                .map(|n| format!("sf{n}"))
                .collect();
            let quiet = if quiet.is_empty() {
                String::new()
            } else {
                format!(" ({} stayed quiet)", quiet.join(" and "))
            };
            println!(
                "The requests went through {}{quiet}, and the counters agree packet for packet.",
                step.expected_sfs()
            );
        }
    } else {
        for f in &failures {
            println!("MISMATCH {f}");
        }
    }
    failures
}

/// `--keep`: a web server process for dest (this process's server thread ends with it) and
/// directions for looking around.
fn keep_running(topo: &Topology, sfc: &Sfc<'_>, chain_path: &Path) -> Result<()> {
    // Only the main thread runs now (the server thread was joined), so forking is sound.
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
    let pid = spawn_detached_tcp_server(&topo.dest(), dest, KEPT_SERVER_LIFETIME)?;
    let pid_file = Path::new(WORK_DIR).join(SERVER_PID_FILE);
    if let Err(e) = std::fs::write(&pid_file, format!("{pid}\n")) {
        // Without its pid file `--down` could not find it: don't leave it running.
        stop_detached_server(pid);
        return Err(e).with_context(|| format!("write {}", pid_file.display()));
    }

    section("The demo stays up (--keep)");
    println!(
        "dest's web server is now process {pid} (it stops by itself after {} minutes).\n",
        KEPT_SERVER_LIFETIME.as_secs() / 60
    );
    println!("Look around:");
    let sf3 = topo.sf(3);
    let lines = [
        (
            format!("ip netns exec {} curl -s http://{DEST_IP}/", topo.source()),
            "a request from source",
        ),
        (
            format!("ip netns exec {sf3} tcpdump -ni out port {HTTP_PORT}"),
            "the blog's tcpdump, on sf3's outgoing interface",
        ),
        (
            format!("ip -n {} -s link show in", topo.sf(1)),
            "sf1's own counters",
        ),
        (sfc.command_line(&["stats"]), "sfc's counters"),
        (
            sfc.command_line(&["apply", "-f", &chain_path.to_string_lossy()]),
            "after editing the chain file",
        ),
    ];
    for (line, what) in lines {
        println!("    {line}\n        # {what}");
    }
    println!("\nRemove it all:\n    cargo xtask demo --down");
    Ok(())
}

fn leftover_exists() -> bool {
    !netns::list(&format!("sfc-{DEMO_ID}-")).is_empty()
        || Path::new(sfc_tests::sfc::PIN_ROOT)
            .join(format!("sfc-{DEMO_ID}-hub"))
            .exists()
        || Path::new(WORK_DIR).exists()
}

/// Removes a kept demo: datapath, web server process, namespaces, files.
fn tear_down(sfc_bin: &Path) -> Result<()> {
    let hub = format!("sfc-{DEMO_ID}-hub");
    let sfc = Sfc::for_netns(sfc_bin, &hub);
    let mut removed = Vec::new();
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
    if let Some(pid) = stop_kept_server()? {
        removed.push(format!("dest's web server (process {pid})"));
    }
    let namespaces = Topology::remove_by_id(DEMO_ID)?;
    if !namespaces.is_empty() {
        removed.push(format!("the namespaces {}", namespaces.join(" ")));
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

/// Stops the web server a kept demo left, if its pid file names a live process that is ours:
/// the same executable as this one, or a process inside the demo's dest namespace.
fn stop_kept_server() -> Result<Option<i32>> {
    let pid_file = Path::new(WORK_DIR).join(SERVER_PID_FILE);
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return Ok(None);
    };
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a pid: {text:?}", pid_file.display()))?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let same_exe = std::fs::read_link(proc_dir.join("exe")).ok() == std::env::current_exe().ok();
    let dest_ns = netns::path(&format!("sfc-{DEMO_ID}-dest"));
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

fn section(title: &str) {
    println!("\n== {title} ==\n");
}

fn command(line: &str) {
    println!("$ {line}");
}

fn print_output(out: &str) {
    for line in out.lines() {
        println!("    {line}");
    }
}
