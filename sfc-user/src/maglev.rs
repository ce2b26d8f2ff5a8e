//! Weighted Maglev consistent hashing (Eisenbud et al., NSDI'16; weights as in katran's
//! `MaglevHashV2`). Each member walks its own permutation of the table and claims free buckets, a
//! member with weight w taking w turns for every `max_weight` turns of the heaviest.
//!
//! Properties (measured in `tests/maglev_props.rs`, table of 1021 buckets):
//! - balance: a member's share of the buckets is within one bucket of its weight share (each gets
//!   its quota, the weighted share rounded by largest remainders);
//! - disruption: removing one member reassigns its own buckets plus a few percent of the others'
//!   (Maglev is near-minimal, not minimal: the freed turns shift later claims);
//! - determinism: the table depends on the members' names, weights and ids only, not on the order
//!   they are listed in (they are sorted by name first), nor on the platform or the run.

/// 64-bit FNV-1a with a seed folded in first: stable across runs, platforms and versions (a change
/// here would move flows on upgrade).
fn hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One member of a group: its id (the value stored in the table), name and weight (0 counts as 1).
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub id: u32,
    pub name: &'a str,
    pub weight: u32,
}

/// Builds a table of `size` buckets, each holding a member id. `size` should be a prime (then
/// every permutation visits every bucket); other sizes still give a full table. Empty when there
/// are no members or no buckets.
pub fn table(members: &[Member<'_>], size: u32) -> Vec<u32> {
    if members.is_empty() || size == 0 {
        return Vec::new();
    }
    // Claim order must not depend on the order members were listed in.
    let mut members: Vec<&Member<'_>> = members.iter().collect();
    members.sort_by(|a, b| a.name.cmp(b.name).then(a.id.cmp(&b.id)));
    let m = u64::from(size);
    let perms: Vec<(u64, u64)> = members
        .iter()
        .map(|mb| {
            let offset = hash(0x5fc, mb.name.as_bytes()) % m;
            let skip = hash(0xa11ce, mb.name.as_bytes()) % (m - 1).max(1) + 1;
            (offset, skip)
        })
        .collect();
    let max_weight = members.iter().map(|mb| u64::from(mb.weight.max(1))).max().unwrap_or(1);
    let quota = quotas(&members, m);
    let mut next = vec![0u64; members.len()];
    let mut credit = vec![0u64; members.len()];
    let mut claimed = vec![0u64; members.len()];
    let mut entry: Vec<Option<u32>> = vec![None; size as usize];
    let mut filled = 0u32;
    loop {
        for (i, mb) in members.iter().enumerate() {
            // A member that has its share stops claiming: the turns it would take at the end
            // of the fill (where the weighted round-robin's rounding piles up) go to the others.
            if claimed[i] >= quota[i] {
                continue;
            }
            credit[i] += u64::from(mb.weight.max(1));
            if credit[i] < max_weight {
                continue;
            }
            credit[i] -= max_weight;
            claimed[i] += 1;
            let (offset, skip) = perms[i];
            let slot = claim(&entry, offset, skip, &mut next[i]);
            entry[slot] = Some(mb.id);
            filled += 1;
            if filled == size {
                return entry.into_iter().map(|e| e.unwrap_or(mb.id)).collect();
            }
        }
    }
}

/// Each member's share of `size` buckets, proportional to its weight (largest remainders get
/// the buckets left after rounding down; ties to the member listed first). Sums to `size`.
fn quotas(members: &[&Member<'_>], size: u64) -> Vec<u64> {
    let weights: Vec<u64> = members.iter().map(|mb| u64::from(mb.weight.max(1))).collect();
    let total: u64 = weights.iter().sum::<u64>().max(1);
    let mut quota: Vec<u64> = weights.iter().map(|w| w * size / total).collect();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(weights[i] * size % total));
    let left = size - quota.iter().sum::<u64>();
    for &i in by_remainder.iter().take(usize::try_from(left).unwrap_or(usize::MAX)) {
        quota[i] += 1;
    }
    quota
}

/// The next free bucket on a member's permutation (`offset + k * skip`), advancing `next` past
/// it. With a prime size the walk finds one within `size` steps; otherwise it may cycle, and the
/// first free bucket after its last position is taken instead. There is always one: the caller
/// stops when the table is full.
fn claim(entry: &[Option<u32>], offset: u64, skip: u64, next: &mut u64) -> usize {
    let m = entry.len() as u64;
    let mut c = 0;
    for _ in 0..m {
        // `next % m` keeps the product below 2^64 for any table size.
        c = (offset + (*next % m) * skip) % m;
        *next += 1;
        if entry[usize::try_from(c).unwrap_or(0)].is_none() {
            return usize::try_from(c).unwrap_or(0);
        }
    }
    let start = usize::try_from(c).unwrap_or(0);
    (0..entry.len()).map(|k| (start + k) % entry.len()).find(|&i| entry[i].is_none()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(specs: &[(&'static str, u32)]) -> Vec<Member<'static>> {
        specs.iter().enumerate().map(|(i, (n, w))| Member { id: u32::try_from(i).unwrap(), name: n, weight: *w }).collect()
    }

    fn count(t: &[u32], id: u32) -> usize {
        t.iter().filter(|x| **x == id).count()
    }

    #[test]
    fn empty_inputs_give_an_empty_table() {
        assert!(table(&[], 1021).is_empty());
        assert!(table(&members(&[("a", 1)]), 0).is_empty());
    }

    #[test]
    fn one_member_owns_everything() {
        let t = table(&members(&[("only", 5)]), 1021);
        assert_eq!((t.len(), count(&t, 0)), (1021, 1021));
    }

    #[test]
    fn equal_weights_split_evenly() {
        let t = table(&members(&[("a", 1), ("b", 1), ("c", 1)]), 1021);
        for id in 0..3 {
            assert!((340..=341).contains(&count(&t, id)), "{id}: {}", count(&t, id));
        }
    }

    #[test]
    fn weights_are_honoured() {
        let t = table(&members(&[("light", 1), ("heavy", 3)]), 1021);
        // 1021 / 4 = 255.25
        assert!((254..=257).contains(&count(&t, 0)), "{}", count(&t, 0));
        assert_eq!(count(&t, 0) + count(&t, 1), 1021);
    }

    #[test]
    fn non_prime_sizes_still_fill_the_table() {
        for size in [1, 2, 4, 100, 1024] {
            let t = table(&members(&[("a", 1), ("b", 2), ("c", 1)]), size);
            assert_eq!(t.len(), size as usize);
            assert!(t.iter().all(|x| *x < 3));
        }
    }

    #[test]
    fn listing_order_does_not_matter() {
        let a = [Member { id: 7, name: "x", weight: 2 }, Member { id: 9, name: "y", weight: 1 }];
        let b = [a[1].clone(), a[0].clone()];
        assert_eq!(table(&a, 1021), table(&b, 1021));
    }

    #[test]
    fn zero_weight_counts_as_one() {
        assert_eq!(table(&members(&[("a", 0), ("b", 1)]), 101), table(&members(&[("a", 1), ("b", 1)]), 101));
    }
}
