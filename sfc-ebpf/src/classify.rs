//! Flow classification: which chain (if any) a new flow enters.
//!
//! Scheme: a fixed pipeline of five longest-prefix-match lookups in one LPM trie (`SFC_CLS`), one
//! per field: (ingress port, ethertype, destination prefix) -> source prefix -> protocol ->
//! destination port -> source port. Each lookup maps "the set of classifiers still possible" (a
//! class id) plus the next field to a narrower class; port ranges are compiled into the few
//! prefixes that cover them. The per-packet cost is five trie walks bounded by the key length,
//! whatever the number of classifiers (so 100,000 cost the same as 1), and the compiler, not the
//! datapath, resolves overlaps (ambiguous ones are rejected at validation). A bit-vector scheme
//! would grow with the rule count, tuple-space search with the number of distinct prefix-length
//! and range shapes; this one only with the key width.
//!
//! The trie's walk is as deep as the trie, so each stage first asks a hash (`SFC_CLS_HASH`) for
//! the entries that need no walk: whole-field prefixes (host addresses, a protocol, one port)
//! and classes that match anything. Host classifiers by the hundred thousand then cost a few
//! hash lookups, not five walks through a trie of half a million entries.
//!
//! The loader gives the classes that behave the same one class (`compile::incr`): classifiers
//! that lead to the same chain and ports share every class after the fields that tell them
//! apart, so a new flow among 100,000 host classifiers into one chain reads one entry that is
//! likely out of the cache (its own), and the shared ones after it.

use aya_ebpf::maps::lpm_trie::Key;
use sfc_common::maps::{CLS_ANY_BIT, CLS_CLASS_BITS, CLS_DATA_LEN, ClsKey, ClsResult, FlowKey, banked_class};

use core::mem::MaybeUninit;

use crate::maps::{SFC_CLS, SFC_CLS_HASH, SFC_CLS_RES};

/// Every lookup asks for the longest match over the whole key.
const LOOKUP_BITS: u32 = CLS_CLASS_BITS + (CLS_DATA_LEN as u32) * 8;

/// One stage: the key's `class` is replaced by the result. The key is reused across stages to
/// keep the BPF stack small; `any` is the scratch key of a `CLS_ANY_BIT` class's lookup.
#[inline(always)]
fn stage(key: &mut Key<ClsKey>, any: &mut ClsKey) -> Option<()> {
    let next = if u32::from_be_bytes(key.data.class) & (1 << CLS_ANY_BIT) != 0 {
        any.class = key.data.class;
        *unsafe { SFC_CLS_HASH.get(&*any) }?
    } else {
        match unsafe { SFC_CLS_HASH.get(&key.data) } {
            Some(n) => *n,
            None => *SFC_CLS.get(&*key)?,
        }
    };
    key.data.class = next.to_be_bytes();
    // SAFETY: the key's own byte array.
    unsafe { crate::mem::zero(&raw mut key.data.data) };
    Some(())
}

/// The chain a packet arriving on `ifindex` with `key` enters, if a classifier matches.
#[inline(always)]
pub fn classify(bank: u32, ifindex: u32, ethertype: u16, flow: &FlowKey) -> Option<&'static ClsResult> {
    let class = final_class(banked_class(bank, ifindex), ethertype, flow)?;
    unsafe { SFC_CLS_RES.get(&class) }
}

/// The trie walk, as a BPF subprogram (not inlined) so its key buffer lives in its own frame.
/// `first` is the banked stage-1 class (the ingress ifindex); later classes come banked from the
/// trie itself.
#[inline(never)]
fn final_class(first: u32, ethertype: u16, flow: &FlowKey) -> Option<u32> {
    // Zeroed by `mem::zero`: an initializer would be a call to `memset` (see `mem`).
    let (mut key, mut any) = (MaybeUninit::<Key<ClsKey>>::uninit(), MaybeUninit::<ClsKey>::uninit());
    // SAFETY: locals' own pointers; zeros are a valid key (bytes and a u32), and each is one
    // once zeroed.
    let (key, any) = unsafe {
        crate::mem::zero(key.as_mut_ptr());
        crate::mem::zero(any.as_mut_ptr());
        (&mut *key.as_mut_ptr(), &mut *any.as_mut_ptr())
    };
    key.prefix_len = LOOKUP_BITS;
    key.data.class = first.to_be_bytes();
    let et = ethertype.to_be_bytes();
    key.data.data[0] = et[0];
    key.data.data[1] = et[1];
    key.data.data[2..18].copy_from_slice(&flow.dst);
    stage(key, any)?;
    key.data.data[..16].copy_from_slice(&flow.src);
    stage(key, any)?;
    key.data.data[0] = flow.proto;
    stage(key, any)?;
    key.data.data[0] = flow.dport[0];
    key.data.data[1] = flow.dport[1];
    stage(key, any)?;
    key.data.data[0] = flow.sport[0];
    key.data.data[1] = flow.sport[1];
    stage(key, any)?;
    Some(u32::from_be_bytes(key.data.class))
}
