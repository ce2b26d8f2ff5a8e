//! Path (f): the smallest tc steering there can be between the same routing service functions,
//! the limit any tc datapath on this topology approaches. One program per hub port, its target
//! compiled in: rewrite the Ethernet destination to the next endpoint's MAC and
//! `bpf_redirect_peer` to the next hop's veth. No parsing beyond the Ethernet header, no maps,
//! no counters, no classification (everything arriving on the port is steered).
//!
//! The program is 13 instructions written here, loaded with `BPF_PROG_LOAD` and attached with
//! a tcx link (`BPF_LINK_CREATE`); the links live as long as their file descriptors (held by
//! the path until it is torn down). Hand-written rather than built from `sfc-ebpf`: a constant
//! per interface needs either a map (which the path must not have) or one object per interface.

use std::os::fd::OwnedFd;

use anyhow::{Context as _, Result, bail};
use sfc_tests::{
    hopfloor::HopFloor,
    link, netns,
    rawbpf::{BPF_FUNC_REDIRECT_PEER, SKB_DATA, SKB_DATA_END, insn, load_sched_cls, tcx_ingress_link},
};

use super::topo::{HOPS, Net, Port};

const TC_ACT_OK: i32 = 0;

/// The program: the frame's destination MAC := `mac`; `bpf_redirect_peer(ifindex)`. A frame
/// shorter than 6 bytes passes (the verifier insists on the bounds check).
pub fn program(ifindex: u32, mac: [u8; 6]) -> Vec<u64> {
    let mac_lo = i32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let mac_hi = i32::from(u16::from_le_bytes([mac[4], mac[5]]));
    vec![
        insn(0x61, 2, 1, SKB_DATA, 0),                // r2 = skb->data
        insn(0x61, 3, 1, SKB_DATA_END, 0),            // r3 = skb->data_end
        insn(0xbf, 4, 2, 0, 0),                       // r4 = r2
        insn(0x07, 4, 0, 0, 6),                       // r4 += 6
        insn(0x2d, 4, 3, 6, 0),                       // if r4 > r3 goto pass
        insn(0x62, 2, 0, 0, mac_lo),                  // *(u32 *)(r2 + 0) = mac[0..4]
        insn(0x6a, 2, 0, 4, mac_hi),                  // *(u16 *)(r2 + 4) = mac[4..6]
        insn(0xb7, 1, 0, 0, ifindex.cast_signed()),         // r1 = ifindex
        insn(0xb7, 2, 0, 0, 0),                       // r2 = 0
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_PEER),  // call bpf_redirect_peer
        insn(0x95, 0, 0, 0, 0),                       // exit
        insn(0xb7, 0, 0, 0, TC_ACT_OK),               // pass: r0 = TC_ACT_OK
        insn(0x95, 0, 0, 0, 0),                       // exit
    ]
}

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
            let prog = load_sched_cls(&program(target, to.mac())).context("the minimal steering program")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn imm(i: u64) -> u32 {
        (i >> 32) as u32
    }

    #[test]
    fn the_program_rewrites_the_mac_and_redirects() {
        let mac = [0x02, 0x5f, 0xc0, 0x01, 0x02, 0x03];
        let p = program(7, mac);
        // The bounds check jumps to the pass branch.
        let off = ((p[4] >> 16) & 0xffff) as usize;
        assert_eq!((p[4] & 0xff, p[4 + 1 + off] & 0xff, imm(p[4 + 1 + off])), (0x2d, 0xb7, 0));
        // The MAC as stored (little-endian words), the target, the helper.
        let mut stored = imm(p[5]).to_le_bytes().to_vec();
        stored.extend_from_slice(&imm(p[6]).to_le_bytes()[..2]);
        assert_eq!(stored, mac);
        assert_eq!((imm(p[7]), imm(p[9]), p[10] & 0xff), (7, 155, 0x95));
    }
}
