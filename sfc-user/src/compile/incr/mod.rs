//! The classifier compiler of `cls`, kept from one apply to the next by a process that applies
//! more than once (`sfc run`, the benchmark): an apply that changes k classifiers redoes the
//! work of those k, not of all of them.
//!
//! It builds the tables of `cls::merged(cls::compile(..))` (the same entries up to how classes
//! are numbered), as a graph of sets of classifiers (the nodes) and the classes they have:
//! - a root is a class a walk starts in (a logical source port's ifindex, a reclassification or
//!   a reply class), with one stage-0 entry per distinct prefix of its classifiers. A root is
//!   updated in place: a classifier that comes or goes touches only the entries whose prefix
//!   lies inside one of its own (one entry for a /32 destination that no other classifier has);
//! - every other node is a set of classifiers at a level (1 to 5: the stage its entries match,
//!   5 being a final set), built whole when an entry first leads to it and dropped when the
//!   last entry leading to it goes. The same set under two roots (a classifier under its source
//!   port and under its chain's reclassification class) is one node.
//!
//! A set that changes is a new node, built whole: one change under a prefix that 100,000
//! classifiers share rebuilds a set of 100,000 (it keeps its class number by its classifiers'
//! names, so only the entries that differ are written).
//!
//! Sets that behave the same have one class (`Shared`, which owns the entries): a class is
//! known by its content (its entries, each by the content of the class it leads to; a final
//! class by its place, the chain and ports its classifiers lead to, when they all lead to the
//! same). So 100,000 host classifiers into one chain are 100,000 stage-1 entries into one class
//! per later stage, not 100,000 classes per stage: fewer entries to write, and a new flow's walk
//! reads one cold entry, not five (see `ClsResult::classifier` for what a shared final class
//! says). A class lives, entries and all, while any set with its content does.
//!
//! Every table write is logged with the value it replaced (`Changes`), so the loader writes the
//! maps from the log instead of comparing whole tables.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sfc_common::maps::{CLASS_BASE, CLS_ANY_BIT, CLS_CLASS_BITS, CLS_DATA_LEN, CLS_STAGES, ClsKey};

use super::cls::{CLASS_LIMIT, ClassIds, ClsEntries, ClsHash, FieldPrefix, Place, class_key, field_width, is_any, mask, place_key, stage_prefixes};
use crate::model::{Ethertype, FlowClassifier};

/// A classifier as the compiler knows it: its position in the input and its fields.
type Cid = u32;

struct Inst {
    idx: usize,
    fc: FlowClassifier,
    /// Which entry under its name it is (`cls::class_key`), as of when it came.
    nth: u32,
    /// Roots it is in.
    roots: u32,
    /// Where it leads (`cls::Place`): classifiers with the same place share final classes.
    place: Place,
}

#[derive(Default)]
struct Root {
    /// Sorted, no duplicates.
    members: Vec<Cid>,
    /// Stage-0 prefix -> the members that have it.
    having: BTreeMap<FieldPrefix, BTreeSet<Cid>>,
    /// Stage-0 prefix -> the set its entry leads to.
    out: BTreeMap<FieldPrefix, Vec<Cid>>,
}

/// A set of classifiers at a level.
struct Node {
    /// Its class (the shared one), with `CLS_ANY_BIT` when it has it.
    class: u32,
    content: Content,
    /// Its numbering key (`ClassIds`): its classifiers' names (`cls::class_key`), or a final
    /// class's place. Not the content: an edit under a class of 100,000 classifiers changes its
    /// content, and the class rebuilt keeps its number by its names (so its entries are
    /// rewritten only where they differ).
    key: u64,
    refs: u32,
    children: Vec<Vec<Cid>>,
    /// A final set's classifiers (their input positions).
    idxs: Vec<usize>,
}

/// What a class does, exactly (interned: `Incremental::contents`): two sets with one content
/// behave the same, and share a class.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Sig {
    /// A final set whose classifiers all have this place.
    Place(Place),
    /// A final set of several places: its result depends on which of them is the most
    /// specific, so it is its classifiers.
    Set(Vec<Cid>),
    /// A set's entries: (prefix length, 0 for a hash entry, whose key is the whole match; data;
    /// in the hash; the content of the class it leads to), in prefix order.
    Entries { level: u8, any: bool, edges: Vec<(u32, [u8; CLS_DATA_LEN], bool, Content)> },
}

/// An interned `Sig`.
type Content = u64;

/// A class and the entries it owns, shared by every set with its content.
struct Shared {
    /// Its content, to forget it with the class.
    sig: Sig,
    class: u32,
    /// Sets with this content.
    sets: u32,
    trie: Vec<(u32, ClsKey)>,
    hash: Vec<ClsKey>,
    /// A final class of one place: its classifiers over all its sets (input position -> sets
    /// having it), for `finals`.
    union: Option<BTreeMap<usize, u32>>,
}

/// Table writes since the last `take_changes`: each key touched, with the value it had before
/// the first touch (`None`: absent).
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub trie: BTreeMap<(u32, ClsKey), Option<u32>>,
    pub hash: BTreeMap<ClsKey, Option<u32>>,
    /// Final classes built, dropped, or whose classifiers changed since.
    pub finals: BTreeSet<u32>,
}

/// The compiler and the tables it keeps (see the module's notes).
pub struct Incremental {
    insts: Vec<Option<Inst>>,
    free: Vec<Cid>,
    /// Input position -> the instance last seen there.
    by_idx: Vec<Option<Cid>>,
    roots: BTreeMap<u32, Root>,
    nodes: HashMap<(u8, Vec<Cid>), Node>,
    shared: HashMap<Content, Shared>,
    /// The content of every live class.
    contents: HashMap<Sig, Content>,
    next_content: Content,
    /// Numbers of a previous compile (`State::class_ids`), for sets built the first time (a
    /// set's number is its class's).
    prev: ClassIds,
    /// Numbers of the sets dropped by this update, for a set built again under the same key
    /// (`Node::key`).
    freed: HashMap<u64, u32>,
    next_class: u32,
    used: HashSet<u32>,
    pub entries: ClsEntries,
    pub hash: ClsHash,
    /// Final class -> its classifiers: those of its set, or for a final class of one place
    /// (`places`) those of all its sets.
    pub finals: BTreeMap<u32, BTreeSet<usize>>,
    /// The final classes of one place, with it.
    pub places: BTreeMap<u32, Place>,
    /// The class of every live set, by its numbering key (for the next process's compile).
    pub ids: ClassIds,
    changes: Changes,
}

impl Incremental {
    /// An empty compiler that numbers the classes of the sets `prev` knows as `prev` does.
    pub fn new(prev: &ClassIds) -> Self {
        let prev: ClassIds = prev.iter().filter(|(_, c)| (CLASS_BASE..CLASS_LIMIT).contains(*c)).map(|(k, c)| (*k, *c)).collect();
        let next_class = prev.values().max().map_or(CLASS_BASE, |m| m + 1);
        Incremental {
            insts: Vec::new(),
            free: Vec::new(),
            by_idx: Vec::new(),
            roots: BTreeMap::new(),
            nodes: HashMap::new(),
            shared: HashMap::new(),
            contents: HashMap::new(),
            next_content: 0,
            prev,
            freed: HashMap::new(),
            next_class,
            used: HashSet::new(),
            entries: ClsEntries::new(),
            hash: ClsHash::new(),
            finals: BTreeMap::new(),
            places: BTreeMap::new(),
            ids: ClassIds::new(),
            changes: Changes::default(),
        }
    }

    /// Classes were given up to the compiler's limit: start again with a new compiler (its
    /// numbers given afresh).
    pub fn exhausted(&self) -> bool {
        self.next_class > CLASS_LIMIT
    }

    /// The writes since the last call.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Brings the tables in line with `classifiers` (index, classifier, root class), as
    /// `cls::compile_stable` takes them; `place` says where classifier `index` leads.
    pub fn update(&mut self, classifiers: &[(usize, &FlowClassifier, u32)], place: &dyn Fn(usize) -> Place) {
        let mut fresh = Vec::new();
        let mut roots: BTreeMap<u32, Vec<Cid>> = BTreeMap::new();
        for &(idx, fc, root) in classifiers {
            if self.by_idx.len() <= idx {
                self.by_idx.resize(idx + 1, None);
            }
            let place = place(idx);
            let known = self.by_idx[idx].filter(|&c| self.inst(c).fc == *fc && self.inst(c).place == place);
            let cid = known.unwrap_or_else(|| {
                let c = self.add_inst(Inst { idx, fc: fc.clone(), nth: 0, roots: 0, place });
                self.by_idx[idx] = Some(c);
                fresh.push(c);
                c
            });
            roots.entry(root).or_default().push(cid);
        }
        self.number_fresh(classifiers, &fresh);
        // Every root lets go of the sets it no longer leads to before any leads to a new one, so
        // that a set rebuilt under the same name and place (`cls::class_key`: a classifier that
        // moved) gets back the number it had, and its entries are written only where they differ.
        let gone: Vec<u32> = self.roots.keys().filter(|r| !roots.contains_key(r)).copied().collect();
        let mut left = Vec::new();
        let mut pending = Vec::new();
        for r in gone {
            left.extend(self.let_go(r, Vec::new(), &mut pending));
        }
        for (r, mut members) in roots {
            members.sort_unstable();
            members.dedup();
            left.extend(self.let_go(r, members, &mut pending));
        }
        for (key, in_hash, set) in pending {
            let (child, _) = self.acquire(1, set);
            self.put(key, in_hash, Some(child));
        }
        self.freed.clear();
        // Only now (an instance may have left one root for another): those in no root go.
        for c in left {
            if self.insts[c as usize].as_mut().is_some_and(|i| {
                i.roots -= 1;
                i.roots == 0
            }) {
                self.drop_inst(c);
            }
        }
        self.prev = ClassIds::new();
    }

    fn inst(&self, c: Cid) -> &Inst {
        self.insts[c as usize].as_ref().expect("a live instance")
    }

    fn add_inst(&mut self, i: Inst) -> Cid {
        if let Some(c) = self.free.pop() {
            self.insts[c as usize] = Some(i);
            c
        } else {
            self.insts.push(Some(i));
            Cid::try_from(self.insts.len() - 1).unwrap_or(Cid::MAX)
        }
    }

    /// Drops an instance no root has.
    fn drop_inst(&mut self, c: Cid) {
        if let Some(i) = self.insts[c as usize].take() {
            if self.by_idx.get(i.idx).copied().flatten() == Some(c) {
                self.by_idx[i.idx] = None;
            }
            self.free.push(c);
        }
    }

    /// Which entry under its name each new instance is, among the input's (see
    /// `cls::class_key`).
    fn number_fresh(&mut self, classifiers: &[(usize, &FlowClassifier, u32)], fresh: &[Cid]) {
        if fresh.is_empty() {
            return;
        }
        let names: HashSet<&str> = fresh.iter().map(|&c| self.inst(c).fc.name.as_str()).collect();
        let mut under: HashMap<&str, BTreeSet<usize>> = HashMap::new();
        for (idx, fc, _) in classifiers {
            if names.contains(fc.name.as_str()) {
                under.entry(fc.name.as_str()).or_default().insert(*idx);
            }
        }
        let nth: Vec<(Cid, u32)> = fresh
            .iter()
            .map(|&c| {
                let i = self.inst(c);
                let rank = under.get(i.fc.name.as_str()).map_or(0, |s| s.range(..i.idx).count());
                (c, u32::try_from(rank).unwrap_or(u32::MAX))
            })
            .collect();
        for (c, n) in nth {
            if let Some(i) = self.insts[c as usize].as_mut() {
                i.nth = n;
            }
        }
    }

    /// Brings root `class` to `members`, but for the new sets its entries lead to: those are
    /// left in `pending` (entry key, whether it is a hash entry, set) for the caller to build.
    /// The members it lost (their instances still counting it, for the caller to drop).
    fn let_go(&mut self, class: u32, members: Vec<Cid>, pending: &mut Vec<((u32, ClsKey), bool, Vec<Cid>)>) -> Vec<Cid> {
        let mut root = self.roots.remove(&class).unwrap_or_default();
        let (removed, added) = sorted_diff(&root.members, &members);
        if removed.is_empty() && added.is_empty() {
            self.roots.insert(class, root);
            return removed;
        }
        let mut touched: BTreeSet<FieldPrefix> = BTreeSet::new();
        for &c in &removed {
            for p in stage_prefixes(0, &self.inst(c).fc) {
                if let Some(s) = root.having.get_mut(&p) {
                    s.remove(&c);
                    if s.is_empty() {
                        root.having.remove(&p);
                    }
                }
                touched.insert(p);
            }
        }
        for &c in &added {
            for p in stage_prefixes(0, &self.inst(c).fc) {
                root.having.entry(p).or_default().insert(c);
                touched.insert(p);
            }
        }
        // Every entry whose prefix lies inside a touched one may lead elsewhere now.
        let mut affected: BTreeSet<FieldPrefix> = BTreeSet::new();
        for q in &touched {
            let lo = FieldPrefix { data: q.data, bits: 0 };
            let hi = FieldPrefix { data: fill(q.data, q.bits), bits: u32::MAX };
            affected.extend(root.having.range(lo..=hi).map(|(p, _)| *p).filter(|p| p.bits >= q.bits && mask(p.data, q.bits) == q.data));
            affected.insert(*q);
        }
        let v6 = |p: &FieldPrefix| u16::from_be_bytes([p.data[0], p.data[1]]) == Ethertype::IPv6.value();
        for p in affected {
            let now = root.having.contains_key(&p).then(|| matching(&root.having, p));
            let before = root.out.get(&p);
            if now.as_ref() == before {
                continue;
            }
            let key = (CLS_CLASS_BITS + p.bits, ClsKey { class: class.to_be_bytes(), data: p.data });
            let in_hash = p.bits == field_width(0, v6(&p)) || is_any(class);
            let old = if let Some(set) = now {
                pending.push((key, in_hash, set.clone()));
                root.out.insert(p, set)
            } else {
                self.put(key, in_hash, None);
                root.out.remove(&p)
            };
            if let Some(old) = old {
                self.release(1, old);
            }
        }
        for &c in &added {
            if let Some(i) = self.insts[c as usize].as_mut() {
                i.roots += 1;
            }
        }
        root.members = members;
        if !root.members.is_empty() {
            self.roots.insert(class, root);
        }
        removed
    }

    /// Writes (or with `None` removes) one entry, logging the value it replaces.
    fn put(&mut self, key: (u32, ClsKey), in_hash: bool, value: Option<u32>) {
        if in_hash {
            let old = match value {
                Some(v) => self.hash.insert(key.1, v),
                None => self.hash.remove(&key.1),
            };
            self.changes.hash.entry(key.1).or_insert(old);
        } else {
            let old = match value {
                Some(v) => self.entries.insert(key, v),
                None => self.entries.remove(&key),
            };
            self.changes.trie.entry(key).or_insert(old);
        }
    }

    /// A number for the set known by `key`: its number in `prev`, or the one it had when it was
    /// dropped by this update, when that is free; else the next one never given.
    fn number(&mut self, key: u64) -> u32 {
        if let Some(c) = self.prev.get(&key).copied().or_else(|| self.freed.remove(&key))
            && self.used.insert(c)
        {
            return c;
        }
        loop {
            let c = self.next_class;
            self.next_class += 1;
            if self.used.insert(c) {
                return c;
            }
        }
    }

    /// The class of `set` at `level`, built (with everything under it) if no entry leads to it
    /// yet, shared with the sets of the same content; one more entry leads to it now. Returns
    /// the class and its content.
    fn acquire(&mut self, level: usize, set: Vec<Cid>) -> (u32, Content) {
        let k = (level_u8(level), set);
        if let Some(n) = self.nodes.get_mut(&k) {
            n.refs += 1;
            return (n.class, n.content);
        }
        let set = k.1;
        let names = class_key(level - 1, set.iter().map(|&c| (self.inst(c).fc.name.as_str(), self.inst(c).nth)));
        let mut node = Node { class: 0, content: 0, key: 0, refs: 1, children: Vec::new(), idxs: Vec::new() };
        // Its entries (prefix length, data, whether in the hash, class led to); its content and
        // numbering key; a final class's place when all its classifiers have the same.
        let mut edges: Vec<(u32, [u8; CLS_DATA_LEN], bool, u32)> = Vec::new();
        let (any, sig, key, place) = if level == CLS_STAGES {
            node.idxs = set.iter().map(|&c| self.inst(c).idx).collect();
            let first = set.first().map(|&c| self.inst(c).place);
            if let Some(p) = first.filter(|p| set.iter().all(|&c| self.inst(c).place == *p)) {
                (false, Sig::Place(p), place_key(p), Some(p))
            } else {
                (false, Sig::Set(set.clone()), names, None)
            }
        } else {
            let any = level < CLS_STAGES && set.iter().all(|&c| stage_prefixes(level, &self.inst(c).fc).iter().all(|p| p.bits == 0));
            let mut having: BTreeMap<FieldPrefix, BTreeSet<Cid>> = BTreeMap::new();
            for &c in &set {
                for p in stage_prefixes(level, &self.inst(c).fc) {
                    having.entry(p).or_default().insert(c);
                }
            }
            let v6 = set.first().is_some_and(|&c| self.inst(c).fc.ethertype == Ethertype::IPv6);
            let mut sig: Vec<(u32, [u8; CLS_DATA_LEN], bool, Content)> = Vec::new();
            for p in having.keys() {
                let m = matching(&having, *p);
                let (child, child_content) = self.acquire(level + 1, m.clone());
                let in_hash = p.bits == field_width(level, v6) || any;
                edges.push((p.bits, p.data, in_hash, child));
                // A hash entry is its whole key: its length says nothing more.
                sig.push((if in_hash { 0 } else { p.bits }, p.data, in_hash, child_content));
                node.children.push(m);
            }
            (any, Sig::Entries { level: level_u8(level), any, edges: sig }, names, None)
        };
        let content = if let Some(&c) = self.contents.get(&sig) {
            c
        } else {
            self.next_content += 1;
            self.next_content
        };
        node.content = content;
        node.key = key;
        if let Some(sh) = self.shared.get_mut(&content) {
            sh.sets += 1;
            node.class = sh.class;
            self.ids.insert(key, sh.class & !(1 << CLS_ANY_BIT));
            if let Some(u) = sh.union.as_mut() {
                let fin = self.finals.entry(sh.class).or_default();
                for &i in &node.idxs {
                    let n = u.entry(i).or_default();
                    *n += 1;
                    if *n == 1 {
                        fin.insert(i);
                        self.changes.finals.insert(sh.class);
                    }
                }
            }
        } else {
            let n = self.number(key);
            self.ids.insert(key, n);
            let class = if any { n | (1 << CLS_ANY_BIT) } else { n };
            self.contents.insert(sig.clone(), content);
            let mut sh = Shared { sig, class, sets: 1, trie: Vec::new(), hash: Vec::new(), union: None };
            for (bits, data, in_hash, child) in edges {
                let key = (CLS_CLASS_BITS + bits, ClsKey { class: class.to_be_bytes(), data });
                self.put(key, in_hash, Some(child));
                if in_hash {
                    sh.hash.push(key.1);
                } else {
                    sh.trie.push(key);
                }
            }
            if level == CLS_STAGES {
                self.set_final(class, Some(node.idxs.iter().copied().collect()));
                if let Some(p) = place {
                    self.places.insert(class, p);
                    let mut u = BTreeMap::new();
                    for &i in &node.idxs {
                        *u.entry(i).or_default() += 1;
                    }
                    sh.union = Some(u);
                }
            }
            node.class = class;
            self.shared.insert(content, sh);
        }
        let class = node.class;
        self.nodes.insert((level_u8(level), set), node);
        (class, content)
    }

    /// Sets (`Some`) or removes final class `class`'s classifiers, logging it.
    fn set_final(&mut self, class: u32, now: Option<BTreeSet<usize>>) {
        match now {
            Some(s) => self.finals.insert(class, s),
            None => self.finals.remove(&class),
        };
        self.changes.finals.insert(class);
    }

    /// One entry less leads to `set` at `level`: with none left it goes, and what only it led
    /// to; its class goes, entries and all, with the last set sharing it.
    fn release(&mut self, level: usize, set: Vec<Cid>) {
        let k = (level_u8(level), set);
        let Some(n) = self.nodes.get_mut(&k) else { return };
        n.refs -= 1;
        if n.refs > 0 {
            return;
        }
        let Some(node) = self.nodes.remove(&k) else { return };
        let last = match self.shared.get_mut(&node.content) {
            Some(sh) => {
                sh.sets -= 1;
                if let Some(u) = sh.union.as_mut() {
                    for i in &node.idxs {
                        if let Some(c) = u.get_mut(i) {
                            *c -= 1;
                            if *c == 0 {
                                u.remove(i);
                                if let Some(fin) = self.finals.get_mut(&sh.class) {
                                    fin.remove(i);
                                }
                                self.changes.finals.insert(sh.class);
                            }
                        }
                    }
                }
                sh.sets == 0
            }
            None => false,
        };
        if last && let Some(sh) = self.shared.remove(&node.content) {
            self.contents.remove(&sh.sig);
            for key in sh.trie {
                self.put(key, false, None);
            }
            for key in sh.hash {
                self.put((0, key), true, None);
            }
            if level == CLS_STAGES {
                self.set_final(sh.class, None);
                self.places.remove(&sh.class);
            }
            self.used.remove(&(sh.class & !(1 << CLS_ANY_BIT)));
        }
        // The set's number, for a set built again under its key in this update (while another
        // set still has the class, `number` passes it over: it is in use).
        let n = node.class & !(1 << CLS_ANY_BIT);
        if self.ids.get(&node.key) == Some(&n) {
            self.ids.remove(&node.key);
        }
        self.freed.insert(node.key, n);
        for child in node.children {
            self.release(level + 1, child);
        }
    }
}

fn level_u8(level: usize) -> u8 {
    u8::try_from(level).unwrap_or(u8::MAX)
}

/// The members of `having` whose prefix contains `p` (`p` cut to each length up to its own).
fn matching(having: &BTreeMap<FieldPrefix, BTreeSet<Cid>>, p: FieldPrefix) -> Vec<Cid> {
    let mut out: Vec<Cid> = (0..=p.bits).filter_map(|bits| having.get(&FieldPrefix { data: mask(p.data, bits), bits })).flatten().copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// `data` with every bit from `bits` on set: the last value a prefix of that length covers.
fn fill(mut data: [u8; sfc_common::maps::CLS_DATA_LEN], bits: u32) -> [u8; sfc_common::maps::CLS_DATA_LEN] {
    for (i, b) in data.iter_mut().enumerate() {
        let keep = bits.saturating_sub(u32::try_from(i).unwrap_or(u32::MAX).saturating_mul(8)).min(8);
        *b |= if keep >= 8 { 0 } else { 0xffu8 >> keep };
    }
    data
}

/// What `old` has that `new` has not, and what `new` has that `old` has not (both sorted).
fn sorted_diff(old: &[Cid], new: &[Cid]) -> (Vec<Cid>, Vec<Cid>) {
    let (mut gone, mut came) = (Vec::new(), Vec::new());
    let (mut o, mut n) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (o.peek(), n.peek()) {
            (Some(x), Some(y)) if x == y => {
                o.next();
                n.next();
            }
            (Some(x), Some(y)) if x < y => gone.extend(o.next()),
            (Some(_) | None, Some(_)) => came.extend(n.next()),
            (Some(_), None) => gone.extend(o.next()),
            (None, None) => break,
        }
    }
    (gone, came)
}

mod kept;
pub use kept::{Kept, Log};
pub(in crate::compile) use kept::ResFrom;
