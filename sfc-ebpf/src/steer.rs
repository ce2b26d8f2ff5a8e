//! Steering: the per-packet decision, written once for every program type.
//!
//! On a logical source port a new flow is classified and pinned to one member per hop (and, for
//! a symmetric chain, its reverse is pinned to the same members in reverse order); on a service
//! function's port the flow's next hop is looked up; on a logical destination port the reverse
//! flow of a symmetric chain starts. Everything else passes untouched, as if sfc were not there.
//! Later IP fragments carry no ports: they follow the flow their first fragment was steered with.
//!
//! Updates (see `sfc_common::maps` "generations"): a flow picked under an older generation is
//! re-resolved at its entry port against the live bank, keeping every member that is still in
//! the same group; its old path is kept so that packets already inside the chain finish on the
//! path they started on. No packet ever follows half of an old and half of a new chain.

use sfc_common::{
    DropReason,
    limits::{MAX_HOPS, PORT_PAIR_NONE},
    maps::{
        CHAIN_F_SYMMETRIC, ClsResult, DIR_FORWARD, DIR_REVERSE, FLOW_F_REVERSE, FlowEntry,
        FAMILY_V6, FlowKey, HopStatsKey, IF_F_MAC, IF_F_PEER, Meta, PP_F_EGRESS_PEER, PP_F_INGRESS_PEER, ROLE_DEST,
        ROLE_SF_EGRESS, ROLE_SF_INGRESS, ROLE_SOURCE, banked_id,
    },
};

use crate::{
    classify::classify,
    counters::{self, If},
    ctx::PacketCtx,
    lb::{PICK_OK, pick},
    maps::{
        SFC_CHAINS, SFC_FLOWS, SFC_FRAGS, SFC_IFACES_V2, SFC_META, SFC_SCRATCH, port_pair,
        Scratch,
    },
    parse::{FRAG_FIRST, FRAG_LATER, ParseError, Parsed, parse},
};

/// What to do with a packet that is not dropped: leave it to the host (bridge, routing)
/// unchanged, or send it to `ifindex` (`peer`: straight into the veth peer's ingress).
///
/// A struct, not an enum with a payload: every bit of it is defined on every path. An enum's
/// `Pass` leaves the payload's register undefined, LLVM then lets whatever it held flow into the
/// packing of the result, and when that is a packet pointer the verifier refuses the shift.
#[derive(Clone, Copy)]
pub struct Action {
    /// 0: pass to the host.
    pub ifindex: u32,
    pub peer: bool,
}

impl Action {
    pub const PASS: Action = Action { ifindex: 0, peer: false };

    pub const fn is_pass(self) -> bool {
        self.ifindex == 0
    }
}

const BPF_ANY: u64 = 0;

/// Where a packet goes next: the flow, the first hop to consider, and which of its two paths.
struct Path {
    flow: &'static FlowEntry,
    from: usize,
    /// Follow `prev_members` (the packet entered the chain before the flow was re-resolved).
    prev: bool,
    /// The interface counter the packet bumps once it is sent on.
    seen: If,
}

#[inline(always)]
pub fn try_steer<C: PacketCtx>(ctx: &C) -> Result<Action, DropReason> {
    let ifindex = ctx.ifindex();
    let meta = SFC_META.get(0).copied().unwrap_or_default();
    // An interface the live generation does not use may still have packets of the previous one
    // coming back from its SF: they finish their path under the previous generation's role.
    let iface = match unsafe { SFC_IFACES_V2.get(&banked_id(meta.bank, ifindex)) } {
        Some(i) => i,
        None => match unsafe { SFC_IFACES_V2.get(&banked_id(meta.bank ^ 1, ifindex)) } {
            Some(i) => i,
            None => return Ok(Action::PASS),
        },
    };
    let (roles, port_pair) = (iface.roles, iface.port_pair);
    let scratch = SFC_SCRATCH.get_ptr_mut(0).ok_or(DropReason::NoScratch)?;
    let scratch = unsafe { &mut *scratch };
    scratch.key = FlowKey::default();
    let p = match parse(ctx.data(), ctx.data_end(), &mut scratch.key) {
        Ok(p) => p,
        Err(ParseError::NotIp) => {
            counters::iface(ifindex, If::Unclassified);
            return Ok(Action::PASS);
        }
        Err(ParseError::Malformed) => {
            counters::iface(ifindex, If::Malformed);
            return Ok(Action::PASS);
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
                    return Ok(Action::PASS);
                }
            }
        }
    }
    let Some(path) = lookup_flow(ifindex, roles, port_pair, &p, scratch, meta)? else {
        counters::iface(ifindex, If::Unclassified);
        return Ok(Action::PASS);
    };
    if p.frag == FRAG_FIRST {
        // Later fragments of this packet will look this up. A full table only costs them steering.
        let _ = SFC_FRAGS.insert(&scratch.frag, &scratch.key, BPF_ANY);
    }
    let next = forward(&path, meta.bank)?;
    let action = redirect(ctx, &p, &scratch.key, next)?;
    // Counted once the packet is on its way: a packet dropped on the way is counted as a drop
    // only, so interface counters and drops add up to the packets seen.
    counters::iface(ifindex, path.seen);
    Ok(action)
}

#[inline(always)]
fn frag_key(s: &mut Scratch, id: u32) {
    s.frag.src = s.key.src;
    s.frag.dst = s.key.dst;
    s.frag.id = id;
    s.frag.proto = if s.key.family == FAMILY_V6 { 0 } else { s.key.proto };
    s.frag.family = s.key.family;
}

/// The flow this packet belongs to and the hop to send it to next, creating (or re-resolving)
/// the flow when a classifier on this source port matches. `None`: not sfc's packet.
#[inline(always)]
fn lookup_flow(
    ifindex: u32,
    roles: u32,
    port_pair: u32,
    p: &Parsed,
    scratch: &mut Scratch,
    meta: Meta,
) -> Result<Option<Path>, DropReason> {
    let key = &scratch.key;
    if roles & (ROLE_SF_EGRESS | ROLE_SF_INGRESS) != 0 {
        if let Some(flow) = unsafe { SFC_FLOWS.get(key) } {
            let cur = hop_of(&flow.members, flow.n_hops, port_pair);
            let prev = hop_of(&flow.prev_members, flow.prev_n_hops, port_pair);
            let path = match (cur, prev) {
                (Some(c), Some(q)) if came_by_prev(flow, p.ttl, c, q) => Some(Path { flow, from: q + 1, prev: true, seen: If::FromSf }),
                (Some(c), _) => Some(Path { flow, from: c + 1, prev: false, seen: If::FromSf }),
                (None, Some(q)) => Some(Path { flow, from: q + 1, prev: true, seen: If::FromSf }),
                (None, None) => None,
            };
            if path.is_some() {
                return Ok(path);
            }
        }
    }
    if roles & ROLE_DEST != 0 {
        // The reverse direction of a symmetric chain starts where the forward one is delivered.
        if let Some(flow) = unsafe { SFC_FLOWS.get(key) } {
            if flow.flags & FLOW_F_REVERSE != 0 && flow.in_ifindex == ifindex {
                return Ok(Some(Path { flow, from: 0, prev: false, seen: If::Classified }));
            }
        }
    }
    if roles & ROLE_SOURCE == 0 {
        return Ok(None);
    }
    // A flow that entered on another port is not this port's: classify afresh (a match then
    // takes the 5-tuple over; no match leaves the packet alone).
    let old = unsafe { SFC_FLOWS.get(key) }.filter(|f| f.in_ifindex == ifindex);
    if let Some(flow) = old {
        // Loop guard, for steered flows only (an unsteered one cannot loop through the chain).
        if flow.chain_id != 0 && flow.ttl != 0 && p.ttl < flow.ttl {
            return Err(DropReason::HopLimit);
        }
    }
    let flow = match old {
        // The hit path: one lookup.
        Some(flow) if flow.generation == meta.generation => flow,
        _ => {
            if !resolve(ifindex, p, scratch, meta, old)? {
                return Ok(None);
            }
            // A new or re-resolved flow is read back from the map: the path reference must
            // point into the map, not into the scratch copy.
            unsafe { SFC_FLOWS.get(&scratch.key) }.ok_or(DropReason::FlowTableFull)?
        }
    };
    if flow.chain_id == 0 || flow.in_ifindex != ifindex {
        return Ok(None);
    }
    Ok(Some(Path { flow, from: 0, prev: false, seen: If::Classified }))
}

/// Classifies a new flow, or re-resolves one picked under an older generation, and stores it.
/// Returns whether a flow entry now exists for the packet.
#[inline(always)]
fn resolve(
    ifindex: u32,
    p: &Parsed,
    scratch: &mut Scratch,
    meta: Meta,
    old: Option<&FlowEntry>,
) -> Result<bool, DropReason> {
    scratch.flow = FlowEntry::default();
    scratch.flow.generation = meta.generation;
    scratch.flow.ttl = p.ttl;
    scratch.flow.in_ifindex = ifindex;
    if let Some(old) = old {
        scratch.flow.prev_members = old.members;
        scratch.flow.prev_n_hops = old.n_hops;
        scratch.flow.prev_present = old.present;
        scratch.flow.dst_ifindex = old.dst_ifindex;
    }
    let res = classify(meta.bank, ifindex, p.ethertype, &scratch.key);
    let Some(res) = res else {
        if old.is_none() {
            return Ok(false);
        }
        // No classifier matches any more: remember that (chain 0), keeping the old path for
        // packets still inside it.
        SFC_FLOWS
            .insert(&scratch.key, &scratch.flow, BPF_ANY)
            .map_err(|_| DropReason::FlowTableFull)?;
        return Ok(true);
    };
    let symmetric = new_flow(res, scratch, meta.bank, old.is_some())?;
    if symmetric {
        reverse_of(scratch, ifindex);
        SFC_FLOWS
            .insert(&scratch.rkey, &scratch.rflow, BPF_ANY)
            .map_err(|_| DropReason::FlowTableFull)?;
    }
    SFC_FLOWS
        .insert(&scratch.key, &scratch.flow, BPF_ANY)
        .map_err(|_| DropReason::FlowTableFull)?;
    Ok(true)
}

/// Whether a packet coming back from the SF at hop `c` of the current path and hop `q` of the
/// previous one entered the chain before the flow was re-resolved. Packets carry no chain
/// metadata through SFC-unaware SFs, but routing SFs decrement the TTL: the packet has crossed
/// `flow.ttl - ttl` of them, which tells the two paths apart when their prefixes differ in length.
/// Otherwise the current path wins (with equal prefixes both lead to a whole path anyway).
#[inline(always)]
fn came_by_prev(flow: &FlowEntry, ttl: u8, c: usize, q: usize) -> bool {
    if flow.ttl == 0 || ttl > flow.ttl {
        return false;
    }
    let crossed = u32::from(flow.ttl - ttl);
    let upto = |h: usize| -> u16 { ((2u32 << (h & (MAX_HOPS - 1))) - 1) as u16 };
    let via_cur = (flow.present & upto(c)).count_ones();
    let via_prev = (flow.prev_present & upto(q)).count_ones();
    crossed == via_prev && crossed != via_cur
}

/// The hop of `members` at which the flow was sent into port pair `pp`.
///
/// Branch-free (a port pair is on a path at most once, validated): a scan that returns at the
/// first match would hand the verifier one path per position, and two such scans in a row,
/// then `forward`'s, multiply into more states than it accepts.
#[inline(always)]
fn hop_of(members: &[u16; MAX_HOPS], n_hops: u8, pp: u32) -> Option<usize> {
    let (mut found, mut pos) = (0u32, 0u32);
    for (h, m) in members.iter().enumerate() {
        let x = u32::from(*m) ^ pp; // 0 only on a match
        let hit = ((x | x.wrapping_neg()) >> 31) ^ 1;
        found |= hit;
        pos += hit * h as u32;
    }
    let pos = (pos as usize) & (MAX_HOPS - 1);
    (found != 0 && pos < usize::from(n_hops)).then_some(pos)
}

/// Bits `from..n` of a hop bitmap.
#[inline(always)]
fn hops_from(present: u16, from: usize, n: u8) -> u32 {
    let below_n = (1u32 << (u32::from(n) & 31)).wrapping_sub(1);
    let below_from = (1u32 << (from as u32 & 31)).wrapping_sub(1);
    u32::from(present) & below_n & !below_from
}

/// Pins a classified flow (`scratch.flow`, key `scratch.key`) to one member of every group of its
/// chain, keeping the members of its previous path (`prev_members`) where they still apply.
/// Returns whether the chain is symmetric.
#[inline(always)]
fn new_flow(res: &ClsResult, s: &mut Scratch, bank: u32, had_old: bool) -> Result<bool, DropReason> {
    let chain = unsafe { SFC_CHAINS.get(&banked_id(bank, res.chain_id)) }.ok_or(DropReason::NoChain)?;
    let flow = &mut s.flow;
    flow.chain_id = res.chain_id;
    flow.dst_ifindex = res.dst_ifindex;
    for h in 0..MAX_HOPS {
        if h as u32 >= chain.n_hops {
            break;
        }
        let old = if had_old { u32::from(flow.prev_members[h]) } else { u32::from(PORT_PAIR_NONE) };
        if pick(bank, chain.groups[h], &s.key, old, &mut flow.members[h]) != PICK_OK {
            return Err(DropReason::NoMember);
        }
        flow.n_hops = (h + 1) as u8;
    }
    flow.present = presence(&flow.members);
    Ok(chain.flags & CHAIN_F_SYMMETRIC != 0)
}

/// Bit h set when `members[h]` is a port pair. Branch-free: an accumulator that differs per
/// branch keeps the verifier from pruning.
#[inline(always)]
fn presence(members: &[u16; MAX_HOPS]) -> u16 {
    let mut bits = 0u32;
    for (h, m) in members.iter().enumerate() {
        let x = u32::from(*m ^ PORT_PAIR_NONE); // 0 only for NONE
        bits |= ((x | x.wrapping_neg()) >> 31) << h;
    }
    bits as u16
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
        in_ifindex: s.flow.dst_ifindex,
        n_hops: s.flow.n_hops,
        flags: FLOW_F_REVERSE,
        generation: s.flow.generation,
        ..FlowEntry::default()
    };
    let n = usize::from(s.flow.n_hops);
    for h in 0..MAX_HOPS {
        if h >= n {
            break;
        }
        s.rflow.members[h] = s.flow.members[(n - 1 - h) & (MAX_HOPS - 1)];
    }
    s.rflow.present = presence(&s.rflow.members);
}

/// Where `forward` sends a packet.
enum Next {
    /// Back to the host (the chain is done and has no logical destination port).
    Host,
    /// Into a service function: `mac` is its address, `hop` its counter.
    Member { ifindex: u32, peer: bool, mac: [u8; 6], hop: HopStatsKey },
    /// To the logical destination port, addressed to `mac` (whatever is behind it) unless that
    /// is unknown (all zero). No `Option`s here: see `Action` on undefined bits.
    Deliver { ifindex: u32, peer: bool, mac: [u8; 6] },
}

/// The first member at or after hop `path.from`, or where the packet goes after the last.
#[inline(always)]
fn forward(path: &Path, bank: u32) -> Result<Next, DropReason> {
    let flow = path.flow;
    let (members, n_hops, present) = if path.prev {
        (&flow.prev_members, flow.prev_n_hops, flow.prev_present)
    } else {
        (&flow.members, flow.n_hops, flow.present)
    };
    // The next hop with a member (fail-open groups leave holes): the lowest set bit from `from`
    // on, computed without a scan for the same reason as in `hop_of`.
    let bits = hops_from(present, path.from, n_hops);
    let next = if bits == 0 { MAX_HOPS } else { ((bits & bits.wrapping_neg()) - 1).count_ones() as usize };
    // LLVM knows `next` < 16 and would drop the bound check below; the verifier does not know
    // it (the count becomes a byte table lookup). A volatile read keeps the check (as the
    // kernel's barrier_var() does).
    let next = unsafe { core::ptr::read_volatile(&raw const next) };
    if next < MAX_HOPS {
        let pp_id = u32::from(members[next & (MAX_HOPS - 1)]);
        let pp = port_pair(pp_id).ok_or(DropReason::NoPortPair)?;
        let reverse = flow.flags & FLOW_F_REVERSE != 0;
        // Counters are kept by the group's position in the chain, in both directions.
        let (ifindex, mac, peer, dir, position) = if reverse {
            let pos = usize::from(n_hops).wrapping_sub(1).wrapping_sub(next);
            (pp.egress_ifindex, pp.egress_mac, pp.flags & PP_F_EGRESS_PEER != 0, DIR_REVERSE, pos)
        } else {
            (pp.ingress_ifindex, pp.ingress_mac, pp.flags & PP_F_INGRESS_PEER != 0, DIR_FORWARD, next)
        };
        let hop = HopStatsKey { chain_id: flow.chain_id, hop: position as u32, port_pair: pp_id, dir };
        return Ok(Next::Member { ifindex, peer, mac, hop });
    }
    if flow.dst_ifindex == 0 {
        return Ok(Next::Host);
    }
    let dst = unsafe { SFC_IFACES_V2.get(&banked_id(bank, flow.dst_ifindex)) };
    let peer = dst.is_some_and(|i| i.flags & IF_F_PEER != 0);
    let mac = dst.filter(|i| i.flags & IF_F_MAC != 0).map_or([0; 6], |i| i.peer_mac);
    Ok(Next::Deliver { ifindex: flow.dst_ifindex, peer, mac })
}

/// Carries out `forward`'s decision. One place for everything a redirect needs, so the
/// program-type specific step (`before_redirect`) is verified once, not once per branch.
#[inline(always)]
fn redirect<C: PacketCtx>(ctx: &C, p: &Parsed, key: &FlowKey, next: Next) -> Result<Action, DropReason> {
    let (ifindex, peer, mac, hop) = match next {
        Next::Host => return Ok(Action::PASS),
        Next::Member { ifindex, peer, mac, hop } => (ifindex, peer, mac, hop),
        Next::Deliver { ifindex, peer, mac } => (ifindex, peer, mac, HopStatsKey::default()),
    };
    ctx.before_redirect(p, key, ifindex)?;
    if mac != [0; 6] {
        // The Ethernet destination: the frame's first bytes (the parser read them).
        let dst = ctx.data();
        if dst + 6 > ctx.data_end() {
            return Err(DropReason::RewriteFailed);
        }
        unsafe { *(dst as *mut [u8; 6]) = mac };
    }
    // Chain 0 is no chain: a delivery, not a hop.
    if hop.chain_id != 0 {
        counters::hop(&hop, ctx.len());
    }
    Ok(Action { ifindex, peer })
}
