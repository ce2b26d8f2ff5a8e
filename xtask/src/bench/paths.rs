//! The paths compared: how the hub takes a packet from source to dest, directly or through the
//! same three service functions. Each path gets its own copy of the topology (`topo`), set up
//! once and kept for the whole run so the measurements can be interleaved. Another path is one
//! more entry in [`all`] and one more arm in [`Kind::install`].

use std::{
    path::{Path as FsPath, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use sfc_tests::{
    chain::{ChainFile, FlowClassifier, PortChain, PortPair, PortPairGroup},
    netns::{self, ip_in},
    process::ChildGuard,
};

use super::{
    ovs::Ovs,
    topo::{DEST_PREFIX, HOPS, Hub, Net, Port, SfPorts},
};
use crate::cmd;

/// How the hub moves packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain routing, straight from source to dest.
    Direct,
    /// `ip rule`s on the incoming interface send the packet to each SF in turn.
    PolicyRouting,
    /// Open vSwitch userspace datapath, one `OpenFlow` rule per hop.
    OvsUserspace,
    /// `sfc apply --mode <mode>`.
    Sfc(&'static str),
    /// `sfc apply --mode tc`, the service functions on taps with userspace pumps.
    SfcTaps,
    /// `sfc apply --mode tc` with an `sfc trace` running the whole time.
    SfcTraced(Tracing),
    /// The smallest tc steering there can be (`minimal`): the limit of tc steering here.
    MinimalTc,
    /// The least a tc datapath that keeps flows can do per hop (`sfc_tests::hopfloor`).
    FlowFloor,
}

/// What the `sfc trace` of a traced path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracing {
    /// A filter no packet matches (a destination port nothing sends to): tracing is on, every
    /// packet is checked against the filter, no event is emitted.
    NoMatch,
    /// Every packet, with no budget: each hop decision is an event, which the reader drains
    /// (`--json` lines into /dev/null).
    Every,
}

impl Tracing {
    /// `sfc trace`'s arguments.
    const fn args(self) -> &'static [&'static str] {
        match self {
            Tracing::NoMatch => &["--dport", "9"],
            Tracing::Every => &["--budget", "100000000", "--json"],
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// `a`, `b`, ...: the label in the issue, used in ratios.
    pub key: &'static str,
    /// Short name, also part of namespace names.
    pub name: &'static str,
    pub title: &'static str,
    pub kind: Kind,
    /// Service functions on the path (for "added latency per hop").
    pub hops: u8,
    /// TCP throughput is not measured (a variant of another path, measured for packet rate
    /// and latency only, to keep the run short).
    pub skip_tcp: bool,
    /// Measured in the first repetition only in a run of every path: a variant of another path
    /// for a note of its own, not one of the goals' paths (keeps a run under 10 minutes). Named
    /// in `--paths`, it is measured in every repetition.
    pub once: bool,
}

/// Paths measured only when `--paths` names them: the flow-keeping floor (g) is a reference
/// for work on the datapath (`--paths d,f,g`), and a full run stays under 10 minutes without it.
pub const ON_REQUEST: &[&str] = &["g"];

/// Every path, in table order; the first is the baseline for ratios.
pub fn all() -> Vec<Spec> {
    vec![
        Spec {
            key: "a",
            name: "direct",
            title: "direct, plain routing through the hub",
            kind: Kind::Direct,
            hops: 0,
            skip_tcp: false,
            once: false,
        },
        Spec {
            key: "b",
            name: "policy",
            title: "3 SFs, Linux policy routing",
            kind: Kind::PolicyRouting,
            hops: HOPS,
            skip_tcp: false,
            once: false,
        },
        Spec {
            key: "c",
            name: "ovs",
            title: "3 SFs, OVS userspace (netdev), 1 rule/hop",
            kind: Kind::OvsUserspace,
            hops: HOPS,
            skip_tcp: false,
            once: false,
        },
        Spec {
            key: "d",
            name: "sfctc",
            title: "3 SFs, sfc tc mode",
            kind: Kind::Sfc("tc"),
            hops: HOPS,
            skip_tcp: false,
            once: false,
        },
        Spec {
            key: "e",
            name: "sfcxdp",
            title: "3 SFs, sfc XDP mode",
            kind: Kind::Sfc("xdp"),
            hops: HOPS,
            skip_tcp: false,
            once: false,
        },
        Spec {
            key: "d1",
            name: "sfctr0",
            title: "(d) with `sfc trace` on, a filter no packet matches",
            kind: Kind::SfcTraced(Tracing::NoMatch),
            hops: HOPS,
            skip_tcp: true,
            once: true,
        },
        Spec {
            key: "d2",
            name: "sfctr1",
            title: "(d) with `sfc trace` on every packet, drained to /dev/null",
            kind: Kind::SfcTraced(Tracing::Every),
            hops: HOPS,
            skip_tcp: true,
            once: true,
        },
        Spec {
            key: "f",
            name: "mintc",
            title: "3 SFs, minimal tc steering (constant redirect_peer + MAC, no maps)",
            kind: Kind::MinimalTc,
            hops: HOPS,
            skip_tcp: false,
            once: false,
        },
        Spec {
            key: "g",
            name: "flowtc",
            title: "3 SFs, flow-keeping floor (per hop: array slot, 44-byte flow lookup, MAC + redirect_peer)",
            kind: Kind::FlowFloor,
            hops: HOPS,
            skip_tcp: true,
            once: false,
        },
        Spec {
            key: "t",
            name: "sfctap",
            title: "3 SFs on taps (userspace pump per NIC), sfc tc mode",
            kind: Kind::SfcTaps,
            hops: HOPS,
            skip_tcp: false,
            once: true,
        },
    ]
}

/// What keeps a path's datapath alive; dropped before the namespaces.
#[expect(dead_code, reason = "held only for Drop: stops OVS, takes sfc down")]
enum Datapath {
    Kernel,
    Ovs(Ovs),
    Sfc(SfcGuard),
    Links(Vec<std::os::fd::OwnedFd>),
}

/// A path that is set up and ready to measure.
pub struct Ready {
    pub spec: Spec,
    // Field order is drop order: the datapath before the namespaces it lives in.
    _datapath: Datapath,
    pub net: Net,
}

/// A path as set up: ready, or why it cannot be measured.
pub enum Outcome {
    Ready(Ready),
    /// Not measurable here (e.g. a mode not implemented yet): shown as "n/a: <reason>".
    Unavailable(Spec, String),
}

/// Context every path's set-up needs.
pub struct Env<'a> {
    /// Unique per run: namespaces are `sfcb-<id>-<path>-<role>`.
    pub id: &'a str,
    pub sfc_bin: &'a FsPath,
    /// Scratch directory of this run (chain files, OVS run directories).
    pub work: &'a FsPath,
    /// The CPU the path's work runs on (see `udp`).
    pub path_cpu: usize,
}

impl Kind {
    /// Builds the path's topology and installs its datapath.
    pub fn install(self, spec: Spec, env: &Env<'_>) -> Result<Outcome> {
        let prefix = format!("{}{}", prefix(env.id), spec.name);
        let hub = if self == Kind::OvsUserspace {
            Hub::Bare
        } else {
            Hub::Routed
        };
        let sf_ports = if self == Kind::SfcTaps { SfPorts::Tap } else { SfPorts::Veth };
        let net = Net::build(&prefix, hub, sf_ports)?;
        let datapath = match self {
            Kind::Direct => Datapath::Kernel,
            Kind::PolicyRouting => {
                policy_routes(&net.hub())?;
                Datapath::Kernel
            }
            Kind::MinimalTc => Datapath::Links(super::minimal::install(&net)?),
            Kind::FlowFloor => Datapath::Links(super::minimal::install_floor(&net)?),
            // OVS is part of the path: it runs where the path's kernel work runs.
            Kind::OvsUserspace => Datapath::Ovs(Ovs::start(
                &net.hub(),
                &env.work.join(spec.name),
                env.path_cpu,
            )?),
            Kind::Sfc(_) | Kind::SfcTaps | Kind::SfcTraced(_) => {
                let mode = if let Kind::Sfc(m) = self { m } else { "tc" };
                let file = env.work.join(format!("{}.yaml", spec.name));
                chain(sf_ports).write(&file)?;
                let mut guard = SfcGuard {
                    bin: env.sfc_bin.to_owned(),
                    netns: net.hub(),
                    trace: None,
                };
                let out = guard.apply(&file, mode)?;
                if !out.status.success() {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    // A mode sfc does not have yet is a row to fill later, not a failure.
                    if stderr.contains("not available") {
                        let reason = format!("{} mode not implemented", mode.to_uppercase());
                        return Ok(Outcome::Unavailable(spec, reason));
                    }
                    bail!("`sfc apply --mode {mode}` failed: {}", stderr.trim());
                }
                if let Kind::SfcTraced(t) = self {
                    guard.trace(t, &env.work.join(format!("{}.trace.log", spec.name)))?;
                }
                Datapath::Sfc(guard)
            }
        };
        Ok(Outcome::Ready(Ready {
            spec,
            _datapath: datapath,
            net,
        }))
    }
}

/// Hub rules: what arrives from source (or back from SF n) for dest goes to SF 1 (SF n+1);
/// what comes back from the last SF follows the main table to dest. One table per hop.
fn policy_routes(hub: &str) -> Result<()> {
    for n in 1..=HOPS {
        let from = if n == 1 {
            Port::Source
        } else {
            Port::SfOut(n - 1)
        };
        let table = (100 + u32::from(n)).to_string();
        let via = Port::SfIn(n);
        #[rustfmt::skip]
        ip_in(hub, &[
            "rule", "add", "iif", &from.hub_dev(), "to", DEST_PREFIX, "table", &table, "pref", &table,
        ])?;
        #[rustfmt::skip]
        ip_in(hub, &[
            "route", "add", "default", "via", &via.addr().to_string(), "dev", &via.hub_dev(),
            "table", &table,
        ])?;
    }
    Ok(())
}

/// sfc's chain: one group per SF, everything for dest arriving from source, delivered to dest.
/// Behind taps the SFs' MACs are in the file (nothing ARPs here, so nothing would teach them).
fn chain(sf_ports: SfPorts) -> ChainFile {
    let groups: Vec<String> = (1..=HOPS).map(|n| format!("pg{n}")).collect();
    ChainFile {
        port_pairs: (1..=HOPS)
            .map(|n| {
                let mut pp = PortPair::new(
                    &format!("pp{n}"),
                    &Port::SfIn(n).hub_dev(),
                    &Port::SfOut(n).hub_dev(),
                );
                if sf_ports == SfPorts::Tap {
                    pp.ingress_mac = Some(Port::SfIn(n).mac());
                    pp.egress_mac = Some(Port::SfOut(n).mac());
                }
                pp
            })
            .collect(),
        port_pair_groups: (1..=HOPS)
            .map(|n| PortPairGroup::new(&format!("pg{n}"), &[&format!("pp{n}")]))
            .collect(),
        flow_classifiers: vec![FlowClassifier {
            name: "bench".to_owned(),
            destination_ip_prefix: Some(DEST_PREFIX.to_owned()),
            logical_source_port: Port::Source.hub_dev(),
            logical_destination_port: Some(Port::Dest.hub_dev()),
            ..FlowClassifier::default()
        }],
        port_chains: vec![PortChain::new(
            "pc1",
            1,
            &groups.iter().map(String::as_str).collect::<Vec<_>>(),
            &["bench"],
        )],
        interfaces: Vec::new(),
    }
}

/// `sfc --netns <hub>`; stops its `sfc trace` and takes the datapath down (and its pins) when
/// dropped.
struct SfcGuard {
    bin: PathBuf,
    netns: String,
    trace: Option<ChildGuard>,
}

impl SfcGuard {
    fn apply(&self, file: &FsPath, mode: &str) -> Result<std::process::Output> {
        let mut c = cmd::command(&self.bin);
        c.args(["--netns", &self.netns, "apply", "-f"])
            .arg(file)
            .args(["--mode", mode]);
        cmd::echo(&c);
        let out = cmd::probe(&mut c)?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        Ok(out)
    }

    fn pin_dir(&self) -> PathBuf {
        FsPath::new(sfc_tests::sfc::PIN_ROOT).join(&self.netns)
    }

    /// Starts `sfc trace` as `t` asks, its messages in `log`; returns once it traces.
    fn trace(&mut self, t: Tracing, log: &FsPath) -> Result<()> {
        let err = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut c = cmd::command(&self.bin);
        c.args(["--netns", &self.netns, "trace"]).args(t.args()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        cmd::echo(&c);
        self.trace = Some(ChildGuard::spawn(c)?);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(log).unwrap_or_default().contains("tracing") {
            if Instant::now() >= deadline || self.trace.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                bail!("`sfc trace` did not start: {}", std::fs::read_to_string(log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for SfcGuard {
    fn drop(&mut self) {
        // The trace first: it switches tracing off on the way out, which needs the maps.
        if let Some(mut t) = self.trace.take() {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
            unsafe { libc::kill(i32::try_from(t.pid()).unwrap_or(0), libc::SIGINT) };
            if t.wait_timeout(Duration::from_secs(5)).ok().flatten().is_none() {
                let _ = t.kill();
            }
        }
        if !self.pin_dir().exists() {
            return;
        }
        let out = cmd::probe(cmd::command(&self.bin).args(["--netns", &self.netns, "down"]));
        if let Ok(out) = &out
            && !out.status.success()
        {
            eprintln!(
                "warning: sfc --netns {} down: {}",
                self.netns,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if self.pin_dir().exists() {
            let _ = std::fs::remove_dir_all(self.pin_dir());
        }
    }
}

/// Namespaces a crashed earlier run may have left (`sfcb-*`), for a warning.
pub fn leftovers() -> Vec<String> {
    netns::list("sfcb-")
}

/// Context for an error in one path's set-up.
pub fn setup_error(spec: &Spec, e: anyhow::Error) -> anyhow::Error {
    e.context(format!("set up path ({}) {}", spec.key, spec.title))
}

/// The paths' namespaces' prefix, for messages.
pub fn prefix(id: &str) -> String {
    format!("sfcb-{id}-")
}

/// Removes a work directory when dropped.
pub struct WorkDir(pub PathBuf);

impl WorkDir {
    pub fn create(path: PathBuf) -> Result<WorkDir> {
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(WorkDir(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
