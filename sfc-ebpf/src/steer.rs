//! Steering: the per-packet decision, written once for every program type.
//!
//! On a logical source port a new flow is classified and pinned to one member per hop (and, for
//! a symmetric chain, its reverse is pinned to the same members in reverse order); on a service
//! function's port the flow's next hop is looked up; on a logical destination port the reverse
//! flow of a symmetric chain starts. Everything else passes untouched, as if sfc were not there.
//! Later IP fragments carry no ports: they follow the flow their first fragment was steered with.

use sfc_common::{
    DropReason,
    limits::{MAX_HOPS, PORT_PAIR_NONE},
    maps::{
        CHAIN_F_SYMMETRIC, ClsResult, DIR_FORWARD, DIR_REVERSE, FLOW_F_REVERSE, FlowEntry,
        FlowKey, FragKey, IF_F_PEER, PP_F_EGRESS_PEER, PP_F_INGRESS_PEER, ROLE_DEST,
        ROLE_SF_EGRESS, ROLE_SF_INGRESS, ROLE_SOURCE,
    },
};

use crate::{
    classify::classify,
    counters::{self, If},
    ctx::PacketCtx,
    lb::{Pick, pick},
    maps::{SFC_CHAINS, SFC_FLOWS, SFC_FRAGS, SFC_IFACES, SFC_PORT_PAIRS, SFC_SCRATCH, Scratch},
    parse::{FRAG_FIRST, FRAG_LATER, ParseError, Parsed, parse},
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
    let (roles, port_pair) = (iface.roles, iface.port_pair);
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
    if p.frag != 0 {
        frag_key(scratch, p.frag_id);
        if p.frag == FRAG_LATER {
            // Steer it as its first fragment was; unknown first fragment: not ours.
            match unsafe { SFC_FRAGS.get(&scratch.frag) } {
                Some(k) => scratch.key = *k,
                None => {
                    counters::iface(ifindex, If::Unclassified);
                    return Ok(Action::Pass);
                }
            }
        }
    }
    let Some((flow, from)) = lookup_flow(ifindex, roles, port_pair, &p, scratch)? else {
        counters::iface(ifindex, If::Unclassified);
        return Ok(Action::Pass);
    };
    if p.frag == FRAG_FIRST {
        // Later fragments of this packet will look this up. A full table only costs them steering.
        let _ = SFC_FRAGS.insert(&scratch.frag, &scratch.key, BPF_ANY);
    }
    forward(ctx, &p, flow, from)
}

#[inline(always)]
fn frag_key(s: &mut Scratch, id: u32) {
    s.frag.src = s.key.src;
    s.frag.dst = s.key.dst;
    s.frag.id = id;
    s.frag.proto = s.key.proto;
    s.frag.family = s.key.family;
}

/// The flow this packet belongs to and the hop to send it to next, creating the flow when a
/// classifier on this source port matches. `None`: not sfc's packet.
#[inline(always)]
fn lookup_flow(
    ifindex: u32,
    roles: u32,
    port_pair: u32,
    p: &Parsed,
    scratch: &mut Scratch,
) -> Result<Option<(&'static FlowEntry, usize)>, DropReason> {
    let key = &scratch.key;
    if roles & (ROLE_SF_EGRESS | ROLE_SF_INGRESS) != 0 {
        if let Some(flow) = unsafe { SFC_FLOWS.get(key) } {
            if let Some(hop) = hop_of(flow, port_pair) {
                counters::iface(ifindex, If::FromSf);
                return Ok(Some((flow, hop + 1)));
            }
        }
    }
    if roles & ROLE_DEST != 0 {
        // The reverse direction of a symmetric chain starts where the forward one is delivered.
        if let Some(flow) = unsafe { SFC_FLOWS.get(key) } {
            if flow.flags & FLOW_F_REVERSE != 0 {
                counters::iface(ifindex, If::Classified);
                return Ok(Some((flow, 0)));
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
        let symmetric = new_flow(res, &scratch.key, &mut scratch.flow)?;
        if symmetric {
            reverse_of(scratch, ifindex);
            SFC_FLOWS
                .insert(&scratch.rkey, &scratch.rflow, BPF_ANY)
                .map_err(|_| DropReason::FlowTableFull)?;
        }
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

/// Pins a newly classified flow to one member of every group of its chain. Returns whether the
/// chain is symmetric.
#[inline(always)]
fn new_flow(res: &ClsResult, key: &FlowKey, flow: &mut FlowEntry) -> Result<bool, DropReason> {
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
    Ok(chain.flags & CHAIN_F_SYMMETRIC != 0)
}

/// Fills `rkey`/`rflow`: the reply direction, through the same members in reverse order, then
/// back to the logical source port the flow was classified on.
#[inline(always)]
fn reverse_of(s: &mut Scratch, source_ifindex: u32) {
    s.rkey = FlowKey {
        src: s.key.dst,
        dst: s.key.src,
        sport: s.key.dport,
        dport: s.key.sport,
        proto: s.key.proto,
        family: s.key.family,
        _pad: [0; 2],
    };
    s.rflow = FlowEntry {
        chain_id: s.flow.chain_id,
        dst_ifindex: source_ifindex,
        n_hops: s.flow.n_hops,
        flags: FLOW_F_REVERSE,
        ..FlowEntry::default()
    };
    let n = usize::from(s.flow.n_hops);
    for h in 0..MAX_HOPS {
        if h >= n {
            break;
        }
        s.rflow.members[h] = s.flow.members[(n - 1 - h) & (MAX_HOPS - 1)];
    }
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
        let reverse = flow.flags & FLOW_F_REVERSE != 0;
        // Counters are kept by the group's position in the chain, in both directions.
        let (ifindex, mac, peer, dir, position) = if reverse {
            let pos = usize::from(flow.n_hops).wrapping_sub(1).wrapping_sub(next);
            (pp.egress_ifindex, pp.egress_mac, pp.flags & PP_F_EGRESS_PEER != 0, DIR_REVERSE, pos)
        } else {
            (pp.ingress_ifindex, pp.ingress_mac, pp.flags & PP_F_INGRESS_PEER != 0, DIR_FORWARD, next)
        };
        unsafe { (*p.eth).dst_addr = mac };
        counters::hop(flow.chain_id, position as u32, pp_id, dir, ctx.len());
        return Ok(Action::Redirect { ifindex, peer });
    }
    if flow.dst_ifindex == 0 {
        return Ok(Action::Pass);
    }
    let peer = unsafe { SFC_IFACES.get(&flow.dst_ifindex) }
        .is_some_and(|i| i.flags & IF_F_PEER != 0);
    Ok(Action::Redirect { ifindex: flow.dst_ifindex, peer })
}
