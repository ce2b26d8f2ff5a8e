//! Steering: the per-packet decision, written once for every program type.
//!
//! On a logical source port a new flow is classified and pinned to one member per hop; on a
//! service function's egress port the flow's next hop is looked up. Everything else passes
//! untouched, as if sfc were not there.

use sfc_common::{
    DropReason,
    limits::{MAX_HOPS, PORT_PAIR_NONE},
    maps::{
        ClsResult, FlowEntry, FlowKey, IF_F_PEER, PP_F_PEER, ROLE_SF_EGRESS, ROLE_SOURCE,
    },
};

use crate::{
    classify::classify,
    counters::{self, If},
    ctx::PacketCtx,
    lb::{Pick, pick},
    maps::{SFC_CHAINS, SFC_FLOWS, SFC_IFACES, SFC_PORT_PAIRS, SFC_SCRATCH, Scratch},
    parse::{ParseError, Parsed, parse},
};

/// What to do with a packet that is not dropped.
pub enum Action {
    /// Leave it to the host (bridge, routing) unchanged.
    Pass,
    /// Send it to `ifindex`; `peer`: straight into the veth peer's ingress.
    Redirect { ifindex: u32, peer: bool },
}

const BPF_ANY: u64 = 0;

#[inline(always)]
pub fn try_steer<C: PacketCtx>(ctx: &C) -> Result<Action, DropReason> {
    let ifindex = ctx.ifindex();
    let Some(iface) = (unsafe { SFC_IFACES.get(&ifindex) }) else {
        return Ok(Action::Pass);
    };
    let (roles, egress_pp) = (iface.roles, iface.port_pair);
    let scratch = SFC_SCRATCH.get_ptr_mut(0).ok_or(DropReason::NoScratch)?;
    let scratch = unsafe { &mut *scratch };
    scratch.key = FlowKey::default();
    let p = match parse(ctx.data(), ctx.data_end(), &mut scratch.key) {
        Ok(p) => p,
        Err(ParseError::NotIp) => {
            counters::iface(ifindex, If::Unclassified);
            return Ok(Action::Pass);
        }
        Err(ParseError::Malformed) => {
            counters::iface(ifindex, If::Malformed);
            return Ok(Action::Pass);
        }
    };

    let (flow, from) = match lookup_flow(ifindex, roles, egress_pp, &p, scratch)? {
        Some(found) => found,
        None => {
            counters::iface(ifindex, If::Unclassified);
            return Ok(Action::Pass);
        }
    };
    forward(ctx, &p, flow, from)
}

/// The flow this packet belongs to and the hop to send it to next, creating the flow when a
/// classifier on this source port matches. `None`: not sfc's packet.
#[inline(always)]
fn lookup_flow(
    ifindex: u32,
    roles: u32,
    egress_pp: u32,
    p: &Parsed,
    scratch: &mut Scratch,
) -> Result<Option<(&'static FlowEntry, usize)>, DropReason> {
    let key = &scratch.key;
    if roles & ROLE_SF_EGRESS != 0 {
        if let Some(flow) = unsafe { SFC_FLOWS.get(key) } {
            if let Some(hop) = hop_of(flow, egress_pp) {
                counters::iface(ifindex, If::FromSf);
                return Ok(Some((flow, hop + 1)));
            }
        }
    }
    if roles & ROLE_SOURCE == 0 {
        return Ok(None);
    }
    if unsafe { SFC_FLOWS.get(key) }.is_none() {
        let Some(res) = classify(ifindex, p.ethertype, key) else {
            return Ok(None);
        };
        scratch.flow = FlowEntry::default();
        new_flow(res, &scratch.key, &mut scratch.flow)?;
        SFC_FLOWS
            .insert(&scratch.key, &scratch.flow, BPF_ANY)
            .map_err(|_| DropReason::FlowTableFull)?;
    }
    // Read back from the map, so there is one path (and one stack frame) for new and known flows.
    let flow = unsafe { SFC_FLOWS.get(&scratch.key) }.ok_or(DropReason::FlowTableFull)?;
    counters::iface(ifindex, If::Classified);
    Ok(Some((flow, 0)))
}

/// The hop at which `flow` was sent into port pair `pp`.
#[inline(always)]
fn hop_of(flow: &FlowEntry, pp: u32) -> Option<usize> {
    for h in 0..MAX_HOPS {
        if h >= usize::from(flow.n_hops) {
            break;
        }
        if u32::from(flow.members[h]) == pp {
            return Some(h);
        }
    }
    None
}

/// Pins a newly classified flow to one member of every group of its chain.
#[inline(always)]
fn new_flow(res: &ClsResult, key: &FlowKey, flow: &mut FlowEntry) -> Result<(), DropReason> {
    let chain = unsafe { SFC_CHAINS.get(&res.chain_id) }.ok_or(DropReason::NoChain)?;
    flow.chain_id = res.chain_id;
    flow.dst_ifindex = res.dst_ifindex;
    for h in 0..MAX_HOPS {
        if h as u32 >= chain.n_hops {
            break;
        }
        flow.members[h] = match Pick::from(pick(chain.groups[h], key)) {
            Pick::Member(pp) => pp,
            Pick::Skip => PORT_PAIR_NONE,
            Pick::Down => return Err(DropReason::NoMember),
        };
        flow.n_hops = (h + 1) as u8;
    }
    Ok(())
}

/// Sends the packet into the first member at or after hop `from`, or delivers it after the last.
#[inline(always)]
fn forward<C: PacketCtx>(
    ctx: &C,
    p: &Parsed,
    flow: &FlowEntry,
    from: usize,
) -> Result<Action, DropReason> {
    // A pure scan (hops skipped by fail-open groups are NONE); the lookups stay out of the loop
    // so its unrolled copies do not each get stack slots.
    let mut next = MAX_HOPS;
    for h in 0..MAX_HOPS {
        if h >= usize::from(flow.n_hops) {
            break;
        }
        if h >= from && flow.members[h] != PORT_PAIR_NONE {
            next = h;
            break;
        }
    }
    if next < MAX_HOPS {
        let pp_id = u32::from(flow.members[next]);
        let pp = unsafe { SFC_PORT_PAIRS.get(&pp_id) }.ok_or(DropReason::NoPortPair)?;
        unsafe { (*p.eth).dst_addr = pp.ingress_mac };
        counters::hop(flow.chain_id, next as u32, pp_id, ctx.len());
        return Ok(Action::Redirect {
            ifindex: pp.ingress_ifindex,
            peer: pp.flags & PP_F_PEER != 0,
        });
    }
    if flow.dst_ifindex == 0 {
        return Ok(Action::Pass);
    }
    let peer = unsafe { SFC_IFACES.get(&flow.dst_ifindex) }
        .is_some_and(|i| i.flags & IF_F_PEER != 0);
    Ok(Action::Redirect { ifindex: flow.dst_ifindex, peer })
}
