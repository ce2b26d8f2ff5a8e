//! The classifiers under each prefix of one stage, with the prefix lengths in use: the members
//! a prefix's entry leads to are those of every prefix containing it, and only the lengths in
//! use can hold one (a root of 100,000 host classifiers has one length, not 33 to look up for
//! each of its 100,000 prefixes).

use std::collections::{BTreeMap, BTreeSet};

use super::Cid;
use crate::compile::cls::{FieldPrefix, mask};

#[derive(Default)]
pub(super) struct Having {
    by_prefix: BTreeMap<FieldPrefix, BTreeSet<Cid>>,
    /// Prefix length -> how many prefixes of `by_prefix` have it.
    lengths: BTreeMap<u32, usize>,
}

impl Having {
    pub fn insert(&mut self, p: FieldPrefix, c: Cid) {
        let set = self.by_prefix.entry(p).or_insert_with(|| {
            *self.lengths.entry(p.bits).or_default() += 1;
            BTreeSet::new()
        });
        set.insert(c);
    }

    pub fn remove(&mut self, p: &FieldPrefix, c: Cid) {
        let Some(s) = self.by_prefix.get_mut(p) else { return };
        s.remove(&c);
        if s.is_empty() {
            self.by_prefix.remove(p);
            if let Some(n) = self.lengths.get_mut(&p.bits) {
                *n -= 1;
                if *n == 0 {
                    self.lengths.remove(&p.bits);
                }
            }
        }
    }

    pub fn contains(&self, p: &FieldPrefix) -> bool {
        self.by_prefix.contains_key(p)
    }

    pub fn prefixes(&self) -> impl Iterator<Item = &FieldPrefix> {
        self.by_prefix.keys()
    }

    /// The prefixes from `lo` to `hi` in prefix order.
    pub fn range(&self, lo: FieldPrefix, hi: FieldPrefix) -> impl Iterator<Item = &FieldPrefix> {
        self.by_prefix.range(lo..=hi).map(|(p, _)| p)
    }

    /// The members whose prefix contains `p` (`p` cut to each length in use up to its own),
    /// sorted, without duplicates.
    pub fn matching(&self, p: FieldPrefix) -> Vec<Cid> {
        let mut out: Vec<Cid> =
            self.lengths.range(..=p.bits).filter_map(|(&bits, _)| self.by_prefix.get(&FieldPrefix { data: mask(p.data, bits), bits })).flatten().copied().collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfc_common::maps::CLS_DATA_LEN;

    fn pfx(first: u8, bits: u32) -> FieldPrefix {
        let mut data = [0u8; CLS_DATA_LEN];
        data[0] = first;
        FieldPrefix { data: mask(data, bits), bits }
    }

    /// Against the definition (every length from 0 up), as members come and go: a length left
    /// with no prefix is no longer looked up, and one that comes back is.
    #[test]
    fn matching_is_every_containing_prefix() {
        let mut h = Having::default();
        let naive = |h: &Having, p: FieldPrefix| {
            let mut v: Vec<Cid> = (0..=p.bits).filter_map(|b| h.by_prefix.get(&FieldPrefix { data: mask(p.data, b), bits: b })).flatten().copied().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let steps: [(bool, u8, u32, Cid); 9] =
            [(true, 0b1010_0000, 3, 1), (true, 0b1010_1100, 6, 2), (true, 0, 0, 3), (true, 0b1010_1100, 6, 4), (false, 0, 0, 3), (true, 0b1011_0000, 4, 5), (false, 0b1010_0000, 3, 1), (true, 0b1000_0000, 1, 6), (false, 0b1010_1100, 6, 2)];
        for (add, first, bits, c) in steps {
            if add {
                h.insert(pfx(first, bits), c);
            } else {
                h.remove(&pfx(first, bits), c);
            }
            for probe in [pfx(0b1010_1100, 8), pfx(0b1011_0000, 4), pfx(0b1010_0000, 3), pfx(0, 0), pfx(0b1111_1111, 8)] {
                assert_eq!(h.matching(probe), naive(&h, probe), "after {:?}, probe {probe:?}", (add, first, bits, c));
            }
        }
        assert_eq!(h.lengths.keys().copied().collect::<Vec<_>>(), vec![1, 4, 6], "lengths in use");
        assert_eq!(h.matching(pfx(0b1010_1100, 8)), vec![4, 6]);
    }
}
