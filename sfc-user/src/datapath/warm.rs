//! What an apply keeps for the next one in the same process (`sfc run` applies on every change
//! of the file, of an interface, of a member's health): the state it saved, the classifier
//! compiler (`compile::incr::Kept`) and what both banks of the configuration maps hold. The next
//! apply then neither reads the state file nor reads the banks back, and writes the classifier
//! maps from the compiler's log instead of comparing whole tables: its cost follows the change,
//! not the configuration. (The port pairs' hop counter homes are read each time: a few entries
//! per port pair, `hop_slots`.)
//!
//! What is kept holds only while nothing else touched the datapath: it is kept with the
//! configuration maps' identity (the kernel's id of `SFC_META`), the live bank and generation,
//! and the mark every apply leaves under the lock before it touches a map. An apply that finds
//! any of them changed (another process applied, even one that failed before its flip; or `sfc
//! down` ran and something was installed again) starts over from the state file and the maps.
//!
//! A daemon can have the state written behind its applies (`write_behind`): the apply is done
//! once the new generation is live and the state file is written by a thread that holds the
//! datapath's lock until it is; the next apply in the process waits for it first (`settle`).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use sfc_common::maps::MAP_META;

use crate::compile::{
    Compiled,
    cls::ClassIds,
    diff::{Diff, MapDiff, small_diff},
    incr::{Kept, Log},
    slots::Slots,
};

use super::{
    DatapathError, Location, Lock, Result, State,
    maps::{self, Maps},
};

/// What an apply left for the next one (see the module's notes).
pub(super) struct Warm {
    token: Token,
    /// Without its classes (the compiler has them, or the writer behind the apply).
    pub state: Arc<State>,
    pub kept: Kept,
    pub banks: Known,
}

/// The datapath as the last apply left it: the configuration maps (by the kernel's id of one of
/// them), the live bank and generation, and the mark the apply left (`mark`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    maps: u32,
    bank: u32,
    generation: u32,
    mark: String,
}

static KEPT: Mutex<BTreeMap<PathBuf, Warm>> = Mutex::new(BTreeMap::new());
/// States being written behind their apply, by pin directory: the thread gives back the classes.
static WRITING: Mutex<BTreeMap<PathBuf, JoinHandle<Result<ClassIds>>>> = Mutex::new(BTreeMap::new());
static BEHIND: AtomicBool = AtomicBool::new(false);

/// The file every apply rewrites, under the lock, before it touches a map: an apply by another
/// process is seen by its mark even when it failed before its flip (and left half-written
/// entries in the inactive bank, or port pairs, which are not banked).
const MARK_FILE: &str = "apply.mark";

/// Leaves this apply's mark (the caller holds the datapath's lock).
pub(super) fn mark(loc: &Location) -> Result<()> {
    let path = loc.state_dir().join(MARK_FILE);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::fs::write(&path, format!("{} {now}\n", std::process::id())).map_err(super::io_err(format!("writing {}", path.display())))
}

/// The datapath as it is now (`None`: nothing installed, or unreadable).
pub(super) fn token(loc: &Location) -> Option<Token> {
    let maps = aya::maps::MapInfo::from_pin(loc.map_pin(MAP_META)).ok()?.id();
    let meta = Maps::open(loc).ok()?.meta().ok()?;
    let mark = std::fs::read_to_string(loc.state_dir().join(MARK_FILE)).ok()?;
    Some(Token { maps, bank: meta.bank, generation: meta.generation, mark })
}

/// What the last apply at `loc` in this process kept, if the datapath is still as it left it
/// (after `settle`).
pub(super) fn take(loc: &Location) -> Option<Warm> {
    let w = KEPT.lock().ok()?.remove(&loc.pin_dir)?;
    (token(loc).as_ref() == Some(&w.token)).then_some(w)
}

/// Keeps what an apply at `loc` leaves, with the `token` it took while it still held the lock.
pub(super) fn keep(loc: &Location, token: Token, state: Arc<State>, kept: Kept, banks: Known) {
    if let Ok(mut all) = KEPT.lock() {
        all.insert(loc.pin_dir.clone(), Warm { token, state, kept, banks });
    }
}

/// Forgets what this process kept for `loc`: its next apply there starts as a new process's
/// does, from the state file and the maps (`sfc down`; the benchmark's one-shot row).
pub fn forget(loc: &Location) {
    if let Ok(mut all) = KEPT.lock() {
        all.remove(&loc.pin_dir);
    }
}

/// Whether applies in this process leave their state to be written behind them (`sfc run`).
/// The process must `settle_all` before it exits, or the last state may not be written.
pub fn write_behind(on: bool) {
    BEHIND.store(on, Ordering::Relaxed);
}

/// Saves `state` (with `class_ids`) in `state_dir`, now or, with `write_behind`, by a thread
/// that holds `lock` until it is done; the classes come back from `settle`, or now. `done`
/// (the state this apply replaced, maybe the last owner of the model before) is freed by that
/// thread after the save, off the apply's way; without one, first.
pub(super) fn save(loc: &Location, state_dir: &Path, state: &Arc<State>, class_ids: ClassIds, lock: Lock, done: Option<State>) -> Result<Option<ClassIds>> {
    if !BEHIND.load(Ordering::Relaxed) {
        drop(done);
        state.save_with(state_dir, &class_ids)?;
        drop(lock);
        return Ok(Some(class_ids));
    }
    let (state, dir) = (Arc::clone(state), state_dir.to_owned());
    let h = std::thread::Builder::new()
        .name("sfc-state".to_owned())
        .spawn(move || {
            let r = state.save_with(&dir, &class_ids);
            drop(lock);
            drop(done);
            give_back_freed();
            r.map(|()| class_ids)
        })
        .map_err(|e| DatapathError::Other(format!("starting the thread that writes the state: {e}")))?;
    WRITING.lock().map_err(|_| DatapathError::Other("the state writers' list is poisoned".to_owned()))?.insert(loc.pin_dir.clone(), h);
    Ok(None)
}

/// Hands the heap's free memory back to the system, in every allocator arena: what reading the
/// file (its tree, then the model) and the replaced state left free. A daemon reads its file
/// on tokio's blocking threads, which come and go, and glibc keeps what a thread freed in that
/// thread's arena for the next allocation there: measured with 100,000 classifiers, `sfc run` grew
/// from 367 MiB after its first apply to 1.0 GiB after three changes and stayed there, with
/// about 540 MB of heap in use at most (BENCHMARKS.md, "Memory at 100,000 classifiers").
/// Called after every apply written behind (the daemon's); the micro benchmark calls it before
/// it measures the loader's memory.
pub fn give_back_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let t = std::time::Instant::now();
        // SAFETY: glibc's malloc_trim takes no pointer and is safe to call from any thread at
        // any time; it returns whether memory was released, which the log line says.
        let released = unsafe { libc::malloc_trim(0) } != 0;
        log::debug!("the freed heap handed back to the system in {:.1?} ({})", t.elapsed(), if released { "some released" } else { "nothing to release" });
    }
}

/// Waits until the state of the last apply at `loc` is written (when it is written behind), and
/// gives its classes back to what was kept. An error when it could not be written (then
/// nothing is kept: the next apply starts over).
pub fn settle(loc: &Location) -> Result<()> {
    let h = WRITING.lock().map_err(|_| DatapathError::Other("the state writers' list is poisoned".to_owned()))?.remove(&loc.pin_dir);
    let Some(h) = h else { return Ok(()) };
    let r = h.join().unwrap_or_else(|_| Err(DatapathError::Other("the thread writing the state panicked".to_owned())));
    match r {
        Ok(ids) => {
            if let Ok(mut all) = KEPT.lock()
                && let Some(w) = all.get_mut(&loc.pin_dir)
            {
                w.kept.give_ids(ids);
            }
            Ok(())
        }
        Err(e) => {
            forget(loc);
            Err(DatapathError::Other(format!("writing the state of the last apply: {e}")))
        }
    }
}

/// `settle` for every datapath this process applied to: before it exits.
pub fn settle_all() -> Result<()> {
    let dirs: Vec<PathBuf> = WRITING.lock().map(|w| w.keys().cloned().collect()).unwrap_or_default();
    let mut first = Ok(());
    for pin_dir in dirs {
        let r = settle(&Location { netns: None, pin_dir });
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// `f` of the state last applied at `loc`: the one kept in this process when it is still what is
/// installed (no file read), else the saved one. `None` when nothing is installed. The state's
/// `class_ids` may be empty.
pub fn with_state<R>(loc: &Location, f: impl FnOnce(&State) -> R) -> Result<Option<R>> {
    let kept = KEPT.lock().ok().and_then(|all| all.get(&loc.pin_dir).map(|w| (w.token.clone(), Arc::clone(&w.state))));
    if let Some((t, state)) = kept
        && token(loc) == Some(t)
    {
        return Ok(Some(f(&state)));
    }
    Ok(State::load(&loc.state_dir())?.map(|s| f(&s)))
}

/// Writes `c` (forcing a new generation with `force`): from what is `known` of the banks and
/// the compile's `log` when possible, else reading the banks back. What the banks hold after.
pub(super) fn write_banks(m: &mut Maps<'_>, c: &Compiled, force: bool, known: Option<Known>, log: &Log) -> Result<(super::maps::WriteReport, Option<Known>)> {
    let w = match &known {
        Some(k) if !log.whole => m.write_known(c, force, k, log)?,
        _ => m.write(c, force)?,
    };
    let banks = match (&w.inactive, known) {
        (Some(inactive), _) => Some(Known::read(c, inactive)),
        (None, Some(k)) => Some(k.advance(c, log, w.flipped)),
        (None, None) => None,
    };
    Ok((w, banks))
}

/// Where an apply starts from: what the last apply in this process kept, while the datapath is
/// as it left it (`warm`); else the saved state, and a compile from scratch that numbers classes
/// as the state says.
pub(super) struct Start {
    pub old: Option<State>,
    pub kept: Kept,
    pub known: Option<Known>,
    /// The interfaces' counter slots as installed: from the kept banks, else read from the maps.
    pub slots: Slots,
}

impl Start {
    pub fn new(loc: &Location, state_dir: &Path) -> Result<Self> {
        if let Some(w) = take(loc) {
            // Nobody else holds it between applies (`with_state` only while it reads).
            let state = Arc::try_unwrap(w.state).unwrap_or_else(|shared| (*shared).clone());
            // The interfaces' counter slots as installed, from what is kept: the same values the
            // maps hold (`installed_slots`), without reading them.
            let slots = w.banks.inactive.ifaces.iter().chain(&w.banks.live.ifaces).map(|(i, e)| (*i, e.stats_slot)).collect();
            return Ok(Start { old: Some(state), kept: w.kept, known: Some(w.banks), slots });
        }
        let old = State::load(state_dir)?;
        let kept = Kept::new(old.as_ref().map_or(&ClassIds::new(), |o| &o.class_ids));
        Ok(Start { old, kept, known: None, slots: maps::installed_slots(loc)? })
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

/// Where `a` has what `b` has not or otherwise: `a`'s value (`None`: absent).
fn differing<K: Ord + Clone, V: PartialEq + Clone>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> BTreeMap<K, Option<V>> {
    let d = MapDiff::between(b, a);
    d.added.into_iter().map(|(k, v)| (k, Some(v))).chain(d.changed.into_iter().map(|(k, (_, v))| (k, Some(v)))).chain(d.removed.into_keys().map(|k| (k, None))).collect()
}

/// One classifier map's changes from the compile's log, from `have` (the value a key has in the
/// bank written to, given its value in the live bank) to `now`, over `keys` (only keys the log
/// or `behind` names can differ).
fn logged<'k, K: Ord + Clone + 'k, V: PartialEq + Clone>(
    keys: impl Iterator<Item = &'k K>,
    log: &BTreeMap<K, Option<V>>,
    now: &BTreeMap<K, V>,
    have: impl Fn(&K, Option<&V>) -> Option<V>,
) -> MapDiff<K, V> {
    let mut d = MapDiff::default();
    for k in keys {
        let want = now.get(k);
        let live = log.get(k).map_or(want, Option::as_ref);
        match (have(k, live), want) {
            (None, Some(w)) => {
                d.added.insert(k.clone(), w.clone());
            }
            (Some(h), Some(w)) if h != *w => {
                d.changed.insert(k.clone(), (h, w.clone()));
            }
            (Some(h), None) => {
                d.removed.insert(k.clone(), h);
            }
            _ => {}
        }
    }
    d
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

    /// What changes against the live bank with `c` (for the report and whether to flip), from
    /// what is known and the compile's `log`.
    pub fn against_live(&self, c: &Compiled, log: &Log) -> Diff {
        let mut d = small_diff(&self.live, c);
        d.cls = logged(log.trie.keys(), &log.trie, &c.cls, |_, live| live.copied());
        d.cls_hash = logged(log.hash.keys(), &log.hash, &c.cls_hash, |_, live| live.copied());
        d.cls_res = logged(log.res.keys(), &log.res, &c.cls_res, |_, live| live.copied());
        d
    }

    /// What to write for `c` into the inactive bank: what it lacks of the live one (`behind`)
    /// and the compile's `log`.
    pub fn to_inactive(&self, c: &Compiled, log: &Log) -> Diff {
        fn inactive<K: Ord, V: Clone>(behind: &BTreeMap<K, Option<V>>, k: &K, live: Option<&V>) -> Option<V> {
            behind.get(k).map_or_else(|| live.cloned(), Clone::clone)
        }
        let b = &self.behind;
        let mut d = small_diff(&self.inactive, c);
        d.cls = logged(b.trie.keys().chain(log.trie.keys()), &log.trie, &c.cls, |k, live| inactive(&b.trie, k, live));
        d.cls_hash = logged(b.hash.keys().chain(log.hash.keys()), &log.hash, &c.cls_hash, |k, live| inactive(&b.hash, k, live));
        d.cls_res = logged(b.res.keys().chain(log.res.keys()), &log.res, &c.cls_res, |k, live| inactive(&b.res, k, live));
        d
    }

    /// After a write from `to_inactive`: with a flip `c` is live and the bank live until now is the
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
