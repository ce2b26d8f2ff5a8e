//! Decoding the classifier tables (`SFC_CLS`, the trie, and `SFC_CLS_HASH`, asked before it)
//! into one row per entry: stage, class, field, next class, and after the last stage the chain.

use std::collections::BTreeMap;

use aya::maps::{LpmTrie, MapData};
use serde::Serialize;
use sfc_common::maps::{CLASS_BASE, CLS_CLASS_BITS, CLS_RECLASS_BIT, CLS_STAGES, ClsKey, ClsResult, FAMILY_V6, MAP_CLS, MAP_CLS_HASH, MAP_CLS_RES};

use super::{Namer, addr, bank_name, protocol_name, unbank_class};
use crate::datapath::{
    Location, Result,
    maps::{hash_entries, map_err, typed},
};

/// One `SFC_CLS` entry: at `stage`, packets of `class` whose field matches `field` move on to
/// `next_class`; after the last stage `result` tells the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClsRow {
    pub bank: &'static str,
    /// `trie`, or `hash` for the entries asked before it (whole fields, "any").
    pub table: &'static str,
    /// 1..=5: interface + ethertype + destination, source, protocol, destination port, source
    /// port (0: a class no stage-1 entry leads to).
    pub stage: usize,
    /// Stage 1: the logical source port; later: the class id (without the bank bit).
    pub class: String,
    /// Bits of the field that must match (the class's 32 bits not counted).
    pub prefix_len: u32,
    pub field: String,
    pub next_class: String,
    pub result: Option<String>,
}

pub(super) fn port_prefix(what: &str, data: &[u8], bits: u32) -> String {
    if bits == 0 {
        return format!("{what} any");
    }
    let lo = u16::from_be_bytes([data[0], data[1]]);
    let hi = lo | u16::MAX.checked_shr(bits).unwrap_or(0);
    if lo == hi { format!("{what} {lo}") } else { format!("{what} {lo}-{hi}") }
}

fn addr_prefix(what: &str, v6: bool, data: &[u8], bits: u32) -> String {
    if bits == 0 {
        return format!("{what} any");
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&data[..16]);
    format!("{what} {}/{bits}", addr(if v6 { FAMILY_V6 } else { 0 }, &a))
}

fn cls_field(stage: usize, v6: bool, key: &ClsKey, bits: u32) -> String {
    let d = &key.data;
    match stage {
        1 => {
            let et = u16::from_be_bytes([d[0], d[1]]);
            let name = match et {
                0x0800 => "IPv4".to_owned(),
                0x86DD => "IPv6".to_owned(),
                other => format!("ethertype {other:#06x}"),
            };
            format!("{name} {}", addr_prefix("dst", et == 0x86DD, &d[2..], bits.saturating_sub(16)))
        }
        2 => addr_prefix("src", v6, d, bits),
        3 if bits == 0 => "proto any".to_owned(),
        3 => format!("proto {}", protocol_name(d[0])),
        4 => port_prefix("dport", d, bits),
        _ => port_prefix("sport", d, bits),
    }
}

/// Decodes the trie entries `(prefix length, key, next class)` of one bank (classes without the
/// bank bit). A class's stage is found by walking from the stage-1 classes (the ifindexes); the
/// address family travels along from the stage-1 ethertype.
/// Where a classifier entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClsSource {
    /// In the trie, with this prefix length (class bits included).
    Trie(u32),
    /// In the hash, matching the whole field.
    Exact,
    /// In the hash, matching any value (the key's class carries `CLS_ANY_BIT`).
    Any,
}

/// The trie's and the hash's entries of one bank, as `decode_cls` takes them.
pub fn cls_entries(
    trie: impl IntoIterator<Item = (u32, ClsKey, u32)>,
    hash: impl IntoIterator<Item = (ClsKey, u32)>,
) -> Vec<(ClsSource, ClsKey, u32)> {
    trie.into_iter()
        .map(|(len, k, v)| (ClsSource::Trie(len), k, v))
        .chain(hash.into_iter().map(|(k, v)| {
            let src = if crate::compile::cls::is_any(u32::from_be_bytes(k.class)) { ClsSource::Any } else { ClsSource::Exact };
            (src, k, v)
        }))
        .collect()
}

pub fn decode_cls(
    n: &Namer<'_>,
    bank: &'static str,
    entries: &[(ClsSource, ClsKey, u32)],
    results: &BTreeMap<u32, ClsResult>,
) -> Vec<ClsRow> {
    let class_of = |k: &ClsKey| u32::from_be_bytes(k.class);
    // class -> (stage, IPv6?)
    let mut stage_of: BTreeMap<u32, (usize, bool)> = BTreeMap::new();
    for (_, k, _) in entries {
        if class_of(k) < CLASS_BASE {
            stage_of.insert(class_of(k), (1, false));
        }
    }
    for stage in 1..=CLS_STAGES {
        for (_, k, next) in entries {
            if let Some(&(s, v6)) = stage_of.get(&class_of(k))
                && s == stage
            {
                let v6 = if stage == 1 { u16::from_be_bytes([k.data[0], k.data[1]]) == 0x86DD } else { v6 };
                stage_of.entry(*next).or_insert((stage + 1, v6));
            }
        }
    }
    let mut rows: Vec<ClsRow> = entries
        .iter()
        .map(|(src, k, next)| {
            let c = class_of(k);
            let (stage, v6) = stage_of.get(&c).copied().unwrap_or((0, false));
            let v6 = if stage == 1 { u16::from_be_bytes([k.data[0], k.data[1]]) == 0x86DD } else { v6 };
            let (bits, table) = match src {
                ClsSource::Trie(len) => (len.saturating_sub(CLS_CLASS_BITS), "trie"),
                // Rows count stages from 1.
                ClsSource::Exact => (crate::compile::cls::field_width(stage.saturating_sub(1), v6), "hash"),
                ClsSource::Any => (0, "hash"),
            };
            ClsRow {
                bank,
                table,
                stage,
                class: match stage {
                    // Not an interface: the classifiers of a group's chains, asked for a packet
                    // back from a member whose flow entry is gone (`GroupEntry::reclass`).
                    1 if c & (1 << CLS_RECLASS_BIT) != 0 => format!("reclass {}", c & !(1 << CLS_RECLASS_BIT)),
                    1 => n.iface(c),
                    _ => format!("{c:#x}"),
                },
                prefix_len: bits,
                field: if stage == 0 { "(unreachable)".to_owned() } else { cls_field(stage, v6, k, bits) },
                next_class: format!("{next:#x}"),
                result: (stage == CLS_STAGES).then(|| match results.get(next) {
                    Some(r) if r.classifier == sfc_common::maps::CLS_CLASSIFIER_SHARED => format!("chain {} (several classifiers)", n.chain(r.chain_id)),
                    Some(r) => format!("chain {} (classifier {})", n.chain(r.chain_id), n.classifier(r.classifier)),
                    None => "no chain".to_owned(),
                }),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.stage, &a.class, std::cmp::Reverse(a.prefix_len), &a.field).cmp(&(b.stage, &b.class, std::cmp::Reverse(b.prefix_len), &b.field))
    });
    rows
}

/// The trie's entries and the classifier results, split by bank (bank bits removed).
pub(super) fn cls_banks(loc: &Location, n: &Namer<'_>, live: u32) -> Result<Vec<ClsRow>> {
    let trie: LpmTrie<MapData, ClsKey, u32> = typed(loc, MAP_CLS)?;
    let mut trie_entries: [Vec<(u32, ClsKey, u32)>; 2] = [Vec::new(), Vec::new()];
    for r in &trie {
        let (k, next) = r.map_err(map_err(MAP_CLS, "reading"))?;
        let mut key = k.data();
        let (bank, class) = unbank_class(u32::from_be_bytes(key.class));
        key.class = class.to_be_bytes();
        trie_entries[usize::from(bank == 1)].push((k.prefix_len(), key, unbank_class(next).1));
    }
    let mut hash_entries_by_bank: [Vec<(ClsKey, u32)>; 2] = [Vec::new(), Vec::new()];
    for (mut key, next) in hash_entries::<ClsKey, u32>(loc, MAP_CLS_HASH)? {
        let (bank, class) = unbank_class(u32::from_be_bytes(key.class));
        key.class = class.to_be_bytes();
        hash_entries_by_bank[usize::from(bank == 1)].push((key, unbank_class(next).1));
    }
    let [t0, t1] = trie_entries;
    let [h0, h1] = hash_entries_by_bank;
    let entries = [cls_entries(t0, h0), cls_entries(t1, h1)];
    let mut results: [BTreeMap<u32, ClsResult>; 2] = [BTreeMap::new(), BTreeMap::new()];
    for (k, r) in hash_entries::<u32, ClsResult>(loc, MAP_CLS_RES)? {
        let (bank, class) = unbank_class(k);
        results[usize::from(bank == 1)].insert(class, r);
    }
    let mut out = Vec::new();
    for b in [live & 1, 1 - (live & 1)] {
        let i = usize::from(b == 1);
        out.extend(decode_cls(n, bank_name(b, live), &entries[i], &results[i]));
    }
    Ok(out)
}
