//! Path tracing and SF latency (see `sfc_common::trace`). The trace's events (`emit`, `tapped`)
//! are subprograms of their own (not inlined), called once per packet at most: the verifier
//! checks each body once per call site instead of once per path through steering, and a program
//! with tracing off pays one array lookup and a branch. SF latency's `sent` and `back` are
//! inlined: every hop calls them, and most packets only check the sampling.

use aya_ebpf::helpers::generated::bpf_ktime_get_ns;
use sfc_common::trace::{
    InflightKey, LATENCY_BUCKETS, TF_CHAIN, TF_DPORT, TF_DST, TF_PROTO, TF_SPORT, TF_SRC, TS_EMITTED, TS_LOST_BUDGET,
    TS_LOST_FULL, TV_DROP, TV_TAP, TraceConf, TraceEvent, latency_bucket, latency_slot,
};

use crate::maps::{SFC_INFLIGHT, SFC_LATENCY, SFC_SCRATCH, SFC_TRACE, SFC_TRACE_CONF, SFC_TRACE_RATE, SFC_TRACE_STATS};

const BPF_ANY: u64 = 0;

#[inline(always)]
fn stat(slot: u32) {
    if let Some(c) = SFC_TRACE_STATS.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe { *c += 1 };
    }
}

/// Whether the note's flow passes the filters of `c`.
#[inline(always)]
fn wanted(c: &TraceConf, key: &sfc_common::maps::FlowKey, chain_id: u32, fp: u32) -> bool {
    let f = c.filters;
    if f & TF_CHAIN != 0 && chain_id != c.chain_id {
        return false;
    }
    if f & (TF_SRC | TF_DST) != 0 && key.family != c.family {
        return false;
    }
    if (f & TF_SRC != 0 && key.src != c.src) || (f & TF_DST != 0 && key.dst != c.dst) {
        return false;
    }
    if (f & TF_PROTO != 0 && key.proto != c.proto) || (f & TF_SPORT != 0 && key.sport != c.sport) || (f & TF_DPORT != 0 && key.dport != c.dport) {
        return false;
    }
    c.sample_every <= 1 || fp.is_multiple_of(c.sample_every)
}

/// Within this CPU's budget of events for the current second.
#[inline(always)]
fn within_budget(budget: u32, now_ns: u64) -> bool {
    if budget == 0 {
        return true;
    }
    let Some(w) = SFC_TRACE_RATE.get_ptr_mut(0) else { return true };
    // SAFETY: this CPU's element of a per-CPU array only this program touches.
    let w = unsafe { &mut *w };
    let second = now_ns / 1_000_000_000;
    if w.second != second {
        w.second = second;
        w.count = 0;
    }
    if w.count >= budget {
        return false;
    }
    w.count += 1;
    true
}

/// Whether `sfc trace` is on: the entry points call `emit` only then.
#[inline(always)]
pub fn enabled() -> bool {
    SFC_TRACE_CONF.get(0).is_some_and(|c| c.enabled != 0)
}

/// The end of a packet's run on `ifindex` (`len` bytes): one event for its hop decision when
/// tracing is on and it passes the filters. `dropped`: the `DropReason` when the packet was
/// dropped, else 0. Takes the note steering left (a packet that is no chain packet has none).
#[inline(never)]
pub fn emit(ifindex: u32, dropped: u32, len: u32) {
    let Some(c) = SFC_TRACE_CONF.get(0) else { return };
    if c.enabled == 0 {
        return;
    }
    let Some(s) = SFC_SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's element of a per-CPU array only this program touches.
    let s = unsafe { &mut *s };
    let note = s.note;
    s.note.verdict = 0;
    if note.ifindex != ifindex || (note.verdict == 0 && dropped == 0) {
        return;
    }
    if !wanted(c, &s.key, note.chain_id, note.fp) {
        return;
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if !within_budget(c.budget_per_sec, now) {
        stat(TS_LOST_BUDGET);
        return;
    }
    let Some(mut e) = SFC_TRACE.reserve::<TraceEvent>(0) else {
        stat(TS_LOST_FULL);
        return;
    };
    let dropped_now = dropped != 0;
    e.write(TraceEvent {
        ts_ns: now,
        ifindex,
        target: if dropped_now { 0 } else { note.target },
        chain_id: note.chain_id,
        hop: note.hop,
        port_pair: note.port_pair,
        len,
        verdict: if dropped_now { TV_DROP } else { note.verdict },
        reason: dropped as u8,
        dir: note.dir,
        si: note.si,
        key: s.key,
        fp: note.fp,
        _pad: [0; 4],
    });
    e.submit(0);
    stat(TS_EMITTED);
}

/// A copy of the packet (`len` bytes) was sent to tap member `port_pair` through `target`, at
/// chain position `hop_dir & 0xffff` in direction `hop_dir >> 16`: one `TV_TAP` event, with the
/// interface, flow and chain of the note steering left, when tracing is on and the packet passes
/// the filters. (Four arguments: a BPF call takes five at most.) Its first half repeats
/// `emit`'s on purpose: shared through one inline helper returning the ring entry, the two cost
/// the tc program 233k more verifier instructions (675k -> 908k of 1M).
#[inline(never)]
pub fn tapped(target: u32, port_pair: u32, hop_dir: u32, len: u32) {
    let (hop, dir) = (hop_dir & 0xffff, hop_dir >> 16);
    let Some(c) = SFC_TRACE_CONF.get(0) else { return };
    if c.enabled == 0 {
        return;
    }
    let Some(s) = SFC_SCRATCH.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's element of a per-CPU array only this program touches.
    let s = unsafe { &*s };
    let note = &s.note;
    if !wanted(c, &s.key, note.chain_id, note.fp) {
        return;
    }
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if !within_budget(c.budget_per_sec, now) {
        stat(TS_LOST_BUDGET);
        return;
    }
    let Some(mut e) = SFC_TRACE.reserve::<TraceEvent>(0) else {
        stat(TS_LOST_FULL);
        return;
    };
    // Field by field into the ring's memory: a `TraceEvent` built first would sit on the stack,
    // which this frame shares with the two below it.
    let ev = e.as_mut_ptr();
    // SAFETY: `ev` points at the reserved (exclusively ours until submitted) ring entry, sized
    // for a `TraceEvent`; every field is written before the submit. The key's copy: from the
    // scratch, another map's memory, both aligned (a `TraceEvent` field and a `Scratch` one).
    unsafe {
        (*ev).ts_ns = now;
        (*ev).ifindex = note.ifindex;
        (*ev).target = target;
        (*ev).chain_id = note.chain_id;
        (*ev).hop = hop;
        (*ev).port_pair = port_pair;
        (*ev).len = len;
        (*ev).verdict = TV_TAP;
        (*ev).reason = 0;
        (*ev).dir = dir as u8;
        (*ev).si = 255u32.wrapping_sub(hop) as u8;
        // Word by word: an assignment is a call to `memmove`, a function whose frame counts
        // against the stack on kernels before 6.9 (see `sfc_tc_ingress`), at the end of the
        // tc program's deepest chain of calls.
        crate::mem::copy(&raw mut (*ev).key, &raw const s.key);
        (*ev).fp = note.fp;
        (*ev)._pad = [0; 4];
    }
    e.submit(0);
    stat(TS_EMITTED);
}

/// Whether SF latency samples the packet with fingerprint `fp`.
#[inline(always)]
fn sampled(fp: u32) -> bool {
    let every = SFC_TRACE_CONF.get(0).map_or(0, |c| c.latency_every);
    every != 0 && fp.is_multiple_of(every)
}

/// A packet with fingerprint `fp` is sent into member `port_pair` in direction `dir`. Inlined:
/// every hop's (see `steer::resteer`); most packets only check the sampling.
#[inline(always)]
pub fn sent(fp: u32, port_pair: u32, dir: u32) {
    if !sampled(fp) {
        return;
    }
    let key = InflightKey { fp, slot: latency_slot(port_pair, dir as u8) };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // A full table evicts the oldest (a packet its SF dropped, most likely).
    let _ = SFC_INFLIGHT.insert(&key, &now, BPF_ANY);
}

/// A packet with fingerprint `fp` came back out of member `port_pair` in direction `dir`: the
/// time since it was sent in goes into the member's histogram. Inlined, as `sent`.
#[inline(always)]
pub fn back(fp: u32, port_pair: u32, dir: u32) {
    if !sampled(fp) {
        return;
    }
    let key = InflightKey { fp, slot: latency_slot(port_pair, dir as u8) };
    // SAFETY: a map lookup's reference, valid for this program run (RCU); a plain integer.
    let Some(then) = (unsafe { SFC_INFLIGHT.get(&key) }).copied() else { return };
    let _ = SFC_INFLIGHT.remove(&key);
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let bucket = latency_bucket(now.saturating_sub(then));
    let idx = key.slot.wrapping_mul(LATENCY_BUCKETS).wrapping_add(bucket);
    if let Some(c) = SFC_LATENCY.get_ptr_mut(idx) {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe { *c += 1 };
    }
}
