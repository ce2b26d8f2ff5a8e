//! Steering: the per-packet decision, written once for every program type.
//!
//! On a logical source port a new flow is classified and pinned to one member per hop (and, for
//! a symmetric chain, its reverse is pinned to the same members in reverse order); on a service
//! function's port the flow's next hop is looked up; on a logical destination port the reverse
//! flow of a symmetric chain starts. Everything else passes untouched, as if sfc were not there.
//! Later IP fragments carry no ports: they follow the flow their first fragment was steered with.
//! In the tc program a packet of a known flow in a plain frame takes the hit path (`fast`) to the
//! same decision, and `try_steer` is left the rest; both carry it out through `next::finish`.
//!
//! Updates (see `sfc_common::maps` "generations"): a flow picked under an older generation is
//! re-resolved at its entry port against the live bank, keeping every member that is still in
//! the same group; its old path is kept so that packets already inside the chain finish on the
//! path they started on. No packet ever follows half of an old and half of a new chain.
//!
//! Tenants: flows are keyed by the zone of the interface as well as the 5-tuple (`FlowKey::zone`),
//! so two tenants sending the same 5-tuple on separate networks have separate flows, members
//! and paths.
//!
//! The flow table is a cache, never the only record of where a packet must go. A packet back
//! from a service function whose entry is gone (evicted by LRU under a flood, the table resized
//! on reload) or belongs to another path is reclassified, as networking-sfc does at an SF's
//! egress: against the classifiers of the chains its port pair's group serves
//! (`GroupEntry::reclass`), whatever their logical source port. A match recomputes the path (the
//! member of each later hop by the same consistent hash a new flow gets), stores it again and
//! goes on from the hop after this port pair; no match means the packet is not chain traffic
//! (the SF's own, say) and is left alone. So a classified packet never skips a hop, and counts
//! as `recomputed` on the interface.
//!
//! Loop guard. A loop is one packet coming back into its flow's entry port after it left the
//! chain: an SF, the destination or the host routed it round. A TTL comparison cannot tell that
//! from a sender that lowers its TTL mid-flow (path changes upstream, NAT of several hosts,
//! traceroute run twice with the same ports), so the guard recognises the packet itself. Every
//! packet carries a fingerprint that routing does not change (`Parsed::fp`: IPv4 id, transport
//! length and transport bytes 4..16 without checksums; TCP sequence and acknowledgement, ICMP id
//! and sequence, the first UDP payload bytes). When a packet leaves the chain (delivered or
//! handed to the host) its fingerprint and TTL go into the flow entry (`exit_fp`, `exit_ttl`).
//! A packet arriving at the entry port with that fingerprint, a lower TTL than it left with
//! (something routed it round: an SF, the destination, the host) and within `LOOP_WINDOW_MS` of
//! leaving is the same packet come round: dropped and counted as `loop`.
//!
//! What it does not drop: a sender's TTL change (a different packet, a different fingerprint); a
//! sender repeating identical bytes (a retransmission, a constant heartbeat: not younger than the
//! copy that left, unless the sender also lowered its TTL); an identical packet with a lower TTL
//! more than `LOOP_WINDOW_MS` after its twin left (traceroute run twice with the same ports). A
//! packet that comes round with the same TTL is let through too: identical bytes at the same TTL
//! are what a sender repeating itself through bridge-like SFs looks like, and the guard must not
//! drop a packet that is not looping. What it can still catch wrongly: a byte-identical copy
//! (same IPv4 id, same transport bytes 4..16) that the sender sends with a TTL lower than the
//! previous copy left the chain with, within the window, before any other packet of the flow
//! left. What it misses: a loop in which nothing decrements the TTL (bridged at every step, the
//! source included: Ethernet's own loop protection is the answer there), and a looping packet
//! whose record a later packet of the flow overwrote before it came round (caught on a later
//! lap, or it ends when routing exhausts its TTL).

use sfc_common::{
    DropReason,
    limits::{MAX_HOPS, PROBE_PORT},
    maps::{
        FAMILY_V6, FLOW_F_REVERSE, FlowEntry, FlowKey, IF_F_DECAP, IF_F_LEARN, IF_F_TAP, IfaceEntry, MacEntry, Meta, ROLE_DEST,
        ROLE_SF_EGRESS, ROLE_SF_INGRESS, ROLE_SOURCE, banked_id,
    },
};

use crate::{
    counters::{self, If},
    ctx::PacketCtx,
    fast::Hop,
    flow,
    hops::{came_by_prev, hop_of},
    iface,
    maps::{SFC_FLOWS_V2, SFC_FRAGS_V2, SFC_IFACE_BUF, SFC_IFACES_V4, SFC_MACS, SFC_META, SFC_SCRATCH, Scratch},
    next::finish,
    parse::{FRAG_FIRST, FRAG_LATER, IPPROTO_UDP, ParseError, Parsed, parse},
    probe,
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
    /// The packet has copies to send to tap members or a header to get (an SFC-aware member):
    /// the tc entry point calls `taps::copy_to_taps` and `encap::push` only then (two calls
    /// fewer for every other packet; XDP's calls them for every packet, see there).
    pub tail: bool,
}

impl Action {
    pub const PASS: Action = Action { ifindex: 0, peer: false, tail: false };
    /// Taken out of the traffic, not dropped: a health probe back from a service function.
    pub const CONSUME: Action = Action { ifindex: u32::MAX, peer: false, tail: false };

    pub const fn is_pass(self) -> bool {
        self.ifindex == 0
    }

    pub const fn is_consume(self) -> bool {
        self.ifindex == u32::MAX
    }
}

const BPF_ANY: u64 = 0;

/// Where a packet goes next: the flow, the first hop to consider, and which of its two paths.
pub(crate) struct Path {
    /// Into the flow table (or the scratch copy of a flow over the new-flow cap), valid for the
    /// program run: the loop guard writes the exit record through it.
    pub flow: *mut FlowEntry,
    pub from: usize,
    /// Follow `prev_members` (the packet entered the chain before the flow was re-resolved).
    pub prev: bool,
    /// The interface counter the packet bumps once it is sent on.
    pub seen: If,
}

#[inline(always)]
pub fn try_steer<C: PacketCtx>(ctx: &C) -> Result<Action, DropReason> {
    let ifindex = ctx.ifindex();
    let meta = SFC_META.get(0).copied().unwrap_or_default();
    let scratch = SFC_SCRATCH.get_ptr_mut(0).ok_or(DropReason::NoScratch)?;
    // SAFETY: this CPU's element of a per-CPU array only this program touches.
    let scratch = unsafe { &mut *scratch };
    // Before anything can return: the trace and the header push read this packet's note only.
    scratch.note.ifindex = ifindex;
    scratch.note.verdict = 0;
    // A packet of a known flow: the hit path. What it learnt of any other is not learnt again.
    let ahead = match crate::fast::hop(ctx, ifindex, meta, scratch)? {
        Hop::Steered(a) => return Ok(a),
        Hop::Ahead(a) => a,
    };
    // An interface the live generation does not use may still have packets of the previous one
    // coming back from its SF: they finish their path under the previous generation's role.
    let Some((iface, bank)) = ingress::<C>(ifindex, meta)? else {
        return Ok(Action::PASS);
    };
    // A probe (`sfc trace --probe`) carries a made-up source MAC: nothing is learnt from it.
    if iface.flags & IF_F_LEARN != 0 && !ahead.learnt && !ctx.is_probe() {
        learn(ctx, ifindex);
    }
    // No copies unless this packet's decision asks for them (a dropped packet's record must
    // not reach the next packet).
    scratch.taps.ifindex = 0;
    if ahead.parsed.is_none() {
        // SAFETY: a field of the scratch (valid, aligned); a `FlowKey` is integers and byte arrays.
        unsafe { crate::mem::zero(&raw mut scratch.key) };
    }
    // Called for every packet (the flag is looked at inside): a call on one branch only would
    // leave the verifier two states to walk through everything after it.
    ctx.pop_header(iface.flags & IF_F_DECAP != 0, &mut scratch.decap)?;
    let parsed = match ahead.parsed {
        Some(p) => Ok(p),
        None => parse(ctx.data(), ctx.data_end(), &mut scratch.key),
    };
    let p = match parsed {
        Ok(p) => p,
        Err(ParseError::NotIp) => {
            count::<C>(iface.stats_slot, ifindex, If::Unclassified);
            return Ok(Action::PASS);
        }
        Err(ParseError::Malformed) => {
            count::<C>(iface.stats_slot, ifindex, If::Malformed);
            return Ok(Action::PASS);
        }
    };
    scratch.key.zone = iface.zone;
    if iface.flags & IF_F_TAP != 0 {
        // A passive function sends nothing into the chain (nor anywhere through sfc).
        return Err(DropReason::TapReturn);
    }
    if iface.roles & ROLE_SF_EGRESS != 0
        && scratch.key.proto == IPPROTO_UDP
        && scratch.key.dport == PROBE_PORT.to_be_bytes()
        && p.frag == 0
        && probe::returned(ctx.data(), ctx.data_end(), &p, iface.port_pair)
    {
        return Ok(Action::CONSUME);
    }
    if p.frag != 0 {
        frag_key(scratch, p.frag_id);
        if p.frag == FRAG_LATER {
            // Steer it as its first fragment was; unknown first fragment: not ours.
            // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
            if let Some(k) = unsafe { SFC_FRAGS_V2.get(&scratch.frag) } {
                // SAFETY: a scratch field and a map value of another map, both `FlowKey`s.
                unsafe { crate::mem::copy(&raw mut scratch.key, k) };
            } else {
                count::<C>(iface.stats_slot, ifindex, If::Unclassified);
                return Ok(Action::PASS);
            }
        }
    }
    let Some(mut path) = lookup_flow::<C>(ifindex, iface, bank, &p, scratch, meta, ahead.miss)? else {
        if scratch.decap.on != 0 {
            // A header for a flow sfc does not know: nothing to go on with.
            return Err(DropReason::EncapMismatch);
        }
        count::<C>(iface.stats_slot, ifindex, If::Unclassified);
        return Ok(Action::PASS);
    };
    // Unconditional, for the same reason as `pop_header`.
    let from = resteer(path.flow, path.from as u32, path.prev, matches!(path.seen, If::FromSf), &scratch.decap);
    if from >= RESTEER_ERR {
        return Err(DropReason::EncapMismatch);
    }
    path.from = from as usize & (MAX_HOPS * 2 - 1);
    if p.frag == FRAG_FIRST {
        // Later fragments of this packet will look this up. A full table only costs them steering.
        let _ = SFC_FRAGS_V2.insert(&scratch.frag, &scratch.key, BPF_ANY);
    }
    finish(ctx, ifindex, iface.port_pair, iface.stats_slot, &p, &path, scratch, meta)
}

/// The entry of the interface a packet arrived on (`PacketCtx::IFACE_SLOTS`) and the bank it
/// was found in. `None`: sfc's in neither bank.
#[inline(always)]
fn ingress<C: PacketCtx>(ifindex: u32, meta: Meta) -> Result<Option<(&'static IfaceEntry, u32)>, DropReason> {
    if C::IFACE_SLOTS {
        let buf = SFC_IFACE_BUF.get_ptr_mut(0).ok_or(DropReason::NoScratch)?;
        // SAFETY: `buf` is this CPU's element of a per-CPU array, valid for this run.
        let bank = unsafe { iface::find(ifindex, meta.bank, buf) };
        if bank == iface::NONE {
            return Ok(None);
        }
        // SAFETY: this CPU's element of a per-CPU array only this program touches, which
        // `iface::find` just filled; nothing writes it again during this run.
        return Ok(Some((unsafe { &*buf }, bank)));
    }
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
    Ok(match unsafe { SFC_IFACES_V4.get(&banked_id(meta.bank, ifindex)) } {
        Some(i) => Some((i, meta.bank)),
        // SAFETY: as above.
        None => unsafe { SFC_IFACES_V4.get(&banked_id(meta.bank ^ 1, ifindex)) }.map(|i| (i, meta.bank ^ 1)),
    })
}

/// Bumps the counter `what` of the interface the packet arrived on (`PacketCtx::SLOT_COUNTERS`).
#[inline(always)]
pub(crate) fn count<C: PacketCtx>(stats_slot: u16, ifindex: u32, what: If) {
    if C::SLOT_COUNTERS {
        counters::iface(u32::from(stats_slot), what);
    } else {
        counters::by_ifindex(ifindex, what);
    }
}

/// `resteer`'s answer when the header does not fit.
const RESTEER_ERR: u32 = 1 << 16;

/// The hop a packet goes on from: `from`, unless an SFC-aware member sent it back with SI
/// `d.si` (`d.on`): then the hop that SI names (255 - SI; one after the member when the
/// function lowered it by one, RFC 8300, later when it skips hops). The header must be the
/// flow's chain, back from a member (`from_sf`, forward), with an SI that is not 0, lower than
/// the one sent, and within the chain (the hop after the last: delivered); else `RESTEER_ERR`.
/// Inlined, as are the other calls of every packet's hop (`trace::sent` and `back`, the
/// counters, `overlay::send`): as BPF subprograms (each a call and a return through this CPU's
/// mitigation thunks) they cost a hop 4 ns (75-76 -> 71-72 ns per run in `one_hop_alone`), and
/// inlined the tc program verifies in 503k instructions instead of 663k.
#[inline(always)]
fn resteer(flow: *mut FlowEntry, from: u32, prev: bool, from_sf: bool, d: &crate::encap::Decap) -> u32 {
    if d.on == 0 {
        return from;
    }
    // SAFETY: a flow-table value or the scratch copy, valid for this program run.
    let f = unsafe { &*flow };
    let n = u32::from(if prev { f.prev_n_hops } else { f.n_hops });
    if !from_sf || d.spi != f.chain_id || d.si == 0 || d.si > 255 || f.flags & FLOW_F_REVERSE != 0 {
        return RESTEER_ERR;
    }
    let to = 255 - d.si;
    if to < from || to > n {
        return RESTEER_ERR;
    }
    to
}

/// Remembers the source MAC of a frame that arrived on `ifindex` (an `IF_F_LEARN` interface: a
/// tap, whose frames come from the VM behind it), when it is unicast and not the one already
/// known. The loader reads it at its next apply; `sfc run` polls while a member waits for it.
/// A subprogram of its own (not inlined): its few branches are verified once per program type
/// instead of multiplying the states of everything after it.
#[inline(never)]
pub(crate) fn learn<C: PacketCtx>(ctx: &C, ifindex: u32) {
    let Some(src) = ctx.src_mac() else { return };
    if src[0] & 1 != 0 || src == [0; 6] {
        return;
    }
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain bytes.
    if unsafe { SFC_MACS.get(&ifindex) }.is_some_and(|m| m.mac == src) {
        return;
    }
    // A full map (more learning interfaces than MAX_IFACES) only costs the learning.
    let _ = SFC_MACS.insert(&ifindex, &MacEntry { mac: src, _pad: [0; 2] }, BPF_ANY);
}

#[inline(always)]
fn frag_key(s: &mut Scratch, id: u32) {
    s.frag.src = s.key.src;
    s.frag.dst = s.key.dst;
    s.frag.id = id;
    s.frag.proto = if s.key.family == FAMILY_V6 { 0 } else { s.key.proto };
    s.frag.family = s.key.family;
    s.frag.zone = s.key.zone;
}

/// How soon after leaving the chain a packet must be back to count as looping: a loop brings it
/// round in microseconds (namespaces) to milliseconds (VMs); a traceroute run again does not.
const LOOP_WINDOW_MS: u16 = 100;

/// The loop guard (see the module comment): whether `p`, arriving at `flow`'s entry port, is the
/// packet that last left the chain on `flow`, come round.
#[inline(always)]
pub(crate) fn looped(flow: *const FlowEntry, p: &Parsed) -> bool {
    // SAFETY: `flow` points at a flow-table value (or the per-CPU scratch copy), plain integers;
    // another CPU writing it concurrently can only leave another valid value.
    let f = unsafe { &*flow };
    f.exit_ttl != 0
        && f.exit_fp == p.fp
        && p.ttl < f.exit_ttl
        && flow::now_ms16().wrapping_sub(f.exit_ms) < LOOP_WINDOW_MS
}

/// Records the packet leaving the chain on `flow`, for `looped`.
#[inline(always)]
pub(crate) fn record_exit(flow: *mut FlowEntry, p: &Parsed) {
    // SAFETY: as in `looped`.
    let f = unsafe { &mut *flow };
    f.exit_fp = p.fp;
    f.exit_ttl = p.ttl;
    f.exit_ms = flow::now_ms16();
}

/// The path of a packet of `flow` back from port pair `port_pair` (TTL `ttl`): on from the hop
/// after the port pair's, on the current path or (`came_by_prev`) the previous one. `None`: the
/// port pair is on neither.
#[inline(always)]
pub(crate) fn from_sf(flow: *mut FlowEntry, ttl: u8, port_pair: u32) -> Option<Path> {
    // SAFETY: a pointer from a flow-table lookup, valid for this program run (RCU); plain integers.
    let f = unsafe { &*flow };
    let cur = hop_of(&f.members, f.n_hops, port_pair);
    // No previous path (a flow never re-resolved, the common case): no second scan.
    let prev = if f.prev_n_hops == 0 { None } else { hop_of(&f.prev_members, f.prev_n_hops, port_pair) };
    match (cur, prev) {
        (Some(c), Some(q)) if came_by_prev(f, ttl, c, q) => Some(Path { flow, from: q + 1, prev: true, seen: If::FromSf }),
        (Some(c), _) => Some(Path { flow, from: c + 1, prev: false, seen: If::FromSf }),
        (None, Some(q)) => Some(Path { flow, from: q + 1, prev: true, seen: If::FromSf }),
        (None, None) => None,
    }
}

/// A reply at its symmetric chain's destination port, on `flow`, its reverse entry there: the
/// loop guard's, then the reverse path from its first hop. `None`: an entry of an older
/// generation (`lookup_flow` re-resolves it).
#[inline(always)]
pub(crate) fn reply(flow: *mut FlowEntry, p: &Parsed, meta: Meta) -> Result<Option<Path>, DropReason> {
    if looped(flow, p) {
        return Err(DropReason::Loop);
    }
    // SAFETY: a pointer from a flow-table lookup, valid for this program run (RCU); plain integers.
    if unsafe { (*flow).generation } != meta.generation {
        return Ok(None);
    }
    flow::touch(flow, p);
    Ok(Some(Path { flow, from: 0, prev: false, seen: If::Classified }))
}

/// A packet at its flow's entry port `ifindex`, on `flow` (of the live generation): the loop
/// guard's, then the path from the first hop. `None`: another port's flow, or one of no chain.
#[inline(always)]
pub(crate) fn entered(flow: *mut FlowEntry, ifindex: u32, p: &Parsed) -> Result<Option<Path>, DropReason> {
    // SAFETY: a pointer from a flow-table lookup (or the scratch copy), valid for this program run.
    let f = unsafe { &*flow };
    if f.chain_id == 0 || f.in_ifindex != ifindex {
        return Ok(None);
    }
    if looped(flow, p) {
        return Err(DropReason::Loop);
    }
    flow::touch(flow, p);
    Ok(Some(Path { flow, from: 0, prev: false, seen: If::Classified }))
}

/// The flow this packet belongs to and the hop to send it to next, creating (or re-resolving,
/// or recomputing) the flow when a classifier matches. `None`: not sfc's packet. `bank` is the
/// bank the interface's role was found in.
#[inline(always)]
fn lookup_flow<C: PacketCtx>(
    ifindex: u32,
    iface: &IfaceEntry,
    bank: u32,
    p: &Parsed,
    scratch: &mut Scratch,
    meta: Meta,
    miss: bool,
) -> Result<Option<Path>, DropReason> {
    let (roles, port_pair) = (iface.roles, iface.port_pair);
    let sf = roles & (ROLE_SF_EGRESS | ROLE_SF_INGRESS) != 0;
    // The key's entry; `miss`: the hit path looked and found none (nothing inserted since).
    let lookup = |key: &FlowKey| if miss { None } else { SFC_FLOWS_V2.get_ptr_mut(key) };
    if sf
        && let Some(flow) = lookup(&scratch.key)
        && let Some(path) = from_sf(flow, p.ttl, port_pair)
    {
        return Ok(Some(path));
    }
    if roles & ROLE_DEST != 0 {
        // The reverse direction of a symmetric chain starts where the forward one is delivered.
        let entry = lookup(&scratch.key)
            // SAFETY: a pointer from a flow-table lookup (or the scratch copy), valid for this program run.
            .filter(|f| unsafe { (**f).flags & FLOW_F_REVERSE != 0 && (**f).in_ifindex == ifindex });
        if let Some(flow) = entry
            && let Some(path) = reply(flow, p, meta)?
        {
            return Ok(Some(path));
        }
        // No reverse entry (evicted), or one of an older generation (a member may have gone
        // down or been removed): recompute both directions from the forward 5-tuple.
        if let Some(flow) = flow::resolve_reply(ifindex, iface.reply_class, p, scratch, meta, entry.is_some())? {
            if entry.is_none() {
                count::<C>(iface.stats_slot, ifindex, If::Recomputed);
            }
            flow::touch(flow, p);
            return Ok(Some(Path { flow, from: 0, prev: false, seen: If::Classified }));
        }
    }
    if sf {
        // Back from an SF and not on any path the table knows: recompute it.
        if let Some((flow, from)) = flow::recompute(roles, port_pair, bank, p, scratch, meta)? {
            count::<C>(iface.stats_slot, ifindex, If::Recomputed);
            return Ok(Some(Path { flow, from, prev: false, seen: If::FromSf }));
        }
    }
    if roles & ROLE_SOURCE == 0 {
        return Ok(None);
    }
    // A flow that entered on another port is not this port's: classify afresh (a match then
    // takes the 5-tuple over; no match leaves the packet alone).
    // SAFETY: a pointer from a flow-table lookup (or the scratch copy), valid for this program run.
    let old = lookup(&scratch.key).filter(|f| unsafe { (**f).in_ifindex } == ifindex);
    let flow = match old {
        // A known flow of the live generation: one lookup.
        // SAFETY: a pointer from a flow-table lookup (or the scratch copy), valid for this program run.
        Some(flow) if unsafe { (*flow).generation } == meta.generation => flow,
        // SAFETY: a pointer from a flow-table lookup (or the scratch copy), valid for this program run.
        _ => match flow::resolve(ifindex, p, scratch, meta, old.map(|f| unsafe { &*f }))? {
            Some(flow) => flow,
            None => return Ok(None),
        },
    };
    entered(flow, ifindex, p)
}
