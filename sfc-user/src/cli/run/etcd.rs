//! `sfc run --etcd`: the agent's side of the control plane (see `crate::etcd`). One thread of
//! its own, started before `--netns` is entered: the control plane is reached from the
//! namespace sfc was started in, the datapath configured in `--netns`.
//!
//! The thread keeps a session with etcd: a lease (renewed every third of its TTL), this host's
//! node record and ports under it, a read of everything under the prefix and a watch from the
//! revision after it. Each change is re-read whole (a few keys per host) into `Shared::view`,
//! and the daemon's watcher is woken. When etcd cannot be reached the last view stays: the
//! datapath keeps forwarding exactly as configured, and the session is retried every second;
//! a new session reads the current state, so nothing that changed meanwhile is missed.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, bail};
use etcd_client::{Client, WatchOptions};
use tokio::sync::Notify;

use crate::etcd::{self, Keys, NodeRecord, PortRecord, View};

/// The etcd options of `sfc run`.
#[derive(Debug, Clone, clap::Args)]
pub struct EtcdArgs {
    /// Multi-host: take the chain file from etcd (`sfc push`) at URL[,URL...] instead of -f,
    /// publish this host's ports there and reach other hosts' over the overlay.
    #[arg(long, value_name = "URL", requires_all = ["node", "vtep"], conflicts_with = "file")]
    pub etcd: Option<String>,
    /// This host's name among the hosts (unique).
    #[arg(long, value_name = "NAME", requires = "etcd")]
    pub node: Option<String>,
    /// This host's underlay address: other hosts send overlay (VXLAN) packets for it here.
    #[arg(long, value_name = "ADDR", requires = "etcd")]
    pub vtep: Option<IpAddr>,
    /// The overlay device: created (VXLAN, external, UDP 4789) when it does not exist.
    #[arg(long, value_name = "NAME", default_value = "sfc-vxlan")]
    pub overlay_dev: String,
    /// MTU of the overlay device when sfc creates it (default: the kernel's, 1450): at most the
    /// underlay's MTU less 50 (IPv4 underlay) or 70 (IPv6).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(576..=65_000))]
    pub overlay_mtu: Option<u32>,
    /// Key prefix in etcd.
    #[arg(long, value_name = "PREFIX", default_value = etcd::DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    /// Seconds without renewal after which etcd drops this host's ports (its members then
    /// fail over on every host).
    #[arg(long, value_name = "SECS", default_value_t = 6, value_parser = clap::value_parser!(i64).range(2..=300))]
    pub lease_ttl: i64,
}

/// What the agent thread and the daemon share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The last state read from etcd (kept while etcd is unreachable).
    pub view: Option<View>,
    /// What this host publishes: its node record and its ports (set after each apply).
    pub publish: Option<(NodeRecord, BTreeMap<String, PortRecord>)>,
    pub connected: bool,
}

/// The running agent thread's handles.
pub struct Agent {
    pub shared: Arc<Mutex<Shared>>,
    /// Wakes the agent to publish `Shared::publish`.
    pub publish: Arc<Notify>,
    /// Woken by the agent when `Shared::view` changed.
    pub changed: Arc<Notify>,
    pub node: String,
    pub vtep: IpAddr,
    pub keys: Keys,
}

/// Starts the agent thread (in the current network namespace).
pub fn start(a: &EtcdArgs) -> anyhow::Result<Option<Agent>> {
    let (Some(urls), Some(node), Some(vtep)) = (a.etcd.clone(), a.node.clone(), a.vtep) else { return Ok(None) };
    if node.is_empty() || node.contains('/') {
        return Err(crate::cli::exit::invalid!("--node {node:?}: a name without '/'"));
    }
    let agent = Agent {
        shared: Arc::new(Mutex::new(Shared::default())),
        publish: Arc::new(Notify::new()),
        changed: Arc::new(Notify::new()),
        node,
        vtep,
        keys: Keys::new(&a.etcd_prefix),
    };
    let ctx = Session {
        urls,
        keys: agent.keys.clone(),
        node: agent.node.clone(),
        vtep,
        ttl: a.lease_ttl,
        shared: agent.shared.clone(),
        publish: agent.publish.clone(),
        changed: agent.changed.clone(),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the etcd runtime")?;
    std::thread::Builder::new()
        .name("sfc-etcd".to_owned())
        .spawn(move || rt.block_on(ctx.forever()))
        .context("starting the etcd thread")?;
    Ok(Some(agent))
}

struct Session {
    urls: String,
    keys: Keys,
    node: String,
    vtep: IpAddr,
    ttl: i64,
    shared: Arc<Mutex<Shared>>,
    publish: Arc<Notify>,
    changed: Arc<Notify>,
}

const RETRY: Duration = Duration::from_secs(1);

impl Session {
    async fn forever(self) {
        let mut down_since: Option<String> = None;
        loop {
            let e = self.session(&mut down_since).await;
            if let Ok(mut s) = self.shared.lock() {
                s.connected = false;
            }
            let msg = format!("{e:#}");
            if down_since.as_ref() != Some(&msg) {
                log::warn!("etcd at {}: {msg}; the datapath keeps forwarding as configured, retrying every second", self.urls);
                down_since = Some(msg);
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One session, until it fails.
    async fn session(&self, down_since: &mut Option<String>) -> anyhow::Error {
        match self.session_inner(down_since).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn session_inner(&self, down_since: &mut Option<String>) -> anyhow::Result<std::convert::Infallible> {
        let mut c = etcd::connect(&self.urls).await?;
        let lease = c.lease_grant(self.ttl, None).await.context("granting a lease")?.id();
        let (mut keeper, mut alive) = c.lease_keep_alive(lease).await.context("keeping the lease alive")?;
        let mut published: BTreeMap<String, PortRecord> = BTreeMap::new();
        self.publish(&mut c, lease, &mut published).await?;
        let view = etcd::read(&mut c, &self.keys).await?;
        let start = view.revision + 1;
        log::info!(
            "etcd at {}: connected as node {} (lease {lease:x}, {} s); configuration revision {}, {} hosts",
            self.urls,
            self.node,
            self.ttl,
            view.config.as_ref().map_or_else(|| "none yet".to_owned(), |(r, _)| r.to_string()),
            view.nodes.len()
        );
        *down_since = None;
        self.store(view);
        let mut watch = c
            .watch(self.keys.root(), Some(WatchOptions::new().with_prefix().with_start_revision(start)))
            .await
            .context("watching")?;
        let period = Duration::from_millis(u64::try_from(self.ttl).unwrap_or(6) * 1000 / 3);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    keeper.keep_alive().await.context("renewing the lease")?;
                    let r = tokio::time::timeout(period, alive.message()).await.context("renewing the lease: no answer")?;
                    match r.context("renewing the lease")? {
                        Some(r) if r.ttl() > 0 => {}
                        _ => bail!("the lease expired (this host's ports were dropped); starting a new session"),
                    }
                }
                m = watch.message() => {
                    let m = m.context("watching")?.context("the watch ended")?;
                    if m.canceled() {
                        bail!("the watch was cancelled (compacted at {})", m.compact_revision());
                    }
                    let view = etcd::read(&mut c, &self.keys).await?;
                    self.store(view);
                }
                () = self.publish.notified() => self.publish(&mut c, lease, &mut published).await?,
            }
        }
    }

    fn store(&self, view: View) {
        if let Ok(mut s) = self.shared.lock() {
            s.connected = true;
            if s.view.as_ref() == Some(&view) {
                return;
            }
            s.view = Some(view);
        }
        self.changed.notify_one();
    }

    /// Writes this host's node record and its ports (what changed since `published`).
    async fn publish(&self, c: &mut Client, lease: i64, published: &mut BTreeMap<String, PortRecord>) -> anyhow::Result<()> {
        let (node, ports) = self
            .shared
            .lock()
            .ok()
            .and_then(|s| s.publish.clone())
            .unwrap_or_else(|| {
                let node = NodeRecord { vtep: self.vtep, applied_revision: None, generation: 0, error: None, absent: Vec::new(), down: Vec::new() };
                (node, BTreeMap::new())
            });
        etcd::put_leased(c, self.keys.node(&self.node), &node, lease).await?;
        for (iface, p) in &ports {
            if published.get(iface) != Some(p) {
                etcd::put_leased(c, self.keys.port(&self.node, iface), p, lease).await?;
            }
        }
        for iface in published.keys().filter(|i| !ports.contains_key(*i)) {
            let key = self.keys.port(&self.node, iface);
            c.delete(key.clone(), None).await.with_context(|| format!("removing {key}"))?;
        }
        *published = ports;
        Ok(())
    }
}

/// The daemon's side: where the configuration comes from and what was applied of it.
pub(super) struct EtcdSource {
    pub agent: Agent,
    pub overlay: String,
    pub mtu: Option<u32>,
    /// The other hosts' ports used by the last apply.
    pub cluster: Option<crate::datapath::cluster::Cluster>,
    /// The configuration revision being applied, and the one running.
    pub revision: Option<i64>,
    pub applied_revision: Option<i64>,
    /// The datapath generation live after the last successful apply.
    pub generation: u32,
    /// Logged once: etcd holds no configuration yet.
    pub waiting: bool,
}

impl EtcdSource {
    /// Publishes this host's state after an apply: the revision running, the generation, the
    /// error of a failed apply, and the model's interfaces that exist here with the MAC behind
    /// each (as the apply found it).
    /// `probe_down`: port pairs health probes found not forwarding: their interfaces are
    /// published down, so every host takes the member out, not only this one.
    pub(super) fn publish(
        &mut self,
        loc: &crate::datapath::Location,
        model: &crate::model::Model,
        probe_down: &std::collections::BTreeSet<String>,
        result: Result<u32, String>,
    ) {
        let state = crate::datapath::with_state(loc, crate::datapath::State::without_model).ok().flatten();
        if let Ok(g) = result {
            self.applied_revision = self.revision;
            self.generation = g;
        }
        let configured: BTreeMap<&str, [u8; 6]> = model
            .port_pairs
            .iter()
            .flat_map(|p| [(p.ingress.as_str(), p.ingress_mac), (p.egress.as_str(), p.egress_mac)])
            .filter_map(|(n, m)| m.map(|m| (n, m)))
            .collect();
        let unhealthy: std::collections::BTreeSet<&str> = model
            .port_pairs
            .iter()
            .filter(|p| probe_down.contains(&p.name))
            .flat_map(|p| [p.ingress.as_str(), p.egress.as_str()])
            .collect();
        let ports: BTreeMap<String, PortRecord> = state
            .as_ref()
            .map(|s| {
                s.facts
                    .iter()
                    .filter(|(_, f)| f.remote.is_none())
                    .map(|(name, f)| {
                        let mac = configured.get(name.as_str()).copied().or(f.peer_mac).or(f.learnt_mac);
                        let up = !unhealthy.contains(name.as_str())
                            && crate::datapath::netlink::link_by_name(name).is_ok_and(|l| l.oper_up);
                        (name.clone(), PortRecord { mac: mac.map(|m| crate::view::inspect::mac(&m)), up })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let node = NodeRecord {
            vtep: self.agent.vtep,
            applied_revision: self.applied_revision,
            generation: self.generation,
            error: result.err(),
            absent: state.as_ref().map(|s| s.absent.keys().cloned().collect()).unwrap_or_default(),
            down: state.as_ref().map(|s| s.down.iter().cloned().collect()).unwrap_or_default(),
        };
        if let Ok(mut s) = self.agent.shared.lock() {
            s.publish = Some((node, ports));
        }
        self.agent.publish.notify_one();
    }
}

impl super::Watcher {
    /// One look at what etcd holds (as last read): applies the configuration when it or the
    /// other hosts' ports changed. Never fails: every problem is logged and the running state
    /// kept.
    pub(super) fn poll_etcd(&mut self, loc: &crate::datapath::Location) {
        let Some(src) = self.source.as_mut() else { return };
        let view = src.agent.shared.lock().ok().and_then(|s| s.view.clone());
        let Some(view) = view else { return };
        let Some((revision, text)) = view.config.clone() else {
            if !src.waiting {
                log::info!("no configuration in etcd yet (`sfc push -f FILE --etcd URL` stores one)");
                src.waiting = true;
            }
            return;
        };
        src.waiting = false;
        let cluster = view.cluster(&src.agent.node, &src.overlay);
        let mut keyed = text.clone();
        keyed.extend_from_slice(format!("{cluster:?}").as_bytes());
        let h = super::content_hash(&keyed);
        let forced = std::mem::take(&mut self.force);
        if !forced && self.applied == Some(h) && src.applied_revision != Some(revision) {
            // The same file pushed again: nothing to apply, but this host runs that revision.
            src.revision = Some(revision);
            if let Some(model) = self.model.clone() {
                let generation = src.generation;
                src.publish(loc, &model, &self.applied_probe_down, Ok(generation));
            }
            return;
        }
        if !forced && (self.applied == Some(h) || self.rejected == Some(h)) {
            return;
        }
        let t = std::time::Instant::now();
        let model = match super::super::model_of(&self.file, &text) {
            Ok(m) => m,
            Err(e) => {
                // `sfc push` validates: only a file written past it gets here.
                log::error!("revision {revision} rejected, keeping the running state: {e:#}");
                self.rejected = Some(h);
                return;
            }
        };
        let read = t.elapsed();
        if src.applied_revision != Some(revision) {
            log::info!("configuration revision {revision} from etcd");
        }
        // What the running model came from, should this apply fail: a health re-apply of the
        // running model must not report the revision that failed.
        let before = (src.revision, src.cluster.clone());
        src.revision = Some(revision);
        src.cluster = Some(cluster);
        match self.apply(loc, Arc::new(model)) {
            Ok(r) => {
                log::info!("{} (revision {revision})", super::summary(&self.file, &r, Some(read)));
                (self.applied, self.rejected, self.failing) = (Some(h), None, None);
            }
            Err(e) => {
                if let Some(src) = self.source.as_mut() {
                    (src.revision, src.cluster) = before;
                }
                let msg = format!("{e:#}");
                if self.failing.as_ref() != Some(&msg) {
                    log::error!("applying revision {revision} failed, keeping the running state (retrying): {msg}");
                }
                self.failing = Some(msg);
            }
        }
    }
}
