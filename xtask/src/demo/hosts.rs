//! `cargo xtask demo --hosts 3`: the blog's demo with its VMs spread over three hosts. Each host
//! is a hub namespace with its own bridge; the hubs are joined by an underlay (and by the
//! tenant network, a plain VXLAN like `OpenStack`'s `br-tun`, for what is not chain traffic); etcd
//! runs in a namespace of its own; every host runs `sfc run --etcd --node hN`, and each step of
//! the blog is one `sfc push`. Chain hops between hosts travel in sfc's overlay (VXLAN, VNI =
//! chain id and SI). The same checks as the one-host demo: each service function's own counters
//! against what sfc counted into it (summed over the hosts that sent to it).

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use sfc_tests::{
    TopologyConfig,
    blog::{self, HTTP_PORT, SFS, Step},
    chain::{ChainFile, ScratchDir, line_diff},
    counters::settled,
    hosts::{Hosts, vtep},
    interrupt,
    sfc::Stats,
    topology::{DEST_IP, End},
    traffic::{TcpServer, tcp_requests_with},
};

use super::{REQUESTS, REQUEST_PACE, command, print_output, section, sf_table};

/// Where the blog's VMs live: source and sf1 on h1, sf2 on h2, sf3 and dest on h3.
const PLACEMENT: [(End, usize); 5] =
    [(End::SfIn(2), 2), (End::SfOut(2), 2), (End::SfIn(3), 3), (End::SfOut(3), 3), (End::Dest, 3)];

pub fn walkthrough(sfc_bin: &Path, hosts: usize) -> Result<()> {
    if hosts != 3 {
        bail!("--hosts: the multi-host demo has 3 hosts (source and sf1 on h1, sf2 on h2, sf3 and dest on h3)");
    }
    println!("sfc demo: the networking-sfc devstack demo, its VMs spread over three hosts");
    println!("(blog: \"Service Function Chaining demo with devstack\"; sfc is {})", sfc_bin.display());
    let dir = ScratchDir::new("demo-hosts")?;

    section("Build three hosts");
    let topo = TopologyConfig::new(&SFS).build()?;
    let mut h = Hosts::build_with(topo, 3, &PLACEMENT, false, true, sfc_bin, dir.path())?;
    print_hosts(&h);
    interrupt::check()?;

    section("Start the agents");
    println!("etcd runs in namespace {} on 127.0.0.1:2379. On each host:", h.etcd.ns());
    for n in 1..=3 {
        command(&format!(
            "sfc --netns {} run --etcd http://127.0.0.1:2379 --node h{n} --vtep {} --drain-timeout 0",
            h.hub(n),
            vtep(n, false)
        ));
        h.start_agent_with(n, &["--drain-timeout", "0"])?;
    }
    println!("(each publishes its ports under a lease, watches the configuration and applies what concerns it)");

    let web = TcpServer::start(&h.topo().dest(), SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT))?;
    println!("\ndest (on h3) runs a small web server on port {HTTP_PORT} answering \"Welcome to dest-vm\".");
    let mut failures = Vec::new();
    let mut previous: Option<ChainFile> = None;
    for step in blog::steps(h.topo()) {
        interrupt::check()?;
        failures.extend(run_step(&h, dir.path(), previous.as_ref(), &step)?);
        previous = Some(step.chain);
    }

    section("Clean up");
    command("sfc status --etcd http://127.0.0.1:2379");
    print_output(&h.sfc(&["status", "--etcd", h.etcd.url()])?);
    drop(web);
    for a in &mut h.agents {
        a.kill()?;
    }
    for n in 1..=3 {
        command(&format!("sfc --netns {} down", h.hub(n)));
        print_output(&h.sfc_on(n, &["down"])?);
    }
    drop(h);
    println!("stopped etcd and the agents, removed the namespaces");
    if !failures.is_empty() {
        bail!("the chain did not behave as the blog's did:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

fn print_hosts(h: &Hosts) {
    let topo = h.topo();
    println!("Three compute nodes, each a hub namespace with a bridge (its br-int), joined by an underlay");
    println!("(198.18.255.0/24, MTU 1600) and a tenant network (VXLAN 100, like br-tun):\n");
    println!("  {:<5} {:<22} {:<14} VMs (bridge ports)", "host", "namespace", "VTEP");
    for n in 1..=3 {
        let mut vms: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in topo.ends().into_iter().filter(|e| h.host_of(*e) == n) {
            vms.entry(e.role()).or_default().push(topo.hub_dev(e));
        }
        let vms: Vec<String> = vms.iter().map(|(vm, ports)| format!("{vm} ({})", ports.join(", "))).collect();
        println!("  h{n:<4} {:<22} {:<14} {}", h.hub(n), vtep(n, false).to_string(), vms.join(", "));
    }
    println!("\nA hop to a VM on another host leaves in sfc's overlay device sfc-vxlan (VXLAN, external):");
    println!("VNI = chain id << 8 | SI, the frame addressed to the VM's MAC; the receiving host hands it to");
    println!("that VM's port. After the chain, traffic is the host's again (bridged, over the tenant network).");
}

/// One blog step over the hosts: push, wait until every host runs it, the request loop, and
/// the service functions' counters against sfc's.
fn run_step(h: &Hosts, dir: &Path, previous: Option<&ChainFile>, step: &Step) -> Result<Vec<String>> {
    section(step.title);
    println!("The blog:");
    print_output(&blog::blog_lines(step));
    let file = dir.join("chains.yaml");
    step.chain.write(&file)?;
    match previous {
        None => {
            println!("\nsfc's chain file {}:\n", file.display());
            for line in step.chain.to_yaml().lines() {
                println!("    {line}");
            }
        }
        Some(before) => {
            println!("\nIn sfc: {}. The edit to {}:\n", step.change, file.display());
            print_output(&line_diff(&before.to_yaml(), &step.chain.to_yaml(), 1));
        }
    }
    println!();
    let started = std::time::Instant::now();
    command(&format!("sfc push -f {} --etcd http://127.0.0.1:2379", file.display()));
    let rev = h.push(&file)?;
    h.wait_applied(rev, Duration::from_mins(1))?;
    println!("    pushed as revision {rev}; every host runs it {} ms later", started.elapsed().as_millis());
    interrupt::check()?;

    let stats = || -> Result<BTreeMap<String, u64>> {
        let mut sum = BTreeMap::new();
        for n in 1..=3 {
            let s = Stats::parse(&h.sfc_on(n, &["stats", "--json"])?)?;
            for (pp, p) in s.packets_by_port_pair() {
                *sum.entry(pp).or_insert(0) += p;
            }
        }
        Ok(sum)
    };
    let topo = h.topo();
    let before = (topo.counters()?, stats()?);
    println!("\nThe request loop, {REQUESTS} HTTP requests from source (h1) to dest (h3), one connection each");
    command(&format!("for i in $(seq {REQUESTS}); do ip netns exec {} curl -s http://{DEST_IP}/; done", topo.source()));
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
    let outcome = tcp_requests_with(&topo.source(), dest, REQUESTS, REQUEST_PACE, super::show_reply)?;
    println!("{}/{} requests answered", outcome.ok, outcome.attempted);
    if outcome.ok != REQUESTS {
        bail!("only {}/{REQUESTS} requests were answered: {}", outcome.ok, outcome.errors.join("; "));
    }
    let (after, sfc_after) = settled(Duration::from_secs(3), Duration::from_millis(150), || Ok((topo.counters()?, stats()?)))?;
    let seen = Step::seen(&after.since(&before.0), &before.1, &sfc_after);
    println!();
    command("sfc status --etcd http://127.0.0.1:2379");
    print_output(&h.sfc(&["status", "--etcd", h.etcd.url()]).context("sfc status --etcd")?);
    Ok(sf_table(step, &seen, super::Guests::Namespaces))
}
