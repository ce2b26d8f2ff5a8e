//! Programs and their attachments: loading (once, then from their pins), attaching to an
//! interface in tc or XDP mode, preparing the far end of a veth that XDP mode redirects into,
//! and the pinned links that keep all of it alive without a loader.
//!
//! Pins in the pin directory: `prog_tc_ingress`, `prog_xdp`, `prog_xdp_pass` (programs),
//! `link_tc_<ifindex>` and `link_xdp_<ifindex>` (the program on a hub-side interface), and
//! `link_xdppeer_<ifindex>` (`sfc_xdp_pass` on the veth peer of redirect target `<ifindex>`,
//! usually inside a service function's namespace); multi-host: `prog_tc_overlay` and
//! `link_overlay_<ifindex>` (`sfc_tc_overlay` on the overlay device).
//!
//! Why the peers: a veth accepts an XDP-redirected frame only while the *receiving* end runs
//! NAPI, which an XDP program on that end switches on; without one the kernel drops the frame
//! and nobody counts it. A peer that already has a native XDP program of its own is left alone
//! (it runs NAPI already).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs, io,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{
        SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
    },
};
use aya_obj::programs::XdpAttachType;
use sfc_common::{
    maps::{PROG_TC_INGRESS, PROG_XDP, PROG_XDP_PASS},
    overlay::PROG_TC_OVERLAY,
};

use super::{ApplyReport, DatapathError, Location, PEER_GRACE, Result, State, io_err, netlink, netns};
use crate::{
    compile,
    model::{AttachMode, Model},
};

pub(crate) const PROG_PIN: &str = "prog_tc_ingress";
pub(crate) const PROG_XDP_PIN: &str = "prog_xdp";
const PROG_XDP_PASS_PIN: &str = "prog_xdp_pass";
const PROG_OVERLAY_PIN: &str = "prog_tc_overlay";

/// What a pinned link attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// `sfc_tc_ingress` on the interface (tcx ingress).
    Tc,
    /// `sfc_xdp` on the interface.
    Xdp,
    /// `sfc_xdp_pass` on the veth peer of the interface.
    XdpPeer,
    /// `sfc_tc_overlay` on the overlay device (tcx ingress).
    Overlay,
}

impl LinkKind {
    /// Detach order: the steering programs before the peers they redirect into.
    pub const ALL: [LinkKind; 4] = [LinkKind::Xdp, LinkKind::Tc, LinkKind::Overlay, LinkKind::XdpPeer];

    const fn prefix(self) -> &'static str {
        match self {
            LinkKind::Tc => "link_tc_",
            LinkKind::Xdp => "link_xdp_",
            LinkKind::XdpPeer => "link_xdppeer_",
            LinkKind::Overlay => "link_overlay_",
        }
    }

    /// `tc`, `xdp`, or `xdp peer`, as reports and `sfc status` name it.
    pub const fn name(self) -> &'static str {
        match self {
            LinkKind::Tc => "tc",
            LinkKind::Xdp => "xdp",
            LinkKind::XdpPeer => "xdp peer",
            LinkKind::Overlay => "overlay",
        }
    }

    pub const fn of(mode: AttachMode) -> LinkKind {
        match mode {
            AttachMode::Tc => LinkKind::Tc,
            AttachMode::Xdp => LinkKind::Xdp,
        }
    }

    pub fn pin(self, dir: &Path, ifindex: u32) -> PathBuf {
        dir.join(format!("{}{ifindex}", self.prefix()))
    }
}

/// A pinned link: `kind` on (or, for `XdpPeer`, behind) interface `ifindex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPin {
    pub kind: LinkKind,
    pub ifindex: u32,
    pub path: PathBuf,
}

/// Every pinned link in `dir`, in detach order.
pub fn link_pins(dir: &Path) -> Result<Vec<LinkPin>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(DatapathError::Io { what: format!("reading {}", dir.display()), source: e }),
    };
    for e in rd {
        let e = e.map_err(io_err(format!("reading {}", dir.display())))?;
        let name = e.file_name().to_string_lossy().into_owned();
        for kind in LinkKind::ALL {
            if let Some(ifindex) = name.strip_prefix(kind.prefix()).and_then(|s| s.parse().ok()) {
                out.push(LinkPin { kind, ifindex, path: e.path() });
            }
        }
    }
    out.sort_by_key(|l| (LinkKind::ALL.iter().position(|k| *k == l.kind), l.ifindex));
    Ok(out)
}

/// Unpinning drops the link's last reference: the program is detached.
pub fn unpin_link(pin: &Path) -> Result<()> {
    let link = PinnedLink::from_pin(pin).map_err(|source| DatapathError::Link { what: format!("opening {}", pin.display()), source })?;
    let fd = link.unpin().map_err(|source| DatapathError::Io { what: format!("unpinning {}", pin.display()), source })?;
    drop(fd);
    Ok(())
}

fn program_err(what: String) -> impl FnOnce(aya::programs::ProgramError) -> DatapathError {
    move |source| DatapathError::Program { what, source }
}

/// The BPF object, loaded when first needed: loading it creates every map (or reuses it from its
/// pin) and readies the programs to be loaded into the kernel.
pub struct Object<'l> {
    ebpf: Option<Ebpf>,
    load: Box<dyn Fn() -> Result<Ebpf> + 'l>,
}

impl<'l> Object<'l> {
    pub fn new(load: impl Fn() -> Result<Ebpf> + 'l) -> Self {
        Object { ebpf: None, load: Box::new(load) }
    }

    /// The object, loaded now if it was not.
    pub fn get(&mut self) -> Result<&mut Ebpf> {
        if self.ebpf.is_none() {
            self.ebpf = Some((self.load)()?);
        }
        self.ebpf.as_mut().ok_or_else(|| DatapathError::Other("the BPF object did not load".to_owned()))
    }
}

/// The programs of one datapath, loaded into the kernel once and reused from their pins.
pub struct Programs {
    pub tc: SchedClassifier,
    xdp: Option<Xdp>,
    pass: Option<Xdp>,
    /// `sfc_tc_overlay`, when this datapath has an overlay device.
    overlay: Option<SchedClassifier>,
    /// The tc program was loaded by this call (a first install).
    pub first_load: bool,
}

impl Programs {
    /// Opens the pinned programs, loading (and pinning) the tc program when there is none, and
    /// the XDP programs when `xdp` and there are none: they are verified only when first needed.
    pub fn open(loc: &Location, ebpf: &mut Object<'_>, xdp: bool, overlay: bool) -> Result<Programs> {
        let dir = &loc.pin_dir;
        let tc_pin = dir.join(PROG_PIN);
        let first_load = !tc_pin.exists();
        if first_load {
            let p: &mut SchedClassifier = program(ebpf.get()?, PROG_TC_INGRESS)?;
            load_retrying(|| p.load()).map_err(program_err(format!("loading {PROG_TC_INGRESS} (verifier)")))?;
            p.pin(&tc_pin).map_err(|source| DatapathError::Pin { what: format!("pinning {}", tc_pin.display()), source })?;
        }
        let tc = SchedClassifier::from_pin(&tc_pin).map_err(program_err(format!("opening {}", tc_pin.display())))?;
        if !first_load {
            Self::same_maps(loc, &tc_pin)?;
        }
        let open_xdp = |ebpf: &mut Object<'_>, name: &str, pin: &str| -> Result<Option<Xdp>> {
            let pin = dir.join(pin);
            if !pin.exists() {
                if !xdp {
                    return Ok(None);
                }
                let p: &mut Xdp = program(ebpf.get()?, name)?;
                load_retrying(|| p.load()).map_err(program_err(format!("loading {name} (verifier)")))?;
                p.pin(&pin).map_err(|source| DatapathError::Pin { what: format!("pinning {}", pin.display()), source })?;
            }
            Xdp::from_pin(&pin, XdpAttachType::Interface).map(Some).map_err(program_err(format!("opening {}", pin.display())))
        };
        let xdp_prog = open_xdp(ebpf, PROG_XDP, PROG_XDP_PIN)?;
        let pass = open_xdp(ebpf, PROG_XDP_PASS, PROG_XDP_PASS_PIN)?;
        let pin = dir.join(PROG_OVERLAY_PIN);
        let overlay = if pin.exists() || overlay {
            if !pin.exists() {
                let p: &mut SchedClassifier = program(ebpf.get()?, PROG_TC_OVERLAY)?;
                load_retrying(|| p.load()).map_err(program_err(format!("loading {PROG_TC_OVERLAY} (verifier)")))?;
                p.pin(&pin).map_err(|source| DatapathError::Pin { what: format!("pinning {}", pin.display()), source })?;
            }
            Some(SchedClassifier::from_pin(&pin).map_err(program_err(format!("opening {}", pin.display())))?)
        } else {
            None
        };
        Ok(Programs { tc, xdp: xdp_prog, pass, overlay, first_load })
    }

    /// Attaches `sfc_tc_overlay` to the overlay device `ifindex` (called `name`), unless it is
    /// there already. Returns whether it attached.
    pub fn attach_overlay(&mut self, loc: &Location, ifindex: u32, name: &str) -> Result<bool> {
        let pin = LinkKind::Overlay.pin(&loc.pin_dir, ifindex);
        if pin.exists() {
            return Ok(false);
        }
        let prog = self.overlay.as_mut().ok_or_else(|| DatapathError::Other(format!("{PROG_TC_OVERLAY} is not loaded")))?;
        let id = prog.attach(name, TcAttachType::Ingress).map_err(program_err(format!("attaching to {name} (tc ingress, overlay)")))?;
        let link: FdLink = prog
            .take_link(id)
            .map_err(program_err(format!("link on {name}")))?
            .try_into()
            .map_err(|source| DatapathError::Link { what: format!("tcx link on {name}"), source })?;
        link.pin(&pin).map_err(|source| DatapathError::Pin { what: format!("pinning {}", pin.display()), source })?;
        Ok(true)
    }

    /// A program pinned by another sfc version may use maps of other names or layouts (a map renamed
/// when its value grew): this sfc would write maps it never reads. Refused, with what to do.
fn same_maps(loc: &Location, prog_pin: &Path) -> Result<()> {
    use sfc_common::maps::{MAP_FLOWS, MAP_GROUPS, MAP_IFACES, MAP_LB, MAP_META};
    let info = aya::programs::ProgramInfo::from_pin(prog_pin)
        .map_err(program_err(format!("reading {}", prog_pin.display())))?;
    let used: Vec<u32> = info.map_ids().ok().flatten().unwrap_or_default();
    for name in [MAP_META, MAP_IFACES, MAP_GROUPS, MAP_LB, MAP_FLOWS] {
        let id = aya::maps::MapData::from_pin(loc.map_pin(name)).ok().and_then(|m| m.info().ok()).map(|i| i.id());
        if id.is_none_or(|id| !used.contains(&id)) {
            return Err(DatapathError::Other(format!(
                "the datapath in {} was installed by another version of sfc, whose program does not use this version's {name}: \
                 take it down with `sfc down` and apply again (traffic is not steered in between)",
                loc.pin_dir.display()
            )));
        }
    }
    Ok(())
}

/// Attaches the program of `mode` to `ifindex` (called `name`) and pins the link, unless it
    /// is pinned already. Returns whether it attached.
    pub fn attach(&mut self, loc: &Location, ifindex: u32, name: &str, mode: AttachMode) -> Result<bool> {
        let pin = LinkKind::of(mode).pin(&loc.pin_dir, ifindex);
        if pin.exists() {
            return Ok(false);
        }
        let link: FdLink = match mode {
            AttachMode::Tc => {
                let id = self.tc.attach(name, TcAttachType::Ingress).map_err(program_err(format!("attaching to {name} (tc ingress)")))?;
                let link = self.tc.take_link(id).map_err(program_err(format!("link on {name}")))?;
                link.try_into().map_err(|source| DatapathError::Link { what: format!("tcx link on {name}"), source })?
            }
            AttachMode::Xdp => {
                let prog = self.xdp.as_mut().ok_or_else(|| DatapathError::Other("the XDP program is not loaded".to_owned()))?;
                xdp_link(prog, ifindex, name)?
            }
        };
        link.pin(&pin).map_err(|source| DatapathError::Pin { what: format!("pinning {}", pin.display()), source })?;
        Ok(true)
    }

    /// Makes sure the veth peer of redirect target `ifindex` (called `name` here) takes XDP
    /// frames: attaches `sfc_xdp_pass` there, inside the peer's namespace, unless it has a
    /// native XDP program already. What it did, for the report; `None` when nothing was needed.
    pub fn prepare_peer(&mut self, loc: &Location, ifindex: u32, name: &str) -> Result<Option<PeerReport>> {
        let pin = LinkKind::XdpPeer.pin(&loc.pin_dir, ifindex);
        if pin.exists() {
            return Ok(None);
        }
        let (link, peer) = netlink::link_and_peer(name)?;
        // Not a veth: taps and NICs take redirected frames themselves.
        let Some(peer) = peer else { return Ok(None) };
        let what = format!("{}'s peer {}", name, peer.name);
        let report = |own_program| PeerReport { iface: name.to_owned(), peer: peer.name.clone(), own_program };
        if let Some(id) = peer.xdp_drv_prog_id {
            return Ok(Some(report(Some(id))));
        }
        let prog = self.pass.as_mut().ok_or_else(|| DatapathError::Other("the XDP pass program is not loaded".to_owned()))?;
        let fd = match link.link_netnsid {
            Some(nsid) => {
                let ns = netns::open_by_nsid(nsid).map_err(io_err(format!("finding the network namespace of {what}")))?;
                netns::run_in(&ns, || xdp_link(prog, peer.ifindex, &what)).map_err(io_err(format!("entering the network namespace of {what}")))??
            }
            None => xdp_link(prog, peer.ifindex, &what)?,
        };
        fd.pin(&pin).map_err(|source| DatapathError::Pin { what: format!("pinning {}", pin.display()), source })?;
        Ok(Some(report(None)))
    }
}

/// A program link on an interface, as an apply reports it: `name (kind)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    pub iface: String,
    pub kind: LinkKind,
}

impl std::fmt::Display for LinkReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.iface, self.kind.name())
    }
}

/// What XDP mode did about a redirect target's veth peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    pub iface: String,
    pub peer: String,
    /// The peer's own native XDP program (kept), or `None`: sfc's pass program was attached.
    pub own_program: Option<u32>,
}

impl std::fmt::Display for PeerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.own_program {
            Some(id) => write!(f, "{}'s peer {} keeps its own XDP program (id {id})", self.iface, self.peer),
            None => write!(f, "{}'s peer {}: XDP pass program attached (so it takes redirected frames)", self.iface, self.peer),
        }
    }
}

fn program<'e, T>(ebpf: &'e mut Ebpf, name: &str) -> Result<&'e mut T>
where
    &'e mut T: TryFrom<&'e mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| DatapathError::Other(format!("program {name} missing from the object")))?
        .try_into()
        .map_err(program_err(name.to_owned()))
}

/// Attaches `prog` in native (driver) mode to `ifindex` of the calling thread's namespace, as a
/// link that can be pinned. Errors say what an operator can do about them.
fn xdp_link(prog: &mut Xdp, ifindex: u32, name: &str) -> Result<FdLink> {
    let id = prog.attach_to_if_index(ifindex, XdpMode::Driver).map_err(|e| xdp_attach_error(name, e))?;
    let link = prog.take_link(id).map_err(program_err(format!("XDP link on {name}")))?;
    link.try_into().map_err(|source| DatapathError::Link { what: format!("XDP link on {name} (attached through netlink, which cannot be pinned)"), source })
}

/// Loads a program, again when the verifier was interrupted: it gives up with EAGAIN when a
/// signal arrives while it works, and it works for seconds on the XDP program. libbpf retries
/// the same way (five attempts).
pub fn load_retrying(mut load: impl FnMut() -> std::result::Result<(), aya::programs::ProgramError>) -> std::result::Result<(), aya::programs::ProgramError> {
    let mut attempts = 1;
    loop {
        match load() {
            Err(aya::programs::ProgramError::LoadError { io_error, .. }) if io_error.raw_os_error() == Some(rustix::io::Errno::AGAIN.raw_os_error()) && attempts < 5 => {
                attempts += 1;
            }
            r => return r,
        }
    }
}

fn xdp_attach_error(name: &str, e: aya::programs::ProgramError) -> DatapathError {
    use rustix::io::Errno as E;
    let errno = match &e {
        aya::programs::ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    };
    let is = |e: E| errno == Some(e.raw_os_error());
    let hint = if is(E::RANGE) {
        Some("the veth's peer has an MTU too large for XDP without multi-buffer support (at most about 3,500 bytes with 4 KiB pages); lower it or use mode tc for this interface")
    } else if is(E::OPNOTSUPP) {
        Some("the driver has no native XDP; use mode tc for this interface")
    } else if is(E::BUSY) || is(E::EXIST) {
        Some("another XDP program is attached there; detach it or use mode tc for this interface")
    } else if is(E::NOTCONN) {
        Some("the veth has no peer")
    } else {
        None
    };
    match hint {
        Some(h) => DatapathError::Other(format!("attaching XDP to {name}: {h} ({e})")),
        None => DatapathError::Program { what: format!("attaching XDP to {name}"), source: e },
    }
}

/// A packet is copied to a chain's tap groups where the chain's hop decisions are made: its
/// source ports, its inline members' interfaces, its destination ports. XDP cannot copy a
/// frame, so all of them must run tc.
pub(super) fn taps_need_tc(model: &Model, compiled: &compile::Compiled, want: &BTreeMap<u32, AttachMode>) -> Result<()> {
    let xdp: BTreeSet<&str> = want
        .iter()
        .filter(|(_, m)| **m == AttachMode::Xdp)
        .filter_map(|(i, _)| compiled.names.ifaces.get(i).map(String::as_str))
        .collect();
    if xdp.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    for chain in &model.port_chains {
        let groups = chain.port_pair_groups.iter().map(|&g| &model.port_pair_groups[g]);
        let Some(tap) = groups.clone().find(|g| g.tap_enabled) else { continue };
        let mut ifaces: BTreeSet<&str> = BTreeSet::new();
        for &c in &chain.flow_classifiers {
            let fc = &model.flow_classifiers[c];
            ifaces.extend(Some(fc.logical_source_port.as_str()).filter(|p| !p.is_empty()));
            ifaces.extend(fc.logical_destination_port.as_deref());
        }
        for g in groups.filter(|g| !g.tap_enabled) {
            for &p in &g.port_pairs {
                ifaces.insert(&model.port_pairs[p].ingress);
                ifaces.insert(&model.port_pairs[p].egress);
            }
        }
        let on_xdp: Vec<&str> = ifaces.intersection(&xdp).copied().collect();
        if !on_xdp.is_empty() {
            problems.push(format!(
                "port_chains[{}]: tap group '{}' gets copies made where the chain's packets are steered, and XDP cannot copy a frame: {} run XDP (give them `mode: tc` under interfaces:, or apply with --mode tc)",
                chain.name,
                tap.name,
                on_xdp.join(", ")
            ));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(DatapathError::Other(problems.join("\n"))) }
}

/// Attaches the program to every interface in `want` (in its mode) that does not have it yet;
/// in XDP mode the redirect targets' peers are made ready first.
pub(super) fn attach_all(loc: &Location, progs: &mut Programs, compiled: &compile::Compiled, want: &BTreeMap<u32, AttachMode>, xdp: bool, report: &mut ApplyReport) -> Result<()> {
    let name_of = |ifindex: u32| compiled.names.ifaces.get(&ifindex).cloned().unwrap_or_default();
    // XDP redirects need receiving peers that take them: ready before any XDP program can send.
    if xdp {
        for &t in &compiled.redirect_targets {
            if let Some(what) = progs.prepare_peer(loc, t, &name_of(t))? {
                report.peers.push(what);
            }
        }
    }
    for (&ifindex, &mode) in want {
        let name = name_of(ifindex);
        if progs.attach(loc, ifindex, &name, mode)? {
            report.attached.push(LinkReport { iface: name, kind: LinkKind::of(mode) });
        }
    }
    Ok(())
}

/// Detaches what neither the new generation (`want`) nor the one live until now
/// (`live_before`) uses. An interface keeps the link of the mode it now has; one the new
/// generation does not use keeps whatever it had while the old generation still uses it. Peers
/// stay while an XDP program that may redirect into them does.
pub(super) fn detach_unused(
    loc: &Location,
    compiled: &compile::Compiled,
    want: &BTreeMap<u32, AttachMode>,
    live_before: &BTreeSet<u32>,
    old: Option<&State>,
    overlay: Option<u32>,
    report: &mut ApplyReport,
) -> Result<()> {
    // An interface that is gone (a VM's tap, deleted) has nothing left to finish: its link
    // is defunct, and the pin goes now.
    let keep = |kind: LinkKind, ifindex: u32| match want.get(&ifindex) {
        _ if kind == LinkKind::Overlay => overlay == Some(ifindex),
        Some(mode) => LinkKind::of(*mode) == kind,
        None => live_before.contains(&ifindex) && netlink::link_by_index(ifindex, None).is_ok(),
    };
    let pins = link_pins(&loc.pin_dir)?;
    let mut xdp_kept = false;
    for l in pins.iter().filter(|l| l.kind != LinkKind::XdpPeer) {
        if keep(l.kind, l.ifindex) {
            xdp_kept |= l.kind == LinkKind::Xdp;
            continue;
        }
        unpin_link(&l.path)?;
        let name = old.and_then(|o| o.ifname(l.ifindex)).unwrap_or_else(|| format!("ifindex {}", l.ifindex));
        report.detached.push(LinkReport { iface: name, kind: l.kind });
    }
    let stale_peers: Vec<&LinkPin> = pins
        .iter()
        .filter(|l| l.kind == LinkKind::XdpPeer)
        .filter(|l| !(xdp_kept && (compiled.redirect_targets.contains(&l.ifindex) || live_before.contains(&l.ifindex))))
        .collect();
    if !stale_peers.is_empty() {
        // Frames an XDP program redirected a moment ago may still wait in the peer's ring; taking
        // its program away frees them. A NAPI poll drains the ring in microseconds.
        std::thread::sleep(PEER_GRACE);
    }
    for l in stale_peers {
        unpin_link(&l.path)?;
    }
    Ok(())
}
