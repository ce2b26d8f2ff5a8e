//! Several "hosts" in namespaces (DESIGN.md section 6, multi-host): the section-6 topology is
//! built with one hub (host 1), then the hub ends of some endpoints are moved into other hubs
//! (hosts 2, 3, ...), each with a bridge of its own. The hubs are joined by an underlay: a
//! namespace with a bridge, one veth per hub, addresses 198.18.255.<n>/24 and
//! `fd00:5fc:ff::<n>/64` on the hub sides (MTU 1600, so a full 1500-byte frame fits in VXLAN).
//! etcd runs in a namespace of its own on its loopback ([`Etcd`]); the agents (`sfc run
//! --etcd`) are started from inside it and configure their hub with `--netns`.
//!
//! ```text
//!   h1 (topology hub) ── u1 ┐
//!   h2 ──────────────── u2 ├─ ul0 (underlay namespace)        etcd namespace: 127.0.0.1:2379
//!   h3 ──────────────── u3 ┘
//! ```
//!
//! With `tenant_l2`, the hubs' bridges are also joined by a plain VXLAN (VNI 100, UDP 4790,
//! static forwarding entries for every endpoint MAC, no learning, no flooding): the tenant
//! network `OpenStack`'s `br-tun` gives instances on several compute nodes, which carries what is
//! not chain traffic (replies of a chain that is not symmetric, unclassified traffic).
//!
//! Dropping it stops the agents, takes every hub's datapath down, stops etcd and deletes the
//! namespaces (the topology's with it).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    link::{self, Veth},
    netns::{NetNsGroup, ip_in},
    process::ChildGuard,
    topology::{BRIDGE, End, Topology},
};

/// MTU of the underlay links.
pub const UNDERLAY_MTU: u32 = 1600;
/// MTU the agents give their overlay device (underlay less VXLAN over IPv6's 70 bytes).
pub const OVERLAY_MTU: u32 = 1530;
const ETCD_CLIENT: &str = "http://127.0.0.1:2379";

/// A host's underlay address.
pub fn vtep(host: usize, v6: bool) -> IpAddr {
    let n = u8::try_from(host).unwrap_or(u8::MAX);
    if v6 { IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0x5fc, 0xff, 0, 0, 0, 0, u16::from(n))) } else { IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 255, n)) }
}

/// etcd in a namespace of its own, on its loopback; killed when dropped.
#[derive(Debug)]
pub struct Etcd {
    ns: String,
    dir: PathBuf,
    log: PathBuf,
    child: Option<ChildGuard>,
}

impl Etcd {
    /// Starts etcd in `ns` (which must exist) with its data in `dir`, and waits until it answers.
    pub fn start(ns: &str, dir: &Path) -> Result<Etcd> {
        let mut e = Etcd { ns: ns.to_owned(), dir: dir.join("etcd"), log: dir.join("etcd.log"), child: None };
        e.restart()?;
        Ok(e)
    }

    pub fn url(&self) -> &'static str {
        ETCD_CLIENT
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Kills it (SIGKILL: what a crash or a host failure does).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
        }
        Ok(())
    }

    /// Starts it again on the same data, and waits until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).with_context(|| format!("open {}", self.log.display()))?;
        let mut cmd = Command::new("ip");
        #[rustfmt::skip]
        cmd.args(["netns", "exec", &self.ns, "etcd",
            "--name", "sfc",
            "--data-dir", &self.dir.to_string_lossy(),
            "--listen-client-urls", ETCD_CLIENT,
            "--advertise-client-urls", ETCD_CLIENT,
            "--listen-peer-urls", "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "sfc=http://127.0.0.1:2380",
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
        self.child = Some(ChildGuard::spawn(cmd).context("start etcd (Debian's etcd-server; `cargo xtask setup` installs it)")?);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new("ip")
                .args(["netns", "exec", &self.ns, "etcdctl", "--endpoints", ETCD_CLIENT, "endpoint", "health"])
                .env("ETCDCTL_API", "3")
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("etcd did not answer within 20 s:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// An agent: `sfc --netns <hub> run --etcd ...`, started from etcd's namespace; killed when
/// dropped.
#[derive(Debug)]
pub struct Agent {
    pub host: usize,
    child: ChildGuard,
    log: PathBuf,
}

impl Agent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    pub fn kill(&mut self) -> Result<bool> {
        Ok(self.child.kill()?.1)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The hosts of a multi-host topology.
pub struct Hosts {
    /// Hub namespace of each host, host 1 first (the topology's hub).
    hubs: Vec<String>,
    /// Where each moved end now lives (1-based host).
    placement: Vec<(End, usize)>,
    v6: bool,
    bin: PathBuf,
    dir: PathBuf,
    pub agents: Vec<Agent>,
    pub etcd: Etcd,
    // Dropped last, in this order: hubs 2.., the underlay and etcd's namespace, then the topology.
    _namespaces: NetNsGroup,
    topo: Topology,
}

impl Hosts {
    /// `n` hosts around `topo` (built, its hub is host 1), `placement` moving endpoint ends to
    /// other hosts; the underlay in IPv6 when `v6`. `dir` holds etcd's data and the logs.
    pub fn build(topo: Topology, n: usize, placement: &[(End, usize)], v6: bool, bin: &Path, dir: &Path) -> Result<Hosts> {
        Self::build_with(topo, n, placement, v6, false, bin, dir)
    }

    /// [`Hosts::build`], with the tenant network between the hubs when `tenant_l2`.
    pub fn build_with(topo: Topology, n: usize, placement: &[(End, usize)], v6: bool, tenant_l2: bool, bin: &Path, dir: &Path) -> Result<Hosts> {
        let id = topo.id().to_owned();
        let mut namespaces = NetNsGroup::default();
        let mut hubs = vec![topo.hub()];
        for h in 2..=n {
            let ns = topo.ns(&format!("h{h}"));
            namespaces.create(&ns)?;
            // As the topology's hub: IPv6 off (the ends moved here get no link-local addresses,
            // send no solicitations or MLD reports that the bridge would flood to an SF).
            let mut quiet = crate::sysctl::NO_REDIRECTS.to_vec();
            quiet.extend_from_slice(crate::sysctl::IPV6_OFF);
            crate::netns::sysctls(&ns, &quiet)?;
            ip_in(&ns, &["link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0"])?;
            link::up(&ns, BRIDGE)?;
            hubs.push(ns);
        }
        let ul = topo.ns("ul");
        namespaces.create(&ul)?;
        ip_in(&ul, &["link", "add", "ul0", "type", "bridge"])?;
        link::up(&ul, "ul0")?;
        for (i, hub) in hubs.iter().enumerate() {
            let h = i + 1;
            let ul_dev = format!("{id}-u{h}");
            link::veth(Veth::new(hub, "u"), Veth::new(&ul, &ul_dev))?;
            for (ns, dev) in [(hub.as_str(), "u"), (ul.as_str(), ul_dev.as_str())] {
                link::set_mtu(ns, dev, UNDERLAY_MTU)?;
            }
            ip_in(&ul, &["link", "set", &ul_dev, "master", "ul0"])?;
            link::up(&ul, &ul_dev)?;
            if v6 {
                netns_sysctl(hub, "net.ipv6.conf.u.disable_ipv6", "0")?;
                netns_sysctl(hub, "net.ipv6.conf.u.accept_dad", "0")?;
            }
            let len = if v6 { 64 } else { 24 };
            link::add_addr(hub, "u", vtep(h, v6), len)?;
            link::up(hub, "u")?;
        }
        for &(end, h) in placement {
            let dev = topo.hub_dev(end);
            let to = hubs.get(h - 1).context("placement names a host that is not there")?.clone();
            ip_in(&hubs[0], &["link", "set", &dev, "netns", &to])?;
            ip_in(&to, &["link", "set", &dev, "master", BRIDGE])?;
            link::up(&to, &dev)?;
        }
        if tenant_l2 {
            tenant_network(&topo, &hubs, placement, v6)?;
        }
        let etcd_ns = topo.ns("etcd");
        namespaces.create(&etcd_ns)?;
        let etcd = Etcd::start(&etcd_ns, dir)?;
        Ok(Hosts { hubs, placement: placement.to_vec(), v6, bin: bin.to_owned(), dir: dir.to_owned(), agents: Vec::new(), etcd, _namespaces: namespaces, topo })
    }

    pub fn topo(&self) -> &Topology {
        &self.topo
    }

    /// Host `h`'s hub namespace (1-based).
    pub fn hub(&self, h: usize) -> &str {
        &self.hubs[h - 1]
    }

    /// The host `end` lives on.
    pub fn host_of(&self, end: End) -> usize {
        self.placement.iter().find(|(e, _)| *e == end).map_or(1, |(_, h)| *h)
    }

    /// Runs `sfc args...` from etcd's namespace (no `--netns`): `push`, `status --etcd`.
    pub fn sfc(&self, args: &[&str]) -> Result<String> {
        let out = in_etcd_netns(self.etcd.ns())
            .arg(&self.bin)
            .args(args)
            .output()
            .context("run sfc in etcd's namespace")?;
        if !out.status.success() {
            bail!("sfc {}: {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `sfc push -f FILE --etcd URL`; returns the revision.
    pub fn push(&self, file: &Path) -> Result<i64> {
        let out = self.sfc(&["push", "-f", &file.to_string_lossy(), "--etcd", self.etcd.url(), "--json"])?;
        let v: serde_json::Value = serde_json::from_str(out.trim()).with_context(|| format!("sfc push --json: {out}"))?;
        v["revision"].as_i64().context("sfc push --json: no revision")
    }

    /// Starts host `h`'s agent (replacing one that ran before), logging to `<dir>/agent-h<h>.log`.
    pub fn start_agent(&mut self, h: usize) -> Result<()> {
        self.start_agent_with(h, &[])
    }

    /// [`Hosts::start_agent`] with more `sfc run` options.
    pub fn start_agent_with(&mut self, h: usize, extra: &[&str]) -> Result<()> {
        self.agents.retain(|a| a.host != h);
        let log = self.dir.join(format!("agent-h{h}.log"));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let vtep = vtep(h, self.v6).to_string();
        let mtu = OVERLAY_MTU.to_string();
        let mut cmd = in_etcd_netns(self.etcd.ns());
        #[rustfmt::skip]
        cmd.arg(&self.bin)
            .args(["--netns", &self.hubs[h - 1], "run",
                "--etcd", self.etcd.url(), "--node", &format!("h{h}"), "--vtep", &vtep,
                "--overlay-mtu", &mtu, "--lease-ttl", "4", "--metrics", "127.0.0.1:9469"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        self.agents.push(Agent { host: h, child: ChildGuard::spawn(cmd)?, log });
        Ok(())
    }

    pub fn agent(&mut self, h: usize) -> Option<&mut Agent> {
        self.agents.iter_mut().find(|a| a.host == h)
    }

    /// `sfc status --etcd --json`.
    pub fn cluster_status(&self) -> Result<serde_json::Value> {
        let out = self.sfc(&["status", "--etcd", self.etcd.url(), "--json"])?;
        serde_json::from_str(out.trim()).with_context(|| format!("sfc status --etcd --json: {out}"))
    }

    /// Waits until every host runs configuration `revision` whole: `sfc status --etcd` shows it
    /// applied there with no interface absent (every other host's ports known) and no member
    /// down.
    pub fn wait_applied(&self, revision: i64, limit: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.cluster_status()?;
            let nodes = s["nodes"].as_array().cloned().unwrap_or_default();
            let empty = |v: &serde_json::Value| v.as_array().is_some_and(Vec::is_empty);
            let current = nodes
                .iter()
                .filter(|n| n["applied_revision"].as_i64() == Some(revision) && empty(&n["absent"]) && empty(&n["down"]))
                .count();
            if current == self.hubs.len() {
                return Ok(s);
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self.agents.iter().map(|a| format!("--- agent h{}:\n{}", a.host, a.log())).collect();
                bail!("not every host runs revision {revision} after {limit:?}: {s}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every agent's log, for failure messages.
    pub fn logs(&self) -> String {
        self.agents.iter().map(|a| format!("--- agent h{}:\n{}", a.host, a.log())).collect::<Vec<_>>().join("\n")
    }

    /// `sfc --netns <hub h> args...`.
    pub fn sfc_on(&self, h: usize, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin).arg("--netns").arg(&self.hubs[h - 1]).args(args).output()?;
        if !out.status.success() {
            bail!("sfc {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The tenant network (see the module comment): a VXLAN device `tvx` in every hub's bridge, and
/// static entries for every endpoint MAC: on its own host to its bridge port, elsewhere to
/// `tvx` with its host's VTEP.
fn tenant_network(topo: &Topology, hubs: &[String], placement: &[(End, usize)], v6: bool) -> Result<()> {
    let host_of = |end: End| placement.iter().find(|(e, _)| *e == end).map_or(1, |(_, h)| *h);
    for (i, hub) in hubs.iter().enumerate() {
        let local = vtep(i + 1, v6).to_string();
        #[rustfmt::skip]
        ip_in(hub, &["link", "add", "tvx", "type", "vxlan", "id", "100", "local", &local, "dstport", "4790", "nolearning"])?;
        ip_in(hub, &["link", "set", "tvx", "master", BRIDGE])?;
        crate::netns::run("bridge", &["-n", hub, "link", "set", "dev", "tvx", "learning", "off", "flood", "off"])?;
        link::up(hub, "tvx")?;
        for end in topo.ends() {
            let mac = link::mac_string(end.mac());
            let h = host_of(end);
            if h == i + 1 {
                crate::netns::run("bridge", &["-n", hub, "fdb", "replace", &mac, "dev", &topo.hub_dev(end), "master", "static"])?;
            } else {
                let remote = vtep(h, v6).to_string();
                crate::netns::run("bridge", &["-n", hub, "fdb", "replace", &mac, "dev", "tvx", "master", "static"])?;
                crate::netns::run("bridge", &["-n", hub, "fdb", "append", &mac, "dev", "tvx", "dst", &remote, "self", "permanent"])?;
            }
        }
    }
    Ok(())
}

/// A command run in network namespace `ns` only. Not `ip netns exec`, which also gives the
/// command a mount namespace of its own with /sys mounted afresh: sfc would find no bpffs there,
/// mount one that lives as long as the process, and its datapath would go with it.
fn in_etcd_netns(ns: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", crate::netns::path(ns).display())).arg("--");
    cmd
}

fn netns_sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    crate::netns::sysctls(ns, &[(key, value)])
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for a in &mut self.agents {
            let _ = a.kill();
        }
        for hub in &self.hubs {
            // Not installed (an agent that never applied) is fine.
            let _ = Command::new(&self.bin).args(["--netns", hub, "down"]).output();
        }
        let _ = self.etcd.stop();
    }
}
