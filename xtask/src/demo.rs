//! `cargo xtask demo`: the networking-sfc blog's "Service Function Chaining demo with devstack",
//! replayed in network namespaces instead of devstack VMs, or with `--vms` with real qemu VMs.
//!
//! The blog routes HTTP from `source_vm` to `dest_vm` through port pair groups PG1 {VM1, VM2}
//! and PG2 {VM3} (port chain PC1, flow classifier `FC_demo`) and checks with tcpdump on the tap
//! devices that the service VMs see the packets. Here the compute node is the `hub` namespace,
//! every VM is a namespace or (`--vms`, `demo/vms.rs`) a qemu VM on taps in the hub, and instead
//! of tcpdump the service functions' own interface counters (read inside each VM) are shown
//! next to sfc's counters, which must agree exactly.
//!
//! The walkthrough is a list of [`Step`]s, each a desired chain state plus which service
//! functions must then see traffic: the blog's initial chain, then its update sequence (remove
//! the classifier, keep only PG1, PG1 = {PP2}, restore), each applied by editing the chain file
//! and re-running `sfc apply`, and each verified with the request loop. The steps live in
//! `sfc_tests::blog`, which the namespace suite checks too (`tests/update_sequence.rs`).
//! `--keep` leaves everything up (with a web server process in dest, or the VMs running) under
//! the fixed id `demo`, and `--down` finds and removes it (`demo/keep.rs`).

mod hosts;
mod keep;
mod vms;

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use sfc_tests::{
    Sfc, Topology, TopologyConfig,
    blog::{self, HTTP_PORT, SFS, SfSeen, Step, group_of},
    chain::{ChainFile, line_diff},
    counters::settled,
    interrupt,
    topology::{DEST_IP, End},
    traffic::{TcpOutcome, TcpServer, tcp_requests_with, vm_http_requests},
};

use self::keep::{keep_running, leftover_exists, tear_down};

/// Fixed, so that `--down` (and the next run) can find a kept demo.
const DEMO_ID: &str = "demo";
/// Chain file, the kept web server's pid file and kept VMs' files live here.
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

/// What stays up after the walkthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// Nothing: everything is removed.
    No,
    /// `--keep`: the topology, the datapath and dest's web server.
    Up,
    /// `--observe`: as `Up`, plus `sfc run` serving metrics, Prometheus scraping it, and a
    /// request a second from source.
    Observed,
}

/// What the blog's VMs are here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guests {
    /// Network namespaces: dest's web server and source's requests are threads of this process.
    Namespaces,
    /// Real qemu VMs: busybox httpd in dest, busybox wget in source, routers as SFs.
    Vms,
}

pub fn run(
    sfc_bin: &Path,
    keep: Kept,
    down: bool,
    mode: &str,
    guests: Guests,
    hosts: Option<usize>,
) -> anyhow::Result<()> {
    if down {
        return tear_down(sfc_bin);
    }
    interrupt::install()?;
    if let Some(n) = hosts {
        let r = hosts::walkthrough(sfc_bin, n);
        end_section();
        if interrupt::requested() {
            println!("\nInterrupted: the hosts, etcd and the datapaths have been removed.");
            return Err(anyhow!("interrupted"));
        }
        return r;
    }
    if leftover_exists() {
        println!("A demo kept from an earlier run (--keep) is still up; removing it first.");
        tear_down(sfc_bin)?;
        println!();
    }
    let result = walkthrough(sfc_bin, keep, mode, guests);
    end_section();
    if interrupt::requested() {
        println!("\nInterrupted: the topology and the datapath have been removed.");
        // Not the error a VM killed by the same Ctrl-C reported on the way out.
        return Err(anyhow!("interrupted"));
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

fn walkthrough(sfc_bin: &Path, kept: Kept, mode: &str, guests: Guests) -> Result<()> {
    let keep = kept != Kept::No;
    println!(
        "sfc demo: the networking-sfc devstack demo, {}",
        match guests {
            Guests::Namespaces => "in network namespaces",
            Guests::Vms => "with real qemu VMs",
        }
    );
    println!(
        "(blog: \"Service Function Chaining demo with devstack\"; sfc is {})",
        sfc_bin.display()
    );

    // Declaration order is cleanup order reversed: web server, datapath, VMs and namespaces,
    // files.
    let mut work = WorkDir {
        path: PathBuf::from(WORK_DIR),
        keep: false,
    };
    std::fs::create_dir_all(&work.path).with_context(|| format!("create {WORK_DIR}"))?;
    let chain_path = work.path.join(CHAIN_FILE);

    section("Build the topology");
    let topo = match guests {
        Guests::Namespaces => {
            let topo = TopologyConfig::new(&SFS).id(DEMO_ID).build()?;
            print_topology(&topo);
            topo
        }
        Guests::Vms => vms::build(keep.then_some(work.path.as_path()))?,
    };
    interrupt::check()?;

    let sfc = Sfc::with_bin(sfc_bin, &topo);
    let web = match guests {
        Guests::Namespaces => {
            let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
            let web = TcpServer::start(&topo.dest(), dest)?;
            println!(
                "\ndest runs a small web server on port {HTTP_PORT} answering \"Welcome to dest-vm\"."
            );
            Some(web)
        }
        Guests::Vms => {
            println!(
                "\ndest's init started busybox httpd on port {HTTP_PORT}, answering \"Welcome to \
                 dest-vm\"."
            );
            None
        }
    };

    let mut failures = Vec::new();
    let mut previous: Option<ChainFile> = None;
    for (i, step) in steps(&topo).into_iter().enumerate() {
        interrupt::check()?;
        let update = previous.as_ref().map(|p| (p, i == 1));
        failures.extend(run_step(&topo, &sfc, &chain_path, update, &step, mode, guests)?);
        previous = Some(step.chain);
    }

    if keep {
        drop(web);
        keep_running(&topo, &sfc, &chain_path, guests, kept == Kept::Observed)?;
        work.keep = true;
        sfc.keep();
        topo.keep()?;
    } else {
        section("Clean up");
        command(&sfc.command_line(&["down"]));
        print_output(&sfc.try_run(&["down"])?);
        drop(web);
        let namespaces = topo.namespaces().join(" ");
        let vms: Vec<String> = topo.vms().map(|(_, vm)| vm.name().to_owned()).collect();
        drop(sfc);
        drop(topo);
        if !vms.is_empty() {
            println!("stopped the VMs {} (qemu)", vms.join(" "));
        }
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
    guests: Guests,
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
    request_loop(topo, guests)?;
    let (after, stats) = settled(Duration::from_secs(3), Duration::from_millis(150), || {
        Ok((topo.counters()?, sfc.try_stats()?))
    })?;
    let delta = after.since(&before.0);
    let seen = Step::seen(&delta, &before.1, &stats.packets_by_port_pair());

    println!();
    command(&sfc.command_line(&["stats"]));
    print_output(&sfc.try_run(&["stats"])?);

    Ok(sf_table(step, &seen, guests))
}

/// The blog's `while true; do curl ...; done`, bounded: from source's namespace, or with wget
/// inside the source VM.
fn request_loop(topo: &Topology, guests: Guests) -> Result<()> {
    println!(
        "\nThe request loop, {REQUESTS} HTTP requests from source to dest, one connection each"
    );
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
    let show = show_reply;
    let outcome: TcpOutcome = match guests {
        Guests::Namespaces => {
            command(&format!(
                "for i in $(seq {REQUESTS}); do ip netns exec {} curl -s http://{DEST_IP}/; done",
                topo.source()
            ));
            tcp_requests_with(&topo.source(), dest, REQUESTS, REQUEST_PACE, show)?
        }
        Guests::Vms => {
            let vm = topo.vm_for(End::Source).context("source is not a VM")?;
            println!(
                "(busybox wget inside {}: one command each on its serial shell)",
                vm.name()
            );
            command(&format!(
                "for i in $(seq {REQUESTS}); do wget -qO- http://{DEST_IP}/; done"
            ));
            vm_http_requests(vm, dest, REQUESTS, REQUEST_PACE, show)?
        }
    };
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
fn sf_table(step: &Step, seen: &[SfSeen], guests: Guests) -> Vec<String> {
    println!(
        "\nWhat the service functions saw (the blog ran tcpdump on their tap devices; these are \
         their own\ninterface counters for this request loop{}, and what sfc counted into each):\n",
        match guests {
            Guests::Namespaces => "",
            Guests::Vms => ", read inside each VM",
        }
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

/// Shows request `i`'s reply (the first few) or why it failed; false once Ctrl-C was pressed
/// (the request loop stops).
pub(super) fn show_reply(i: usize, reply: &Result<String, String>) -> bool {
    match reply {
        Ok(body) if i < SHOWN_REPLIES => print!("    {body}"),
        // A Ctrl-C kills the VMs too: their requests fail for that reason alone.
        Err(e) if !interrupt::requested() => println!("    request {i} failed: {e}"),
        Ok(_) | Err(_) => {}
    }
    !interrupt::requested()
}

/// The section running now and when it began: each section ends with a line saying how long
/// it took (`-- Build the topology: 2.4 s`).
static SECTION: std::sync::Mutex<Option<(String, std::time::Instant)>> = std::sync::Mutex::new(None);

pub(super) fn section(title: &str) {
    end_section();
    if let Ok(mut s) = SECTION.lock() {
        *s = Some((title.to_owned(), std::time::Instant::now()));
    }
    println!("\n== {title} ==\n");
}

/// Prints the duration of the section that ran last, if any.
pub(super) fn end_section() {
    if let Some((title, began)) = SECTION.lock().ok().and_then(|mut s| s.take()) {
        println!("\n-- {title}: {:.1} s", began.elapsed().as_secs_f64());
    }
}

pub(super) fn command(line: &str) {
    println!("$ {line}");
}

pub(super) fn print_output(out: &str) {
    for line in out.lines() {
        println!("    {line}");
    }
}
