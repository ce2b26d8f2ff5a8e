//! Compiles flow classifiers into the five-stage LPM pipeline the kernel walks (see
//! `sfc-ebpf/src/classify.rs` for the scheme and why).
//!
//! At each stage a class stands for the set of classifiers still possible. For every distinct
//! prefix P of the stage's field among the set's classifiers, the entry (class, P) leads to the
//! class of the classifiers having a prefix that contains P. Longest-prefix match then yields
//! exactly the classifiers that match the packet's field: any classifier prefix containing the
//! value is no longer than the longest matching P and so contains it. Classes are interned per
//! stage (a class id means one thing in one stage), so the tables grow with the number of
//! distinct (set, prefix) pairs, not with their product.

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::maps::{CLASS_BASE, CLS_CLASS_BITS, CLS_DATA_LEN, ClsKey};

use crate::model::{FlowClassifier, PortRange, Prefix};

/// One trie entry: (prefix length in bits, key) -> next class.
pub type ClsEntries = BTreeMap<(u32, ClsKey), u32>;

/// A field prefix: data bytes and the number of leading bits that count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FieldPrefix {
    data: [u8; CLS_DATA_LEN],
    bits: u32,
}

impl FieldPrefix {
    fn contains(&self, o: &FieldPrefix) -> bool {
        self.bits <= o.bits && mask(o.data, self.bits) == self.data
    }
}

fn mask(mut data: [u8; CLS_DATA_LEN], bits: u32) -> [u8; CLS_DATA_LEN] {
    for (i, b) in data.iter_mut().enumerate() {
        let keep = bits.saturating_sub(u32::try_from(i).unwrap_or(u32::MAX).saturating_mul(8)).min(8);
        *b &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
    }
    data
}

/// The prefixes that cover an inclusive port range exactly.
pub fn port_prefixes(r: PortRange) -> Vec<(u16, u32)> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u32::from(r.min), u32::from(r.max));
    while lo <= hi {
        let mut size = if lo == 0 { 1 << 16 } else { lo & lo.wrapping_neg() };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((u16::try_from(lo).unwrap_or(u16::MAX), 16 - size.trailing_zeros()));
        lo += size;
    }
    out
}

fn stage_prefixes(stage: usize, f: &FlowClassifier) -> Vec<FieldPrefix> {
    let mut d = [0u8; CLS_DATA_LEN];
    match stage {
        0 => {
            d[..2].copy_from_slice(&f.ethertype.value().to_be_bytes());
            d[2..18].copy_from_slice(&f.destination_prefix.addr);
            vec![FieldPrefix { data: d, bits: 16 + u32::from(f.destination_prefix.len) }]
        }
        1 => {
            d[..16].copy_from_slice(&f.source_prefix.addr);
            vec![FieldPrefix { data: d, bits: u32::from(f.source_prefix.len) }]
        }
        2 => match f.protocol {
            Some(p) => {
                d[0] = p;
                vec![FieldPrefix { data: d, bits: 8 }]
            }
            None => vec![FieldPrefix { data: d, bits: 0 }],
        },
        3 | 4 => {
            let r = if stage == 3 { f.destination_ports } else { f.source_ports };
            port_prefixes(r)
                .into_iter()
                .map(|(v, bits)| {
                    let mut d = [0u8; CLS_DATA_LEN];
                    d[..2].copy_from_slice(&v.to_be_bytes());
                    FieldPrefix { data: d, bits }
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Output of the classifier compiler.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClsTables {
    pub entries: ClsEntries,
    /// Final class -> the classifiers (indexes) that match every field.
    pub finals: BTreeMap<u32, BTreeSet<usize>>,
}

/// Compiles `classifiers` (index, classifier, ifindex of its logical source port).
pub fn compile(classifiers: &[(usize, &FlowClassifier, u32)]) -> ClsTables {
    let mut out = ClsTables::default();
    let by_idx: BTreeMap<usize, &FlowClassifier> = classifiers.iter().map(|(i, f, _)| (*i, *f)).collect();
    let mut next_class = CLASS_BASE;
    // Stage 0 classes are the ifindexes of the logical source ports.
    let mut current: Vec<(u32, BTreeSet<usize>)> = {
        let mut m: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
        for (i, _, ifindex) in classifiers {
            m.entry(*ifindex).or_default().insert(*i);
        }
        m.into_iter().collect()
    };
    for stage in 0..sfc_common::maps::CLS_STAGES {
        let mut interned: BTreeMap<BTreeSet<usize>, u32> = BTreeMap::new();
        for (class, set) in &current {
            let per: Vec<(usize, Vec<FieldPrefix>)> =
                set.iter().map(|i| (*i, stage_prefixes(stage, by_idx[i]))).collect();
            let distinct: BTreeSet<FieldPrefix> = per.iter().flat_map(|(_, ps)| ps.iter().copied()).collect();
            for p in distinct {
                let matching: BTreeSet<usize> = per
                    .iter()
                    .filter(|(_, ps)| ps.iter().any(|q| q.contains(&p)))
                    .map(|(i, _)| *i)
                    .collect();
                let next = *interned.entry(matching).or_insert_with(|| {
                    let c = next_class;
                    next_class += 1;
                    c
                });
                let key = ClsKey { class: class.to_be_bytes(), data: p.data };
                out.entries.insert((CLS_CLASS_BITS + p.bits, key), next);
            }
        }
        current = interned.into_iter().map(|(set, c)| (c, set)).collect();
    }
    out.finals = current.into_iter().collect();
    out
}

/// Most specific classifier of a final set (validation guarantees overlapping classifiers that
/// lead to different places are nested); ties go to the lowest index.
pub fn most_specific(set: &BTreeSet<usize>, all: &[FlowClassifier]) -> Option<usize> {
    set.iter()
        .copied()
        .find(|&i| set.iter().all(|&j| all[j].contains(&all[i])))
        .or_else(|| set.iter().copied().next())
}

/// For `explain`: the prefix of a classifier's destination, for display.
pub fn describe_prefix(p: &Prefix) -> String {
    if p.len == 0 { "any".to_owned() } else { p.to_string() }
}
