//! What a process that applies more than once keeps between compiles: the classifier compiler
//! (`Incremental`), the final classes' results, and the log of the last compile's writes.

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::maps::{CLS_CLASSIFIER_SHARED, ClsKey, ClsResult};

use super::Incremental;
use crate::compile::cls::{ClassIds, ClsEntries, ClsHash, Place};
use crate::model::FlowClassifier;

/// What a compile keeps for the next one in the same process (`compile::compile_kept`): the
/// classifier compiler, the final classes' results and what they were computed from, and the
/// writes of the last compile.
pub struct Kept {
    pub(in crate::compile) cls: Incremental,
    pub(in crate::compile) res: BTreeMap<u32, ClsResult>,
    pub(in crate::compile) res_from: Option<ResFrom>,
    /// The writes of the last compile.
    pub log: Log,
}

/// Everything a final class's result depends on besides its set: the chains (which chain a
/// classifier is in, its graph), the groups (NAT), the interfaces, the number of classifiers
/// (translated copies are numbered after them).
#[derive(PartialEq)]
pub(in crate::compile) struct ResFrom {
    pub(in crate::compile) chains: Vec<crate::model::PortChain>,
    pub(in crate::compile) groups: Vec<crate::model::PortPairGroup>,
    pub(in crate::compile) facts: BTreeMap<String, crate::compile::IfaceFacts>,
    pub(in crate::compile) n: usize,
}

/// Keys written by a compile, with the value each had before (`None`: absent).
#[derive(Debug, Default, Clone)]
pub struct Log {
    pub trie: BTreeMap<(u32, ClsKey), Option<u32>>,
    pub hash: BTreeMap<ClsKey, Option<u32>>,
    pub res: BTreeMap<u32, Option<ClsResult>>,
    /// The tables were built anew (their classes ran out): the log does not say what changed,
    /// compare them whole.
    pub whole: bool,
}

impl Kept {
    /// Nothing compiled yet; sets `prev` knows get its numbers.
    pub fn new(prev: &ClassIds) -> Self {
        Kept { cls: Incremental::new(prev), res: BTreeMap::new(), res_from: None, log: Log::default() }
    }

    /// The tables as the last compile left them (between compiles: not while lent).
    pub fn tables(&self) -> (&ClsEntries, &ClsHash, &BTreeMap<u32, ClsResult>) {
        (&self.cls.entries, &self.cls.hash, &self.res)
    }

    /// Gives back the classes `restore` left with the caller (the state's writer had them).
    pub fn give_ids(&mut self, ids: ClassIds) {
        self.cls.ids = ids;
    }

    /// Takes back the tables a compile lent `c` (`Compiled::cls`, `cls_hash`, `cls_res`,
    /// `class_ids`), for the next compile to update.
    pub fn restore(&mut self, c: &mut crate::compile::Compiled) {
        self.cls.entries = std::mem::take(&mut c.cls);
        self.cls.hash = std::mem::take(&mut c.cls_hash);
        self.res = std::mem::take(&mut c.cls_res);
        self.cls.ids = std::mem::take(&mut c.class_ids);
    }

    /// The classes of the live sets (numbering key -> class, `cls::ClassIds`), taken out: the
    /// caller gives them back with `give_ids` before the next compile.
    pub fn take_ids(&mut self) -> ClassIds {
        std::mem::take(&mut self.cls.ids)
    }

    /// Updates the tables to `in_use` (as `cls::compile_stable` takes them) and the results of
    /// the final classes built, dropped or whose classifiers changed, or of all of them when
    /// what they are computed from changed (`from`); `place` says where a classifier leads, `original` which model
    /// classifier it is (a NAT-ing group's translated copy is its original's), `result` computes
    /// the result of a set of classifiers. Logs what it wrote (`log`).
    pub(in crate::compile) fn update(
        &mut self,
        in_use: &[(usize, &FlowClassifier, u32)],
        from: ResFrom,
        place: &dyn Fn(usize) -> Place,
        original: &dyn Fn(usize) -> usize,
        mut result: impl FnMut(&BTreeSet<usize>) -> Option<ClsResult>,
    ) {
        self.cls.update(in_use, place);
        let mut whole = false;
        if self.cls.exhausted() {
            self.cls = Incremental::new(&ClassIds::new());
            self.cls.update(in_use, place);
            whole = true;
        }
        let changes = self.cls.take_changes();
        self.log = Log { trie: changes.trie, hash: changes.hash, res: BTreeMap::new(), whole };
        let redo: Vec<u32> = if self.res_from.as_ref() == Some(&from) && !whole {
            changes.finals.into_iter().collect()
        } else {
            self.res.keys().chain(self.cls.finals.keys()).copied().collect::<BTreeSet<u32>>().into_iter().collect()
        };
        let new: Vec<(u32, Option<ClsResult>)> = redo.into_iter().map(|c| (c, self.final_result(c, original, &mut result))).collect();
        for (c, r) in new {
            self.set_res(c, r);
        }
        self.res_from = Some(from);
    }

    /// The result of final class `c`: its set's; for a class of one place that more than one
    /// model classifier leads to, that place with no classifier named (`CLS_CLASSIFIER_SHARED`).
    fn final_result(&self, c: u32, original: &dyn Fn(usize) -> usize, result: &mut impl FnMut(&BTreeSet<usize>) -> Option<ClsResult>) -> Option<ClsResult> {
        let set = self.cls.finals.get(&c)?;
        let several = || set.iter().any(|&i| set.first().is_some_and(|&f| original(i) != original(f)));
        match self.cls.places.get(&c) {
            Some(None) => None,
            Some(Some([chain_id, dst_ifindex, src_ifindex])) if several() => {
                Some(ClsResult { chain_id: *chain_id, classifier: CLS_CLASSIFIER_SHARED, dst_ifindex: *dst_ifindex, src_ifindex: *src_ifindex })
            }
            _ => result(set),
        }
    }

    /// Lends the tables to `c` (`restore` takes them back).
    pub(in crate::compile) fn lend(&mut self, c: &mut crate::compile::Compiled) {
        c.cls = std::mem::take(&mut self.cls.entries);
        c.cls_hash = std::mem::take(&mut self.cls.hash);
        c.cls_res = std::mem::take(&mut self.res);
        c.class_ids = std::mem::take(&mut self.cls.ids);
    }

    /// Sets (`Some`) or removes the result of final class `class`, logging the old one.
    fn set_res(&mut self, class: u32, r: Option<ClsResult>) {
        let old = match r {
            Some(r) => self.res.insert(class, r),
            None => self.res.remove(&class),
        };
        self.log.res.entry(class).or_insert(old);
    }
}
