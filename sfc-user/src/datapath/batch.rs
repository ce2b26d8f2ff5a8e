//! Reading a whole hash map or array with `BPF_MAP_LOOKUP_BATCH`: thousands of entries per system
//! call, where aya 0.14 (no batch calls) walks the map with two calls per entry (the next key,
//! then its value). A one-shot apply at 100,000 classifiers reads both banks of the classifier
//! hash back, 200,000 entries: about 0.4 s entry by entry; every apply reads the port pairs'
//! array (4,096 slots): 3-4 ms slot by slot.
//!
//! Hand-written against the kernel's `union bpf_attr` (its `batch` member) because neither aya
//! nor rustix has the call. Kernels without it for a map type answer EINVAL or ENOTSUPP; the
//! batch call also takes the buckets' locks, which the walk does not, and may fail on them
//! (EBUSY). On any of those the caller walks the map as before (`None`), and reports what the
//! walk finds.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{Pod, maps::IterableMap};

/// `BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_UPDATE_BATCH`, `BPF_MAP_DELETE_BATCH` (`enum bpf_cmd`).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
/// Entries asked for per call, to start with (doubled when a bucket holds more: ENOSPC).
const FIRST_COUNT: u32 = 4096;
const MAX_COUNT: u32 = 1 << 20;

/// The `batch` member of `union bpf_attr` (`include/uapi/linux/bpf.h`); the kernel reads
/// `size_of` bytes of it.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}
const _: () = assert!(size_of::<BatchAttr>() == 56);

/// Every entry of `map` (a hash map, or an array: its index is the key), in as many calls as it
/// takes; `None` when the batch calls do not serve (this kernel has none for the map's type, or
/// one failed): walk the map instead.
pub(super) fn read_all<K: Pod, V: Pod>(map: &impl IterableMap<K, V>) -> Option<Vec<(K, V)>> {
    let fd = map.map().fd().as_fd().as_raw_fd();
    let map_fd = u32::try_from(fd).ok()?;
    let mut out = Vec::new();
    let mut count = FIRST_COUNT;
    // The position the kernel hands back (a bucket number for hash maps; 8 bytes is room for
    // it).
    let mut at = 0u64;
    let mut first = true;
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    loop {
        let len = count as usize;
        keys.resize(len * size_of::<K>(), 0u8);
        values.resize(len * size_of::<V>(), 0u8);
        let mut next = 0u64;
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { std::ptr::from_ref(&at) as u64 },
            out_batch: std::ptr::from_mut(&mut next) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count,
            map_fd,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is the kernel's batch layout; the buffers it points to hold `count`
        // keys and values of the map's sizes (aya checked `K` and `V` against them when it
        // typed the map) and `next` holds the position; all outlive the call.
        let r = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_LOOKUP_BATCH, std::ptr::from_mut(&mut attr), size_of::<BatchAttr>()) };
        let err = (r < 0).then(io::Error::last_os_error);
        match err.as_ref().and_then(io::Error::raw_os_error) {
            // A bucket holds more entries than asked for: ask for more.
            Some(libc::ENOSPC) if count < MAX_COUNT => {
                count *= 2;
                continue;
            }
            None | Some(libc::ENOENT) => {}
            // No batch calls for this map, or one failed: what it read is dropped and the map
            // walked (whose errors are the caller's to report).
            Some(_) => return None,
        }
        let got = (attr.count as usize).min(len);
        for i in 0..got {
            // SAFETY: the kernel wrote `got` whole keys and values; `Pod` types are valid for
            // any bytes, and the reads are unaligned ones.
            let (k, v) = unsafe {
                (
                    std::ptr::read_unaligned(keys.as_ptr().add(i * size_of::<K>()).cast::<K>()),
                    std::ptr::read_unaligned(values.as_ptr().add(i * size_of::<V>()).cast::<V>()),
                )
            };
            out.push((k, v));
        }
        // ENOENT: the walk reached the end (with the last entries, if any, in this call).
        if err.is_some() {
            return Some(out);
        }
        at = next;
        first = false;
    }
}

/// Writes `keys[i]` -> `values[i]` into `map` in one call. `false` when the call failed or the
/// kernel has none for the map's type: some, all or none of them may be written, and the caller
/// writes them all again one by one (a write is idempotent), which reports what went wrong.
pub(super) fn update_all<K: Pod, V: Pod>(map: &mut impl IterableMap<K, V>, keys: &[K], values: &[V]) -> bool {
    keys.len() == values.len() && (keys.is_empty() || write_batch(map.map(), BPF_MAP_UPDATE_BATCH, keys.as_ptr().cast(), values.as_ptr().cast(), keys.len()))
}

/// Removes `keys` from `map` in one call. `false` as for `update_all`: the caller removes them
/// one by one, where a key the failed call already removed is absent.
pub(super) fn delete_all<K: Pod, V: Pod>(map: &mut impl IterableMap<K, V>, keys: &[K]) -> bool {
    keys.is_empty() || write_batch(map.map(), BPF_MAP_DELETE_BATCH, keys.as_ptr().cast(), std::ptr::null(), keys.len())
}

/// One update or delete batch of `count` keys (and values) at `keys` (`values`); whether it
/// succeeded whole.
fn write_batch(map: &aya::maps::MapData, cmd: libc::c_long, keys: *const u8, values: *const u8, count: usize) -> bool {
    let (Ok(map_fd), Ok(count)) = (u32::try_from(map.fd().as_fd().as_raw_fd()), u32::try_from(count)) else { return false };
    let mut attr = BatchAttr { keys: keys as u64, values: values as u64, count, map_fd, ..BatchAttr::default() };
    // SAFETY: `attr` is the kernel's batch layout; `keys` (and `values`, for an update) point to
    // `count` keys and values of the map's sizes (the callers' slices of the types aya typed the
    // map with), which the kernel only reads, and outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(&mut attr), size_of::<BatchAttr>()) };
    r == 0 && attr.count == count
}

#[cfg(test)]
mod tests {
    use aya::maps::{Array, HashMap, Map, MapData};
    use sfc_tests::rawbpf::{BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_HASH as HASH, BPF_MAP_TYPE_LRU_HASH as LRU_HASH, MapSpec, create_map};

    use super::*;

    /// A map created here, as aya's `MapData`.
    fn created(spec: MapSpec) -> MapData {
        let raw = create_map(spec).unwrap_or_else(|e| panic!("{e:#}"));
        let fd = raw.fd().try_clone_to_owned().unwrap_or_else(|e| panic!("{e}"));
        MapData::from_fd(fd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A hash map of `n` entries (`i` -> `i * 3`), created here, typed by aya.
    fn filled(map_type: u32, n: u64) -> HashMap<MapData, u64, u64> {
        let data = created(MapSpec { map_type, key_size: 8, value_size: 8, max_entries: 20_000, flags: 0 });
        let mut m: HashMap<MapData, u64, u64> = Map::from_map_data(data).and_then(HashMap::try_from).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..n {
            m.insert(i, i * 3, 0).unwrap_or_else(|e| panic!("{e}"));
        }
        m
    }

    /// The batches give what the walk entry by entry gives: every entry once, over several
    /// calls (10,000 entries, 4,096 asked for per call), for hash and LRU hash maps, and none
    /// for an empty map.
    #[test]
    fn batches_read_what_the_walk_reads() {
        for (map_type, n) in [(HASH, 10_000), (LRU_HASH, 5_000), (HASH, 0)] {
            let m = filled(map_type, n);
            let mut batched = read_all(&m).unwrap_or_else(|| panic!("this kernel has batch lookups for map type {map_type}"));
            let mut walked: Vec<(u64, u64)> = m.iter().map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect();
            batched.sort_unstable();
            walked.sort_unstable();
            assert_eq!(batched.len(), usize::try_from(n).unwrap_or(usize::MAX), "map type {map_type}");
            assert!(batched == walked, "map type {map_type}: {} batched, {} walked", batched.len(), walked.len());
            assert!(batched.iter().all(|(k, v)| *v == k * 3), "values with their keys");
        }
    }

    /// An array's batches give every slot, in order, with its index as the key: the port pairs'
    /// array (its size, a value of 12 bytes to test unaligned reads), some slots set.
    #[test]
    fn batches_read_an_array_slot_by_slot() {
        let slots = 4096;
        let data = created(MapSpec { map_type: ARRAY, key_size: 4, value_size: 12, max_entries: slots, flags: 0 });
        let mut m: Array<MapData, [u32; 3]> = Map::from_map_data(data).and_then(Array::try_from).unwrap_or_else(|e| panic!("{e}"));
        for i in (0..slots).step_by(7) {
            m.set(i, [i, i * 3, 1], 0).unwrap_or_else(|e| panic!("{e}"));
        }
        let batched = read_all(&m).unwrap_or_else(|| panic!("this kernel has batch lookups for arrays"));
        let walked: Vec<[u32; 3]> = m.iter().map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect();
        assert_eq!(batched.len(), walked.len(), "every slot");
        assert!(batched.iter().enumerate().all(|(i, (k, _))| usize::try_from(*k).is_ok_and(|k| k == i)), "slots in order, keyed by index");
        assert!(batched.iter().map(|(_, v)| *v).eq(walked.iter().copied()), "the walk's values");
        assert_eq!(batched.iter().filter(|(_, v)| v[2] == 1).count(), 586, "the slots set");
    }

    /// Batched writes and removals leave what writes one by one leave; a batch that cannot
    /// be written whole (the map is full) says so, for the caller to write entry by entry.
    #[test]
    fn batches_write_and_remove() {
        let mut m = filled(HASH, 0);
        let keys: Vec<u64> = (0..10_000).collect();
        let values: Vec<u64> = keys.iter().map(|k| k * 5).collect();
        assert!(update_all(&mut m, &keys, &values), "10,000 written in one call");
        let mut all: Vec<(u64, u64)> = m.iter().map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect();
        all.sort_unstable();
        assert!(all.iter().map(|(k, _)| *k).eq(keys.iter().copied()), "every key");
        assert!(all.iter().all(|(k, v)| *v == k * 5), "with its value");
        assert!(delete_all(&mut m, &keys[..4_000]), "4,000 removed in one call");
        assert_eq!(m.keys().count(), 6_000, "the others stay");
        assert!(m.get(&3_999, 0).is_err() && m.get(&4_000, 0).is_ok_and(|v| v == 20_000), "the first 4,000 gone");
        assert!(!delete_all(&mut m, &keys[..10]), "removing keys that are gone is not a success");
        // The map holds 20,000: 6,000 + 15,000 do not fit.
        let more: Vec<u64> = (100_000..115_000).collect();
        assert!(!update_all(&mut m, &more, &more), "a batch over the map's size is not a success");
        assert!(update_all(&mut m, &[], &[]) && delete_all(&mut m, &[]), "nothing to do is done");
        assert!(!update_all(&mut m, &keys[..2], &values[..1]), "keys and values of different counts are refused");
    }
}
