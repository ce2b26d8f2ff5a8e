//! What changes between two compiled states, map by map: the keys to add, the keys whose value
//! changes (with the old and the new value) and the keys to remove. Pure. The loader writes from
//! it: `datapath::maps::Maps::write` reads the maps' two banks back in `Compiled`'s shape, writes
//! the diff from the inactive bank to the new state, and reports the diff from the live one.

use std::collections::{BTreeMap, BTreeSet};

use sfc_common::maps::{ChainEntry, ClsKey, ClsResult, GroupEntry, IfaceEntry, PortPairEntry};

use super::{Compiled, LbKey};

/// The changes to one map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDiff<K, V> {
    pub added: BTreeMap<K, V>,
    /// key -> (old value, new value).
    pub changed: BTreeMap<K, (V, V)>,
    /// key -> the value it had.
    pub removed: BTreeMap<K, V>,
}

impl<K, V> Default for MapDiff<K, V> {
    fn default() -> Self {
        Self { added: BTreeMap::new(), changed: BTreeMap::new(), removed: BTreeMap::new() }
    }
}

impl<K: Ord + Clone, V: PartialEq + Clone> MapDiff<K, V> {
    /// Compares two maps.
    pub fn between(old: &BTreeMap<K, V>, new: &BTreeMap<K, V>) -> Self {
        let mut d = Self::default();
        for (k, v) in new {
            match old.get(k) {
                None => {
                    d.added.insert(k.clone(), v.clone());
                }
                Some(o) if o != v => {
                    d.changed.insert(k.clone(), (o.clone(), v.clone()));
                }
                Some(_) => {}
            }
        }
        for (k, v) in old {
            if !new.contains_key(k) {
                d.removed.insert(k.clone(), v.clone());
            }
        }
        d
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// Entries touched: added + changed + removed.
    pub fn len(&self) -> usize {
        self.added.len() + self.changed.len() + self.removed.len()
    }

    /// Applies the diff to `map` (which should be the old state): afterwards it equals the new one.
    pub fn apply(&self, map: &mut BTreeMap<K, V>) {
        for k in self.removed.keys() {
            map.remove(k);
        }
        for (k, (_, v)) in &self.changed {
            map.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.added {
            map.insert(k.clone(), v.clone());
        }
    }
}

/// The changes between two compiled states, per map (named as in `Compiled`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub ifaces: MapDiff<u32, IfaceEntry>,
    pub cls: MapDiff<(u32, ClsKey), u32>,
    pub cls_hash: MapDiff<ClsKey, u32>,
    pub cls_res: MapDiff<u32, ClsResult>,
    pub chains: MapDiff<u32, ChainEntry>,
    pub groups: MapDiff<u32, GroupEntry>,
    pub lb: MapDiff<LbKey, u32>,
    pub port_pairs: MapDiff<u32, PortPairEntry>,
    /// Interfaces the program must be attached to / detached from.
    pub attach: BTreeSet<u32>,
    pub detach: BTreeSet<u32>,
}

/// Totals over every map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.counts() == Counts::default() && self.attach.is_empty() && self.detach.is_empty()
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        let mut add = |a: usize, ch: usize, r: usize| {
            c.added += a;
            c.changed += ch;
            c.removed += r;
        };
        macro_rules! count {
            ($($m:ident),*) => { $( add(self.$m.added.len(), self.$m.changed.len(), self.$m.removed.len()); )* };
        }
        count!(ifaces, cls, cls_hash, cls_res, chains, groups, lb, port_pairs);
        c
    }

    /// Chains whose entry, classifier results or group tables changed: the flows that may need
    /// re-resolving. A chain is listed when its `ChainEntry` changed, when a classifier result
    /// that leads into it (before or after) changed, or when one of its groups changed.
    pub fn chains_touched(&self, old: &Compiled, new: &Compiled) -> BTreeSet<u32> {
        let mut out: BTreeSet<u32> = self.chains.added.keys().chain(self.chains.changed.keys()).chain(self.chains.removed.keys()).copied().collect();
        let res = self.cls_res.added.values().chain(self.cls_res.removed.values()).chain(self.cls_res.changed.values().flat_map(|(a, b)| [a, b]));
        out.extend(res.map(|r| r.chain_id));
        let groups: BTreeSet<u32> = self
            .groups
            .added
            .keys()
            .chain(self.groups.changed.keys())
            .chain(self.groups.removed.keys())
            .chain(self.lb.added.keys().chain(self.lb.changed.keys()).chain(self.lb.removed.keys()).map(|k| &k.group))
            .copied()
            .collect();
        for state in [old, new] {
            for (id, ch) in &state.chains {
                let hops = (ch.n_hops as usize).min(ch.groups.len());
                if ch.groups[..hops].iter().any(|g| groups.contains(g)) {
                    out.insert(*id);
                }
            }
        }
        out
    }
}

/// Compares two compiled states. `diff(a, a)` is empty; applying `diff(a, b)` to `a` gives `b`.
pub fn diff(old: &Compiled, new: &Compiled) -> Diff {
    Diff {
        cls: MapDiff::between(&old.cls, &new.cls),
        cls_hash: MapDiff::between(&old.cls_hash, &new.cls_hash),
        cls_res: MapDiff::between(&old.cls_res, &new.cls_res),
        attach: new.attach.difference(&old.attach).copied().collect(),
        detach: old.attach.difference(&new.attach).copied().collect(),
        ..small_diff(old, new)
    }
}

/// `diff` of the maps that hold a few entries per chain, group, member or interface (not the
/// classifier tables, which may hold hundreds of thousands): `warm` compares these whole and
/// takes the classifier tables' changes from the compiler's log.
pub fn small_diff(old: &Compiled, new: &Compiled) -> Diff {
    Diff {
        ifaces: MapDiff::between(&old.ifaces, &new.ifaces),
        chains: MapDiff::between(&old.chains, &new.chains),
        groups: MapDiff::between(&old.groups, &new.groups),
        lb: MapDiff::between(&old.lb, &new.lb),
        port_pairs: MapDiff::between(&old.port_pairs, &new.port_pairs),
        ..Diff::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_diff_sorts_keys_into_added_changed_removed() {
        let old = BTreeMap::from([(1, "a"), (2, "b"), (3, "c")]);
        let new = BTreeMap::from([(2, "b"), (3, "C"), (4, "d")]);
        let d = MapDiff::between(&old, &new);
        assert_eq!(d.added, BTreeMap::from([(4, "d")]));
        assert_eq!(d.changed, BTreeMap::from([(3, ("c", "C"))]));
        assert_eq!(d.removed, BTreeMap::from([(1, "a")]));
        assert_eq!(d.len(), 3);
        let mut m = old.clone();
        d.apply(&mut m);
        assert_eq!(m, new);
        assert!(MapDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn identical_states_have_an_empty_diff() {
        let mut c = Compiled::default();
        c.chains.insert(1, ChainEntry { n_hops: 1, ..ChainEntry::default() });
        c.attach.insert(3);
        assert!(diff(&c, &c).is_empty());
        let d = diff(&Compiled::default(), &c);
        assert_eq!(d.counts(), Counts { added: 1, changed: 0, removed: 0 });
        assert_eq!((d.attach.len(), d.detach.len()), (1, 0));
        assert_eq!(d.chains_touched(&Compiled::default(), &c), BTreeSet::from([1]));
    }
}
