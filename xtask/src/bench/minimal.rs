//! Path (f): the smallest tc steering there can be between the same routing service functions,
//! the limit any tc datapath on this topology approaches. One program per hub port, its target
//! compiled in: rewrite the Ethernet destination to the next endpoint's MAC and
//! `bpf_redirect_peer` to the next hop's veth. No parsing beyond the Ethernet header, no maps,
//! no counters, no classification (everything arriving on the port is steered).
//!
//! The program is 13 raw instructions (`sfc_tests::hopfloor::limit_program`, where the micro
//! benchmark times it too), loaded with `BPF_PROG_LOAD` and attached with a tcx link
//! (`BPF_LINK_CREATE`); the links live as long as their file descriptors (held by the path
//! until it is torn down). Hand-written rather than built from `sfc-ebpf`: a constant per
//! interface needs either a map (which the path must not have) or one object per interface.
//!
//! Path (g) (`install_floor`): the same ports steered by the floor of a datapath that keeps
//! flows (`sfc_tests::hopfloor`).

use std::os::fd::OwnedFd;

use anyhow::{Context as _, Result, bail};
use sfc_tests::{
    hopfloor::{HopFloor, limit_program},
    link, netns,
    rawbpf::{load_sched_cls, tcx_ingress_link},
};

use super::topo::{HOPS, Net, Port};

/// The hub's steered ports, each with the port its packets go to: source -> sf1 -> ... -> dest.
fn hops() -> Vec<(Port, Port)> {
    let mut hops = vec![(Port::Source, Port::SfIn(1))];
    for n in 1..HOPS {
        hops.push((Port::SfOut(n), Port::SfIn(n + 1)));
    }
    hops.push((Port::SfOut(HOPS), Port::Dest));
    hops
}

/// Steers source -> sf1 -> ... -> dest in `net`'s hub; returns the links (dropping them
/// detaches the programs).
pub fn install(net: &Net) -> Result<Vec<OwnedFd>> {
    netns::in_netns(&net.hub(), || -> Result<Vec<OwnedFd>> {
        let mut links = Vec::new();
        for (from, to) in hops() {
            let target = link::ifindex(&to.hub_dev())?;
            let prog = load_sched_cls(&limit_program(target, to.mac())).context("the minimal steering program")?;
            links.push(tcx_ingress_link(&prog, link::ifindex(&from.hub_dev())?)?);
            println!("(f) {} -> {} (ifindex {target}), 13 instructions", from.hub_dev(), to.hub_dev());
        }
        if links.is_empty() {
            bail!("no hops");
        }
        Ok(links)
    })?
}

/// Path (g): the same steering by the flow-keeping floor (`sfc_tests::hopfloor`): one program
/// on every steered port, each port's next hop in its array slot, each flow's in its flow
/// table. Returns the links (the program holds its maps; dropping the links detaches it).
pub fn install_floor(net: &Net) -> Result<Vec<OwnedFd>> {
    netns::in_netns(&net.hub(), || -> Result<Vec<OwnedFd>> {
        let floor = HopFloor::new()?;
        let mut links = Vec::new();
        for (from, to) in hops() {
            let (source, target) = (link::ifindex(&from.hub_dev())?, link::ifindex(&to.hub_dev())?);
            floor.steer(source, target, to.mac())?;
            links.push(tcx_ingress_link(floor.prog(), source)?);
            println!("(g) {} -> {} (ifindex {target}), {} instructions", from.hub_dev(), to.hub_dev(), floor.insns());
        }
        Ok(links)
    })?
}
