//! What an apply keeps for the next one in the same process (`sfc run` applies on every change
//! of the file, of an interface, of a member's health): the state it saved, the classifier
//! compiler (`compile::incr::Kept`) and what both banks of the configuration maps hold. The next
//! apply then neither reads the state file nor reads the banks back, and writes the classifier
//! maps from the compiler's log instead of comparing whole tables: its cost follows the change,
//! not the configuration.
//!
//! What is kept holds only while nothing else touched the datapath: it is taken with the live
//! bank and generation and the state file's identity as they were when it was kept, and an apply
//! that finds either changed (another process applied, or `sfc down` ran) starts over from the
//! state file and the maps.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Mutex,
};

use crate::compile::{
    Compiled,
    diff::{Diff, MapDiff},
    incr::{Kept, Log},
};

use super::{Location, State, maps::Maps};

/// What an apply left for the next one (see the module's notes).
pub(super) struct Warm {
    token: Token,
    pub state: State,
    pub kept: Kept,
    pub banks: Known,
}

/// The datapath as the last apply left it: its live bank and generation, and the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    bank: u32,
    generation: u32,
    file: (u64, u64, i64, i64, u64),
}

static KEPT: Mutex<BTreeMap<PathBuf, Warm>> = Mutex::new(BTreeMap::new());

fn token(loc: &Location, state_file: &Path) -> Option<Token> {
    let meta = Maps::open(loc).ok()?.meta().ok()?;
    let m = std::fs::metadata(state_file).ok()?;
    Some(Token { bank: meta.bank, generation: meta.generation, file: (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()) })
}

/// What the last apply at `loc` in this process kept, if the datapath is still as it left it.
pub(super) fn take(loc: &Location, state_file: &Path) -> Option<Warm> {
    let w = KEPT.lock().ok()?.remove(&loc.pin_dir)?;
    (token(loc, state_file) == Some(w.token)).then_some(w)
}

/// Keeps what an apply at `loc` leaves (after its state is saved).
pub(super) fn keep(loc: &Location, state_file: &Path, state: State, kept: Kept, banks: Known) {
    let Some(token) = token(loc, state_file) else { return };
    if let Ok(mut all) = KEPT.lock() {
        all.insert(loc.pin_dir.clone(), Warm { token, state, kept, banks });
    }
}

/// Forgets what was kept for `loc` (`sfc down`).
pub(super) fn forget(loc: &Location) {
    if let Ok(mut all) = KEPT.lock() {
        all.remove(&loc.pin_dir);
    }
}

/// What both banks hold: the small maps whole, and for the classifier maps (hundreds of
/// thousands of entries) only where the inactive bank differs from the live one, which holds
/// the compiler's tables as they were before the next compile (`Kept`).
pub(super) struct Known {
    live: Compiled,
    inactive: Compiled,
    /// Classifier entries the inactive bank has otherwise than the live one: its value, or
    /// `None` for absent.
    behind: Log,
}

/// The small maps of `bank` (the port pairs are not banked: both banks see `c`'s).
fn small(bank: &Compiled, c: &Compiled) -> Compiled {
    Compiled {
        ifaces: bank.ifaces.clone(),
        chains: bank.chains.clone(),
        groups: bank.groups.clone(),
        lb: bank.lb.clone(),
        port_pairs: c.port_pairs.clone(),
        ..Compiled::default()
    }
}

/// The changes from `old` to `new` of the small maps.
fn small_diff(old: &Compiled, new: &Compiled) -> Diff {
    Diff {
        ifaces: MapDiff::between(&old.ifaces, &new.ifaces),
        chains: MapDiff::between(&old.chains, &new.chains),
        groups: MapDiff::between(&old.groups, &new.groups),
        lb: MapDiff::between(&old.lb, &new.lb),
        port_pairs: MapDiff::between(&old.port_pairs, &new.port_pairs),
        ..Diff::default()
    }
}

/// Where `a` has what `b` has not or otherwise: `a`'s value (`None`: absent).
fn differing<K: Ord + Clone, V: PartialEq + Clone>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> BTreeMap<K, Option<V>> {
    let d = MapDiff::between(b, a);
    d.added.into_iter().map(|(k, v)| (k, Some(v))).chain(d.changed.into_iter().map(|(k, (_, v))| (k, Some(v)))).chain(d.removed.into_keys().map(|k| (k, None))).collect()
}

/// One classifier map's changes from the compile's log: (inactive bank -> `now`, live bank ->
/// `now`). Only keys the log or `behind` names can differ.
fn logged<K: Ord + Clone, V: PartialEq + Clone>(behind: &BTreeMap<K, Option<V>>, log: &BTreeMap<K, Option<V>>, now: &BTreeMap<K, V>) -> (MapDiff<K, V>, MapDiff<K, V>) {
    fn push<K: Ord + Clone, V: PartialEq + Clone>(d: &mut MapDiff<K, V>, k: &K, have: Option<&V>, want: Option<&V>) {
        match (have, want) {
            (None, Some(w)) => {
                d.added.insert(k.clone(), w.clone());
            }
            (Some(h), Some(w)) if h != w => {
                d.changed.insert(k.clone(), (h.clone(), w.clone()));
            }
            (Some(h), None) => {
                d.removed.insert(k.clone(), h.clone());
            }
            _ => {}
        }
    }
    let (mut to_inactive, mut from_live) = (MapDiff::default(), MapDiff::default());
    for k in behind.keys().chain(log.keys()) {
        let want = now.get(k);
        let live = log.get(k).map_or(want, Option::as_ref);
        let inactive = behind.get(k).map_or(live, Option::as_ref);
        push(&mut to_inactive, k, inactive, want);
        push(&mut from_live, k, live, want);
    }
    (to_inactive, from_live)
}

impl Known {
    /// After a write that read both banks back: `c` is live, `inactive` is what the other bank
    /// holds.
    pub fn read(c: &Compiled, inactive: &Compiled) -> Self {
        Known {
            live: small(c, c),
            inactive: small(inactive, c),
            behind: Log {
                trie: differing(&inactive.cls, &c.cls),
                hash: differing(&inactive.cls_hash, &c.cls_hash),
                res: differing(&inactive.cls_res, &c.cls_res),
                whole: false,
            },
        }
    }

    /// The interfaces the live bank knows.
    pub fn live_ifaces(&self) -> std::collections::BTreeSet<u32> {
        self.live.ifaces.keys().copied().collect()
    }

    /// What to write for `c` (the inactive bank to `c`), and what changes against the live
    /// bank (for the report), from what is known and the compile's `log`.
    pub fn diffs(&self, c: &Compiled, log: &Log) -> (Diff, Diff) {
        let (mut to_inactive, mut from_live) = (small_diff(&self.inactive, c), small_diff(&self.live, c));
        (to_inactive.cls, from_live.cls) = logged(&self.behind.trie, &log.trie, &c.cls);
        (to_inactive.cls_hash, from_live.cls_hash) = logged(&self.behind.hash, &log.hash, &c.cls_hash);
        (to_inactive.cls_res, from_live.cls_res) = logged(&self.behind.res, &log.res, &c.cls_res);
        (to_inactive, from_live)
    }

    /// After a write from `diffs`: with a flip `c` is live and the bank live until now is the
    /// inactive one; without one nothing was written.
    pub fn advance(self, c: &Compiled, log: &Log, flipped: bool) -> Self {
        if !flipped {
            return self;
        }
        let behind = Log {
            trie: log.trie.iter().filter(|(k, v)| v.as_ref() != c.cls.get(*k)).map(|(k, v)| (*k, *v)).collect(),
            hash: log.hash.iter().filter(|(k, v)| v.as_ref() != c.cls_hash.get(*k)).map(|(k, v)| (*k, *v)).collect(),
            res: log.res.iter().filter(|(k, v)| v.as_ref() != c.cls_res.get(*k)).map(|(k, v)| (*k, *v)).collect(),
            whole: false,
        };
        Known { live: small(c, c), inactive: small(&self.live, c), behind }
    }
}

/// Checks what the last apply at `loc` in this process kept against the maps, read back: the
/// live bank must hold the compiler's tables and the small maps as kept, the inactive bank what
/// `Known` says it lacks. For tests of the apply path (`datapath::check_kept`).
pub fn check(loc: &Location) -> std::result::Result<(), String> {
    fn same<K: Ord + Clone + std::fmt::Debug, V: PartialEq + Clone + std::fmt::Debug>(what: &str, bank: &str, got: &BTreeMap<K, V>, want: &BTreeMap<K, V>) -> std::result::Result<(), String> {
        if got == want {
            return Ok(());
        }
        let d = MapDiff::between(want, got);
        Err(format!("{bank} bank, {what}: {} entries too many, {} differ, {} missing (first: {:?})", d.added.len(), d.changed.len(), d.removed.len(), d.added.keys().chain(d.changed.keys()).chain(d.removed.keys()).next()))
    }
    fn overlay<K: Ord + Clone, V: Clone>(base: &BTreeMap<K, V>, behind: &BTreeMap<K, Option<V>>) -> BTreeMap<K, V> {
        let mut out = base.clone();
        for (k, v) in behind {
            match v {
                Some(v) => out.insert(k.clone(), v.clone()),
                None => out.remove(k),
            };
        }
        out
    }
    let all = KEPT.lock().map_err(|_| "the kept state is poisoned".to_owned())?;
    let w = all.get(&loc.pin_dir).ok_or_else(|| format!("nothing kept for {}", loc.pin_dir.display()))?;
    let m = Maps::open(loc).map_err(|e| e.to_string())?;
    let meta = m.meta().map_err(|e| e.to_string())?;
    let (live, inactive) = m.read_banks(meta.bank & 1).map_err(|e| e.to_string())?;
    let (trie, hash, res) = w.kept.tables();
    let k = &w.banks;
    for (name, bank, kept) in [("live", &live, &k.live), ("inactive", &inactive, &k.inactive)] {
        same("ifaces", name, &bank.ifaces, &kept.ifaces)?;
        same("chains", name, &bank.chains, &kept.chains)?;
        same("groups", name, &bank.groups, &kept.groups)?;
        same("lb", name, &bank.lb, &kept.lb)?;
        same("port pairs", name, &bank.port_pairs, &kept.port_pairs)?;
    }
    same("classifier trie", "live", &live.cls, trie)?;
    same("classifier hash", "live", &live.cls_hash, hash)?;
    same("classifier results", "live", &live.cls_res, res)?;
    same("classifier trie", "inactive", &inactive.cls, &overlay(trie, &k.behind.trie))?;
    same("classifier hash", "inactive", &inactive.cls_hash, &overlay(hash, &k.behind.hash))?;
    same("classifier results", "inactive", &inactive.cls_res, &overlay(res, &k.behind.res))
}
