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

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use sfc_common::maps::{CLASS_BASE, CLS_CLASS_BITS, CLS_STAGES, ClsKey};

use super::cls::{CLASS_LIMIT, ClassIds, ClsEntries, ClsHash, FieldPrefix, Place, field_width, is_any, mask, stage_prefixes};
use crate::model::{Ethertype, FlowClassifier};

/// A classifier as the compiler knows it: its position in the input and its fields.
type Cid = u32;

/// Up to this many new classifiers' names, `number_fresh` compares names rather than hashing.
const FEW_NAMES: usize = 8;

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
    having: Having,
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
        // A new host classifier brings one set per level (before sharing; a classifier over
        // others' prefixes brings more, and the map grows as before): room for them at once,
        // not by doubling (rehashing every set's key each time, about 50 ms of a from-scratch
        // compile of 100,000).
        self.nodes.reserve(fresh.len().saturating_mul(CLS_STAGES));
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
            // In order but for the few new instances (a classifier that changed gets a number
            // freed by an earlier update, or the next one): the stable sort merges the runs it
            // finds, where the unstable one sorted 100,000 members whole.
            #[expect(clippy::stable_sort_primitive, reason = "the stable sort merges the runs; here it is the faster")]
            members.sort();
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
        // Every classifier is asked about, at every update: a few names (the usual edit) are
        // compared one by one, which is cheaper than hashing each classifier's name.
        let few: Vec<&str> = if names.len() <= FEW_NAMES { names.iter().copied().collect() } else { Vec::new() };
        let is_fresh = |name: &str| if few.is_empty() { names.contains(name) } else { few.contains(&name) };
        let mut under: HashMap<&str, BTreeSet<usize>> = HashMap::new();
        for (idx, fc, _) in classifiers {
            if is_fresh(fc.name.as_str()) {
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
                root.having.remove(&p, c);
                touched.insert(p);
            }
        }
        for &c in &added {
            for p in stage_prefixes(0, &self.inst(c).fc) {
                root.having.insert(p, c);
                touched.insert(p);
            }
        }
        // Every entry whose prefix lies inside a touched one may lead elsewhere now.
        let mut affected: BTreeSet<FieldPrefix> = BTreeSet::new();
        for q in &touched {
            let lo = FieldPrefix { data: q.data, bits: 0 };
            let hi = FieldPrefix { data: fill(q.data, q.bits), bits: u32::MAX };
            affected.extend(root.having.range(lo, hi).copied().filter(|p| p.bits >= q.bits && mask(p.data, q.bits) == q.data));
            affected.insert(*q);
        }
        let v6 = |p: &FieldPrefix| u16::from_be_bytes([p.data[0], p.data[1]]) == Ethertype::IPv6.value();
        for p in affected {
            let now = root.having.contains(&p).then(|| root.having.matching(p));
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

}

fn level_u8(level: usize) -> u8 {
    u8::try_from(level).unwrap_or(u8::MAX)
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

mod having;
mod kept;
mod shared;
use having::Having;
pub use kept::{Kept, Log};
use shared::{Content, Shared, Sig};
pub(in crate::compile) use kept::ResFrom;
