//! Model -> map entries. Pure: interface facts (ifindex, MACs) come in as data, so everything
//! here is tested without a kernel.

pub mod cls;
pub mod incr;
pub mod diff;
pub mod plan;
mod build;
mod overlay;
pub mod slots;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sfc_common::maps::{CLS_RECLASS_BIT, ChainEntry, ClsKey, ClsResult, GroupEntry, IfaceEntry, PortPairEntry};

use crate::model::Model;

/// Reclassification classes (`GroupEntry::reclass`): stage-1 classes that are not ifindexes.
const RECLASS: u32 = 1 << CLS_RECLASS_BIT;
/// Ifindexes sfc can use: below the reclassification bit.
pub const MAX_IFINDEX: u32 = RECLASS;


/// What the loader found out about an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceFacts {
    pub ifindex: u32,
    /// The MAC address of whatever receives frames sent out of this interface: the veth peer's
    /// address (found through the peer's namespace), `None` when it cannot be known.
    pub peer_mac: Option<[u8; 6]>,
    /// A veth whose peer lives in another network namespace (`bpf_redirect_peer` applies).
    pub peer_in_other_netns: bool,
    /// The MAC the datapath learnt behind the interface (`SFC_MACS`: a VM's, from the frames it
    /// sent into its tap); used where no veth peer and no file tells it.
    #[serde(default)]
    pub learnt_mac: Option<[u8; 6]>,
    /// The link type (`ARPHRD_*`, 1: Ethernet), and whether the device is a tun/tap: anything
    /// but Ethernet is refused (sfc steers frames).
    #[serde(default = "ether")]
    pub link_type: u16,
    #[serde(default)]
    pub tun: bool,
    /// Multi-host: the interface lives on another host, whose VTEP this is. `ifindex` is then
    /// a stand-in (`REMOTE_IFINDEX_BASE` and up) and `peer_mac` the MAC behind the interface
    /// as its host published it.
    #[serde(default)]
    pub remote: Option<std::net::IpAddr>,
}

const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

fn ether() -> u16 {
    ARPHRD_ETHER
}

impl Default for IfaceFacts {
    /// Ifindex 0, an Ethernet interface with nothing else known.
    fn default() -> Self {
        IfaceFacts { ifindex: 0, peer_mac: None, peer_in_other_netns: false, learnt_mac: None, link_type: ARPHRD_ETHER, tun: false, remote: None }
    }
}

impl IfaceFacts {
    /// What the interface is when it is not an Ethernet interface.
    pub fn not_ethernet(&self) -> Option<String> {
        match (self.link_type, self.tun) {
            (ARPHRD_ETHER, _) => None,
            (_, true) => Some("an L3 tun device (IFF_TUN: bare IP packets, no Ethernet header; a VM's tap is IFF_TAP)".to_owned()),
            (ARPHRD_LOOPBACK, _) => Some("the loopback device".to_owned()),
            (t, false) => Some(format!("a device of link type {t} (ARPHRD), not Ethernet")),
        }
    }

    /// No veth peer tells the MAC behind the interface: the datapath learns it (a tap).
    pub fn learns(&self) -> bool {
        self.peer_mac.is_none() && self.remote.is_none()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    /// `iface` is quoted, with its neutron port id when the file named it so.
    #[error("{resource}: interface {iface} does not exist{where_}")]
    NoInterface { resource: String, iface: String, where_: String },
    #[error("{resource}: interface {iface} is {what}: sfc steers Ethernet frames")]
    NotEthernet { resource: String, iface: String, what: String },
    #[error("{resource}: interface '{iface}' has ifindex {ifindex}, above what sfc can key ({max})")]
    IfindexTooLarge { resource: String, iface: String, ifindex: u32, max: u32 },
    /// Interfaces on other hosts, and no overlay device to reach them by.
    #[error("interfaces on other hosts ({ifaces}) and no overlay device to reach them by")]
    NoOverlay { ifaces: String },
    /// Two local interfaces frames from the overlay may be sent to have the same MAC behind
    /// them: the overlay program could not tell which one a frame is for.
    #[error("{iface} and ifindex {other} have the same MAC behind them ({mac}): frames from other hosts could not tell them apart")]
    SameMac { iface: String, other: u32, mac: String },
    /// More of something than a map field holds (validation keeps models far below this).
    #[error("{n} {what}: more than the datapath's 32-bit fields hold")]
    TooMany { what: &'static str, n: usize },
}

/// Names for decoding counters and flows, saved beside the pinned maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    /// ifindex -> interface name.
    pub ifaces: BTreeMap<u32, String>,
}

/// Every map entry the model needs, keyed as in the maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compiled {
    pub ifaces: BTreeMap<u32, IfaceEntry>,
    /// The classifier trie, and the hash asked before it (see `cls`).
    pub cls: BTreeMap<(u32, ClsKey), u32>,
    pub cls_hash: BTreeMap<ClsKey, u32>,
    pub cls_res: BTreeMap<u32, ClsResult>,
    pub chains: BTreeMap<u32, ChainEntry>,
    pub groups: BTreeMap<u32, GroupEntry>,
    pub lb: BTreeMap<LbKey, u32>,
    pub port_pairs: BTreeMap<u32, PortPairEntry>,
    /// SFC-aware members' headers (`SFC_ENCAP`), by port pair id.
    pub encap: BTreeMap<u32, sfc_common::maps::EncapEntry>,
    /// Interfaces that need the tc program attached: logical source ports and SF egresses, and
    /// for symmetric chains also SF ingresses and logical destination ports (where their reverse
    /// traffic arrives). Elsewhere nothing needs looking at, so nothing pays for a program.
    pub attach: std::collections::BTreeSet<u32>,
    /// Interfaces a program may redirect packets to: SF ingresses (forward), SF egresses and
    /// logical source ports (reverse, symmetric chains), logical destination ports. XDP mode
    /// redirects through a devmap holding these, and makes sure their veth peers accept frames.
    pub redirect_targets: std::collections::BTreeSet<u32>,
    /// Port pairs installed down (an interface is not up): out of their groups' tables.
    pub down: std::collections::BTreeSet<String>,
    /// Port pairs waiting for the MAC behind an interface (a VM behind a tap that has sent
    /// nothing yet): installed down too, with what is missing (`ingress 'tap0'`).
    pub no_mac: BTreeMap<String, Vec<String>>,
    /// Interfaces the model names that do not exist (with `Inputs::absent_ok`), and where
    /// (`port_pairs[pp1].ingress`).
    pub absent: BTreeMap<String, Vec<String>>,
    pub names: Names,
    /// Multi-host (`overlay`): interfaces on other hosts by stand-in ifindex (`SFC_REMOTES`),
    /// and the local interfaces frames from the overlay are handed to, by the MAC behind them
    /// (`SFC_OVL_PORTS`).
    pub remotes: BTreeMap<u32, sfc_common::overlay::RemoteEntry>,
    pub ovl_ports: BTreeMap<sfc_common::overlay::OvlMac, sfc_common::overlay::OvlPort>,
    /// The classifier classes this compile gave (`cls::ClassIds`), saved for the next one.
    pub class_ids: cls::ClassIds,
}

impl Compiled {
    /// Interfaces that need the tc program attached.
    pub fn attach_ifindexes(&self) -> Vec<u32> {
        self.attach.iter().copied().collect()
    }
}

/// The id of the port pair at `index` when ids are positional (`Ids::by_index`).
pub fn port_pair_id(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// The id of the group at `index` when ids are positional (`Ids::by_index`).
pub fn group_id(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// One bucket of a group's consistent-hash table: how the loader compiles, diffs and shows the
/// tables. The map (`SFC_LB_V2`) holds each group's whole, `sfc_common::maps::LbTable`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LbKey {
    pub group: u32,
    pub bucket: u32,
}

/// Ids `Ids::assign` must not give to a new name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved {
    pub port_pairs: std::collections::BTreeSet<u32>,
    pub groups: std::collections::BTreeSet<u32>,
}

/// Port pair and group ids by name. The loader keeps them stable across applies (counters,
/// flows and draining members refer to them); a pure compile can use positions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ids {
    pub port_pairs: BTreeMap<String, u32>,
    pub groups: BTreeMap<String, u32>,
}

impl Ids {
    /// Ids equal to positions in the model.
    pub fn by_index(model: &Model) -> Ids {
        Ids {
            port_pairs: model.port_pairs.iter().enumerate().map(|(i, p)| (p.name.clone(), port_pair_id(i))).collect(),
            groups: model.port_pair_groups.iter().enumerate().map(|(i, g)| (g.name.clone(), group_id(i))).collect(),
        }
    }

    /// Ids for `model` that keep every id `previous` gave a name, and give new names the lowest
    /// ids not in use and not reserved: `reserved.port_pairs` (port pairs still draining) and
    /// `reserved.groups` (the groups those were in: a draining member is kept by flows of its
    /// old group's id, so a new group under that id would inherit it).
    pub fn assign(model: &Model, previous: &Ids, reserved: &Reserved) -> Ids {
        fn pick<'a>(names: impl Iterator<Item = &'a String>, prev: &BTreeMap<String, u32>, reserved: &std::collections::BTreeSet<u32>) -> BTreeMap<String, u32> {
            let names: Vec<&String> = names.collect();
            let mut out: BTreeMap<String, u32> = names.iter().filter_map(|n| prev.get(*n).map(|id| ((*n).clone(), *id))).collect();
            let mut used: std::collections::BTreeSet<u32> = out.values().copied().chain(reserved.iter().copied()).collect();
            let mut next = 0u32;
            for n in names {
                if out.contains_key(n) {
                    continue;
                }
                while used.contains(&next) {
                    next += 1;
                }
                used.insert(next);
                out.insert(n.clone(), next);
            }
            out
        }
        Ids {
            port_pairs: pick(model.port_pairs.iter().map(|p| &p.name), &previous.port_pairs, &reserved.port_pairs),
            groups: pick(model.port_pair_groups.iter().map(|g| &g.name), &previous.groups, &reserved.groups),
        }
    }

    pub fn port_pair(&self, name: &str) -> u32 {
        self.port_pairs.get(name).copied().unwrap_or(u32::MAX)
    }

    pub fn group(&self, name: &str) -> u32 {
        self.groups.get(name).copied().unwrap_or(u32::MAX)
    }
}

/// What compile takes besides the model: what the loader found about the interfaces, and the
/// decisions of the apply (`plan`): ids, members that drain, interfaces that are down.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Interface name -> what the loader found.
    pub facts: &'a BTreeMap<String, IfaceFacts>,
    /// Only used in error messages.
    pub netns: Option<&'a str>,
    /// Ids for every port pair and group of the model.
    pub ids: Ids,
    /// Interfaces that are down (link down, or health probes through a member failed): a port
    /// pair with one is installed flagged `PP_F_DOWN` and left out of its group's table, so
    /// flows move to the other members (or the group's failure policy applies).
    pub down_ifaces: std::collections::BTreeSet<String>,
    /// Port pairs no chain uses any more that still serve their flows: installed flagged
    /// `PP_F_DRAINING`, their interfaces keeping a role (and their program).
    pub draining: BTreeMap<u32, plan::Draining>,
    /// An interface that does not exist is not an error but absent (`sfc run`: a VM not
    /// started yet, or deleted): a member with one is down, a classifier on one is off, a
    /// destination port that is absent hands the chain's traffic back to the host.
    pub absent_ok: bool,
    /// Multi-host: the ifindex of this host's overlay (VXLAN) device. Needed when a fact is
    /// remote.
    pub overlay: Option<u32>,
    /// The classifier classes of the last compile (`State::class_ids`): kept where their sets
    /// are unchanged (by their classifiers' names, `cls::ClassIds`).
    pub class_ids: Option<&'a cls::ClassIds>,
    /// The interfaces' counter slots as installed (`slots::assign`); empty: a first install.
    pub stats_slots: slots::Slots,
}

impl<'a> Inputs<'a> {
    /// Positional ids, nothing down, nothing draining: a compile of the model alone.
    pub fn new(model: &Model, facts: &'a BTreeMap<String, IfaceFacts>) -> Self {
        Inputs {
            facts,
            netns: None,
            ids: Ids::by_index(model),
            down_ifaces: std::collections::BTreeSet::new(),
            draining: BTreeMap::new(),
            absent_ok: false,
            overlay: None,
            class_ids: None,
            stats_slots: slots::Slots::new(),
        }
    }
}

/// The MAC behind an interface: the file's (`ingress_mac` / `egress_mac`, or `mac` in
/// `interfaces:`: a VM behind a tap), else the veth peer's, else the one the datapath learnt.
/// What compile installs and what health probes are addressed to.
pub fn sf_mac(configured: Option<[u8; 6]>, f: &IfaceFacts) -> Option<[u8; 6]> {
    configured.or(f.peer_mac).or(f.learnt_mac)
}

/// Compiles the parts of `model` that chains use, with positional ids. `facts` maps interface
/// names to what the loader found; `netns` is only used in error messages.
pub fn compile(model: &Model, facts: &BTreeMap<String, IfaceFacts>, netns: Option<&str>) -> Result<Compiled, Vec<CompileError>> {
    compile_with(model, &Inputs { netns, ..Inputs::new(model, facts) })
}

/// `compile_with`, updating the classifier tables `kept` holds from the previous compile in
/// this process (a fresh `Kept` for the first) instead of building them: the output borrows
/// them (`Kept::restore` gives them back for the next compile), and `kept.log` says which
/// entries this compile wrote. After an error `kept` is of no further use.
pub fn compile_kept(model: &Model, inputs: &Inputs<'_>, kept: &mut incr::Kept) -> Result<Compiled, Vec<CompileError>> {
    let mut c = build::Build::new(model, inputs).kept(kept).run()?;
    finish(&mut c, inputs)?;
    Ok(c)
}

/// Compiles `model` with everything an apply decided (`Inputs`).
pub fn compile_with(model: &Model, inputs: &Inputs<'_>) -> Result<Compiled, Vec<CompileError>> {
    let mut c = build::Build::new(model, inputs).run()?;
    finish(&mut c, inputs)?;
    Ok(c)
}

/// What both compiles do last: the overlay's entries, and every interface's counter slot.
fn finish(c: &mut Compiled, inputs: &Inputs<'_>) -> Result<(), Vec<CompileError>> {
    overlay::finish(c, inputs).map_err(|e| vec![e])?;
    slots::assign(&mut c.ifaces, &inputs.stats_slots);
    Ok(())
}
