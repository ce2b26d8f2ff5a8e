//! Typed access to the pinned maps: bringing them in line with a compiled state, flushing flows,
//! and reading counters.

use std::collections::{BTreeMap, BTreeSet};

use aya::{
    Pod,
    maps::{Array, DevMapHash, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, lpm_trie::Key},
};
use sfc_common::{
    DropReason,
    maps::{
        ChainEntry, ClsKey, ClsResult, Counter, FlowEntry, FlowKey, GroupEntry, HopStatsKey,
        IfStats, IfaceEntry, LbTable, MAP_CHAINS, MAP_CLS, MAP_CLS_HASH, MAP_CLS_RES, MAP_DEVMAP, MAP_DROPS, MAP_FLOWS,
        MAP_GROUPS, MAP_HOP_STATS, MAP_IF_SLOTS, MAP_IF_STATS, MAP_IFACES, MAP_LB, MAP_MACS, MAP_META, MAP_PORT_PAIRS,
        MacEntry, Meta, PortPairEntry, unbanked_class, unbanked_id,
    },
    limits::{IF_STATS_SLOTS, LB_TABLE_SIZE, PORT_PAIR_NONE},
};

use super::{DatapathError, Location, Result};
use crate::compile::{
    Compiled, LbKey,
    diff::{self, Counts, MapDiff},
    slots::Slots,
};

/// Opens the pinned map `name` of the datapath at `loc`.
pub(crate) fn open(loc: &Location, name: &str) -> Result<Map> {
    let path = loc.map_pin(name);
    if !path.exists() {
        return Err(DatapathError::NotInstalled(loc.pin_dir.clone()));
    }
    let data = MapData::from_pin(&path).map_err(|source| DatapathError::Map { what: format!("opening {}", path.display()), source })?;
    Map::from_map_data(data).map_err(|source| DatapathError::Map { what: format!("opening {}", path.display()), source })
}

pub(crate) fn map_err(name: &str, action: &str) -> impl FnOnce(MapError) -> DatapathError {
    let what = format!("{name}: {action}");
    move |source| DatapathError::Map { what, source }
}

/// Whether `e` says the key is not there: a lookup says `KeyNotFound`, a delete `ENOENT`.
pub(crate) fn is_absent(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// Opens the pinned map `name` as a typed aya map.
pub(crate) fn typed<T: TryFrom<Map, Error = MapError>>(loc: &Location, name: &str) -> Result<T> {
    T::try_from(open(loc, name)?).map_err(map_err(name, "unexpected map type"))
}

/// What a write did.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Entries added, changed and removed against the configuration live until now.
    pub changes: Counts,
    /// The generation now live (unchanged when nothing changed).
    pub generation: u32,
    pub flipped: bool,
    /// Time spent reading both banks back and diffing (the rest of `write` is the writes).
    pub read: std::time::Duration,
    /// What the inactive bank holds now, when the write read the banks back.
    pub inactive: Option<Compiled>,
    /// Entries written (added, changed, removed) into the bank that went live: the changes,
    /// and what that bank still lacked of the generation live until now.
    pub written: usize,
}

/// A banked map's content split by bank, with the bank bit removed from the keys.
struct Banked<K, V> {
    live: BTreeMap<K, V>,
    target: BTreeMap<K, V>,
}

fn split<K: Ord + Copy, V>(all: Vec<(K, V)>, bank_of: impl Fn(&K) -> u32, unbank: impl Fn(K) -> K, live: u32) -> Banked<K, V> {
    // Collected whole, not inserted one by one: `BTreeMap`'s `FromIterator` sorts and builds
    // the tree in one pass (200,000 entries in hash order, at 100,000 classifiers).
    let (live_bank, target): (Vec<_>, Vec<_>) = all.into_iter().partition(|(k, _)| bank_of(k) == live);
    Banked { live: live_bank.into_iter().map(|(k, v)| (unbank(k), v)).collect(), target: target.into_iter().map(|(k, v)| (unbank(k), v)).collect() }
}

fn id_bank(id: u32) -> u32 {
    unbanked_id(id).0
}

fn class_bank(class: u32) -> u32 {
    unbanked_class(class).0
}

/// Writes one map's changes into the bank `bank` puts keys (and `bank_v` values) in.
fn write_hash<K: Pod + Ord, V: Pod + PartialEq>(
    m: &mut HashMap<MapData, K, V>,
    name: &str,
    d: &MapDiff<K, V>,
    bank: impl Fn(K) -> K,
    bank_v: impl Fn(V) -> V,
) -> Result<()> {
    // In batches (a write of 10,000 classifiers is 40,000 entries; one system call each took
    // about as long as the compile); where a batch fails, entry by entry, for the error.
    let (keys, values): (Vec<K>, Vec<V>) = d.added.iter().chain(d.changed.iter().map(|(k, (_, v))| (k, v))).map(|(k, v)| (bank(*k), bank_v(*v))).unzip();
    if !super::batch::update_all(m, &keys, &values) {
        for (k, v) in keys.iter().zip(&values) {
            m.insert(*k, *v, 0).map_err(map_err(name, "writing"))?;
        }
    }
    let gone: Vec<K> = d.removed.keys().map(|k| bank(*k)).collect();
    if !super::batch::delete_all(m, &gone) {
        // A failed batch may have removed some: those are absent now.
        for k in &gone {
            match m.remove(k) {
                Ok(()) => {}
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(map_err(name, "removing")(e)),
            }
        }
    }
    Ok(())
}

/// Writes the tables of the groups `d` touches into the bank `bank` puts group ids in: each
/// table whole, from the compile's buckets `lb` (a group with none there is removed). The map
/// holds a table per group (`LbTable`); a compile and its diff have a bucket per entry.
fn write_lb(m: &mut HashMap<MapData, u32, LbTable>, d: &MapDiff<LbKey, u32>, lb: &BTreeMap<LbKey, u32>, bank: impl Fn(u32) -> u32) -> Result<()> {
    let groups: BTreeSet<u32> = d.added.keys().chain(d.changed.keys()).chain(d.removed.keys()).map(|k| k.group).collect();
    for group in groups {
        let mut table = LbTable { members: [PORT_PAIR_NONE; LB_TABLE_SIZE as usize] };
        let mut any = false;
        for (k, pp) in lb.range(LbKey { group, bucket: 0 }..=LbKey { group, bucket: u32::MAX }) {
            let slot = usize::try_from(k.bucket).ok().and_then(|b| table.members.get_mut(b));
            let (Some(slot), Ok(pp)) = (slot, u16::try_from(*pp)) else {
                return Err(DatapathError::Other(format!("{MAP_LB}: group {group}: bucket {} -> port pair {pp} does not fit the table", k.bucket)));
            };
            *slot = pp;
            any = true;
        }
        if any {
            m.insert(bank(group), table, 0).map_err(map_err(MAP_LB, "writing"))?;
        } else {
            match m.remove(&bank(group)) {
                Ok(()) => {}
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(map_err(MAP_LB, "removing")(e)),
            }
        }
    }
    Ok(())
}

/// The buckets of `SFC_LB_V2`'s tables (`(group as keyed, table)`), as a compile has them.
fn lb_buckets(tables: Vec<(u32, LbTable)>) -> Vec<(LbKey, u32)> {
    tables
        .into_iter()
        .flat_map(|(group, t)| {
            (0u32..).zip(t.members).filter(|(_, pp)| *pp != PORT_PAIR_NONE).map(move |(bucket, pp)| (LbKey { group, bucket }, u32::from(pp)))
        })
        .collect()
}

/// Every bucket of every group's table in the pinned `SFC_LB_V2`, group ids banked.
pub(crate) fn lb_entries(loc: &Location) -> Result<Vec<(LbKey, u32)>> {
    let m: HashMap<MapData, u32, LbTable> = typed(loc, MAP_LB)?;
    Ok(lb_buckets(read_hash(&m, MAP_LB)?))
}

/// Every entry of a per-CPU hash map, its values summed over CPUs with `add`.
fn sum_per_cpu<K: Pod + Ord, V: Pod + Default>(
    m: &PerCpuHashMap<MapData, K, V>,
    name: &str,
    add: impl Fn(&mut V, &V),
) -> Result<BTreeMap<K, V>> {
    let mut out = BTreeMap::new();
    for r in m {
        let (k, per_cpu) = r.map_err(map_err(name, "reading"))?;
        let mut sum = V::default();
        for v in &*per_cpu {
            add(&mut sum, v);
        }
        out.insert(k, sum);
    }
    Ok(out)
}

/// The installed port pairs: the array's slots that hold one.
pub(crate) fn read_port_pairs(m: &Array<MapData, PortPairEntry>) -> Result<BTreeMap<u32, PortPairEntry>> {
    if let Some(all) = super::batch::read_all(m) {
        return Ok(all.into_iter().filter(|(_, e)| e.ingress_ifindex != 0).collect());
    }
    let mut out = BTreeMap::new();
    for (id, e) in (0u32..).zip(m.iter()) {
        let e = e.map_err(map_err(MAP_PORT_PAIRS, "reading"))?;
        if e.ingress_ifindex != 0 {
            out.insert(id, e);
        }
    }
    Ok(out)
}

/// The port pairs installed at `loc`, none when nothing is.
pub(crate) fn installed_port_pairs(loc: &Location) -> Result<BTreeMap<u32, PortPairEntry>> {
    if loc.map_pin(MAP_PORT_PAIRS).exists() { read_port_pairs(&typed(loc, MAP_PORT_PAIRS)?) } else { Ok(BTreeMap::new()) }
}

/// The interfaces' counter slots as installed (`compile::slots`): both banks', the live bank's
/// where they differ; none when nothing is installed.
pub(crate) fn installed_slots(loc: &Location) -> Result<Slots> {
    if !loc.map_pin(MAP_IFACES).exists() || !loc.map_pin(MAP_META).exists() {
        return Ok(Slots::new());
    }
    let live = Maps { loc }.meta()?.bank & 1;
    let entries = hash_entries::<u32, IfaceEntry>(loc, MAP_IFACES)?;
    let mut out = Slots::new();
    for want in [live ^ 1, live] {
        out.extend(entries.iter().filter(|(k, _)| id_bank(**k) == want).map(|(k, e)| (unbanked_id(*k).1, e.stats_slot)));
    }
    Ok(out)
}

/// The MACs the datapath learnt behind interfaces (`SFC_MACS`), by ifindex; none when nothing
/// is installed.
pub fn learnt_macs(loc: &Location) -> Result<BTreeMap<u32, [u8; 6]>> {
    if !loc.map_pin(MAP_MACS).exists() {
        return Ok(BTreeMap::new());
    }
    Ok(hash_entries::<u32, MacEntry>(loc, MAP_MACS)?.into_iter().map(|(i, m)| (i, m.mac)).collect())
}

/// Every entry of a hash map: in batches where the kernel has them (`batch`), else entry by
/// entry. A key removed between two steps of the walk (an LRU eviction, a flow aged out) is
/// gone either way and skipped; any other error is one.
pub(crate) fn read_hash<K: Pod, V: Pod>(m: &HashMap<MapData, K, V>, name: &str) -> Result<Vec<(K, V)>> {
    if let Some(all) = super::batch::read_all(m) {
        return Ok(all);
    }
    let mut out = Vec::new();
    for r in m {
        match r {
            Ok(kv) => out.push(kv),
            Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(map_err(name, "reading")(e)),
        }
    }
    Ok(out)
}

/// Every entry of the pinned hash map `name`, by key.
pub(crate) fn hash_entries<K: Pod + Ord, V: Pod>(loc: &Location, name: &str) -> Result<BTreeMap<K, V>> {
    let m: HashMap<MapData, K, V> = typed(loc, name)?;
    Ok(read_hash(&m, name)?.into_iter().collect())
}

/// The pinned maps of one datapath.
pub struct Maps<'a> {
    loc: &'a Location,
}

impl<'a> Maps<'a> {
    pub fn open(loc: &'a Location) -> Result<Self> {
        // Fail early and clearly when nothing is installed.
        open(loc, MAP_IFACES)?;
        Ok(Self { loc })
    }

    /// The live bank and generation.
    pub fn meta(&self) -> Result<Meta> {
        let m: Array<MapData, Meta> = typed(self.loc, MAP_META)?;
        m.get(&0, 0).map_err(map_err(MAP_META, "reading"))
    }

    /// The configuration maps as they are: the live bank and the inactive one, each in
    /// `Compiled`'s shape (bank bits removed), and the port pairs (not banked) in both.
    pub(super) fn read_banks(&self, live: u32) -> Result<(Compiled, Compiled)> {
        let ifaces: HashMap<MapData, u32, IfaceEntry> = typed(self.loc, MAP_IFACES)?;
        let chains: HashMap<MapData, u32, ChainEntry> = typed(self.loc, MAP_CHAINS)?;
        let groups: HashMap<MapData, u32, GroupEntry> = typed(self.loc, MAP_GROUPS)?;
        let lb: HashMap<MapData, u32, LbTable> = typed(self.loc, MAP_LB)?;
        let res: HashMap<MapData, u32, ClsResult> = typed(self.loc, MAP_CLS_RES)?;
        let trie: LpmTrie<MapData, ClsKey, u32> = typed(self.loc, MAP_CLS)?;
        let cls_hash: HashMap<MapData, ClsKey, u32> = typed(self.loc, MAP_CLS_HASH)?;
        let unid = |k: u32| unbanked_id(k).1;
        let uncl = |k: u32| unbanked_class(k).1;
        let b_ifaces = split(read_hash(&ifaces, MAP_IFACES)?, |k| id_bank(*k), unid, live);
        let b_chains = split(read_hash(&chains, MAP_CHAINS)?, |k| id_bank(*k), unid, live);
        let b_groups = split(read_hash(&groups, MAP_GROUPS)?, |k| id_bank(*k), unid, live);
        let b_lb = split(lb_buckets(read_hash(&lb, MAP_LB)?), |k| id_bank(k.group), |k| LbKey { group: unid(k.group), ..k }, live);
        // Result values are not banked; trie keys and values are.
        let b_res = split(read_hash(&res, MAP_CLS_RES)?, |k| class_bank(*k), uncl, live);
        let trie_all: Vec<((u32, ClsKey), u32)> = trie
            .iter()
            .map(|r| r.map(|(k, v)| ((k.prefix_len(), k.data()), uncl(v))))
            .collect::<std::result::Result<_, _>>()
            .map_err(map_err(MAP_CLS, "reading"))?;
        let trie_bank = |k: &(u32, ClsKey)| class_bank(u32::from_be_bytes(k.1.class));
        let trie_unbank = |(bits, k): (u32, ClsKey)| (bits, ClsKey { class: uncl(u32::from_be_bytes(k.class)).to_be_bytes(), ..k });
        let b_trie = split(trie_all, trie_bank, trie_unbank, live);
        // Hash keys and values are banked classes (the wild bit stays where it is).
        let key_unbank = |k: ClsKey| ClsKey { class: uncl(u32::from_be_bytes(k.class)).to_be_bytes(), ..k };
        let hash_all = read_hash(&cls_hash, MAP_CLS_HASH)?.into_iter().map(|(k, v)| (k, uncl(v))).collect();
        let b_hash = split(hash_all, |k| class_bank(u32::from_be_bytes(k.class)), key_unbank, live);
        let port_pairs = self.port_pairs()?;
        let bank = |ifaces, chains, groups, lb, cls_res, cls, cls_hash| Compiled {
            ifaces,
            chains,
            groups,
            lb,
            cls_res,
            cls,
            cls_hash,
            port_pairs: port_pairs.clone(),
            ..Compiled::default()
        };
        Ok((
            bank(b_ifaces.live, b_chains.live, b_groups.live, b_lb.live, b_res.live, b_trie.live, b_hash.live),
            bank(b_ifaces.target, b_chains.target, b_groups.target, b_lb.target, b_res.target, b_trie.target, b_hash.target),
        ))
    }

    /// Installs `c` as the next generation. What changes is one diff (`compile::diff`): the
    /// inactive bank against `c` is what gets written, the live bank against `c` is what the
    /// report counts. Port pairs (not banked: stable ids, draining ones included in `c`) are
    /// added or updated first, then the inactive bank of every configuration map, then one
    /// write of `SFC_META` makes it all live at once; port pairs `c` no longer has are removed
    /// after the flip. With nothing to change (and `force` false) nothing is written and the
    /// generation stays.
    pub fn write(&mut self, c: &Compiled, force: bool) -> Result<WriteReport> {
        let began = std::time::Instant::now();
        let meta = self.meta()?;
        let (live_bank, target_bank) = self.read_banks(meta.bank & 1)?;
        let changes = diff::diff(&live_bank, c).counts();
        let read = began.elapsed();
        let live_ifaces: BTreeSet<u32> = live_bank.ifaces.keys().copied().collect();
        let mut r = self.write_diff(meta, c, force, changes, || diff::diff(&target_bank, c), &live_ifaces, false)?;
        r.read = read;
        r.inactive = Some(if r.flipped { live_bank } else { target_bank });
        Ok(r)
    }

    /// `write`, with what both banks hold known (`known`, from the last apply in this process)
    /// and the classifier entries the compile wrote (`log`): nothing is read back.
    pub(super) fn write_known(&mut self, c: &Compiled, force: bool, known: &super::warm::Known, log: &crate::compile::incr::Log) -> Result<WriteReport> {
        let meta = self.meta()?;
        // What the inactive bank lacks is walked only when something is written.
        let changes = known.against_live(c, log).counts();
        let live_ifaces = known.live_ifaces();
        self.write_diff(meta, c, force, changes, || known.to_inactive(c, log), &live_ifaces, true)
    }

    /// The writes of `write`: `changes` counts what changes against the live bank,
    /// `to_inactive` gives what to write into the other one, `live_ifaces` are the interfaces
    /// the live bank knows; `known`: what the inactive bank's interface slots hold is known
    /// (`super::direct`), so only those of the interfaces that change are written.
    #[expect(clippy::too_many_arguments, reason = "the two ways in (read back, known) differ in these")]
    fn write_diff(
        &mut self,
        meta: Meta,
        c: &Compiled,
        force: bool,
        changes: Counts,
        to_inactive: impl FnOnce() -> diff::Diff,
        live_ifaces: &BTreeSet<u32>,
        known: bool,
    ) -> Result<WriteReport> {
        let target = (meta.bank & 1) ^ 1;
        // Redirect targets are added even when nothing else changed (a datapath pinned by an
        // older sfc has an empty devmap); adding is harmless to whatever is live.
        let mut devmap: DevMapHash<MapData> = typed(self.loc, MAP_DEVMAP)?;
        let dev_have: BTreeSet<u32> = devmap.keys().collect::<std::result::Result<_, _>>().map_err(map_err(MAP_DEVMAP, "reading"))?;
        for ifindex in c.redirect_targets.difference(&dev_have) {
            devmap.insert(*ifindex, *ifindex, None, 0).map_err(|e| DatapathError::Other(format!(
                "{MAP_DEVMAP}: adding ifindex {ifindex} (XDP redirect target): {e}"
            )))?;
        }
        // SFC-aware members' headers (a handful: all of them, every apply), before any port pair
        // entry says to push one, and also when nothing else changed (not banked: a changed
        // context or MD type takes effect from the next packet).
        if !c.encap.is_empty() {
            let mut encap: Array<MapData, sfc_common::maps::EncapEntry> = typed(self.loc, sfc_common::maps::MAP_ENCAP)?;
            for (id, e) in &c.encap {
                encap.set(*id, e, 0).map_err(map_err(sfc_common::maps::MAP_ENCAP, "writing"))?;
            }
        }
        // A fresh datapath has generation 0 and nothing live: it always gets its first flip.
        if changes.is_empty() && !force && meta.generation != 0 {
            return Ok(WriteReport { changes, generation: meta.generation, ..WriteReport::default() });
        }
        let d = to_inactive();
        let written = d.counts();

        // 1. Port pairs first (redirect targets are in already): whatever the new bank points at
        //    must exist when it goes live.
        let mut pps: Array<MapData, PortPairEntry> = typed(self.loc, MAP_PORT_PAIRS)?;
        for (id, e) in d.port_pairs.added.iter().chain(d.port_pairs.changed.iter().map(|(k, (_, v))| (k, v))) {
            pps.set(*id, e, 0).map_err(map_err(MAP_PORT_PAIRS, "writing"))?;
        }

        // 2. The inactive bank.
        let bid = |k: u32| sfc_common::maps::banked_id(target, k);
        let bcl = |k: u32| sfc_common::maps::banked_class(target, k);
        write_hash(&mut typed(self.loc, MAP_IFACES)?, MAP_IFACES, &d.ifaces, bid, std::convert::identity)?;
        let touched: BTreeSet<u32> = d.ifaces.added.keys().chain(d.ifaces.changed.keys()).chain(d.ifaces.removed.keys()).copied().collect();
        super::direct::write(self.loc, target, &c.ifaces, known.then_some(&touched))?;
        write_hash(&mut typed(self.loc, MAP_CHAINS)?, MAP_CHAINS, &d.chains, bid, std::convert::identity)?;
        write_hash(&mut typed(self.loc, MAP_GROUPS)?, MAP_GROUPS, &d.groups, bid, std::convert::identity)?;
        write_lb(&mut typed(self.loc, MAP_LB)?, &d.lb, &c.lb, bid)?;
        write_hash(&mut typed(self.loc, MAP_CLS_RES)?, MAP_CLS_RES, &d.cls_res, bcl, std::convert::identity)?;
        let key_bank = |k: ClsKey| ClsKey { class: bcl(u32::from_be_bytes(k.class)).to_be_bytes(), ..k };
        write_hash(&mut typed(self.loc, MAP_CLS_HASH)?, MAP_CLS_HASH, &d.cls_hash, key_bank, bcl)?;
        let mut trie: LpmTrie<MapData, ClsKey, u32> = typed(self.loc, MAP_CLS)?;
        for ((bits, key), v) in d.cls.added.iter().chain(d.cls.changed.iter().map(|(k, (_, v))| (k, v))) {
            trie.insert(&Key::new(*bits, key_bank(*key)), bcl(*v), 0).map_err(map_err(MAP_CLS, "writing"))?;
        }
        for (bits, key) in d.cls.removed.keys() {
            trie.remove(&Key::new(*bits, key_bank(*key))).map_err(map_err(MAP_CLS, "removing"))?;
        }
        // 3. The flip: one array element, so every packet sees either generation, whole.
        let next = Meta { bank: target, generation: meta.generation.wrapping_add(1).max(1) };
        let mut m: Array<MapData, Meta> = typed(self.loc, MAP_META)?;
        m.set(0, next, 0).map_err(map_err(MAP_META, "flipping the generation"))?;
        // 4. Port pairs nothing refers to any more (their drain ended), and redirect targets
        //    neither the new generation nor the one live until now has (packets of the old one
        //    may still be on their way through it).
        for id in d.port_pairs.removed.keys() {
            pps.set(*id, PortPairEntry::default(), 0).map_err(map_err(MAP_PORT_PAIRS, "removing"))?;
        }
        for ifindex in dev_have.iter().filter(|i| !c.redirect_targets.contains(i) && !live_ifaces.contains(i)) {
            devmap.remove(*ifindex).map_err(map_err(MAP_DEVMAP, "removing"))?;
        }
        Ok(WriteReport { changes, generation: next.generation, flipped: true, written: written.added + written.changed + written.removed, ..WriteReport::default() })
    }

    /// The configuration maps' live bank, in `Compiled`'s shape.
    pub fn live_bank(&self) -> Result<Compiled> {
        Ok(self.read_banks(self.meta()?.bank & 1)?.0)
    }

    /// Interfaces the live generation gives a role (those that need the program now).
    pub fn live_ifaces(&self) -> Result<BTreeSet<u32>> {
        let live = self.meta()?.bank & 1;
        let ifaces: HashMap<MapData, u32, IfaceEntry> = typed(self.loc, MAP_IFACES)?;
        Ok(read_hash(&ifaces, MAP_IFACES)?
            .into_iter()
            .filter(|(k, e)| id_bank(*k) == live && e.roles != 0)
            .map(|(k, _)| unbanked_id(k).1)
            .collect())
    }

    /// The installed port pairs (active and draining), by id.
    pub fn port_pairs(&self) -> Result<BTreeMap<u32, PortPairEntry>> {
        read_port_pairs(&typed(self.loc, MAP_PORT_PAIRS)?)
    }

    /// Per-(chain, hop, port pair) counters, summed over CPUs: the hash's and the home hops' slots.
    pub fn hop_stats(&self) -> Result<BTreeMap<HopStatsKey, Counter>> {
        let m: PerCpuHashMap<MapData, HopStatsKey, Counter> = typed(self.loc, MAP_HOP_STATS)?;
        let mut out = sum_per_cpu(&m, MAP_HOP_STATS, |sum, c| {
            sum.add(c.packets, c.bytes);
        })?;
        // The home hops' counts, in array slots (`super::hop_slots`).
        for (k, c) in super::hop_slots::counts(self.loc)? {
            let sum = out.entry(k).or_default();
            sum.add(c.packets, c.bytes);
        }
        Ok(out)
    }

    /// Per-interface counters, summed over CPUs, by ifindex: the tc program's, in the slots of
    /// the live bank's interfaces (an interface the last apply removed is no longer counted in
    /// a slot), plus the hash's, by ifindex: interfaces in XDP mode, the overlay device, and
    /// whatever a loader from before the slots counted there (kept as long as the map).
    pub fn if_stats(&self) -> Result<BTreeMap<u32, IfStats>> {
        let add = |sum: &mut IfStats, s: &IfStats| {
            sum.classified += s.classified;
            sum.unclassified += s.unclassified;
            sum.from_sf += s.from_sf;
            sum.malformed += s.malformed;
            sum.recomputed += s.recomputed;
        };
        let m: PerCpuHashMap<MapData, u32, IfStats> = typed(self.loc, MAP_IF_STATS)?;
        let mut out = sum_per_cpu(&m, MAP_IF_STATS, add)?;
        if !self.loc.map_pin(MAP_IF_SLOTS).exists() {
            // Installed by a loader from before the slots: everything is in the hash.
            return Ok(out);
        }
        let live = self.meta()?.bank & 1;
        let slots: PerCpuArray<MapData, IfStats> = typed(self.loc, MAP_IF_SLOTS)?;
        let ifaces: HashMap<MapData, u32, IfaceEntry> = typed(self.loc, MAP_IFACES)?;
        // A slot past the array (a corrupt entry) is skipped, not an error for every reader.
        let in_range = |e: &IfaceEntry| e.stats_slot != 0 && u32::from(e.stats_slot) < IF_STATS_SLOTS;
        for (k, e) in read_hash(&ifaces, MAP_IFACES)?.into_iter().filter(|(k, e)| id_bank(*k) == live && in_range(e)) {
            let per_cpu = slots.get(&u32::from(e.stats_slot), 0).map_err(map_err(MAP_IF_SLOTS, "reading"))?;
            let sum = out.entry(unbanked_id(k).1).or_default();
            for v in &*per_cpu {
                add(sum, v);
            }
        }
        Ok(out)
    }

    /// Zeroes the counter slots `slots` on every CPU: done before an entry naming one anew is
    /// written (a slot given up by an interface in neither bank still holds its counts).
    pub fn zero_if_slots(&mut self, slots: &BTreeSet<u16>) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let mut m: PerCpuArray<MapData, IfStats> = typed(self.loc, MAP_IF_SLOTS)?;
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| DatapathError::Other(format!("{what}: {e}")))?;
        for s in slots {
            let zeros = aya::maps::PerCpuValues::try_from(vec![IfStats::default(); cpus]).map_err(super::io_err(format!("{MAP_IF_SLOTS}: zeroing")))?;
            m.set(u32::from(*s), zeros, 0).map_err(map_err(MAP_IF_SLOTS, "zeroing"))?;
        }
        Ok(())
    }

    /// Drops by reason (every known reason, zeros included), summed over CPUs.
    pub fn drops(&self) -> Result<BTreeMap<&'static str, u64>> {
        let m: PerCpuArray<MapData, u64> = typed(self.loc, MAP_DROPS)?;
        let mut out = BTreeMap::new();
        for r in DropReason::ALL {
            let v = m.get(&(r as u32), 0).map_err(map_err(MAP_DROPS, "reading"))?;
            out.insert(r.name(), v.iter().sum());
        }
        Ok(out)
    }

    /// The flow table.
    pub fn flows(&self) -> Result<Vec<(FlowKey, FlowEntry)>> {
        let m: HashMap<MapData, FlowKey, FlowEntry> = typed(self.loc, MAP_FLOWS)?;
        read_hash(&m, MAP_FLOWS)
    }

}

