//! The kernel side of the loader: bpffs, pins, loading the object, writing the compiled maps,
//! attaching the tc program, reading counters back, and removing everything.
//!
//! Layout of a pin directory (default `/sys/fs/bpf/sfc/<netns or host>`):
//! `SFC_*` maps (pinned by name by the loader), the programs and one link per attachment (see
//! `attach`). bpffs holds only BPF objects, so the applied model (for names and diffs) lives in
//! `/run/sfc/<pin dir>/state.json`, beside a lock.

pub mod attach;
mod batch;
pub mod cluster;
pub mod direct;
pub mod flows;
pub mod hop_slots;
pub mod maps;
pub mod netlink;
pub mod netns;
mod preflight;
pub use preflight::ensure_bpffs;
pub mod trace;
pub mod traceflow;
pub mod probe;
pub mod state;
mod warm;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io,
    os::unix::fs::{DirBuilderExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use aya::EbpfLoader;
use sfc_common::maps::MAP_FLOWS;

use crate::{
    compile::{self, IfaceFacts, plan},
    model::{AttachMode, Model},
};
pub use attach::{LinkKind, LinkReport, PeerReport};
use attach::Programs;
pub(crate) use attach::{PROG_PIN, link_pins};
pub use compile::plan::Drain;
pub use state::{Lock, State};
pub use warm::{check as check_kept, forget as forget_kept, give_back_freed, settle, settle_all, with_state, write_behind};

/// The kernel programs, built by `build.rs` from `sfc-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sfc"));

const BPFFS: &str = "/sys/fs/bpf";
/// Between detaching the last XDP steering program and the pass programs behind its targets.
const PEER_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}")]
    Netlink(#[from] netlink::NetlinkError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Compile(Vec<compile::CompileError>),
    #[error("loading the BPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("{what}: {source}")]
    Program { what: String, source: aya::programs::ProgramError },
    #[error("{what}: {source}")]
    Map { what: String, source: aya::maps::MapError },
    #[error("{what}: {source}")]
    Pin { what: String, source: aya::pin::PinError },
    #[error("{what}: {source}")]
    Link { what: String, source: aya::programs::links::LinkError },
    #[error("nothing is installed at {0} (run `sfc apply` first)")]
    NotInstalled(PathBuf),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, DatapathError>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DatapathError {
    let what = what.into();
    move |source| DatapathError::Io { what, source }
}

/// Where a datapath instance lives.
#[derive(Debug, Clone)]
pub struct Location {
    pub netns: Option<String>,
    pub pin_dir: PathBuf,
}

impl Location {
    pub fn new(netns: Option<String>, pin_dir: Option<PathBuf>) -> Self {
        let pin_dir = pin_dir.unwrap_or_else(|| {
            Path::new(BPFFS).join("sfc").join(netns.as_deref().unwrap_or("host"))
        });
        Self { netns, pin_dir }
    }

    /// `/run/sfc/<pin dir>`: the saved model and the lock.
    pub fn state_dir(&self) -> PathBuf {
        let rel = self.pin_dir.strip_prefix("/").unwrap_or(&self.pin_dir);
        Path::new("/run/sfc").join(rel)
    }

    pub fn map_pin(&self, name: &str) -> PathBuf {
        self.pin_dir.join(name)
    }

    pub fn is_installed(&self) -> bool {
        self.pin_dir.join(PROG_PIN).exists()
    }
}

fn private_dir(p: &Path) -> Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p).map_err(io_err(format!("creating {}", p.display())))?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700)).map_err(io_err(format!("chmod 700 {}", p.display())))
}

/// Looks up the interfaces `names` (the model's, `model_ifaces`; in the current network
/// namespace), with the MACs the datapath at `loc` learnt behind them. The second result names
/// those that exist but are not operationally up.
pub fn gather_facts(loc: &Location, names: &BTreeSet<String>) -> Result<(BTreeMap<String, IfaceFacts>, BTreeSet<String>)> {
    let learnt = maps::learnt_macs(loc)?;
    let mut facts = BTreeMap::new();
    let mut down = BTreeSet::new();
    for name in names.iter().cloned() {
        match netlink::link_and_peer(&name) {
            Ok((link, peer)) => {
                if !link.oper_up {
                    down.insert(name.clone());
                }
                facts.insert(name, IfaceFacts {
                    ifindex: link.ifindex,
                    peer_mac: peer.as_ref().and_then(|p| p.mac),
                    peer_in_other_netns: peer.is_some() && link.link_netnsid.is_some(),
                    learnt_mac: learnt.get(&link.ifindex).copied().or_else(|| from_fdb(&link, peer.is_some())),
                    link_type: link.link_type,
                    tun: link.kind.as_deref() == Some("tun"),
                    remote: None,
                });
            }
            // Missing interfaces are reported by `compile`, with the resource that names them.
            Err(netlink::NetlinkError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((facts, down))
}

/// Every interface the model names: port pairs' and classifiers' ports. Collected borrowed and
/// copied once each: 100,000 classifiers name a few ports 200,000 times (copying every name
/// took a fifth of an apply that changes one of them).
pub fn model_ifaces(model: &Model) -> BTreeSet<String> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for pp in &model.port_pairs {
        names.insert(&pp.ingress);
        names.insert(&pp.egress);
    }
    // Neighbours mostly name the same ports: a name is looked for in the set when it is not
    // the one before.
    let (mut src, mut dst) = (None, None);
    for fc in &model.flow_classifiers {
        let s = Some(fc.logical_source_port.as_str()).filter(|s| !s.is_empty());
        if let Some(name) = s
            && s != src
        {
            names.insert(name);
            src = s;
        }
        let d = fc.logical_destination_port.as_deref();
        if let Some(name) = d
            && d != dst
        {
            names.insert(name);
            dst = d;
        }
    }
    names.into_iter().map(str::to_owned).collect()
}

/// The MAC behind a bridge port with no veth peer (a VM's tap), from the bridge's forwarding
/// database, when exactly one address is there: the VM spoke before sfc listened. A port with
/// several addresses behind it (a VM bridging others) tells nothing for sure.
fn from_fdb(link: &netlink::Link, has_peer: bool) -> Option<[u8; 6]> {
    if has_peer || link.master.is_none() {
        return None;
    }
    match netlink::fdb_macs(link.ifindex) {
        Ok(macs) if macs.len() == 1 => macs.first().copied(),
        Ok(_) => None,
        Err(e) => {
            log::debug!("reading the bridge FDB for {}: {e}", link.name);
            None
        }
    }
}

/// Options for `apply`.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Flow table entries (takes effect when the maps are first created).
    pub flow_table_size: u32,
    /// How long a port pair removed from its group keeps serving the flows it already has.
    pub drain_timeout: std::time::Duration,
    /// Attach mode of every interface the file does not set (`interfaces:`).
    pub mode: AttachMode,
    /// New flow entries per CPU per second (0: no cap), see `sfc_common::maps::Limits`.
    pub new_flow_rate: u32,
    /// Interfaces that do not exist are absent, not an error (`compile::Inputs::absent_ok`):
    /// `sfc run`, which re-applies when they appear.
    pub absent_ok: bool,
    /// SF latency: time 1 packet in this many (by fingerprint); 0: off.
    pub latency_every: u32,
}

/// What `apply` changed.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub first_load: bool,
    /// Interfaces a program was attached to, and where one was detached.
    pub attached: Vec<LinkReport>,
    /// What XDP mode did about the far ends of its redirect targets.
    pub peers: Vec<PeerReport>,
    pub detached: Vec<LinkReport>,
    pub map_changes: compile::diff::Counts,
    /// Entries written: `map_changes`, and what the bank that went live still lacked of the
    /// generation before (written at the next apply, not at the flip: packets may still be on
    /// their way through the old bank).
    pub written: usize,
    /// The generation now live, and whether this apply made a new one.
    pub generation: u32,
    pub flipped: bool,
    /// Port pairs now draining, and those whose drain ended (removed).
    pub draining: Vec<String>,
    pub drained: Vec<String>,
    /// Port pairs that went down (their flows fail over) or came back up with this apply.
    pub went_down: Vec<String>,
    pub came_up: Vec<String>,
    /// Port pairs not used until the MAC behind an interface is known: `pp1: ingress 'tap0'`.
    pub waiting_for_mac: Vec<String>,
    /// Port pairs whose MACs became known with this apply (learnt), so they serve now.
    pub got_mac: Vec<String>,
    /// Interfaces the file names that do not exist (with `LoadOptions::absent_ok`): `tap0
    /// (port_pairs[pp1].ingress)`.
    pub absent: Vec<String>,
    /// Where the time went, step by step (logged at debug; the benchmark prints it), and of
    /// the write step, the part that read both banks back and diffed them.
    pub steps: Vec<(&'static str, std::time::Duration)>,
    pub read_banks: std::time::Duration,
    /// The apply started from what the last one in this process kept (`warm`), not from the
    /// state file and the maps read back.
    pub from_kept: bool,
    /// The model's interfaces that the apply found missing on this host or not operationally
    /// up: what it installed their port pairs by. `sfc run` compares its next look at the links
    /// with this, so that a link that changed while the apply looked at it is applied again.
    pub links_down: BTreeSet<String>,
}

/// The steps of an apply and how long each took.
struct Steps {
    last: std::time::Instant,
    done: Vec<(&'static str, std::time::Duration)>,
}

impl Steps {
    fn new() -> Self {
        Self { last: std::time::Instant::now(), done: Vec::new() }
    }

    /// Ends step `name` now.
    fn mark(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.done.push((name, now - self.last));
        self.last = now;
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Installs `model`, or updates an installed datapath to it. A first install that fails
/// removes what it created; a failed update leaves the running datapath as it was (the new
/// generation goes live only at the final flip).
pub fn apply(loc: &Location, model: &Model, opts: LoadOptions) -> Result<ApplyReport> {
    apply_with_down(loc, model, opts, &BTreeSet::new())
}

/// `apply`, with port pairs `down` taken out of their groups as if an interface of theirs were
/// down (health probes found them not forwarding).
pub fn apply_with_down(loc: &Location, model: &Model, opts: LoadOptions, probe_down: &BTreeSet<String>) -> Result<ApplyReport> {
    apply_cluster(loc, &Arc::new(model.clone()), opts, probe_down, None, None)
}

/// `apply` of a model its caller keeps in an `Arc` (`sfc run`): the state kept for the next
/// apply shares it rather than holding a copy of its own (which `apply` makes).
pub fn apply_shared(loc: &Location, model: &Arc<Model>, opts: LoadOptions) -> Result<ApplyReport> {
    apply_cluster(loc, model, opts, &BTreeSet::new(), None, None)
}

/// `apply_with_down` on one host of several (`sfc run --etcd`): interfaces the model names that
/// are not here but in `cluster` are reached over its overlay device. `ifaces`: the model's
/// interface names (`model_ifaces`), when the caller has them already (`sfc run` looks at their
/// links first): a pass over every classifier less.
pub fn apply_cluster(
    loc: &Location,
    model: &Arc<Model>,
    opts: LoadOptions,
    probe_down: &BTreeSet<String>,
    cluster: Option<&cluster::Cluster>,
    ifaces: Option<&BTreeSet<String>>,
) -> Result<ApplyReport> {
    // The last apply's state, if it is being written behind it, first (it holds the lock). If it
    // could not be written, this apply starts from the state file and the maps (and says so).
    if let Err(e) = warm::settle(loc) {
        log::warn!("{e}; this apply starts from the saved state and the maps");
    }
    let fresh = !loc.pin_dir.exists();
    let r = apply_inner(loc, model, opts, probe_down, cluster, ifaces);
    if r.is_err() && fresh && loc.pin_dir.exists() {
        // Best effort: detach and unpin whatever the failed install got to.
        let _ = down(loc);
    }
    r
}

/// An apply, step by step: plan and compile (nothing touched yet), load, configure, attach,
/// write and flip, detach, save.
fn apply_inner(
    loc: &Location,
    model: &Arc<Model>,
    opts: LoadOptions,
    probe_down: &BTreeSet<String>,
    cluster: Option<&cluster::Cluster>,
    ifaces: Option<&BTreeSet<String>>,
) -> Result<ApplyReport> {
    let mut steps = Steps::new();
    ensure_bpffs()?;
    preflight::require_tcx()?;
    private_dir(&loc.pin_dir)?;
    let state_dir = loc.state_dir();
    private_dir(&state_dir)?;
    let lock = Lock::acquire(&state_dir)?;
    let mut start = warm::Start::new(loc, &state_dir)?;
    // Before any map is touched: another process that keeps what it applied sees this apply.
    warm::mark(loc)?;
    let from_kept = start.known.is_some();
    steps.mark("checks, lock, state load");

    let overlay = cluster.map(|c| netlink::link_by_name(&c.overlay).map(|l| (l.ifindex, c.overlay.clone()))).transpose()?;
    let (facts, plan, mut compiled, links_down) = plan_and_compile(loc, model, opts, probe_down, &mut start, cluster.zip(overlay.as_ref().map(|o| o.0)), ifaces)?;
    let warm::Start { old, mut kept, known, slots } = start;
    steps.mark("facts, plan, compile");
    let mut report = ApplyReport { draining: plan.started, drained: plan.ended, from_kept, links_down, ..ApplyReport::default() };
    // Loading the object creates (or reuses, when pinned) every map; the programs are loaded
    // into the kernel when first needed (below) and reused from their pins afterwards. After an
    // apply in this process, every map is there: the object is loaded only if a program that
    // is not pinned yet is needed.
    let mut ebpf = attach::Object::new(|| Ok(EbpfLoader::new().default_map_pin_directory(&loc.pin_dir).map_max_entries(MAP_FLOWS, opts.flow_table_size).load(EBPF_OBJECT)?));
    if !from_kept {
        ebpf.get()?;
    }
    // Configuration first (so an attached program never sees half of it), then attach.
    flows::set_new_flow_rate(loc, opts.new_flow_rate)?;
    trace::set_latency_every(loc, opts.latency_every)?;
    let mut m = maps::Maps::open(loc)?;
    // Every interface that needs a program (draining members' included), in its mode.
    let want: BTreeMap<u32, AttachMode> = compiled
        .attach
        .iter()
        .map(|i| (*i, model.mode_of(compiled.names.ifaces.get(i).map_or("", String::as_str), opts.mode)))
        .collect();
    let xdp = want.values().any(|m| *m == AttachMode::Xdp);
    attach::taps_need_tc(model, &compiled, &want)?;
    if xdp && !compiled.remotes.is_empty() {
        return Err(DatapathError::Other(
            "chains cross hosts here, and the tunnel key of a hop to another host is set by the tc program: run every interface in tc mode (--mode tc, no `mode: xdp` under interfaces:)".to_owned(),
        ));
    }
    let mut progs = Programs::open(loc, &mut ebpf, xdp, overlay.is_some())?;
    report.first_load = progs.first_load;
    drop(ebpf);
    // Order matters for packets in flight (see the "generations" notes in sfc-common):
    // 1. attach the program everywhere the new generation needs it, before it goes live (on an
    //    interface the live bank does not know, the program passes traffic untouched);
    // 2. write the inactive bank and flip (removing an expired drain needs a new generation
    //    too: flows still pinned to it re-resolve);
    // 3. detach only where neither the new generation nor the one live until now needs it, as
    //    read from the maps (not from the state file, which a killed loader may have left stale).
    let live_before = m.live_ifaces()?;
    steps.mark("load, live interfaces");
    attach::attach_all(loc, &mut progs, &compiled, &want, xdp, &mut report)?;
    if let Some((ifindex, name)) = &overlay
        && progs.attach_overlay(loc, *ifindex, name)?
    {
        report.attached.push(LinkReport { iface: name.clone(), kind: LinkKind::Overlay });
    }
    steps.mark("attach");
    cluster::write_before(loc, &compiled)?;
    counter_slots(loc, &mut m, &slots, &compiled, model, &plan.ids)?;
    let (w, banks) = warm::write_banks(&mut m, &compiled, !report.drained.is_empty(), known, &kept.log)?;
    // What the next apply must find to start from what this one keeps: taken under the lock.
    let token = warm::token(loc);
    cluster::remove_after(loc, &compiled)?;
    steps.mark("read banks, diff, write, flip");
    report.read_banks = w.read;
    report.map_changes = w.changes;
    report.written = w.written;
    report.generation = w.generation;
    report.flipped = w.flipped;
    attach::detach_unused(loc, &compiled, &want, &live_before, old.as_ref(), overlay.as_ref().map(|o| o.0), &mut report)?;

    health_changes(&mut report, old.as_ref(), &compiled);
    let failovers = old.as_ref().map_or(0, |o| o.failovers) + report.went_down.len() as u64;
    let next_remote = cluster::next_stand_in(&facts, old.as_ref().map_or(0, |o| o.next_remote));
    let state = Arc::new(State {
        // Shared with the caller: the model applied is the one kept.
        model: Arc::clone(model),
        facts,
        flow_table_size: opts.flow_table_size,
        netns: loc.netns.clone(),
        ids: plan.ids,
        draining: plan.draining,
        down: compiled.down.clone(),
        failovers,
        no_mac: compiled.no_mac.clone(),
        absent: compiled.absent.clone(),
        next_remote,
        class_ids: compile::cls::ClassIds::new(),
    });
    // The classes go with the state to be saved, and come back to the compiler.
    kept.restore(&mut compiled);
    let class_ids = kept.take_ids();
    // The last state goes with the writer: its model may be the last reference to the
    // configuration applied before (100,000 classifiers to free), work for after the apply.
    if let Some(ids) = warm::save(loc, &state_dir, &state, class_ids, lock, old)? {
        kept.give_ids(ids);
    }
    if let (Some(banks), Some(token)) = (banks, token) {
        warm::keep(loc, token, state, kept, banks);
    }
    steps.mark("detach, state save");
    log::debug!(
        "apply: {} (reading the banks back and diffing: {:.1} ms)",
        steps.done.iter().map(|(what, d)| format!("{what} {:.1} ms", d.as_secs_f64() * 1000.0)).collect::<Vec<_>>().join(", "),
        report.read_banks.as_secs_f64() * 1000.0
    );
    report.steps = steps.done;
    Ok(report)
}

/// The counters' array slots, before the flip: the interfaces' slots given anew (`compiled`
/// against `installed`) start from zero before an entry names them; the port pairs' home hops
/// are installed (`hop_slots`).
fn counter_slots(loc: &Location, m: &mut maps::Maps<'_>, installed: &compile::slots::Slots, compiled: &compile::Compiled, model: &Model, ids: &compile::Ids) -> Result<()> {
    let fresh: BTreeSet<u16> = compiled.ifaces.iter().filter(|(i, e)| installed.get(*i) != Some(&e.stats_slot)).map(|(_, e)| e.stats_slot).collect();
    if fresh.contains(&0) {
        // More interfaces in the banks and the new entries than slots: not reachable within
        // the maps' sizes, but said rather than silent.
        log::warn!("interface counter slots exhausted: some interfaces' tc counters go uncounted");
    }
    m.zero_if_slots(&fresh)?;
    hop_slots::install(loc, model, ids)?;
    Ok(())
}

/// The port pairs that went down or came up, wait for a MAC or got one, and the interfaces
/// absent, since the state `old`.
fn health_changes(report: &mut ApplyReport, old: Option<&State>, compiled: &compile::Compiled) {
    let was_down = old.map(|o| o.down.clone()).unwrap_or_default();
    report.went_down = compiled.down.difference(&was_down).cloned().collect();
    report.came_up = was_down.difference(&compiled.down).cloned().collect();
    report.waiting_for_mac = compiled.no_mac.iter().map(|(pp, what)| format!("{pp}: {}", what.join(", "))).collect();
    report.absent = compiled.absent.iter().map(|(i, r)| format!("{i} ({})", r.join(", "))).collect();
    report.got_mac = old.map(|o| o.no_mac.keys().filter(|p| !compiled.no_mac.contains_key(*p)).cloned().collect()).unwrap_or_default();
}





/// What `plan_and_compile` found and made: the interfaces' facts, the plan, the compile, and
/// the model's interfaces it found missing or down on this host (`ApplyReport::links_down`).
type Planned = (BTreeMap<String, IfaceFacts>, plan::Plan, compile::Compiled, BTreeSet<String>);

/// The first step of an apply, which changes nothing: the interfaces' facts and health, the
/// plan (ids, drains) from what is installed, and the compiled state.
fn plan_and_compile(
    loc: &Location,
    model: &Model,
    opts: LoadOptions,
    probe_down: &BTreeSet<String>,
    start: &mut warm::Start,
    cluster: Option<(&cluster::Cluster, u32)>,
    ifaces: Option<&BTreeSet<String>>,
) -> Result<Planned> {
    let old = start.old.as_ref();
    // One pass over the model's classifiers for the names (none when the caller has them), for
    // both the local and the remote facts.
    let found;
    let names = if let Some(n) = ifaces {
        n
    } else {
        found = model_ifaces(model);
        &found
    };
    let (mut facts, mut down_ifaces) = gather_facts(loc, names)?;
    // This host's links as the apply sees them (before other hosts' interfaces join the facts).
    let links_down = names.iter().filter(|n| !facts.contains_key(*n) || down_ifaces.contains(*n)).cloned().collect();
    if let Some((c, _)) = cluster {
        let next = old.map_or(0, |o| o.next_remote);
        let (remote, down) = cluster::remote_facts(names, &facts, c, old.map(|o| &o.facts), next);
        facts.extend(remote);
        down_ifaces.extend(down);
    }
    for p in model.port_pairs.iter().filter(|p| probe_down.contains(&p.name)) {
        down_ifaces.insert(p.ingress.clone());
        down_ifaces.insert(p.egress.clone());
    }
    let port_pair_name = |id: u32| old.and_then(|o| o.port_pair_name(id));
    let ifname = |ifindex: u32| old.and_then(|o| o.ifname(ifindex));
    let prev = plan::Previous {
        ids: old.map(|o| o.ids.clone()).unwrap_or_default(),
        draining: old.map(|o| o.draining.clone()).unwrap_or_default(),
        installed: maps::installed_port_pairs(loc)?,
        port_pair_name: Some(&port_pair_name),
        ifname: Some(&ifname),
    };
    let plan = plan::plan(model, &prev, unix_now(), opts.drain_timeout);
    let inputs = compile::Inputs {
        facts: &facts,
        netns: loc.netns.as_deref(),
        ids: plan.ids.clone(),
        down_ifaces,
        draining: plan.drain_entries.clone(),
        absent_ok: opts.absent_ok,
        overlay: cluster.map(|(_, i)| i),
        // The kept compiler numbers the classes (`Kept::new` took the saved ones).
        class_ids: None,
        stats_slots: start.slots.clone(),
    };
    let compiled = compile::compile_kept(model, &inputs, &mut start.kept).map_err(|e| DatapathError::Compile(preflight::elsewhere(e)))?;
    Ok((facts, plan, compiled, links_down))
}




/// What `down` removed.
#[derive(Debug, Default)]
pub struct DownReport {
    pub detached: usize,
    pub unpinned: usize,
    /// The overlay device sfc had created (multi-host), now deleted.
    pub overlay_removed: Option<String>,
}

/// Detaches everything and removes every pin and the saved state.
pub fn down(loc: &Location) -> Result<DownReport> {
    let state_dir = loc.state_dir();
    // A state being written behind the last apply holds the lock: let it finish (whether it
    // could be written does not matter any more).
    if let Err(e) = warm::settle(loc) {
        log::debug!("{e}");
    }
    if !loc.pin_dir.exists() && !state_dir.exists() {
        return Err(DatapathError::NotInstalled(loc.pin_dir.clone()));
    }
    private_dir(&state_dir)?;
    let lock = Lock::acquire(&state_dir)?;
    warm::forget(loc);
    let mut report = DownReport::default();
    for l in link_pins(&loc.pin_dir)? {
        attach::unpin_link(&l.path)?;
        report.detached += 1;
    }
    report.overlay_removed = cluster::remove_created(loc)?;
    if let Ok(rd) = fs::read_dir(&loc.pin_dir) {
        for e in rd.flatten() {
            fs::remove_file(e.path()).map_err(io_err(format!("removing {}", e.path().display())))?;
            report.unpinned += 1;
        }
    }
    if loc.pin_dir.exists() {
        fs::remove_dir(&loc.pin_dir).map_err(io_err(format!("removing {}", loc.pin_dir.display())))?;
    }
    drop(lock);
    fs::remove_dir_all(&state_dir).map_err(io_err(format!("removing {}", state_dir.display())))?;
    Ok(report)
}
