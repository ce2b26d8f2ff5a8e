//! The networking-sfc blog's "Service Function Chaining demo with devstack" as data: its
//! resources (PP1..PP3, PG1 = {PP1, PP2}, PG2 = {PP3}, `FC_demo`, PC1 = [PG1, PG2]) and its
//! update sequence, each state with the service functions that must then see the HTTP requests.
//! `cargo xtask demo` narrates these steps; `tests/update_sequence.rs` checks them.

use std::{collections::BTreeMap, fmt::Write as _};

use crate::{
    ChainFile, Counters,
    chain::{FlowClassifier, PortChain, PortPair, PortPairGroup},
    topology::{DEST_IP, End, SOURCE_IP, Topology},
};

/// The service functions: sf1 and sf2 form PG1, sf3 is PG2.
pub const SFS: [u8; 3] = [1, 2, 3];
/// The web server's port, `FC_demo`'s destination port.
pub const HTTP_PORT: u16 = 80;

/// One state of the chain and what it must do to the request loop.
#[derive(Debug, Clone)]
pub struct Step {
    pub title: &'static str,
    /// The networking-sfc command(s) the blog ran for this state, one per line.
    pub blog: &'static str,
    /// What changed in sfc's chain file, in words (empty for the first state).
    pub change: &'static str,
    pub chain: ChainFile,
    /// Service functions that must see the requests; the others must stay quiet.
    pub expect: &'static [u8],
}

/// The blog's resources: PP1..PP3, PG1 = {PP1, PP2}, PG2 = {PP3}, `FC_demo` (TCP from source to
/// dest port 80, arriving from source's port), PC1 = [PG1, PG2]. A port pair of an SF behind
/// taps (a VM) carries its MACs, as [`Topology::port_pair`]'s does.
pub fn demo_chain(topo: &Topology) -> ChainFile {
    let pp = |n: u8| PortPair {
        name: format!("PP{n}"),
        ..topo.port_pair(n)
    };
    ChainFile {
        port_pairs: SFS.iter().map(|&n| pp(n)).collect(),
        port_pair_groups: vec![
            PortPairGroup::new("PG1", &["PP1", "PP2"]),
            PortPairGroup::new("PG2", &["PP3"]),
        ],
        flow_classifiers: vec![FlowClassifier {
            source_ip_prefix: Some(format!("{SOURCE_IP}/32")),
            destination_ip_prefix: Some(format!("{DEST_IP}/32")),
            ..FlowClassifier::to_port("FC_demo", "tcp", HTTP_PORT, &topo.hub_dev(End::Source))
        }],
        port_chains: vec![PortChain::new("PC1", 1, &["PG1", "PG2"], &["FC_demo"])],
        interfaces: Vec::new(),
    }
}

/// The blog's sequence: the initial chain, then its four updates, each a changed copy of the
/// previous state.
pub fn steps(topo: &Topology) -> Vec<Step> {
    let initial = demo_chain(topo);

    let mut no_classifier = initial.clone();
    pc1(&mut no_classifier).flow_classifiers.clear();

    let mut pg1_alone = initial.clone();
    pc1(&mut pg1_alone).port_pair_groups = vec!["PG1".to_owned()];

    let mut pp2_alone_in_pg1 = pg1_alone.clone();
    group(&mut pp2_alone_in_pg1, "PG1").port_pairs = vec!["PP2".to_owned()];

    vec![
        Step {
            title: "Steer HTTP from source to dest through PG1 {sf1, sf2}, then PG2 {sf3}",
            blog: "neutron port-chain-create --port-pair-group PG1 --port-pair-group PG2 \
                   --flow-classifier FC_demo PC1",
            change: "",
            chain: initial.clone(),
            expect: &[1, 2, 3],
        },
        Step {
            title: "Remove the flow classifier from PC1",
            blog: "neutron port-chain-update --no-flow-classifier PC1",
            change: "PC1's flow_classifiers becomes empty: nothing enters the chain",
            chain: no_classifier,
            expect: &[],
        },
        Step {
            title: "Restore the classifier, but keep only PG1 in PC1",
            blog: "neutron port-chain-update --flow-classifier FC_demo --port-pair-group PG1 PC1",
            change: "PC1 gets FC_demo back and crosses PG1 only: sf3 (PG2) drops out",
            chain: pg1_alone,
            expect: &[1, 2],
        },
        Step {
            title: "Remove sf1 (PP1) from PG1",
            blog: "neutron port-pair-group-update PG1 --port-pair PP2",
            change: "PG1 = {PP2}: every flow goes to sf2",
            chain: pp2_alone_in_pg1,
            expect: &[2],
        },
        Step {
            title: "Restore the chain to its initial state",
            blog: "neutron port-pair-group-update PG1 --port-pair PP1 --port-pair PP2\n\
                   neutron port-chain-update --flow-classifier FC_demo --port-pair-group PG1 \
                   --port-pair-group PG2 PC1",
            change: "PG1 = {PP1, PP2} and PC1 = [PG1, PG2] again",
            chain: initial,
            expect: &[1, 2, 3],
        },
    ]
}

fn pc1(chain: &mut ChainFile) -> &mut PortChain {
    chain.chain_mut("PC1").expect("the demo chain has PC1")
}

fn group<'c>(chain: &'c mut ChainFile, name: &str) -> &'c mut PortPairGroup {
    chain.group_mut(name).expect("the demo chain has the group")
}

/// The groups (comma-separated) a chain file puts service function `sf` in; empty if none.
pub fn group_of(chain: &ChainFile, sf: u8) -> String {
    let pp = format!("PP{sf}");
    chain
        .port_pair_groups
        .iter()
        .filter(|g| g.port_pairs.contains(&pp))
        .map(|g| g.name.clone())
        .collect::<Vec<_>>()
        .join(",")
}

/// What one service function did during a request loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SfSeen {
    pub sf: u8,
    /// Packets its `in` interface received.
    pub in_rx: u64,
    /// Packets its `out` interface sent.
    pub out_tx: u64,
    /// Packets sfc counted into its port pair (every chain and hop).
    pub sfc: u64,
    /// Anything else on its interfaces (`in` tx, `out` rx): must be zero for this chain.
    pub other: u64,
}

impl Step {
    /// Per service function, its interface counter deltas and sfc's count for it, from the
    /// interface deltas and sfc's per-port-pair packets (`PPn`) before and after the loop.
    pub fn seen(
        delta: &Counters,
        sfc_before: &BTreeMap<String, u64>,
        sfc_after: &BTreeMap<String, u64>,
    ) -> Vec<SfSeen> {
        SFS.iter()
            .map(|&sf| {
                let pp = format!("PP{sf}");
                let count = |m: &BTreeMap<String, u64>| m.get(&pp).copied().unwrap_or(0);
                let (sf_in, sf_out) = (delta.get(End::SfIn(sf)), delta.get(End::SfOut(sf)));
                SfSeen {
                    sf,
                    in_rx: sf_in.rx_packets,
                    out_tx: sf_out.tx_packets,
                    sfc: count(sfc_after).saturating_sub(count(sfc_before)),
                    other: sf_in.tx_packets + sf_out.rx_packets,
                }
            })
            .collect()
    }

    /// The checks this step's expectation makes on what the service functions saw: the
    /// expected ones received and forwarded traffic, the others none, and sfc counted exactly
    /// what each received. One line per failed check, naming the step and the SF.
    pub fn check(&self, seen: &[SfSeen]) -> Vec<String> {
        let mut failures = Vec::new();
        for s in seen {
            let expected = self.expect.contains(&s.sf);
            let mut fail = |what: String| {
                failures.push(format!("{}: sf{}: {what}", self.title, s.sf));
            };
            if expected && s.in_rx == 0 {
                fail("expected traffic, saw none".to_owned());
            }
            if !expected && (s.in_rx != 0 || s.out_tx != 0) {
                fail(format!(
                    "expected no traffic, `in` received {} and `out` sent {}",
                    s.in_rx, s.out_tx
                ));
            }
            if s.out_tx != s.in_rx {
                fail(format!(
                    "`out` sent {} packets but `in` received {}",
                    s.out_tx, s.in_rx
                ));
            }
            if s.sfc != s.in_rx {
                fail(format!(
                    "sfc counted {} packets into PP{}, the interface received {}",
                    s.sfc, s.sf, s.in_rx
                ));
            }
            if s.other != 0 {
                fail(format!(
                    "{} packets went the wrong way (`in` tx + `out` rx)",
                    s.other
                ));
            }
        }
        failures
    }

    /// "sf1, sf2 and sf3", "sf2", or "no service function".
    pub fn expected_sfs(&self) -> String {
        let names: Vec<String> = self.expect.iter().map(|n| format!("sf{n}")).collect();
        match names.as_slice() {
            [] => "no service function".to_owned(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}

/// The blog commands of a step as shell lines: `$ neutron ...`.
pub fn blog_lines(step: &Step) -> String {
    let mut out = String::new();
    for line in step.blog.lines() {
        let _ = writeln!(out, "$ {}", line.trim());
    }
    out
}
