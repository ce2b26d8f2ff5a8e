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
//!
//! The loader compiles with `incr` (the same tables, built and updated incrementally), which
//! also gives the classes that behave the same one class: `merged` says which. This compile
//! (`compile`, `compile_stable`) is the reference its tests compare with.
//!
//! Two kinds of entry need no trie, and go to a hash map (`ClsTables::hash`) the datapath asks
//! first: an entry whose prefix covers the whole field (a /32 destination, a protocol, one port)
//! is the longest match whenever it matches at all, so an exact lookup finds it; and a class
//! whose only entry is the empty prefix ("any") matches every value, so its class alone finds it
//! (marked `CLS_ANY_BIT` in its id, so the datapath knows to ask for nothing else). The trie
//! keeps the rest: shorter prefixes, ranges. With
//! thousands of host classifiers the trie would be as deep as it is wide; this way a new flow
//! costs a few hash lookups however many classifiers there are.

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::maps::{CLASS_BASE, CLS_ANY_BIT, CLS_CLASS_BITS, CLS_DATA_LEN, CLS_STAGES, ClsKey, FlowKey};

use crate::model::{FlowClassifier, PortRange, Prefix};

/// The class each set of classifiers had at the last compile, by its numbering key ([`class_key`]
/// of its classifiers; for a final class of one place in `incr`, its place): a compile that
/// reuses it gives an unchanged set its old number, so an apply that changes one classifier
/// rewrites that classifier's entries, not every entry numbered after it.
pub type ClassIds = BTreeMap<u64, u32>;

/// Where a classifier leads: its chain and the ifindexes of its logical destination and source
/// ports (`ClsResult` but the classifier), `None` for a classifier in no chain. Final classes
/// whose classifiers all have the same place are one class (`incr`'s notes).
pub type Place = Option<[u32; 3]>;

/// The numbering key (`ClassIds`) of a final class of one place: the place's (`SipHash` with
/// fixed keys: the same in every process of one build).
pub fn place_key(p: Place) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ("place", p).hash(&mut h);
    h.finish()
}

/// One trie entry: (prefix length in bits, key) -> next class.
pub type ClsEntries = BTreeMap<(u32, ClsKey), u32>;
/// Hash entries: (class, whole field) -> next class, and (any-class, zeros) -> next class.
pub type ClsHash = BTreeMap<ClsKey, u32>;

/// A field prefix: data bytes and the number of leading bits that count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct FieldPrefix {
    pub(super) data: [u8; CLS_DATA_LEN],
    pub(super) bits: u32,
}

pub(super) fn mask(mut data: [u8; CLS_DATA_LEN], bits: u32) -> [u8; CLS_DATA_LEN] {
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

/// The prefixes of a classifier's field at `stage`, bits past each length cleared.
pub(super) fn stage_prefixes(stage: usize, f: &FlowClassifier) -> Vec<FieldPrefix> {
    let mut ps = stage_prefixes_raw(stage, f);
    for p in &mut ps {
        p.data = mask(p.data, p.bits);
    }
    ps
}

fn stage_prefixes_raw(stage: usize, f: &FlowClassifier) -> Vec<FieldPrefix> {
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
    /// What the trie holds.
    pub entries: ClsEntries,
    /// What the hash in front of it holds.
    pub hash: ClsHash,
    /// Final class -> the classifiers (indexes) that match every field.
    pub finals: BTreeMap<u32, BTreeSet<usize>>,
    /// `merged` only: the final classes of one place, with it.
    pub places: BTreeMap<u32, Place>,
    /// The class of every set, for the next compile (`compile_stable`).
    pub ids: ClassIds,
}

/// A class's identity across compiles: its stage and its classifiers, each by name and by which
/// of the entries under that name it is (a NAT-ing group's translated copy keeps its original's
/// name: the original is 0, its copies 1, 2, ... in input order). Stable within a build of sfc;
/// a new hash only renumbers once.
pub(super) fn class_key<'a>(stage: usize, members: impl Iterator<Item = (&'a str, u32)>) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut names: Vec<(&str, u32)> = members.collect();
    names.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (stage, names).hash(&mut h);
    h.finish()
}

/// Compiles `classifiers` (index, classifier, ifindex of its logical source port), numbering
/// classes afresh.
pub fn compile(classifiers: &[(usize, &FlowClassifier, u32)]) -> ClsTables {
    compile_stable(classifiers, &ClassIds::new())
}

/// `compile`, giving every set of classifiers the class it had in `prev` (new sets get numbers
/// above all of `prev`'s; a number outside the compiler's range is not reused). Should the
/// numbers run out, they are all given afresh once.
pub fn compile_stable(classifiers: &[(usize, &FlowClassifier, u32)], prev: &ClassIds) -> ClsTables {
    let prev: ClassIds = prev.iter().filter(|(_, c)| (CLASS_BASE..CLASS_LIMIT).contains(*c)).map(|(k, c)| (*k, *c)).collect();
    let out = compile_numbered(classifiers, &prev);
    if out.ids.values().any(|&c| c >= CLASS_LIMIT) && !prev.is_empty() {
        return compile_numbered(classifiers, &ClassIds::new());
    }
    out
}

/// Classes are `CLASS_BASE + n` with `n` below the any-bit.
pub(super) const CLASS_LIMIT: u32 = CLASS_BASE + (1 << CLS_ANY_BIT);

fn compile_numbered(classifiers: &[(usize, &FlowClassifier, u32)], prev: &ClassIds) -> ClsTables {
    let mut out = ClsTables::default();
    let by_idx: BTreeMap<usize, &FlowClassifier> = classifiers.iter().map(|(i, f, _)| (*i, *f)).collect();
    // Which entry under its name each classifier is (see `class_key`).
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    let nth: BTreeMap<usize, u32> = by_idx
        .iter()
        .map(|(i, f)| {
            let n = seen.entry(f.name.as_str()).or_insert(0);
            *n += 1;
            (*i, *n - 1)
        })
        .collect();
    let mut next_class = prev.values().max().map_or(CLASS_BASE, |m| m + 1).max(CLASS_BASE);
    // Numbers given in this compile: a reused one is never given twice (a hash collision).
    let mut given: BTreeSet<u32> = BTreeSet::new();
    // Every entry, and whether its prefix covers the stage's whole field.
    let mut all: BTreeMap<(u32, ClsKey), (u32, bool)> = BTreeMap::new();
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
            // Prefix -> the classifiers of the set that have it.
            let mut having: BTreeMap<FieldPrefix, Vec<usize>> = BTreeMap::new();
            for &i in set {
                for p in stage_prefixes(stage, by_idx[&i]) {
                    having.entry(p).or_default().push(i);
                }
            }
            for p in having.keys() {
                // The prefixes containing `p` are `p` cut to each length up to its own: look them
                // up rather than test every classifier (100,000 /32s would be 10^10 tests).
                let matching: BTreeSet<usize> = (0..=p.bits)
                    .filter_map(|bits| having.get(&FieldPrefix { data: mask(p.data, bits), bits }))
                    .flatten()
                    .copied()
                    .collect();
                let next = *interned.entry(matching).or_insert_with_key(|set| {
                    let key = class_key(stage, set.iter().map(|i| (by_idx[i].name.as_str(), nth[i])));
                    let c = match prev.get(&key) {
                        Some(&c) if given.insert(c) => c,
                        _ => loop {
                            let c = next_class;
                            next_class += 1;
                            if given.insert(c) {
                                break c;
                            }
                        },
                    };
                    out.ids.insert(key, c);
                    // Every classifier of the set takes any value of the next field: the next
                    // stage is one hash lookup.
                    let any_next = stage + 1 < CLS_STAGES
                        && set.iter().all(|i| stage_prefixes(stage + 1, by_idx[i]).iter().all(|p| p.bits == 0));
                    if any_next { c | (1 << CLS_ANY_BIT) } else { c }
                });
                let key = ClsKey { class: class.to_be_bytes(), data: p.data };
                // Stage 0's class (the port) mixes families: its ethertype is in the prefix; later
                // classes are of one family (stage 0 split them by ethertype).
                let v6 = if stage == 0 {
                    u16::from_be_bytes([p.data[0], p.data[1]]) == crate::model::Ethertype::IPv6.value()
                } else {
                    set.iter().next().is_some_and(|i| by_idx[i].ethertype == crate::model::Ethertype::IPv6)
                };
                let full = p.bits == field_width(stage, v6);
                all.insert((CLS_CLASS_BITS + p.bits, key), (next, full));
            }
        }
        current = interned.into_iter().map(|(set, c)| (c, set)).collect();
    }
    out.finals = current.into_iter().collect();
    for ((bits, key), (next, full)) in all {
        // An any-class's one entry is its /0 (data zero): the hash key as it stands.
        if full || is_any(u32::from_be_bytes(key.class)) {
            out.hash.insert(key, next);
        } else {
            out.entries.insert((bits, key), next);
        }
    }
    out
}

/// Whether `class` is a `CLS_ANY_BIT` class (its stage is one hash lookup of (class, zeros)).
pub fn is_any(class: u32) -> bool {
    class >= CLASS_BASE && class & (1 << CLS_ANY_BIT) != 0
}

/// Bits of the field stage `stage` (0-based) matches, for addresses of family `v6`: a prefix
/// this long is the whole field.
pub fn field_width(stage: usize, v6: bool) -> u32 {
    let addr = if v6 { 128 } else { 32 };
    match stage {
        0 => 16 + addr,
        1 => addr,
        2 => 8,
        _ => 16,
    }
}

/// The classifier that decides for a final set: the most specific one. Validation guarantees
/// that classifiers of a set which lead to different places are strictly nested, so the minimal
/// elements (no other classifier of the set is strictly inside them) all lead to the same place;
/// the lowest index among them is taken. `None` for an empty set.
pub fn most_specific(set: &BTreeSet<usize>, all: &[FlowClassifier]) -> Option<usize> {
    most_specific_by(set, |i| &all[i])
}

/// `most_specific`, with classifier `i` given by `at(i)`.
pub fn most_specific_by<'a>(set: &BTreeSet<usize>, at: impl Fn(usize) -> &'a FlowClassifier) -> Option<usize> {
    let strictly_inside = |j: usize, i: usize| at(i).contains(at(j)) && !at(j).contains(at(i));
    set.iter().copied().find(|&i| !set.iter().any(|&j| strictly_inside(j, i)))
}

/// The final class the kernel's trie walk (`sfc-ebpf/src/classify.rs`) reaches for a packet
/// with `key` arriving on `ifindex`, computed from the compiled entries with the trie's own rule
/// (longest prefix whose bits match). `None`: no classifier matches, the packet is not touched.
pub fn lookup(entries: &ClsEntries, hash: &ClsHash, ifindex: u32, ethertype: u16, key: &FlowKey) -> Option<u32> {
    let step = |class: u32, data: [u8; CLS_DATA_LEN]| -> Option<u32> {
        // The kernel's rule: an any-class is one lookup; otherwise the whole field, then the trie.
        if is_any(class) {
            return hash.get(&ClsKey { class: class.to_be_bytes(), data: [0; CLS_DATA_LEN] }).copied();
        }
        hash.get(&ClsKey { class: class.to_be_bytes(), data }).copied().or_else(|| longest_match(entries, class, data))
    };
    let mut data = [0u8; CLS_DATA_LEN];
    data[..2].copy_from_slice(&ethertype.to_be_bytes());
    data[2..18].copy_from_slice(&key.dst);
    let mut class = step(ifindex, data)?;
    let mut data = [0u8; CLS_DATA_LEN];
    data[..16].copy_from_slice(&key.src);
    class = step(class, data)?;
    let mut data = [0u8; CLS_DATA_LEN];
    data[0] = key.proto;
    class = step(class, data)?;
    let mut data = [0u8; CLS_DATA_LEN];
    data[..2].copy_from_slice(&key.dport);
    class = step(class, data)?;
    let mut data = [0u8; CLS_DATA_LEN];
    data[..2].copy_from_slice(&key.sport);
    step(class, data)
}

/// One LPM lookup: the entry with the longest prefix length whose leading bits equal the key's.
/// Entries are stored with the bits past their length cleared (see `canonical`), so masking the
/// key and looking it up at each length from the longest down is the trie's rule.
fn longest_match(entries: &ClsEntries, class: u32, data: [u8; CLS_DATA_LEN]) -> Option<u32> {
    let full = CLS_CLASS_BITS + u32::try_from(CLS_DATA_LEN * 8).unwrap_or(0);
    (CLS_CLASS_BITS..=full).rev().find_map(|bits| {
        let key = ClsKey { class: class.to_be_bytes(), data: mask(data, bits - CLS_CLASS_BITS) };
        entries.get(&(bits, key)).copied()
    })
}

/// Whether two compiles' tables are the same up to how classes are numbered: from every root
/// class (an ifindex or a reclassification class: below `CLASS_BASE`), the same entries lead to
/// classes that correspond one to one, with the same any-bit, down to finals with the same
/// sets: which class of `b` each class of `a` is, or the first difference found, as text.
pub fn equivalent(a: (&ClsEntries, &ClsHash, &BTreeMap<u32, BTreeSet<usize>>), b: (&ClsEntries, &ClsHash, &BTreeMap<u32, BTreeSet<usize>>)) -> Result<BTreeMap<u32, u32>, String> {
    type Out = BTreeMap<(bool, u32, [u8; CLS_DATA_LEN]), u32>;
    fn index(entries: &ClsEntries, hash: &ClsHash) -> BTreeMap<u32, Out> {
        let mut by: BTreeMap<u32, Out> = BTreeMap::new();
        for ((bits, k), v) in entries {
            by.entry(u32::from_be_bytes(k.class)).or_default().insert((false, *bits, k.data), *v);
        }
        for (k, v) in hash {
            by.entry(u32::from_be_bytes(k.class)).or_default().insert((true, 0, k.data), *v);
        }
        by
    }
    let (ia, ib) = (index(a.0, a.1), index(b.0, b.1));
    let roots: BTreeSet<u32> = ia.keys().chain(ib.keys()).copied().filter(|c| *c < CLASS_BASE).collect();
    let mut pair: BTreeMap<u32, u32> = roots.iter().map(|r| (*r, *r)).collect();
    let mut back: BTreeMap<u32, u32> = pair.clone();
    let mut todo: Vec<(u32, u32)> = pair.iter().map(|(x, y)| (*x, *y)).collect();
    let empty = Out::new();
    while let Some((ca, cb)) = todo.pop() {
        if (ca >= CLASS_BASE && ca & (1 << CLS_ANY_BIT) != cb & (1 << CLS_ANY_BIT)) || a.2.get(&ca) != b.2.get(&cb) {
            return Err(format!("class {ca:#x} and {cb:#x} differ in their any-bit or final set ({:?} against {:?})", a.2.get(&ca), b.2.get(&cb)));
        }
        let (ea, eb) = (ia.get(&ca).unwrap_or(&empty), ib.get(&cb).unwrap_or(&empty));
        if ea.len() != eb.len() || ea.keys().zip(eb.keys()).any(|(x, y)| x != y) {
            return Err(format!("class {ca:#x} and {cb:#x} have different entries ({} against {})", ea.len(), eb.len()));
        }
        for (na, nb) in ea.values().zip(eb.values()) {
            match (pair.get(na), back.get(nb)) {
                (Some(x), _) if x != nb => return Err(format!("{na:#x} corresponds to {x:#x} and to {nb:#x}")),
                (_, Some(y)) if y != na => return Err(format!("{nb:#x} corresponds to {y:#x} and to {na:#x}")),
                (Some(_), _) => {}
                _ => {
                    pair.insert(*na, *nb);
                    back.insert(*nb, *na);
                    todo.push((*na, *nb));
                }
            }
        }
    }
    let unreached = |i: &BTreeMap<u32, Out>, seen: &BTreeMap<u32, u32>, f: &BTreeMap<u32, BTreeSet<usize>>| i.keys().chain(f.keys()).find(|c| !seen.contains_key(c)).copied();
    if let Some(c) = unreached(&ia, &pair, a.2).or_else(|| unreached(&ib, &back, b.2)) {
        return Err(format!("class {c:#x} is reached from no root"));
    }
    Ok(pair)
}

/// `t` (a `compile`) with the classes that behave the same merged, bottom up: final classes
/// whose classifiers all have one place (`place`), and classes whose entries lead to the same
/// classes. What `incr` builds (as the whole tables, for tests to compare with): `finals` of a
/// merged final class are the classifiers of all its sets, `places` its place.
pub fn merged(t: &ClsTables, place: impl Fn(usize) -> Place) -> ClsTables {
    /// (in the hash, prefix length (0 in the hash: the key is the whole match), data, class).
    type Edge = (bool, u32, [u8; CLS_DATA_LEN], u32);
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Sig {
        Place(Place),
        Set(BTreeSet<usize>),
        Entries(bool, Vec<Edge>),
    }
    let mut edges: BTreeMap<u32, Vec<Edge>> = BTreeMap::new();
    for ((bits, k), v) in &t.entries {
        edges.entry(u32::from_be_bytes(k.class)).or_default().push((false, *bits, k.data, *v));
    }
    for (k, v) in &t.hash {
        edges.entry(u32::from_be_bytes(k.class)).or_default().push((true, 0, k.data, *v));
    }
    // Each class's level, from the roots.
    let mut levels: Vec<Vec<u32>> = vec![edges.keys().copied().filter(|c| *c < CLASS_BASE).collect()];
    let mut seen: BTreeSet<u32> = levels[0].iter().copied().collect();
    while let Some(last) = levels.last().filter(|l| !l.is_empty()) {
        let next: Vec<u32> = last.iter().flat_map(|c| edges.get(c).into_iter().flatten().map(|e| e.3)).filter(|c| seen.insert(*c)).collect();
        levels.push(next);
    }
    let mut rep: BTreeMap<u32, u32> = BTreeMap::new();
    let mut out = ClsTables { ids: t.ids.clone(), ..ClsTables::default() };
    for level in levels.iter().skip(1).rev() {
        let mut by_sig: BTreeMap<Sig, u32> = BTreeMap::new();
        let mut sorted = level.clone();
        sorted.sort_unstable();
        for c in sorted {
            let sig = match t.finals.get(&c) {
                Some(set) => {
                    let first = set.first().map(|&i| place(i));
                    match first.filter(|p| set.iter().all(|&i| place(i) == *p)) {
                        Some(p) => Sig::Place(p),
                        None => Sig::Set(set.clone()),
                    }
                }
                None => Sig::Entries(is_any(c), edges.get(&c).into_iter().flatten().map(|e| (e.0, e.1, e.2, rep[&e.3])).collect()),
            };
            let r = *by_sig.entry(sig).or_insert(c);
            rep.insert(c, r);
            if let Some(set) = t.finals.get(&c) {
                out.finals.entry(r).or_default().extend(set.iter().copied());
            }
        }
        for (sig, r) in by_sig {
            if let Sig::Place(p) = sig {
                out.places.insert(r, p);
            }
        }
    }
    let kept = |k: &ClsKey| {
        let c = u32::from_be_bytes(k.class);
        c < CLASS_BASE || rep.get(&c) == Some(&c)
    };
    out.entries = t.entries.iter().filter(|((_, k), _)| kept(k)).map(|(k, v)| (*k, rep[v])).collect();
    out.hash = t.hash.iter().filter(|(k, _)| kept(k)).map(|(k, v)| (*k, rep[v])).collect();
    out
}

/// Whether every entry's data has the bits past its prefix length cleared (what `lookup`
/// relies on; the kernel trie ignores those bits either way).
pub fn canonical(entries: &ClsEntries) -> bool {
    entries.keys().all(|(bits, k)| mask(k.data, bits.saturating_sub(CLS_CLASS_BITS)) == k.data)
}

/// For `explain`: a prefix for display, `any` for /0.
pub fn describe_prefix(p: &Prefix) -> String {
    if p.len == 0 { "any".to_owned() } else { p.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Ethertype, IPPROTO_TCP};

    fn fc(name: &str, src: &str, dst: &str, protocol: Option<u8>, dports: PortRange) -> FlowClassifier {
        FlowClassifier {
            name: name.to_owned(),
            ethertype: Ethertype::IPv4,
            protocol,
            source_prefix: Prefix::parse(src).expect("prefix"),
            destination_prefix: Prefix::parse(dst).expect("prefix"),
            source_ports: PortRange::ANY,
            destination_ports: dports,
            logical_source_port: "in".to_owned(),
            logical_destination_port: None,
        }
    }

    fn key(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> FlowKey {
        let mut k = FlowKey { proto, family: 4, sport: sport.to_be_bytes(), dport: dport.to_be_bytes(), ..FlowKey::default() };
        k.src[..4].copy_from_slice(&src);
        k.dst[..4].copy_from_slice(&dst);
        k
    }

    #[test]
    fn port_prefixes_cover_ranges_exactly() {
        assert_eq!(port_prefixes(PortRange::ANY), vec![(0, 0)]);
        assert_eq!(port_prefixes(PortRange { min: 80, max: 80 }), vec![(80, 16)]);
        assert_eq!(port_prefixes(PortRange { min: 1024, max: 65535 }), vec![(1024, 6), (2048, 5), (4096, 4), (8192, 3), (16384, 2), (32768, 1)]);
        for (min, max) in [(0, 0), (1, 65534), (3, 17), (65535, 65535), (1000, 2000)] {
            let ps = port_prefixes(PortRange { min, max });
            for p in 0..=u16::MAX {
                let covered = ps.iter().filter(|(v, bits)| {
                    let m = if *bits == 0 { 0 } else { u16::MAX << (16 - bits) };
                    p & m == *v
                });
                assert_eq!(covered.count(), usize::from((min..=max).contains(&p)), "{min}..{max} at {p}");
            }
        }
    }

    #[test]
    fn most_specific_picks_a_minimal_element() {
        // a contains b and c; b and c cross (same chain in a valid model). The old rule (an
        // element contained by all others) found none and fell back to the lowest index: `a`.
        let all = vec![
            fc("a", "10.0.0.0/8", "0.0.0.0/0", None, PortRange::ANY),
            fc("b", "10.1.0.0/16", "0.0.0.0/0", None, PortRange::ANY),
            fc("c", "10.0.0.0/8", "192.168.0.0/16", None, PortRange::ANY),
        ];
        assert_eq!(most_specific(&BTreeSet::from([0, 1, 2]), &all), Some(1));
        assert_eq!(most_specific(&BTreeSet::from([0, 2]), &all), Some(2));
        assert_eq!(most_specific(&BTreeSet::new(), &all), None);
    }

    #[test]
    fn lookup_walks_the_compiled_tables() {
        let all = [
            fc("web", "0.0.0.0/0", "10.0.0.0/24", Some(IPPROTO_TCP), PortRange { min: 80, max: 80 }),
            fc("net", "0.0.0.0/0", "10.0.0.0/8", None, PortRange::ANY),
        ];
        let t = compile(&[(0, &all[0], 7), (1, &all[1], 7)]);
        assert!(canonical(&t.entries));
        let final_set = |k: &FlowKey, ifindex| lookup(&t.entries, &t.hash, ifindex, 0x0800, k).map(|c| t.finals[&c].clone());
        assert_eq!(final_set(&key([1, 1, 1, 1], [10, 0, 0, 5], 6, 999, 80), 7), Some(BTreeSet::from([0, 1])));
        assert_eq!(final_set(&key([1, 1, 1, 1], [10, 0, 0, 5], 6, 999, 81), 7), Some(BTreeSet::from([1])));
        assert_eq!(final_set(&key([1, 1, 1, 1], [10, 9, 0, 5], 17, 1, 80), 7), Some(BTreeSet::from([1])));
        assert_eq!(final_set(&key([1, 1, 1, 1], [11, 0, 0, 5], 6, 999, 80), 7), None);
        assert_eq!(final_set(&key([1, 1, 1, 1], [10, 0, 0, 5], 6, 999, 80), 8), None);
        assert_eq!(lookup(&t.entries, &t.hash, 7, 0x86dd, &key([1, 1, 1, 1], [10, 0, 0, 5], 6, 999, 80)), None);
    }
}
