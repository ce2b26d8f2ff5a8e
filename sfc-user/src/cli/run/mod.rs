//! `sfc run`: the daemon. Applies a chain file, re-applies it whenever its content changes (a
//! file with errors is rejected and the running state kept), and serves Prometheus metrics over
//! a hand-written HTTP/1.1 endpoint (one request per connection). On Ctrl-C or SIGTERM it exits
//! and leaves the datapath installed: the pins keep it forwarding.
//!
//! One current-thread tokio runtime, built here, after `--netns` was entered on the main thread:
//! its thread and the blocking-pool threads it spawns (map reads, `apply`) inherit the namespace.

pub mod etcd;
mod health;
mod http;
mod service;
mod summary;
mod args;

pub use args::Args;
pub use service::{lock, remove_stale_lock};

use std::{
    collections::{BTreeMap, BTreeSet},
    collections::hash_map::DefaultHasher,
    hash::{Hash as _, Hasher as _},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    time::MissedTickBehavior,
};

use self::summary::summary;
use self::{
    health::{link_events, probe_loop},
    http::{scrape, serve_connection},
};
use crate::datapath::{self, ApplyReport, LoadOptions, Location};



pub fn run(loc: &Location, a: &Args, agent: Option<etcd::Agent>) -> anyhow::Result<ExitCode> {
    // Bind before changing anything, so a port in use is reported with nothing half done.
    let listener =
        std::net::TcpListener::bind(a.metrics).with_context(|| format!("listening on {} for metrics", a.metrics))?;
    listener.set_nonblocking(true).context("metrics socket")?;
    let changed = agent.as_ref().map(|g| g.changed.clone());
    let watcher = Watcher {
        file: agent.as_ref().map_or_else(|| a.file.clone().unwrap_or_default(), |g| format!("etcd {}", g.keys.config())),
        source: agent.map(|agent| etcd::EtcdSource {
            agent,
            overlay: a.etcd.overlay_dev.clone(),
            mtu: a.etcd.overlay_mtu,
            cluster: None,
            revision: None,
            applied_revision: None,
            generation: 0,
            waiting: false,
        }),
        opts: LoadOptions {
            flow_table_size: a.flow_table_size,
            drain_timeout: Duration::from_secs(a.drain_timeout),
            mode: a.mode.into(),
            new_flow_rate: a.new_flow_rate,
            // A VM's tap comes and goes with the VM: absent is a state, not an error.
            absent_ok: true,
            latency_every: a.sf_latency_every,
        },
        interval: a.interval,
        applied: None,
        rejected: None,
        force: false,
        seen: None,
        failing: None,
        unreadable: None,
        ifaces: Vec::new(),
        down: BTreeSet::new(),
        drain_due: None,
        model: None,
        probe_down: Arc::new(Mutex::new(BTreeSet::new())),
        applied_probe_down: BTreeSet::new(),
        learning: BTreeMap::new(),
        ifindexes: BTreeMap::new(),
    };
    let r = serve(loc, a, watcher, listener, changed);
    if let Err(e) = datapath::settle_all() {
        log::error!("{e}");
    }
    r
}

/// `run` once the metrics port is bound.
fn serve(loc: &Location, a: &Args, mut watcher: Watcher, listener: std::net::TcpListener, changed: Option<Arc<tokio::sync::Notify>>) -> anyhow::Result<ExitCode> {
    watcher.initial(loc)?;
    // After the first apply (its state is on disk when READY=1 says the datapath is live), applies
    // leave their state file to be written behind them: the datapath changed when the new
    // generation went live. The last one is waited for on the way out (`run`).
    datapath::write_behind(true);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let aging = datapath::flows::Aging { idle_s: a.flow_idle_timeout, close_grace_s: a.flow_close_grace };
    let every = Timing {
        file: Duration::from_secs(a.interval),
        health: Duration::from_millis(a.health_interval),
        // Twice per the shorter timeout, at most every 30 s (a pass reads the whole table).
        aging: Duration::from_secs(u64::from(aging.idle_s.min(aging.close_grace_s).div_ceil(2).clamp(1, 30))),
        aging_rule: aging,
    };
    rt.block_on(daemon(Arc::new(loc.clone()), watcher, listener, every, changed))?;
    Ok(ExitCode::SUCCESS)
}

/// How often the daemon looks at the chain file and at the members' links, and ages flows.
#[derive(Clone, Copy)]
struct Timing {
    file: Duration,
    health: Duration,
    aging: Duration,
    aging_rule: datapath::flows::Aging,
}

async fn daemon(
    loc: Arc<Location>,
    watcher: Watcher,
    listener: std::net::TcpListener,
    every: Timing,
    etcd_changed: Option<Arc<tokio::sync::Notify>>,
) -> anyhow::Result<()> {
    let listener = TcpListener::from_std(listener).context("metrics socket")?;
    log::info!("serving metrics on http://{}/metrics", listener.local_addr().context("metrics socket")?);
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let wake = Arc::new(tokio::sync::Notify::new());
    let reload = Arc::new(tokio::sync::Notify::new());
    let prober = tokio::spawn(probe_loop(loc.clone(), watcher.probe_down.clone(), wake.clone()));
    let links = tokio::spawn(link_events(wake.clone()));
    let watch = tokio::spawn(watch_loop(loc.clone(), watcher, every, Wakers { wake, reload: reload.clone(), etcd: etcd_changed }));
    loop {
        tokio::select! {
            _ = interrupt.recv() => { log::info!("interrupted"); break; }
            _ = terminate.recv() => { log::info!("terminated"); break; }
            _ = hangup.recv() => {
                log::info!("SIGHUP: re-applying the configuration");
                service::reloading();
                reload.notify_one();
            }
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let loc = loc.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_connection(stream, move || scrape(loc.clone())).await {
                            log::debug!("metrics request from {peer}: {e}");
                        }
                    });
                }
                Err(e) => log::warn!("accepting a metrics connection: {e}"),
            },
        }
    }
    service::stopping();
    // An `apply` already running in the blocking pool finishes before the runtime is dropped.
    watch.abort();
    prober.abort();
    links.abort();
    log::info!(
        "exiting; the datapath stays installed and keeps forwarding (`sfc{} down` removes it)",
        loc.netns.as_deref().map(|n| format!(" --netns {n}")).unwrap_or_default()
    );
    Ok(())
}

// ---- the chain file --------------------------------------------------------------------------

/// What the daemon knows about the chain file between two looks.
struct Watcher {
    /// The chain file, or where in etcd it is (for messages).
    file: String,
    /// Multi-host: the configuration and the other hosts' ports come from etcd.
    source: Option<etcd::EtcdSource>,
    opts: LoadOptions,
    interval: u64,
    /// Hash of the content running now.
    applied: Option<u64>,
    /// Hash of a content that failed validation (not looked at again until it changes).
    rejected: Option<u64>,
    /// SIGHUP: the next look applies the content even if it is the one running or was rejected.
    force: bool,
    /// Hash of the content seen last (to log a change once).
    seen: Option<u64>,
    /// The error of the last failed `apply` (retried every interval, logged when it changes).
    failing: Option<String>,
    /// Why the file could not be read (logged once).
    unreadable: Option<String>,
    /// The interfaces of the running model (port pairs' and classifiers'), and those seen down
    /// or missing at the last look.
    ifaces: Vec<String>,
    down: BTreeSet<String>,
    /// The model running now (of the content `applied` hashes): what health changes and drains
    /// re-apply, whatever the file holds meanwhile.
    model: Option<Arc<crate::model::Model>>,
    /// When the first drain ends (seconds since the Unix epoch): the file is re-applied then, so
    /// a drain ends on time, not at the next change.
    drain_due: Option<u64>,
    /// Port pairs the prober finds not forwarding (shared with it), and those installed down for
    /// that at the last apply.
    probe_down: Arc<Mutex<BTreeSet<String>>>,
    applied_probe_down: BTreeSet<String>,
    /// Interfaces whose MAC the datapath learns (no veth peer: taps), by ifindex, with the MAC
    /// the last apply used (`None`: not known then). A change re-applies.
    learning: BTreeMap<u32, (String, Option<[u8; 6]>)>,
    /// The ifindex of every interface the last apply found: one that comes back under the same
    /// name (a VM restarted: a new tap) is a new interface, which needs the program and its
    /// entries, even when no look saw it gone.
    ifindexes: BTreeMap<String, Option<u32>>,
}

/// Of `ifaces`: those missing or not operationally up, and those whose ifindex is not the one
/// in `applied` (an interface replaced under the same name, or one absent then and there now).
fn links_of(ifaces: &[String], applied: &BTreeMap<String, Option<u32>>) -> (BTreeSet<String>, Vec<String>) {
    let (mut down, mut renewed) = (BTreeSet::new(), Vec::new());
    for name in ifaces {
        match datapath::netlink::link_by_name(name) {
            Ok(l) => {
                if !l.oper_up {
                    down.insert(name.clone());
                }
                match applied.get(name) {
                    Some(Some(was)) if *was != l.ifindex => renewed.push(format!("{name} (ifindex {was} -> {})", l.ifindex)),
                    Some(None) => renewed.push(format!("{name} (appeared, ifindex {})", l.ifindex)),
                    _ => {}
                }
            }
            Err(_) => {
                down.insert(name.clone());
            }
        }
    }
    (down, renewed)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn content_hash(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}


impl Watcher {
    /// Applies `model`, as `sfc apply` does (which also installs members with a down interface
    /// as down), and keeps it as the one running.
    fn apply(&mut self, loc: &Location, model: Arc<crate::model::Model>) -> anyhow::Result<ApplyReport> {
        let probe_down = self.probe_down.lock().map(|s| s.clone()).unwrap_or_default();
        let names = datapath::model_ifaces(&model);
        let ifaces: Vec<String> = names.iter().cloned().collect();
        if let Some(src) = &self.source {
            // Again at every apply: a failed first install takes down what it made, the
            // overlay device included.
            if datapath::cluster::ensure_overlay(&src.overlay, src.mtu)?.1 {
                datapath::cluster::remember_created(loc, &src.overlay)?;
            }
        }
        let cluster = self.source.as_ref().and_then(|s| s.cluster.clone());
        let r = datapath::apply_cluster(loc, &model, self.opts, &probe_down, cluster.as_ref(), Some(&names));
        if let Some(src) = &mut self.source {
            src.publish(loc, &model, &probe_down, r.as_ref().map(|r| r.generation).map_err(|e| format!("{e:#}")));
        }
        let r = r?;
        self.applied_probe_down = probe_down;
        let state = datapath::with_state(loc, datapath::State::without_model).ok().flatten();
        self.drain_due = state.as_ref().and_then(|s| s.draining.values().map(|d| d.until).min());
        // What the apply used: an interface absent then (`None`) that exists now is new.
        self.ifindexes = ifaces.iter().map(|n| (n.clone(), state.as_ref().and_then(|s| s.facts.get(n)).map(|f| f.ifindex))).collect();
        self.learning = state
            .map(|s| s.facts.into_iter().filter(|(_, f)| f.learns()).map(|(name, f)| (f.ifindex, (name, f.learnt_mac))).collect())
            .unwrap_or_default();
        self.ifaces = ifaces;
        // The links as the apply saw them, not as a look before or after it saw them: a link
        // that went down and up again while the apply looked (a tap replugged) left its member
        // down, and a look before the apply would have taken the member as up.
        self.down.clone_from(&r.links_down);
        self.model = Some(model);
        Ok(r)
    }

    /// What systemd's status line says once something is live: `None` before the first apply
    /// (from etcd: before the first configuration, or the news that there is none).
    fn live(&self) -> Option<String> {
        let waiting = self.source.as_ref().is_some_and(|s| s.waiting);
        // One line: systemd shows STATUS in `systemctl status`.
        let first = |e: &str| e.lines().next().unwrap_or_default().to_owned();
        match (self.applied, self.model.as_ref()) {
            (Some(_), Some(m)) => Some(format!(
                "{}: {} port chains live{}{}",
                self.file,
                m.port_chains.len(),
                if self.rejected.is_some() && self.rejected == self.seen { "; its current content is rejected (see the log)" } else { "" },
                self.failing.as_ref().map(|e| format!("; applying its current content fails: {}", first(e))).unwrap_or_default()
            )),
            _ if waiting => Some(format!("{}: no configuration yet", self.file)),
            _ => None,
        }
    }

    /// SIGHUP: the next look applies the content even if it is the one running (an operator's
    /// reload re-applies; a file rejected before is validated again). What runs stays known:
    /// health and drains go on whatever the reload finds.
    fn force_next_look(&mut self) {
        self.force = true;
    }

    /// Applies the running model again (a member's health changed, a drain is due).
    fn reapply(&mut self, loc: &Location) -> anyhow::Result<ApplyReport> {
        // The same model again: the Arc, not a copy of 100,000 classifiers.
        let model = self.model.clone().context("nothing applied yet")?;
        self.apply(loc, model)
    }

    /// The interfaces of the running model that are missing or not operationally up now, and
    /// those that are new since the last apply (`tap0 (ifindex 7 -> 9)`).
    fn links_now(&self) -> (BTreeSet<String>, Vec<String>) {
        links_of(&self.ifaces, &self.ifindexes)
    }

    /// Interfaces whose learnt MAC differs from what the last apply used: `tap0: 52:54:..`.
    fn macs_learnt(&self, loc: &Location) -> Vec<String> {
        if self.learning.is_empty() {
            return Vec::new();
        }
        let now = match datapath::maps::learnt_macs(loc) {
            Ok(m) => m,
            Err(e) => {
                log::warn!("reading the learnt MACs: {e:#}");
                return Vec::new();
            }
        };
        self.learning
            .iter()
            .filter_map(|(ifindex, (name, used))| {
                let mac = now.get(ifindex).copied();
                (mac.is_some() && mac != *used).then(|| format!("{name}: {}", mac.map_or_else(String::new, |m| crate::view::inspect::mac(&m))))
            })
            .collect()
    }

    /// One look at the members' links; re-applies the running file when one went down or came
    /// back, so the datapath fails over (or back) at once.
    fn check_health(&mut self, loc: &Location) {
        if self.applied.is_none() {
            return;
        }
        let (down, renewed) = self.links_now();
        let probe_down = self.probe_down.lock().map(|s| s.clone()).unwrap_or_default();
        let learnt = self.macs_learnt(loc);
        if down == self.down && probe_down == self.applied_probe_down && learnt.is_empty() && renewed.is_empty() {
            return;
        }
        if !renewed.is_empty() {
            log::warn!("new interfaces under the file's names: {}; re-applying", renewed.join(", "));
        }
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        if !learnt.is_empty() {
            log::warn!("learnt the MAC behind {}; re-applying", learnt.join(", "));
        }
        if down != self.down {
            log::warn!("link state changed: down now [{}] (was [{}]); re-applying", list(&down), list(&self.down));
        }
        if probe_down != self.applied_probe_down {
            log::warn!(
                "health probes: not forwarding now [{}] (was [{}]); re-applying",
                list(&probe_down),
                list(&self.applied_probe_down)
            );
        }
        match self.reapply(loc) {
            Ok(r) => log::warn!("{}", summary(&self.file, &r, None)),
            Err(e) => log::error!("re-applying after a link change failed, keeping the running state: {e:#}"),
        }
    }

    /// Ends the drains that are due: re-applies the running file, which removes them.
    fn check_drains(&mut self, loc: &Location) {
        let due = self.drain_due.is_some_and(|t| t <= unix_now());
        if !due || self.applied.is_none() {
            return;
        }
        match self.reapply(loc) {
            Ok(r) => log::info!("{}", summary(&self.file, &r, None)),
            Err(e) => {
                // Retried at the next tick (at most every second).
                self.drain_due = Some(unix_now() + 1);
                log::error!("ending the drains that are due failed, retrying: {e:#}");
            }
        }
    }

    /// The first apply: any error ends the daemon before it serves anything. From etcd: the
    /// overlay device is made ready; the configuration is applied when it is read.
    fn initial(&mut self, loc: &Location) -> anyhow::Result<()> {
        if let Some(src) = &self.source {
            let (ifindex, created) = datapath::cluster::ensure_overlay(&src.overlay, src.mtu)?;
            if created {
                datapath::cluster::remember_created(loc, &src.overlay)?;
            }
            log::info!("overlay device {} (ifindex {ifindex}){}", src.overlay, if created { ", created" } else { "" });
            return Ok(());
        }
        let text = std::fs::read(&self.file).map_err(|e| super::exit::invalid!("reading {}: {e}", self.file))?;
        let h = content_hash(&text);
        let t = std::time::Instant::now();
        let model = super::model_of(&self.file, &text)?;
        let read = t.elapsed();
        let r = self.apply(loc, Arc::new(model))?;
        log::info!("{}", summary(&self.file, &r, Some(read)));
        (self.applied, self.seen) = (Some(h), Some(h));
        Ok(())
    }

    /// One look at the file; applies it when its content changed. Never fails: every problem is
    /// logged and the running state kept.
    fn poll(&mut self, loc: &Location) {
        if self.source.is_some() {
            self.poll_etcd(loc);
            return;
        }
        let text = match std::fs::read(&self.file) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("reading {}: {e}", self.file);
                if self.unreadable.as_ref() != Some(&msg) {
                    log::warn!("{msg}; keeping the running state");
                }
                self.unreadable = Some(msg);
                return;
            }
        };
        self.unreadable = None;
        let h = content_hash(&text);
        if self.seen != Some(h) {
            self.seen = Some(h);
            if self.applied == Some(h) {
                log::info!("{} is back to the content running now", self.file);
            } else {
                log::info!("{} changed", self.file);
            }
        }
        let forced = std::mem::take(&mut self.force);
        if !forced && (self.applied == Some(h) || self.rejected == Some(h)) {
            self.failing = None;
            return;
        }
        let t = std::time::Instant::now();
        let model = match super::model_of(&self.file, &text) {
            Ok(m) => m,
            Err(e) => {
                log::error!("rejected, keeping the running state: {e:#}");
                self.rejected = Some(h);
                return;
            }
        };
        let read = t.elapsed();
        match self.apply(loc, Arc::new(model)) {
            Ok(r) => {
                log::info!("{}", summary(&self.file, &r, Some(read)));
                (self.applied, self.rejected, self.failing) = (Some(h), None, None);
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if self.failing.as_ref() != Some(&msg) {
                    log::error!(
                        "applying {} failed, keeping the running state (retrying every {} s): {msg}",
                        self.file,
                        self.interval
                    );
                }
                self.failing = Some(msg);
            }
        }
    }
}

/// One aging pass over the flow table; what it removed is logged (debug) and counted.
fn age(loc: &Location, rule: datapath::flows::Aging) {
    match datapath::flows::expire(loc, rule) {
        Ok(x) if x.total() > 0 => log::debug!("flows aged out: {} idle, {} closed, {} tombstones", x.idle, x.closed, x.tombstones),
        Ok(_) => {}
        Err(e) => log::warn!("aging the flow table: {e:#}"),
    }
}

/// What wakes the watch loop before its tick: a link event or a probe verdict (`wake`), SIGHUP
/// (`reload`: re-apply even an unchanged file), a change in etcd.
struct Wakers {
    wake: Arc<tokio::sync::Notify>,
    reload: Arc<tokio::sync::Notify>,
    etcd: Option<Arc<tokio::sync::Notify>>,
}

async fn watch_loop(loc: Arc<Location>, mut w: Watcher, every: Timing, wakers: Wakers) {
    let Wakers { wake, reload, etcd: etcd_changed } = wakers;
    let etcd_changed = etcd_changed.unwrap_or_default();
    // Ready once something runs: the file (applied before the loop), or from etcd the first
    // configuration (or the news that there is none yet).
    let mut last_status = w.live();
    if let Some(s) = &last_status {
        service::ready(s);
    }
    let mut told_ready = last_status.is_some();
    let mut tick = tokio::time::interval(every.health);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate, and the file was just applied.
    tick.tick().await;
    let mut last_file_look = tokio::time::Instant::now();
    let mut last_aging = tokio::time::Instant::now();
    loop {
        // A link event or a probe verdict wakes the health check at once; the tick is the
        // fallback (and the clock of the file and the drains).
        let (mut from_etcd, mut reloading) = (false, false);
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
            () = etcd_changed.notified() => from_etcd = true,
            () = reload.notified() => reloading = true,
        }
        let look_at_file = from_etcd || reloading || last_file_look.elapsed() >= every.file;
        if look_at_file {
            last_file_look = tokio::time::Instant::now();
        }
        let age_flows = last_aging.elapsed() >= every.aging;
        if age_flows {
            last_aging = tokio::time::Instant::now();
        }
        let l = loc.clone();
        w = match tokio::task::spawn_blocking(move || {
            w.check_health(&l);
            w.check_drains(&l);
            if reloading {
                w.force_next_look();
            }
            if look_at_file {
                w.poll(&l);
            }
            if age_flows {
                age(&l, every.aging_rule);
            }
            w
        })
        .await
        {
            Ok(w) => w,
            Err(e) => {
                log::error!("watching the chain file stopped: {e}");
                return;
            }
        };
        // READY=1 after every reload (also one that found the file broken: systemd waits for
        // it); STATUS only when it says something new.
        match w.live() {
            Some(s) if reloading || !told_ready => {
                service::ready(&s);
                (told_ready, last_status) = (true, Some(s));
            }
            Some(s) if last_status.as_ref() != Some(&s) => {
                service::status(&s);
                last_status = Some(s);
            }
            _ => {}
        }
    }
}
