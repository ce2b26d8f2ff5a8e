//! Weighted Maglev consistent hashing (Eisenbud et al., NSDI'16; weights as in katran's
//! MaglevHashV2). Each member walks its own permutation of the table and claims free buckets, a
//! member with weight w taking w turns for every `max_weight` turns of the heaviest. Positions
//! depend only on the member's name, so adding or removing one member moves few flows.

/// FNV-1a, 64 bit, with a seed folded in first: stable across runs, platforms and versions.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One member of a group: its id (the value stored in the table), name and weight (>= 1).
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub id: u32,
    pub name: &'a str,
    pub weight: u32,
}

/// Builds a table of `size` buckets (a prime). Empty when there are no members.
pub fn table(members: &[Member<'_>], size: u32) -> Vec<u32> {
    if members.is_empty() || size == 0 {
        return Vec::new();
    }
    let m = u64::from(size);
    let perms: Vec<(u64, u64)> = members
        .iter()
        .map(|mb| {
            let offset = fnv1a(0x5fc, mb.name.as_bytes()) % m;
            let skip = fnv1a(0xa11ce, mb.name.as_bytes()) % (m - 1).max(1) + 1;
            (offset, skip)
        })
        .collect();
    let max_weight = members.iter().map(|mb| mb.weight.max(1)).max().unwrap_or(1);
    let mut next = vec![0u64; members.len()];
    let mut credit = vec![0u32; members.len()];
    let mut entry: Vec<Option<u32>> = vec![None; size as usize];
    let mut filled = 0u32;
    'outer: loop {
        for (i, mb) in members.iter().enumerate() {
            credit[i] += mb.weight.max(1);
            if credit[i] < max_weight {
                continue;
            }
            credit[i] -= max_weight;
            let (offset, skip) = perms[i];
            let mut c = (offset + next[i] * skip) % m;
            while entry[usize::try_from(c).unwrap_or(0)].is_some() {
                next[i] += 1;
                c = (offset + next[i] * skip) % m;
            }
            entry[usize::try_from(c).unwrap_or(0)] = Some(mb.id);
            next[i] += 1;
            filled += 1;
            if filled == size {
                break 'outer;
            }
        }
    }
    entry.into_iter().map(|e| e.unwrap_or(members[0].id)).collect()
}
