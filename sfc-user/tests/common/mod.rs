//! Harness for running the real tc program on synthetic packets with `BPF_PROG_TEST_RUN`.
//!
//! A [`Fixture`] is one loaded datapath: its own network namespace with a few veth pairs (so
//! that `skb->ifindex` names real devices: the kernel insists), its own bpffs pin directory, the
//! program loaded from `sfc::datapath::EBPF_OBJECT`, and the configuration maps written by the
//! real loader code (`config::parse` -> `model::validate` -> `compile::compile` -> `Maps::write`).
//! Both are removed on drop, also when a test panics. Nothing is attached and no packet is ever
//! sent: `BPF_PROG_TEST_RUN` runs the program on a private skb, and redirect helpers only record
//! their target.
//!
//! The calling thread (a test's own thread) is moved into the namespace, because
//! `BPF_PROG_TEST_RUN` resolves `ifindex` in the caller's namespace; it goes back on drop.
//! Names are `sfcfix-<pid>-<n>` (namespaces) and `/sys/fs/bpf/sfc-fixtures-<pid>-<n>` (pins);
//! leftovers of a killed run (whose pid is gone) are removed by the next run.

pub mod csum;
pub mod mutate;
pub mod packets;
pub mod probe;
pub mod sandbox;
pub mod table;
pub mod test_run;

use std::collections::{BTreeMap, BTreeSet};

use aya::{
    Ebpf, EbpfLoader,
    programs::{ProgramError, SchedClassifier, TestRun as _, TestRunOptions, Xdp},
};
use sfc::{
    compile::{self, IfaceFacts},
    config,
    datapath::{self, Location, maps::Maps},
    model::{self, AttachMode, Model},
};
use sfc_common::maps::{Counter, HopStatsKey, IfStats, PROG_TC_INGRESS, PROG_XDP};
use sfc_tests::{bpffs::PinDir, link, netns::Inside};

/// Verdicts as the tables write them, whatever the program type: the tc values. An XDP run's
/// verdict is translated (`XDP_PASS` -> `PASS`, ...), so one table states what both modes must
/// do; a verdict with no counterpart comes out as `UNKNOWN_VERDICT + raw` and fails any case.
pub use self::test_run::{DROP, PASS, REDIRECT};
use self::test_run::{XDP_DROP, XDP_PASS, XDP_REDIRECT};
pub const UNKNOWN_VERDICT: u32 = 1000;

fn verdict(mode: AttachMode, raw: u32) -> u32 {
    match (mode, raw) {
        (AttachMode::Tc, PASS | DROP | REDIRECT) => raw,
        (AttachMode::Xdp, XDP_PASS) => PASS,
        (AttachMode::Xdp, XDP_DROP) => DROP,
        (AttachMode::Xdp, XDP_REDIRECT) => REDIRECT,
        _ => UNKNOWN_VERDICT + raw,
    }
}

/// Whether `BPF_PROG_TEST_RUN` refuses to run a program of `mode`'s type on `packet` at all
/// (`EINVAL`), as observed on this kernel (6.18): frames shorter than an Ethernet header; and for
/// tc, also frames whose (outer) ethertype is IPv4 / IPv6 but that are shorter than the fixed
/// IPv4 / IPv6 header. Such frames never reach the program; tagged frames (ethertype
/// 802.1Q/802.1ad) are not inspected by the kernel, so the parser's truncated-IP paths are tested
/// through them in tc mode, and directly in XDP mode.
pub fn kernel_refuses(mode: AttachMode, packet: &[u8]) -> bool {
    const ETH: usize = 14;
    if packet.len() < ETH {
        return true;
    }
    if mode == AttachMode::Xdp {
        return false;
    }
    match u16::from_be_bytes([packet[12], packet[13]]) {
        0x0800 => packet.len() < ETH + 20,
        0x86dd => packet.len() < ETH + 40,
        _ => false,
    }
}

/// Largest packet the harness hands back (`data_out`); test packets are far smaller.
const MAX_PACKET: usize = 4096;

/// What one run of the program did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: u32,
    /// The packet as the program left it.
    pub data: Vec<u8>,
}

/// Counters summed over CPUs at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub ifs: BTreeMap<u32, IfStats>,
    pub hops: BTreeMap<HopStatsKey, Counter>,
    pub drops: BTreeMap<&'static str, u64>,
}

/// Counter changes between two snapshots (only the entries that changed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub ifs: BTreeMap<u32, IfStats>,
    pub hops: BTreeMap<HopStatsKey, Counter>,
    pub drops: BTreeMap<&'static str, u64>,
}

impl Delta {
    /// Packets the interface counters account for (each counted packet bumps exactly one).
    pub fn if_packets(&self) -> u64 {
        self.ifs.values().map(|s| s.classified + s.unclassified + s.from_sf + s.malformed).sum()
    }
    pub fn drop_packets(&self) -> u64 {
        self.drops.values().sum()
    }
}

impl Counters {
    pub fn since(&self, before: &Counters) -> Delta {
        let mut d = Delta::default();
        for (k, a) in &self.ifs {
            let b = before.ifs.get(k).copied().unwrap_or_default();
            let x = IfStats {
                classified: a.classified - b.classified,
                unclassified: a.unclassified - b.unclassified,
                from_sf: a.from_sf - b.from_sf,
                malformed: a.malformed - b.malformed,
                recomputed: a.recomputed - b.recomputed,
            };
            if x != IfStats::default() {
                d.ifs.insert(*k, x);
            }
        }
        for (k, a) in &self.hops {
            let b = before.hops.get(k).copied().unwrap_or_default();
            let x = Counter { packets: a.packets - b.packets, bytes: a.bytes - b.bytes };
            if x != Counter::default() {
                d.hops.insert(*k, x);
            }
        }
        for (k, a) in &self.drops {
            let x = a - before.drops.get(k).copied().unwrap_or_default();
            if x != 0 {
                d.drops.insert(*k, x);
            }
        }
        d
    }
}

fn prog_name(mode: AttachMode) -> &'static str {
    match mode {
        AttachMode::Tc => PROG_TC_INGRESS,
        AttachMode::Xdp => PROG_XDP,
    }
}

/// One loaded datapath configured from a chain file, in its own namespace and pin directory,
/// running the program of one attach mode.
pub struct Fixture {
    // Drop order: the program and map fds, then the pins, then the namespace.
    ebpf: Ebpf,
    pub mode: AttachMode,
    loc: Location,
    pub model: Model,
    pub facts: BTreeMap<String, IfaceFacts>,
    /// Interfaces marked down (`set_interface_down`).
    down: BTreeSet<String>,
    /// Multi-host: the overlay device's ifindex (`make_remote`).
    overlay: Option<u32>,
    _pins: PinDir,
    netns: Inside,
}

impl Fixture {
    /// Runs `mode`'s program (`sfc_tc_ingress` or `sfc_xdp`). `pairs`: veth pairs to create
    /// (every end may be named in `chains_yaml`); `mac_of`: the MAC address the loader would find behind an interface (its "peer"), `peer_ns`: whether that
    /// peer is in another namespace (`bpf_redirect_peer`).
    pub fn with_mode(
        mode: AttachMode,
        pairs: &[(&str, &str)],
        chains_yaml: &str,
        mac_of: impl Fn(&str) -> [u8; 6],
        peer_ns: impl Fn(&str) -> bool,
    ) -> Self {
        sandbox::sweep_stale();
        let netns = sandbox::namespace(pairs);
        let pins = sandbox::pin_dir();
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins.path())
            .load(datapath::EBPF_OBJECT)
            .unwrap_or_else(|e| panic!("loading the BPF object: {e}"));
        let name = prog_name(mode);
        let prog = ebpf.program_mut(name).expect("program in the object");
        let loaded = match mode {
            AttachMode::Tc => {
                let p = <&mut SchedClassifier>::try_from(prog).expect("a tc program");
                datapath::attach::load_retrying(|| p.load())
            }
            AttachMode::Xdp => {
                let p = <&mut Xdp>::try_from(prog).expect("an XDP program");
                datapath::attach::load_retrying(|| p.load())
            }
        };
        loaded.unwrap_or_else(|e| panic!("loading {name} (verifier): {e:?}"));

        let cfg = config::parse("fixtures.yaml", chains_yaml).unwrap_or_else(|e| panic!("{e}"));
        let model = model::validate(&cfg).unwrap_or_else(|e| panic!("fixture config invalid:\n{e}"));
        let facts: BTreeMap<String, IfaceFacts> = pairs
            .iter()
            .flat_map(|(a, b)| [*a, *b])
            .map(|n| {
                (n.to_owned(), IfaceFacts { ifindex: sandbox::ifindex(n), peer_mac: Some(mac_of(n)), peer_in_other_netns: peer_ns(n), ..Default::default() })
            })
            .collect();
        let compiled = compile::compile(&model, &facts, None).unwrap_or_else(|e| panic!("compile: {e:?}"));
        let loc = Location::new(None, Some(pins.path().to_owned()));
        let f = Self { ebpf, mode, loc, model, facts, down: BTreeSet::new(), overlay: None, _pins: pins, netns };
        f.write(&compiled);
        f
    }

    /// Sets interfaces up (a copy `bpf_clone_redirect` sends out of a down interface is lost),
    /// and waits until each is operationally up (give both ends of a veth). The kernel's link
    /// watch makes a veth operational from a work queue after its peer comes up; until it has
    /// run, the transmit queue still holds the noop qdisc (`dev_activate` waits for the
    /// carrier), which drops what is sent: a copy counted `tap_copy_failed` (seen once in CI).
    /// The link watch sets the operational state and activates the queue in one step.
    pub fn set_up(&self, ifnames: &[&str]) {
        for n in ifnames {
            sfc_tests::link::up(self.netns.name(), n).unwrap_or_else(|e| panic!("{e:#}"));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for n in ifnames {
            loop {
                let out = sfc_tests::netns::ip_in(self.netns.name(), &["-o", "link", "show", "dev", n]).unwrap_or_else(|e| panic!("{e:#}"));
                if out.contains(" state UP ") {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{n} not operational 5 s after it was set up: {out}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }

    /// Sets an interface down (its transmissions fail).
    pub fn set_down(&self, ifname: &str) {
        sfc_tests::netns::ip_in(self.netns.name(), &["link", "set", "dev", ifname, "down"]).unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Sets an interface's MTU (the XDP program checks frames against their target's).
    pub fn set_mtu(&self, ifname: &str, mtu: u32) {
        link::set_mtu(self.netns.name(), ifname, mtu).unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// The MAC address behind `ifname` (its peer's, as the loader found it): where a packet
    /// redirected into that interface must be addressed.
    pub fn mac_behind(&self, ifname: &str) -> [u8; 6] {
        self.facts.get(ifname).and_then(|f| f.peer_mac).unwrap_or_else(|| panic!("no MAC behind {ifname} in the fixture"))
    }

    pub fn ifindex(&self, ifname: &str) -> u32 {
        self.facts.get(ifname).unwrap_or_else(|| panic!("no interface {ifname} in the fixture")).ifindex
    }

    /// Runs the program once on `packet` arriving on `ifname`; `Err` when the kernel refuses
    /// the run itself (e.g. `EINVAL` for frames shorter than an Ethernet header).
    pub fn try_run(&self, ifname: &str, packet: &[u8]) -> Result<Outcome, ProgramError> {
        self.try_run_ifindex(self.ifindex(ifname), packet)
    }

    pub fn try_run_ifindex(&self, ifindex: u32, packet: &[u8]) -> Result<Outcome, ProgramError> {
        let mut out = vec![0u8; MAX_PACKET];
        let r = self.test_run(ifindex, packet, Some(&mut out), 1)?;
        out.truncate(r.data_size_out as usize);
        Ok(Outcome { verdict: verdict(self.mode, r.return_value), data: out })
    }

    /// One `BPF_PROG_TEST_RUN` of this fixture's program, `repeat` times, with `packet` arriving
    /// on `ifindex`. The verdict is the program's own (not translated).
    pub fn test_run(&self, ifindex: u32, packet: &[u8], data_out: Option<&mut [u8]>, repeat: u32) -> Result<aya::programs::TestRunResult, ProgramError> {
        let ctx = test_run::context(self.mode, ifindex, packet.len());
        let opts = TestRunOptions { data_in: Some(packet), data_out, ctx_in: Some(&ctx), repeat, ..TestRunOptions::default() };
        let prog = self.ebpf.program(prog_name(self.mode)).expect("program");
        match self.mode {
            AttachMode::Tc => <&SchedClassifier>::try_from(prog).expect("a tc program").test_run(opts),
            AttachMode::Xdp => <&Xdp>::try_from(prog).expect("an XDP program").test_run(opts),
        }
    }

    pub fn run(&self, ifname: &str, packet: &[u8]) -> Outcome {
        self.try_run(ifname, packet).unwrap_or_else(|e| panic!("test run on {ifname}: {e:?}"))
    }

    /// Writes `compiled` as a new generation and the port pairs' hop counter homes, as an apply
    /// does (ids are positional here).
    fn write(&self, compiled: &compile::Compiled) {
        self.maps().write(compiled, true).unwrap_or_else(|e| panic!("writing the maps: {e}"));
        datapath::hop_slots::install(&self.loc, &self.model, &compile::Ids::by_index(&self.model)).unwrap_or_else(|e| panic!("installing hop homes: {e}"));
    }

    fn maps(&self) -> Maps<'_> {
        Maps::open(&self.loc).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn counters(&self) -> Counters {
        let m = self.maps();
        Counters {
            ifs: m.if_stats().unwrap_or_else(|e| panic!("{e}")),
            hops: m.hop_stats().unwrap_or_else(|e| panic!("{e}")),
            drops: m.drops().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// Removes every flow-table entry, as `sfc flows --flush` does.
    pub fn forget_flows(&self) {
        sfc::datapath::flows::flush(&self.loc).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Sets the new-flow rate cap (entries per CPU per second; 0: none), as `sfc apply` does.
    pub fn set_new_flow_rate(&self, n: u32) {
        sfc::datapath::flows::set_new_flow_rate(&self.loc, n).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The flow table's accounting (created, capped, ...).
    pub fn flow_stats(&self) -> sfc::view::stats::FlowTableStats {
        sfc::view::stats::flow_table(&self.loc).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The flow table's entries.
    pub fn flows(&self) -> Vec<(sfc_common::maps::FlowKey, sfc_common::maps::FlowEntry)> {
        self.maps().flows().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The sequence number of the last health probe back from port pair `pp` (0: none).
    pub fn probe_back(&self, pp: &str) -> u64 {
        let id = self.port_pair_id(pp);
        sfc::datapath::probe::returned(&self.loc, &[id]).unwrap_or_else(|e| panic!("{e}"))[&id]
    }

    /// Number of entries in the flow table.
    pub fn flow_count(&self) -> usize {
        self.maps().flows().unwrap_or_else(|e| panic!("{e}")).len()
    }

    pub fn chain_id(&self, chain: &str) -> u32 {
        self.model.port_chains.iter().find(|c| c.name == chain).unwrap_or_else(|| panic!("no chain {chain}")).chain_id
    }

    pub fn port_pair_id(&self, pp: &str) -> u32 {
        let i = self.model.port_pairs.iter().position(|p| p.name == pp).unwrap_or_else(|| panic!("no port pair {pp}"));
        compile::port_pair_id(i)
    }

    /// Re-applies a different chain file over the same interfaces, as `sfc apply` would: a new
    /// generation; flows re-resolve at their next packet on their entry port. Port pairs and
    /// groups must keep their positions (ids are positional here).
    pub fn reconfigure(&mut self, chains_yaml: &str) {
        let cfg = config::parse("fixtures.yaml", chains_yaml).unwrap_or_else(|e| panic!("{e}"));
        self.model = model::validate(&cfg).unwrap_or_else(|e| panic!("fixture config invalid:\n{e}"));
        let inputs = compile::Inputs { down_ifaces: self.down.clone(), ..compile::Inputs::new(&self.model, &self.facts) };
        let compiled = compile::compile_with(&self.model, &inputs).unwrap_or_else(|e| panic!("compile: {e:?}"));
        self.write(&compiled);
    }

    /// Makes `ifname` a tap: no veth peer tells the MAC behind it, so the datapath learns it
    /// (and until then its port pair is not used, and nothing is delivered to it). Recompiled
    /// and written as a new generation, as `sfc apply` would.
    pub fn as_tap(&mut self, ifname: &str) {
        let f = self.facts.get_mut(ifname).unwrap_or_else(|| panic!("no interface {ifname} in the fixture"));
        (f.peer_mac, f.peer_in_other_netns) = (None, false);
        self.recompile();
    }

    /// The MACs the datapath learnt (`SFC_MACS`), by interface name.
    pub fn learnt_macs(&self) -> BTreeMap<String, [u8; 6]> {
        let by_index = sfc::datapath::maps::learnt_macs(&self.loc).unwrap_or_else(|e| panic!("{e}"));
        self.facts.iter().filter_map(|(n, f)| by_index.get(&f.ifindex).map(|m| (n.clone(), *m))).collect()
    }

    /// An apply after learning: what the datapath learnt goes into the facts, recompiled and
    /// written as a new generation. Returns the compiled state.
    pub fn apply_learnt(&mut self) -> compile::Compiled {
        for (n, mac) in self.learnt_macs() {
            if let Some(f) = self.facts.get_mut(&n) {
                f.learnt_mac = Some(mac);
            }
        }
        self.recompile()
    }

    fn recompile(&mut self) -> compile::Compiled {
        let inputs = compile::Inputs { down_ifaces: self.down.clone(), overlay: self.overlay, ..compile::Inputs::new(&self.model, &self.facts) };
        let compiled = compile::compile_with(&self.model, &inputs).unwrap_or_else(|e| panic!("compile: {e:?}"));
        datapath::cluster::write_before(&self.loc, &compiled).unwrap_or_else(|e| panic!("writing the overlay maps: {e}"));
        self.write(&compiled);
        datapath::cluster::remove_after(&self.loc, &compiled).unwrap_or_else(|e| panic!("writing the overlay maps: {e}"));
        compiled
    }

    /// Multi-host: `ifnames` live on another host (VTEP `vtep`, the MAC behind each as before)
    /// and are reached over overlay device `overlay` (a VXLAN device the fixture creates, MTU
    /// `mtu`), as `sfc run --etcd` compiles them: stand-in ifindexes, `SFC_REMOTES`. Recompiled
    /// and written as a new generation.
    pub fn make_remote(&mut self, ifnames: &[&str], vtep: std::net::IpAddr, overlay: &str, mtu: u32) {
        let ns = self.netns.name().to_owned();
        sfc_tests::netns::ip_in(&ns, &["link", "add", overlay, "type", "vxlan", "external", "dstport", "4789"]).unwrap_or_else(|e| panic!("{e:#}"));
        link::set_mtu(&ns, overlay, mtu).unwrap_or_else(|e| panic!("{e:#}"));
        link::up(&ns, overlay).unwrap_or_else(|e| panic!("{e:#}"));
        self.overlay = Some(sandbox::ifindex(overlay));
        for (i, n) in ifnames.iter().enumerate() {
            let f = self.facts.get_mut(*n).unwrap_or_else(|| panic!("no interface {n} in the fixture"));
            f.ifindex = sfc_common::limits::REMOTE_IFINDEX_BASE + u32::try_from(i).unwrap_or(0);
            (f.remote, f.peer_in_other_netns) = (Some(vtep), false);
        }
        self.recompile();
    }

    /// Runs `sfc_tc_overlay` (the overlay device's program) once on `packet` arriving on `ifname`.
    pub fn run_overlay(&mut self, ifname: &str, packet: &[u8]) -> Outcome {
        let ifindex = sandbox::ifindex(ifname);
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(sfc_common::overlay::PROG_TC_OVERLAY)
            .and_then(|p| p.try_into().ok())
            .expect("the overlay program in the object");
        if prog.fd().is_err() {
            datapath::attach::load_retrying(|| prog.load()).unwrap_or_else(|e| panic!("loading the overlay program (verifier): {e:?}"));
        }
        let ctx = test_run::context(AttachMode::Tc, ifindex, packet.len());
        let mut out = vec![0u8; MAX_PACKET];
        let opts = TestRunOptions { data_in: Some(packet), data_out: Some(&mut out), ctx_in: Some(&ctx), ..TestRunOptions::default() };
        let r = prog.test_run(opts).unwrap_or_else(|e| panic!("test run of the overlay program: {e:?}"));
        out.truncate(r.data_size_out as usize);
        Outcome { verdict: r.return_value, data: out }
    }

    /// Marks interface `ifname` as down, as the loader's member health check would find it: the
    /// configuration is recompiled (`Inputs::down_ifaces`: its port pair is flagged down and left
    /// out of its group's table) and written as a new generation. Flows re-resolve at their
    /// next packet on their entry port.
    pub fn set_interface_down(&mut self, ifname: &str) {
        self.down.insert(ifname.to_owned());
        let inputs = compile::Inputs { down_ifaces: self.down.clone(), ..compile::Inputs::new(&self.model, &self.facts) };
        let compiled = compile::compile_with(&self.model, &inputs).unwrap_or_else(|e| panic!("compile: {e:?}"));
        self.write(&compiled);
    }
}
