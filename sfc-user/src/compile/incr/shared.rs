//! Classes shared by the sets of classifiers that behave the same (see the module's notes):
//! building a set's class, or joining the class of its content, and letting it go.

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::maps::{CLS_ANY_BIT, CLS_CLASS_BITS, CLS_DATA_LEN, CLS_STAGES, ClsKey};

use super::{Cid, Having, Incremental, Node, level_u8};
use crate::{
    compile::cls::{Place, class_key, field_width, place_key, stage_prefixes},
    model::Ethertype,
};

/// What a class does, exactly (interned: `Incremental::contents`): two sets with one content
/// behave the same, and share a class.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) enum Sig {
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
pub(super) type Content = u64;

/// A class and the entries it owns, shared by every set with its content.
pub(super) struct Shared {
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

impl Incremental {
    /// The class of `set` at `level`, built (with everything under it) if no entry leads to it
    /// yet, shared with the sets of the same content; one more entry leads to it now. Returns
    /// the class and its content.
    pub(super) fn acquire(&mut self, level: usize, set: Vec<Cid>) -> (u32, Content) {
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
            let mut having = Having::default();
            for &c in &set {
                for p in stage_prefixes(level, &self.inst(c).fc) {
                    having.insert(p, c);
                }
            }
            let v6 = set.first().is_some_and(|&c| self.inst(c).fc.ethertype == Ethertype::IPv6);
            let mut sig: Vec<(u32, [u8; CLS_DATA_LEN], bool, Content)> = Vec::new();
            for p in having.prefixes() {
                let m = having.matching(*p);
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
    pub(super) fn release(&mut self, level: usize, set: Vec<Cid>) {
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
        // set still has the class, `number` passes it over: it is in use). A one-place final
        // class's key is its place's, which the other sets of that place still have.
        let n = node.class & !(1 << CLS_ANY_BIT);
        let key_in_use = !last && level == CLS_STAGES && self.places.contains_key(&node.class);
        if !key_in_use && self.ids.get(&node.key) == Some(&n) {
            self.ids.remove(&node.key);
        }
        self.freed.insert(node.key, n);
        for child in node.children {
            self.release(level + 1, child);
        }
    }
}
