//! The networking-sfc blog's update sequence (the steps `cargo xtask demo` narrates), checked
//! with real traffic after each `sfc apply`: remove the classifier (no SF sees the requests,
//! which still succeed), restore it with PG1 only (sf3 quiet), PG1 = {PP2} (sf1 quiet, sf2 gets
//! everything), then the initial chain again (all three). Updates use `--drain-timeout 0`: every
//! request is a new connection, and flows on a removed member move at once.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root.

use std::net::{IpAddr, SocketAddr};

use sfc_tests::{
    ChainFile, Sfc, TopologyConfig,
    blog::{self, HTTP_PORT, Step},
    scenario::{Fixture, Window},
    topology::{DEST_IP, End},
    traffic::{TcpServer, tcp_requests},
};

/// Requests per step: with two members in PG1, both get flows (all 20 on one member has
/// probability 2^-19).
const REQUESTS: usize = 20;

/// Service functions of the first and of the last group PC1 crosses in `chain`.
fn first_and_last_sfs(chain: &ChainFile) -> (Vec<u8>, Vec<u8>) {
    let pc1 = chain.port_chains.iter().find(|c| c.name == "PC1").unwrap();
    let sfs = |group: &String| -> Vec<u8> {
        let g = chain
            .port_pair_groups
            .iter()
            .find(|g| &g.name == group)
            .unwrap();
        g.port_pairs
            .iter()
            .map(|pp| pp.trim_start_matches("PP").parse().unwrap())
            .collect()
    };
    (
        sfs(pc1.port_pair_groups.first().unwrap()),
        sfs(pc1.port_pair_groups.last().unwrap()),
    )
}

/// The step's own checks (expected SFs saw traffic, the others none, sfc agrees with every
/// SF), then end to end: every request packet entered the chain's first group (or, with no
/// classifier, went straight to dest) and dest received what the last group forwarded.
fn assert_step(step: &Step, w: &Window<'_>) {
    let seen = Step::seen(
        &w.delta,
        &w.before.packets_by_port_pair(),
        &w.after.packets_by_port_pair(),
    );
    let failures = step.check(&seen);
    assert!(
        failures.is_empty(),
        "{}:\n  {}\nper SF: {seen:?}\n{}",
        step.title,
        failures.join("\n  "),
        w.report()
    );
    w.assert_no_drops();
    let (src_tx, dst_rx) = (w.link(End::Source).tx_packets, w.link(End::Dest).rx_packets);
    if step.expect.is_empty() {
        w.assert_sfs_quiet();
        assert_eq!(
            src_tx,
            dst_rx,
            "straight from source to dest: {}",
            w.report()
        );
        return;
    }
    let (first, last) = first_and_last_sfs(&step.chain);
    let into_first: u64 = first.iter().map(|&n| w.link(End::SfIn(n)).rx_packets).sum();
    let out_of_last: u64 = last.iter().map(|&n| w.link(End::SfOut(n)).tx_packets).sum();
    assert_eq!(
        src_tx,
        into_first,
        "{}: source tx vs the first group's (sf{first:?}) in rx: {}",
        step.title,
        w.report()
    );
    assert_eq!(
        dst_rx,
        out_of_last,
        "{}: dest rx vs the last group's (sf{last:?}) out tx: {}",
        step.title,
        w.report()
    );
}

#[test]
fn blog_update_sequence_moves_traffic_as_the_blog_shows() {
    let fx = Fixture::new(TopologyConfig::new(&blog::SFS));
    let sfc = Sfc::for_topology(&fx.topo);
    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), HTTP_PORT);
    let web = TcpServer::start(&fx.topo.dest(), dest).unwrap();
    let steps = blog::steps(&fx.topo);
    assert_eq!(
        steps.len(),
        5,
        "the initial chain and the blog's four updates"
    );

    let mut served = 0;
    for (i, step) in steps.iter().enumerate() {
        let file = fx.write(&format!("step{i}.yaml"), &step.chain);
        if i == 0 {
            sfc.apply(&file);
        } else {
            sfc.apply_now(&file);
        }
        let (out, w) = fx.window(&sfc, step.title, || {
            tcp_requests(&fx.topo.source(), dest, REQUESTS).unwrap()
        });
        assert_eq!(out.ok, REQUESTS, "{}: {out:?}: {}", step.title, w.report());
        served += REQUESTS;
        assert_eq!(web.served(), served, "{}: {}", step.title, w.report());
        assert_step(step, &w);
    }
}
