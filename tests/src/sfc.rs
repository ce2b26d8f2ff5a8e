//! Running the `sfc` CLI against a topology's hub namespace, and reading `sfc stats --json`.

use std::{
    collections::BTreeMap,
    fmt::{self, Write as _},
    marker::PhantomData,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{
    link, netns,
    stream::STREAM_PORT,
    topology::{DEST_IP, SOURCE_IP, Topology},
};

/// Where sfc pins by default (DESIGN.md section 4): `/sys/fs/bpf/sfc/<netns>`.
pub const PIN_ROOT: &str = "/sys/fs/bpf/sfc";

/// The `sfc` binary: `$SFC_BIN` (set by `cargo xtask test`), else `<target>/debug/sfc`.
/// Panics when neither exists: a test that cannot run must fail loudly.
pub fn bin_from_env() -> PathBuf {
    if let Some(bin) = std::env::var_os("SFC_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "SFC_BIN={} does not exist", bin.display());
        return bin;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let bin = target.join("debug/sfc");
    assert!(
        bin.is_file(),
        "no sfc binary: set SFC_BIN or build it first (`cargo build -p sfc-user`); looked for {}",
        bin.display()
    );
    bin
}

/// `sfc --netns <ns>` runs. When made for a topology it cannot outlive it, and on drop it takes
/// the datapath down (and removes the pin directory) unless [`Sfc::keep`] was called.
#[derive(Debug)]
pub struct Sfc<'t> {
    bin: PathBuf,
    netns: String,
    pin_dir: PathBuf,
    cleanup: bool,
    /// `--mode` for `apply` (none: sfc's default, tc).
    mode: Option<String>,
    _topology: PhantomData<&'t Topology>,
}

impl Sfc<'static> {
    /// For a namespace not owned by a [`Topology`] here (e.g. a kept demo); no cleanup on drop.
    pub fn for_netns(bin: &Path, netns: &str) -> Self {
        Sfc {
            bin: bin.to_owned(),
            netns: netns.to_owned(),
            pin_dir: Path::new(PIN_ROOT).join(netns),
            cleanup: false,
            mode: None,
            _topology: PhantomData,
        }
    }
}

impl<'t> Sfc<'t> {
    /// For `topo`'s hub, with the binary from [`bin_from_env`].
    pub fn for_topology(topo: &'t Topology) -> Self {
        Self::with_bin(&bin_from_env(), topo)
    }

    pub fn with_bin(bin: &Path, topo: &'t Topology) -> Self {
        let hub = topo.hub();
        Sfc {
            bin: bin.to_owned(),
            pin_dir: Path::new(PIN_ROOT).join(&hub),
            netns: hub,
            cleanup: true,
            mode: None,
            _topology: PhantomData,
        }
    }

    /// Applies with `--mode MODE` (`tc` or `xdp`).
    #[must_use]
    pub fn with_mode(mut self, mode: &str) -> Self {
        self.mode = Some(mode.to_owned());
        self
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The namespace `--netns` names.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Where sfc keeps the applied state and its lock: `/run/sfc/<pin dir>`.
    pub fn state_dir(&self) -> PathBuf {
        let rel = self.pin_dir.strip_prefix("/").unwrap_or(&self.pin_dir);
        Path::new("/run/sfc").join(rel)
    }

    /// `sfc --netns NS args...`, not started yet (for a process the test signals or times).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--netns").arg(&self.netns).args(args);
        cmd
    }

    /// Leaves the datapath up when dropped.
    pub fn keep(mut self) {
        self.cleanup = false;
    }

    /// The command line, for people: `sfc --netns NS args...`.
    pub fn command_line(&self, args: &[&str]) -> String {
        format!(
            "{} --netns {} {}",
            self.bin.display(),
            self.netns,
            args.join(" ")
        )
    }

    /// Runs `sfc --netns NS args...`; returns stdout, or an error with stdout and stderr.
    pub fn try_run(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("--netns")
            .arg(&self.netns)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "`{}` failed ({}):\nstdout: {}\nstderr: {}",
                self.command_line(args),
                out.status,
                stdout.trim_end(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            );
        }
        Ok(stdout)
    }

    /// As [`Sfc::try_run`], panicking on failure.
    pub fn run(&self, args: &[&str]) -> String {
        self.try_run(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// `sfc apply -f FILE` (with `--mode`, when set).
    pub fn apply(&self, file: &Path) -> String {
        self.run(&as_strs(&self.apply_args(file, &[])))
    }

    /// `sfc apply -f FILE --drain-timeout 0`: an update moves flows off removed members at once.
    pub fn apply_now(&self, file: &Path) -> String {
        self.run(&as_strs(&self.apply_args(file, &["--drain-timeout", "0"])))
    }

    /// `sfc apply -f FILE --json`, parsed.
    pub fn apply_json(&self, file: &Path) -> serde_json::Value {
        let out = self.run(&as_strs(&self.apply_args(file, &["--json"])));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sfc apply --json printed no JSON object ({e}):\n{out}"))
    }

    fn apply_args(&self, file: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["apply".to_owned(), "-f".to_owned(), file.to_string_lossy().into_owned()];
        if let Some(m) = &self.mode {
            args.extend(["--mode".to_owned(), m.clone()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// `sfc flows --json`, parsed.
    pub fn try_flows(&self) -> Result<Vec<Flow>> {
        let raw = self.try_run(&["flows", "--json"])?;
        Flow::parse_all(&raw)
    }

    pub fn down(&self) -> String {
        self.run(&["down"])
    }

    pub fn try_stats(&self) -> Result<Stats> {
        let raw = self.try_run(&["stats", "--json"])?;
        Stats::parse(&raw)
    }

    /// `sfc stats --json`, parsed; panics on failure.
    pub fn stats(&self) -> Stats {
        self.try_stats().unwrap_or_else(|e| panic!("{e:#}"))
    }
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

impl Drop for Sfc<'_> {
    fn drop(&mut self) {
        if !self.cleanup || !self.pin_dir.exists() {
            return;
        }
        if let Err(e) = self.try_run(&["down"]) {
            eprintln!("warning: {e:#}");
        }
        if self.pin_dir.exists() {
            eprintln!(
                "warning: `sfc down` left {}; removing it",
                self.pin_dir.display()
            );
            if let Err(e) = std::fs::remove_dir_all(&self.pin_dir) {
                eprintln!("warning: remove {}: {e}", self.pin_dir.display());
            }
        }
    }
}

/// `sfc stats --json`: `{"chains":[{"name","chain_id","hops":[{"group","members":[{"port_pair",
/// "packets","bytes"}]}]}],"drops":{"<reason>":n}}`.
#[derive(Debug, Clone)]
pub struct Stats {
    pub raw: String,
    pub json: Value,
}

impl Stats {
    pub fn parse(raw: &str) -> Result<Stats> {
        let json: Value = serde_json::from_str(raw)
            .with_context(|| format!("`sfc stats --json` is not JSON: {raw}"))?;
        if !json["chains"].is_array() {
            bail!("`sfc stats --json` has no \"chains\" array: {raw}");
        }
        Ok(Stats {
            raw: raw.to_owned(),
            json,
        })
    }

    fn member(&self, chain: &str, hop: usize, port_pair: &str) -> Option<&Value> {
        self.json["chains"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == chain)?["hops"]
            .get(hop)?["members"]
            .as_array()?
            .iter()
            .find(|m| m["port_pair"] == port_pair)
    }

    /// Packets chain `chain` sent into member `port_pair` at hop `hop` (0-based).
    pub fn packets(&self, chain: &str, hop: usize, port_pair: &str) -> Option<u64> {
        self.member(chain, hop, port_pair)?["packets"].as_u64()
    }

    pub fn bytes(&self, chain: &str, hop: usize, port_pair: &str) -> Option<u64> {
        self.member(chain, hop, port_pair)?["bytes"].as_u64()
    }

    /// Packets of the reverse direction (symmetric chains) chain `chain` sent into member
    /// `port_pair` of hop `hop` (the hop of the forward direction, 0-based).
    pub fn reverse_packets(&self, chain: &str, hop: usize, port_pair: &str) -> Option<u64> {
        self.member(chain, hop, port_pair)?["reverse_packets"].as_u64()
    }

    /// Packets per port pair over every chain and hop.
    pub fn packets_by_port_pair(&self) -> BTreeMap<String, u64> {
        let mut by = BTreeMap::new();
        let chains = self.json["chains"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        for chain in chains {
            for hop in chain["hops"].as_array().map_or(&[][..], Vec::as_slice) {
                for m in hop["members"].as_array().map_or(&[][..], Vec::as_slice) {
                    if let (Some(pp), Some(n)) = (m["port_pair"].as_str(), m["packets"].as_u64()) {
                        *by.entry(pp.to_owned()).or_default() += n;
                    }
                }
            }
        }
        by
    }

    /// Counter `kind` (`classified`, `from_sf`, `recomputed`, ...) of interface `name`.
    pub fn interface(&self, name: &str, kind: &str) -> Option<u64> {
        self.json["interfaces"].as_array()?.iter().find(|i| i["name"] == name)?[kind].as_u64()
    }

    /// Drop counters by reason.
    pub fn drops(&self) -> BTreeMap<String, u64> {
        self.json["drops"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One entry of `sfc flows --json`: `{"capacity":N,"flows":[{"family","src","dst","sport",
/// "dport","protocol","chain","chain_id","hops":[{"hop","group","port_pair"}],"reverse",...}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub src: String,
    pub dst: String,
    pub sport: u16,
    pub dport: u16,
    pub protocol: String,
    pub chain: String,
    pub reverse: bool,
    /// `(hop, port pair)` in crossing order; `None`: the hop is skipped.
    pub hops: Vec<(usize, Option<String>)>,
    /// A TCP FIN or RST was seen (the entry goes after the close grace).
    pub closing: bool,
}

impl Flow {
    pub fn parse_all(raw: &str) -> Result<Vec<Flow>> {
        let json: Value = serde_json::from_str(raw)
            .with_context(|| format!("`sfc flows --json` is not JSON: {raw}"))?;
        let flows = json["flows"]
            .as_array()
            .with_context(|| format!("`sfc flows --json` has no \"flows\" array: {raw}"))?;
        flows
            .iter()
            .map(|f| {
                let text = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                let port = |k: &str| {
                    f[k].as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .with_context(|| format!("flow without a {k}: {f}"))
                };
                let hops = f["hops"]
                    .as_array()
                    .with_context(|| format!("flow without hops: {f}"))?
                    .iter()
                    .map(|h| {
                        let hop = h["hop"].as_u64().unwrap_or(u64::MAX);
                        let pp = h["port_pair"].as_str().map(str::to_owned);
                        (usize::try_from(hop).unwrap_or(usize::MAX), pp)
                    })
                    .collect();
                Ok(Flow {
                    src: text("src"),
                    dst: text("dst"),
                    sport: port("sport")?,
                    dport: port("dport")?,
                    protocol: text("protocol"),
                    chain: text("chain"),
                    reverse: f["reverse"].as_bool().unwrap_or(false),
                    hops,
                    closing: f["closing"].as_bool().unwrap_or(false),
                })
            })
            .collect()
    }

    /// The port pair picked at hop `hop`.
    pub fn member(&self, hop: usize) -> Option<&str> {
        self.hops
            .iter()
            .find(|(h, _)| *h == hop)
            .and_then(|(_, pp)| pp.as_deref())
    }
}

impl PartialEq for Stats {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw.trim_end())
    }
}

/// Programs attached to one interface, however they were attached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attached {
    /// tcx programs (kernel 6.6+; what sfc's tc mode uses where available).
    pub tcx_ingress: u32,
    pub tcx_egress: u32,
    /// `tc filter show` output, ingress then egress (classic `cls_bpf` attachments).
    pub tc_filters: String,
    /// `ip -d link show` mentions an XDP program.
    pub xdp: bool,
}

impl Attached {
    /// Reads what is attached to `dev` in namespace `ns`.
    pub fn read(ns: &str, dev: &str) -> Result<Attached> {
        let (tcx_ingress, tcx_egress) = netns::in_netns(ns, || -> Result<(u32, u32)> {
            let ifindex = link::ifindex(dev).with_context(|| format!("in {ns}"))?;
            Ok((
                tcx_count(ifindex, BPF_TCX_INGRESS)?,
                tcx_count(ifindex, BPF_TCX_EGRESS)?,
            ))
        })??;
        let mut tc_filters = String::new();
        for dir in ["ingress", "egress"] {
            let out = netns::run("tc", &["-n", ns, "filter", "show", "dev", dev, dir])?;
            tc_filters.push_str(out.trim());
        }
        let link = netns::ip_in(ns, &["-d", "link", "show", "dev", dev])?;
        Ok(Attached {
            tcx_ingress,
            tcx_egress,
            tc_filters,
            xdp: link.contains("prog/xdp"),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tcx_ingress == 0 && self.tcx_egress == 0 && self.tc_filters.is_empty() && !self.xdp
    }
}

impl fmt::Display for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tcx ingress {} egress {}, xdp {}, tc filters: {}",
            self.tcx_ingress,
            self.tcx_egress,
            self.xdp,
            if self.tc_filters.is_empty() {
                "none"
            } else {
                &self.tc_filters
            }
        )
    }
}

const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_TCX_EGRESS: u32 = 47;

/// The `query` member of `union bpf_attr` (uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BpfQuery {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    count: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

/// How many programs are attached at `attach_type` on `ifindex` (of the calling thread's
/// namespace). A kernel without tcx answers EINVAL: none.
fn tcx_count(ifindex: u32, attach_type: u32) -> Result<u32> {
    let mut attr = BpfQuery {
        target_ifindex: ifindex,
        attach_type,
        ..BpfQuery::default()
    };
    // SAFETY: BPF_PROG_QUERY with no id buffers only writes `count` (and flags) into `attr`,
    // whose size we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &raw mut attr,
            std::mem::size_of::<BpfQuery>(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) {
            return Ok(0);
        }
        bail!("BPF_PROG_QUERY(ifindex {ifindex}, type {attach_type}): {err}");
    }
    Ok(attr.count)
}

/// The datapath's kernel-side state in the hub, for failure messages: what is attached to every
/// bridge port, and `bpftool net`.
pub fn diagnostics(topo: &Topology) -> String {
    let hub = topo.hub();
    let mut out = format!("--- programs on the bridge ports of {hub}\n");
    for end in topo.ends() {
        let dev = topo.hub_dev(end);
        let state = Attached::read(&hub, &dev).map_or_else(|e| format!("{e:#}"), |a| a.to_string());
        let _ = writeln!(out, "{dev}: {state}");
    }
    let bpftool = netns::run("ip", &["netns", "exec", &hub, "bpftool", "net"]);
    let _ = writeln!(
        out,
        "--- ip netns exec {hub} bpftool net\n{}",
        bpftool.unwrap_or_else(|e| format!("{e:#}"))
    );
    out
}

/// The member `sfc explain` (from the installed state) picks at `hop` (0-based) for a UDP
/// datagram source:`sport` -> dest:`dport` arriving on `in_iface`.
pub fn explained_member(
    sfc: &Sfc<'_>,
    in_iface: &str,
    sport: u16,
    dport: u16,
    hop: usize,
) -> Result<Option<String>> {
    #[rustfmt::skip]
    let raw = sfc.try_run(&[
        "explain", "--in", in_iface, "--proto", "udp",
        "--src", &SOURCE_IP.to_string(), "--dst", &DEST_IP.to_string(),
        "--sport", &sport.to_string(), "--dport", &dport.to_string(), "--json",
    ])?;
    let v: Value = serde_json::from_str(&raw).with_context(|| format!("explain: {raw}"))?;
    Ok(v["hops"]
        .get(hop)
        .and_then(|h| h["port_pair"].as_str())
        .map(str::to_owned))
}

/// One source port (from 40000 up) for each of `members`, each taken to that member at `hop` by
/// the installed datapath (as `sfc explain` answers).
pub fn sports_for_members(
    sfc: &Sfc<'_>,
    in_iface: &str,
    hop: usize,
    members: &[&str],
) -> Result<Vec<u16>> {
    let mut found: BTreeMap<String, u16> = BTreeMap::new();
    for sport in 40_000..40_256 {
        if let Some(m) = explained_member(sfc, in_iface, sport, STREAM_PORT, hop)?
            && members.contains(&m.as_str())
        {
            found.entry(m).or_insert(sport);
        }
        if found.len() == members.len() {
            return Ok(members.iter().map(|m| found[*m]).collect());
        }
    }
    bail!("no source port in 40000..40256 reaches every one of {members:?} at hop {hop}: {found:?}")
}
