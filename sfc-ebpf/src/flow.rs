//! The flow table as a cache: making entries (a new flow at its source port, a path recomputed
//! at a service function or for a reply at a destination port), the new-flow rate cap, and the
//! timestamps and close marks the loader's aging reads. `steer` follows the paths made here.

use aya_ebpf::helpers::generated::bpf_ktime_get_coarse_ns;
use sfc_common::{
    DropReason,
    limits::{MAX_HOPS, PORT_PAIR_NONE},
    maps::{
        CHAIN_F_SYMMETRIC, CHAIN_TAPS_SHIFT, ClsResult, FLOW_F_CLOSING, FLOW_F_TAPS, FLOW_F_REVERSE, FLOW_STAT_CAPPED, FLOW_STAT_CREATED, FlowEntry,
        FlowKey, Meta, ROLE_SF_EGRESS, ROLE_SF_INGRESS, banked_id,
    },
};

use crate::{
    classify::classify,
    lb::{PICK_OK, pick},
    maps::{SFC_CHAINS, SFC_FLOW_STATS, SFC_FLOWS_V2, SFC_GROUPS_V2, SFC_LIMITS, SFC_RATE, Scratch, port_pair},
    parse::Parsed,
};

const BPF_ANY: u64 = 0;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// A flow entry to follow: one in the table, or (for a new flow over the rate cap) the scratch
/// copy, used for this packet only.
pub type Entry = *mut FlowEntry;

/// `CLOCK_MONOTONIC_COARSE` in seconds (`FlowEntry::last_seen`; the loader reads the same clock).
#[inline(always)]
fn now_s() -> u32 {
    // SAFETY: a helper without arguments.
    (unsafe { bpf_ktime_get_coarse_ns() } / 1_000_000_000) as u32
}

/// `CLOCK_MONOTONIC_COARSE` in milliseconds, modulo 2^16 (`FlowEntry::exit_ms`).
#[inline(always)]
pub fn now_ms16() -> u16 {
    // SAFETY: a helper without arguments.
    (unsafe { bpf_ktime_get_coarse_ns() } / 1_000_000) as u16
}

#[inline(always)]
fn stat(slot: u32) {
    if let Some(c) = SFC_FLOW_STATS.get_ptr_mut(slot) {
        // SAFETY: a valid pointer to this CPU's slot of a per-CPU array (no other writer).
        unsafe { *c += 1 };
    }
}

/// Whether a new flow may have an entry: this CPU has created fewer than the cap in the
/// current second. Over it the flow is still steered, statelessly, and counted as capped.
#[inline(always)]
fn admit() -> bool {
    let limit = SFC_LIMITS.get(0).map_or(0, |l| l.new_flows_per_sec);
    let Some(w) = SFC_RATE.get_ptr_mut(0) else { return true };
    // SAFETY: this CPU's element of a per-CPU array, which only this program touches.
    let w = unsafe { &mut *w };
    let second = u64::from(now_s());
    if w.second != second {
        w.second = second;
        w.count = 0;
    }
    if limit != 0 && w.count >= limit {
        stat(FLOW_STAT_CAPPED);
        return false;
    }
    w.count += 1;
    true
}

/// A packet of `flow` at its entry port: keeps `last_seen` (written once a second at most, so a
/// busy flow does not dirty its entry per packet) and the close mark.
#[inline(always)]
pub fn touch(flow: Entry, p: &Parsed) {
    // SAFETY: `flow` points at a flow-table value (or the per-CPU scratch copy); the fields are
    // plain integers, and a concurrent writer on another CPU can only leave another valid value.
    let f = unsafe { &mut *flow };
    let now = now_s();
    if p.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        f.flags |= FLOW_F_CLOSING;
        f.last_seen = now;
    } else if p.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN && f.flags & FLOW_F_CLOSING != 0 {
        // A new connection on the same 5-tuple.
        f.flags &= !FLOW_F_CLOSING;
        f.last_seen = now;
    } else if f.last_seen != now {
        f.last_seen = now;
    }
}

/// `store` options: keep the members of `prev_members` where they still apply.
const KEEP_OLD: u32 = 1 << 31;
/// `store` options: compute the path but store nothing (over the new-flow cap).
const DRY: u32 = 1 << 30;
/// `store` options: bits 16..28 a group, 0..16 a port pair: that group's hop keeps that port
/// pair (the SF a recomputed packet came back from).
const FORCE: u32 = 1 << 29;
/// `store` results at or above this are errors (`STORE_ERR | DropReason`).
const STORE_ERR: u32 = 0x100;

#[inline(always)]
fn store_err(r: u32) -> DropReason {
    match r & 0xff {
        x if x == DropReason::NoChain as u32 => DropReason::NoChain,
        x if x == DropReason::NoMember as u32 => DropReason::NoMember,
        _ => DropReason::FlowTableFull,
    }
}

/// The flow a packet at its source port (`ifindex`) starts, or the re-resolution of `old` (an
/// entry of an older generation). `None`: no classifier matches a new flow.
#[inline(always)]
pub fn resolve(ifindex: u32, p: &Parsed, s: &mut Scratch, meta: Meta, old: Option<&FlowEntry>) -> Result<Option<Entry>, DropReason> {
    blank(&mut s.flow);
    s.flow.generation = meta.generation;
    s.flow.ttl = p.ttl;
    s.flow.in_ifindex = ifindex;
    if let Some(old) = old {
        // SAFETY: the scratch's entry and a flow-table value: both valid `[u16; MAX_HOPS]`s, and
        // not the same memory.
        unsafe { crate::mem::copy(&raw mut s.flow.prev_members, &raw const old.members) };
        s.flow.prev_n_hops = old.n_hops;
        s.flow.prev_present = old.present;
        s.flow.dst_ifindex = old.dst_ifindex;
        s.flow.exit_fp = old.exit_fp;
        s.flow.exit_ttl = old.exit_ttl;
        s.flow.exit_ms = old.exit_ms;
        s.flow.flags = old.flags & FLOW_F_CLOSING;
    }
    let Some(res) = classify(meta.bank, ifindex, p.ethertype, &s.key) else {
        if old.is_none() {
            return Ok(None);
        }
        // No classifier matches any more: remember that (chain 0), keeping the old path for
        // packets still inside it.
        s.flow.last_seen = now_s();
        SFC_FLOWS_V2.insert(&s.key, &s.flow, BPF_ANY).map_err(|_| DropReason::FlowTableFull)?;
        return Ok(SFC_FLOWS_V2.get_ptr_mut(&s.key));
    };
    let dry = old.is_none() && !admit();
    let opts = if old.is_some() { KEEP_OLD } else if dry { DRY } else { 0 };
    let r = store(res, s, meta.bank, opts);
    if r >= STORE_ERR {
        return Err(store_err(r));
    }
    entry(dry, &raw mut s.flow, &s.key, old.is_none()).map(Some)
}

/// The entry a path follows once `store` ran: the scratch copy `copy` when nothing was stored
/// (`dry`: over the new-flow cap), else the table's (where the loop guard's exit record is kept),
/// counted as created when it is a new flow's.
#[inline(always)]
fn entry(dry: bool, copy: Entry, key: &FlowKey, created: bool) -> Result<Entry, DropReason> {
    if dry {
        return Ok(copy);
    }
    if created {
        stat(FLOW_STAT_CREATED);
    }
    SFC_FLOWS_V2.get_ptr_mut(key).ok_or(DropReason::FlowTableFull)
}

/// A packet back from port pair `pp_id` (interface roles `roles`) that no flow entry places:
/// reclassify it against the classifiers of the chains its group serves, recompute (and store)
/// its path, and return it with the hop to go on from. Forward traffic comes back on an SF's
/// egress; a reply of a symmetric chain on its ingress, classified by its forward (swapped)
/// 5-tuple. `None`: the packet matches none of those classifiers, so it is not chain traffic.
#[inline(always)]
pub fn recompute(roles: u32, pp_id: u32, bank: u32, p: &Parsed, s: &mut Scratch, meta: Meta) -> Result<Option<(Entry, usize)>, DropReason> {
    let Some(pp) = port_pair(pp_id) else { return Ok(None) };
    // A draining member's group may be gone from the live bank (the group was removed): the
    // previous generation's bank still has it, with its chains and classifiers.
    // SAFETY: map lookups return references into map values that stay valid for this program run
    // (RCU); the values are plain integers (also below).
    let (group, bank) = match unsafe { SFC_GROUPS_V2.get(&banked_id(bank, pp.group)) } {
        Some(g) => (g, bank),
        None => match unsafe { SFC_GROUPS_V2.get(&banked_id(bank ^ 1, pp.group)) } {
            Some(g) => (g, bank ^ 1),
            None => return Ok(None),
        },
    };
    if group.reclass == 0 {
        return Ok(None);
    }
    let class = group.reclass;
    // A path stored from the previous bank gets generation 0, so its entry port re-resolves it.
    let generation = if bank == meta.bank { meta.generation } else { 0 };
    let force = FORCE | ((pp.group & 0xfff) << 16) | (pp_id & 0xffff);
    if roles & ROLE_SF_EGRESS != 0
        && let Some(res) = classify(bank, class, p.ethertype, &s.key) {
            init_recomputed(s, res, generation);
            let dry = !admit();
            let h = store(res, s, bank, force | if dry { DRY } else { 0 });
            if h >= STORE_ERR {
                return Err(store_err(h));
            }
            let flow = entry(dry, &raw mut s.flow, &s.key, true)?;
            return Ok(Some((flow, (h as usize & (MAX_HOPS - 1)) + 1)));
        }
    if roles & ROLE_SF_INGRESS != 0 {
        let packet = s.key;
        s.key = swapped(&packet);
        let res = classify(bank, class, p.ethertype, &s.key);
        let symmetric = res.is_some_and(|r| {
            // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
            unsafe { SFC_CHAINS.get(&banked_id(bank, r.chain_id)) }.is_some_and(|c| c.flags & CHAIN_F_SYMMETRIC != 0)
        });
        let Some(res) = res.filter(|_| symmetric) else {
            s.key = packet;
            return Ok(None);
        };
        init_recomputed(s, res, generation);
        let dry = !admit();
        let h = store(res, s, bank, force | if dry { DRY } else { 0 });
        s.key = packet;
        if h >= STORE_ERR {
            return Err(store_err(h));
        }
        let flow = entry(dry, &raw mut s.rflow, &s.key, true)?;
        // The reply's path runs through the same members backwards: this port pair, at forward
        // hop h, is at reverse hop n - 1 - h.
        // SAFETY: `flow` is a flow-table value or the scratch copy, both valid here.
        let n = usize::from(unsafe { (*flow).n_hops });
        return Ok(Some((flow, n.wrapping_sub(h as usize) & (MAX_HOPS * 2 - 1))));
    }
    Ok(None)
}

/// A reply arriving at logical destination port `ifindex` with no current reverse entry:
/// classified by its forward (swapped) 5-tuple against the symmetric classifiers delivering to
/// this port (`class`); both directions are stored again, keeping the forward flow's members
/// where they still apply, and the reply starts its reverse path. `None`: no such classifier
/// matches.
#[inline(always)]
pub fn resolve_reply(ifindex: u32, class: u32, p: &Parsed, s: &mut Scratch, meta: Meta, had_entry: bool) -> Result<Option<Entry>, DropReason> {
    if class == 0 {
        return Ok(None);
    }
    let packet = s.key;
    s.key = swapped(&packet);
    let Some(res) = classify(meta.bank, class, p.ethertype, &s.key) else {
        s.key = packet;
        return Ok(None);
    };
    init_recomputed(s, res, meta.generation);
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
    let old = unsafe { SFC_FLOWS_V2.get(&s.key) }.filter(|f| f.in_ifindex == res.src_ifindex && f.flags & FLOW_F_REVERSE == 0);
    if let Some(old) = old {
        // SAFETY: the scratch's entry and a flow-table value: both valid `[u16; MAX_HOPS]`s, and
        // not the same memory.
        unsafe { crate::mem::copy(&raw mut s.flow.prev_members, &raw const old.members) };
        s.flow.prev_n_hops = old.n_hops;
        s.flow.prev_present = old.present;
        s.flow.ttl = old.ttl;
    }
    let new = old.is_none() && !had_entry;
    let dry = new && !admit();
    let opts = if old.is_some() { KEEP_OLD } else if dry { DRY } else { 0 };
    let r = store(res, s, meta.bank, opts);
    s.key = packet;
    if r >= STORE_ERR {
        return Err(store_err(r));
    }
    let flow = entry(dry, &raw mut s.rflow, &s.key, new)?;
    // SAFETY: a pointer `entry` just returned, to a valid value.
    if unsafe { (*flow).in_ifindex } != ifindex {
        return Err(DropReason::FlowTableFull);
    }
    Ok(Some(flow))
}

/// `*p = FlowEntry::default()` in word stores (an assignment would be a call to `memset`, see
/// `mem`): zeros, and no member at any hop.
#[inline(always)]
fn blank(p: &mut FlowEntry) {
    // SAFETY: `p` is a valid entry; zeros are a valid one (integers and their arrays), and its
    // member arrays are its own fields.
    unsafe {
        crate::mem::zero(&raw mut *p);
        crate::mem::fill(&raw mut p.members, PORT_PAIR_NONE);
        crate::mem::fill(&raw mut p.prev_members, PORT_PAIR_NONE);
    }
}

/// `scratch.flow` for a path recomputed from classifier result `res`: it entered on the
/// classifier's logical source port; its entry TTL is unknown.
#[inline(always)]
fn init_recomputed(s: &mut Scratch, res: &ClsResult, generation: u32) {
    blank(&mut s.flow);
    s.flow.generation = generation;
    s.flow.in_ifindex = res.src_ifindex;
}

#[inline(always)]
pub fn swapped(k: &FlowKey) -> FlowKey {
    FlowKey { src: k.dst, dst: k.src, sport: k.dport, dport: k.sport, proto: k.proto, family: k.family, _pad: [0; 2], zone: k.zone }
}

/// Pins `s.flow` (key `s.key`) to the members of chain `res.chain_id` and stores it, with its
/// reverse (`s.rkey`, `s.rflow`) when the chain is symmetric. `opts`: `KEEP_OLD`, `DRY`, `FORCE`
/// (with its group and port pair).
///
/// A BPF subprogram: the source port and the recomputations call it, and inlined at each the
/// per-hop loop would multiply the verifier's work. Returns the hop of the forced group
/// (`MAX_HOPS` when none), or `STORE_ERR | reason`.
#[inline(never)]
fn store(res: &ClsResult, s: &mut Scratch, bank: u32, opts: u32) -> u32 {
    // SAFETY: a map lookup's reference, valid for this program run (RCU); plain integers.
    let Some(chain) = (unsafe { SFC_CHAINS.get(&banked_id(bank, res.chain_id)) }) else {
        return STORE_ERR | DropReason::NoChain as u32;
    };
    let flow = &mut s.flow;
    flow.chain_id = res.chain_id;
    flow.dst_ifindex = res.dst_ifindex;
    flow.last_seen = now_s();
    let forcing = opts & FORCE != 0;
    let (force_group, force_pp) = ((opts >> 16) & 0xfff, opts & 0xffff);
    let mut forced = MAX_HOPS as u32;
    for h in 0..MAX_HOPS {
        if h as u32 >= chain.n_hops {
            break;
        }
        let group = chain.groups[h];
        let old = if forcing && group == force_group {
            forced = h as u32;
            force_pp
        } else if opts & KEEP_OLD != 0 {
            u32::from(flow.prev_members[h])
        } else {
            u32::from(PORT_PAIR_NONE)
        };
        if pick(bank, group, &s.key, old, &mut flow.members[h]) != PICK_OK {
            return STORE_ERR | DropReason::NoMember as u32;
        }
        flow.n_hops = (h + 1) as u8;
    }
    if forcing && forced >= MAX_HOPS as u32 {
        // The classifier led to a chain without this group (cannot happen: the reclassification
        // class holds only the classifiers of the group's chains).
        return STORE_ERR | DropReason::NoChain as u32;
    }
    // A tap group's member is on the path (it gets copies) but never crossed.
    let taps = (chain.flags >> CHAIN_TAPS_SHIFT) as u16;
    flow.present = presence(&flow.members) & !taps;
    if taps != 0 {
        flow.flags |= FLOW_F_TAPS;
    }
    if chain.flags & CHAIN_F_SYMMETRIC != 0 {
        reverse_of(s, taps);
        if opts & DRY == 0 && SFC_FLOWS_V2.insert(&s.rkey, &s.rflow, BPF_ANY).is_err() {
            return STORE_ERR | DropReason::FlowTableFull as u32;
        }
    }
    if opts & DRY == 0 && SFC_FLOWS_V2.insert(&s.key, &s.flow, BPF_ANY).is_err() {
        return STORE_ERR | DropReason::FlowTableFull as u32;
    }
    forced
}

/// Bit h set when `members[h]` is a port pair. Branch-free: an accumulator that differs per
/// branch keeps the verifier from pruning.
#[inline(always)]
pub fn presence(members: &[u16; MAX_HOPS]) -> u16 {
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
fn reverse_of(s: &mut Scratch, taps: u16) {
    s.rkey = swapped(&s.key);
    // Field by field on a blank entry: a struct expression would be a call to `memset` (see
    // `mem`).
    blank(&mut s.rflow);
    s.rflow.chain_id = s.flow.chain_id;
    s.rflow.dst_ifindex = s.flow.in_ifindex;
    s.rflow.in_ifindex = s.flow.dst_ifindex;
    s.rflow.n_hops = s.flow.n_hops;
    s.rflow.flags = FLOW_F_REVERSE | if taps != 0 { FLOW_F_TAPS } else { 0 };
    s.rflow.generation = s.flow.generation;
    s.rflow.last_seen = s.flow.last_seen;
    let n = usize::from(s.flow.n_hops);
    let mut rtaps = 0u16;
    for h in 0..MAX_HOPS {
        if h >= n {
            break;
        }
        let from = (n - 1 - h) & (MAX_HOPS - 1);
        s.rflow.members[h] = s.flow.members[from];
        rtaps |= ((taps >> from) & 1) << h;
    }
    s.rflow.present = presence(&s.rflow.members) & !rtaps;
}
