//! Model -> map entries. Pure: interface facts (ifindex, MACs) come in as data, so everything
//! here is tested without a kernel.

pub mod cls;
pub mod diff;
pub mod plan;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sfc_common::{
    limits::LB_TABLE_SIZE,
    maps::{
        CHAIN_F_SYMMETRIC, CLS_RECLASS_BIT, ChainEntry, ClsKey, ClsResult, FAIL_CLOSED, FAIL_OPEN, GroupEntry,
        IF_F_MAC, IF_F_PEER, IfaceEntry, LbKey, PP_F_DOWN, PP_F_DRAINING, PP_F_EGRESS_PEER, PP_F_INGRESS_PEER, PortPairEntry,
        ROLE_DEST, ROLE_SF_EGRESS, ROLE_SF_INGRESS, ROLE_SOURCE,
    },
};

use crate::{
    maglev,
    model::{FailurePolicy, Model},
};

/// Reclassification classes (`GroupEntry::reclass`): stage-1 classes that are not ifindexes.
const RECLASS: u32 = 1 << CLS_RECLASS_BIT;
/// Ifindexes sfc can use: below the reclassification bit.
pub const MAX_IFINDEX: u32 = RECLASS;

/// Interfaces that one chain touches, joined into zones (`IfaceEntry::zone`): a chain's
/// classifier ports and the ports of every member of its groups are one zone, and chains that
/// share a group share a zone. A zone is numbered by its lowest ifindex, so the number stays
/// across applies that do not change its interfaces (flows are keyed by it).
#[derive(Default)]
struct Zones {
    /// Union-find parent per ifindex.
    parent: BTreeMap<u32, u32>,
    /// The ports of each group's members, joined to its chains at the end.
    group_ports: BTreeMap<usize, Vec<u32>>,
    /// The classifier ports of each chain (by position).
    chain_ports: BTreeMap<u32, Vec<u32>>,
}

impl Zones {
    fn group_member(&mut self, group: usize, ingress: u32, egress: u32) {
        self.group_ports.entry(group).or_default().extend([ingress, egress]);
    }

    fn chain_port(&mut self, chain: &crate::model::PortChain, ifindex: u32) {
        self.chain_ports.entry(chain.chain_id).or_default().push(ifindex);
    }

    fn find(&mut self, x: u32) -> u32 {
        let p = *self.parent.entry(x).or_insert(x);
        if p == x {
            return x;
        }
        let root = self.find(p);
        self.parent.insert(x, root);
        root
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The lower ifindex is the root: the zone's number.
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent.insert(hi, lo);
    }

    /// Every interface seen, with its zone.
    fn resolve(mut self, model: &Model) -> Vec<(u32, u32)> {
        for chain in &model.port_chains {
            let mut ports = self.chain_ports.get(&chain.chain_id).cloned().unwrap_or_default();
            for g in &chain.port_pair_groups {
                ports.extend(self.group_ports.get(g).into_iter().flatten().copied());
            }
            for w in ports.windows(2) {
                self.union(w[0], w[1]);
            }
            if let [one] = ports.as_slice() {
                self.find(*one);
            }
        }
        let all: Vec<u32> = self.parent.keys().copied().collect();
        all.into_iter().map(|i| (i, self.find(i))).collect()
    }
}

/// What the loader found out about an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceFacts {
    pub ifindex: u32,
    /// The MAC address of whatever receives frames sent out of this interface: the veth peer's
    /// address (found through the peer's namespace), `None` when it cannot be known.
    pub peer_mac: Option<[u8; 6]>,
    /// A veth whose peer lives in another network namespace (`bpf_redirect_peer` applies).
    pub peer_in_other_netns: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error("{resource}: interface '{iface}' does not exist{where_}")]
    NoInterface { resource: String, iface: String, where_: String },
    #[error(
        "port_pairs[{port_pair}].{field}: cannot tell the MAC address of the service function behind '{iface}' (only veth interfaces are supported so far)"
    )]
    NoPeerMac { port_pair: String, field: &'static str, iface: String },
    #[error("{resource}: interface '{iface}' has ifindex {ifindex}, above what sfc can key ({max})")]
    IfindexTooLarge { resource: String, iface: String, ifindex: u32, max: u32 },
    #[error(
        "port_pair_groups[{group}].tap_enabled: tap groups (a passive copy of the traffic) are accepted by validation but not implemented by the datapath yet; remove tap_enabled or the group from the chain"
    )]
    TapUnsupported { group: String },
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
    pub names: Names,
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
}

impl<'a> Inputs<'a> {
    /// Positional ids, nothing down, nothing draining: a compile of the model alone.
    pub fn new(model: &Model, facts: &'a BTreeMap<String, IfaceFacts>) -> Self {
        Inputs { facts, netns: None, ids: Ids::by_index(model), down_ifaces: std::collections::BTreeSet::new(), draining: BTreeMap::new() }
    }
}

/// Compiles the parts of `model` that chains use, with positional ids. `facts` maps interface
/// names to what the loader found; `netns` is only used in error messages.
pub fn compile(model: &Model, facts: &BTreeMap<String, IfaceFacts>, netns: Option<&str>) -> Result<Compiled, Vec<CompileError>> {
    compile_with(model, &Inputs { netns, ..Inputs::new(model, facts) })
}

#[expect(
    clippy::too_many_lines,
    reason = "one pass over chains, groups and classifiers sharing the same accumulators"
)]
/// Compiles `model` with everything an apply decided (`Inputs`).
pub fn compile_with(model: &Model, inputs: &Inputs<'_>) -> Result<Compiled, Vec<CompileError>> {
    let Inputs { facts, netns, ids, down_ifaces, draining } = inputs;
    let mut out = Compiled::default();
    let mut errors = Vec::new();
    let where_ = netns.map_or_else(|| " in the host namespace".to_owned(), |n| format!(" in network namespace '{n}'"));
    let fact = |resource: String, iface: &str, errors: &mut Vec<CompileError>| -> Option<IfaceFacts> {
        let f = facts.get(iface).copied();
        match f {
            None => errors.push(CompileError::NoInterface { resource, iface: iface.to_owned(), where_: where_.clone() }),
            // Stage-1 classifier classes are ifindexes below the reclassification bit.
            Some(f) if f.ifindex >= MAX_IFINDEX => {
                errors.push(CompileError::IfindexTooLarge { resource, iface: iface.to_owned(), ifindex: f.ifindex, max: MAX_IFINDEX - 1 });
                return None;
            }
            Some(_) => {}
        }
        f
    };
    let role = |out: &mut Compiled, f: IfaceFacts, name: &str, roles: u32, pp: Option<u32>| {
        let e = out.ifaces.entry(f.ifindex).or_default();
        e.roles |= roles;
        if let Some(pp) = pp {
            e.port_pair = pp;
        }
        if f.peer_in_other_netns {
            e.flags |= IF_F_PEER;
        }
        if let Some(mac) = f.peer_mac {
            e.flags |= IF_F_MAC;
            e.peer_mac = mac;
        }
        out.names.ifaces.insert(f.ifindex, name.to_owned());
    };

    let mut used_groups = Vec::new();
    let mut symmetric_groups = std::collections::BTreeSet::new();
    // The chains each group serves: a packet back from one of its members whose flow entry is
    // gone is reclassified against their classifiers (`GroupEntry::reclass`). Groups serving the
    // same chains share one reclassification class.
    let mut chains_of_group: BTreeMap<usize, std::collections::BTreeSet<u32>> = BTreeMap::new();
    for chain in &model.port_chains {
        for &g in &chain.port_pair_groups {
            chains_of_group.entry(g).or_default().insert(chain.chain_id);
        }
    }
    let mut reclass_of: BTreeMap<std::collections::BTreeSet<u32>, u32> = BTreeMap::new();
    for set in chains_of_group.values() {
        let n = u32::try_from(reclass_of.len()).unwrap_or(u32::MAX) + 1;
        reclass_of.entry(set.clone()).or_insert(RECLASS | n);
    }
    // The symmetric classifiers delivering to each logical destination port: a reply arriving
    // there with no current reverse entry is classified by its forward 5-tuple against them
    // (`IfaceEntry::reply_class`), in classes numbered after the groups'.
    let mut replies_to: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for chain in model.port_chains.iter().filter(|c| c.symmetric) {
        for &i in &chain.flow_classifiers {
            if let Some(d) = &model.flow_classifiers[i].logical_destination_port {
                replies_to.entry(d.as_str()).or_default().push(i);
            }
        }
    }
    let reply_class_of: BTreeMap<&str, u32> = replies_to
        .keys()
        .enumerate()
        .map(|(k, port)| (*port, RECLASS | (u32::try_from(reclass_of.len() + k).unwrap_or(u32::MAX) + 1)))
        .collect();
    let mut zones = Zones::default();
    for chain in &model.port_chains {
        if chain.symmetric {
            symmetric_groups.extend(chain.port_pair_groups.iter().copied());
        }
        let mut entry = ChainEntry {
            n_hops: u32::try_from(chain.port_pair_groups.len()).unwrap_or(0),
            flags: if chain.symmetric { CHAIN_F_SYMMETRIC } else { 0 },
            ..ChainEntry::default()
        };
        for (h, &g) in chain.port_pair_groups.iter().enumerate() {
            entry.groups[h] = ids.group(&model.port_pair_groups[g].name);
            used_groups.push(g);
        }
        out.chains.insert(chain.chain_id, entry);
    }

    // A group may serve several chains: compile it once.
    used_groups.sort_unstable();
    used_groups.dedup();
    for &g in &used_groups {
        let group = &model.port_pair_groups[g];
        if group.tap_enabled {
            // As an ordinary hop, traffic would go into a passive SF and never come back.
            errors.push(CompileError::TapUnsupported { group: group.name.clone() });
            continue;
        }
        let mut members = Vec::new();
        for &p in &group.port_pairs {
            let pp = &model.port_pairs[p];
            let id = ids.port_pair(&pp.name);
            let res = format!("port_pairs[{}]", pp.name);
            let ingress = fact(format!("{res}.ingress"), &pp.ingress, &mut errors);
            let egress = fact(format!("{res}.egress"), &pp.egress, &mut errors);
            let (Some(ingress), Some(egress)) = (ingress, egress) else { continue };
            let symmetric = symmetric_groups.contains(&g);
            let Some(ingress_mac) = ingress.peer_mac else {
                errors.push(CompileError::NoPeerMac { port_pair: pp.name.clone(), field: "ingress", iface: pp.ingress.clone() });
                continue;
            };
            // The egress MAC is only needed when reverse traffic is sent into the egress.
            let egress_mac = match (egress.peer_mac, symmetric) {
                (Some(m), _) => m,
                (None, false) => [0; 6],
                (None, true) => {
                    errors.push(CompileError::NoPeerMac { port_pair: pp.name.clone(), field: "egress", iface: pp.egress.clone() });
                    continue;
                }
            };
            let mut flags = 0;
            if ingress.peer_in_other_netns {
                flags |= PP_F_INGRESS_PEER;
            }
            if egress.peer_in_other_netns {
                flags |= PP_F_EGRESS_PEER;
            }
            let up = !down_ifaces.contains(&pp.ingress) && !down_ifaces.contains(&pp.egress);
            if !up {
                flags |= PP_F_DOWN;
                out.down.insert(pp.name.clone());
            }
            out.port_pairs.insert(id, PortPairEntry {
                ingress_ifindex: ingress.ifindex,
                egress_ifindex: egress.ifindex,
                ingress_mac,
                egress_mac,
                flags,
                group: ids.group(&group.name),
            });
            role(&mut out, ingress, &pp.ingress, ROLE_SF_INGRESS, Some(id));
            role(&mut out, egress, &pp.egress, ROLE_SF_EGRESS, Some(id));
            out.attach.insert(egress.ifindex);
            out.redirect_targets.insert(ingress.ifindex);
            if symmetric {
                out.attach.insert(ingress.ifindex);
                out.redirect_targets.insert(egress.ifindex);
            }
            if up {
                members.push(maglev::Member { id, name: &pp.name, weight: pp.weight });
            }
            zones.group_member(g, ingress.ifindex, egress.ifindex);
        }
        let gid = ids.group(&group.name);
        for (bucket, pp) in maglev::table(&members, LB_TABLE_SIZE).into_iter().enumerate() {
            out.lb.insert(LbKey { group: gid, bucket: u32::try_from(bucket).unwrap_or(0) }, pp);
        }
        out.groups.insert(gid, GroupEntry {
            n_members: u32::try_from(members.len()).unwrap_or(0),
            lb_fields: group.lb_fields,
            failure_policy: match group.failure_policy {
                FailurePolicy::FailClosed => FAIL_CLOSED,
                FailurePolicy::FailOpen => FAIL_OPEN,
            },
            reclass: chains_of_group.get(&g).and_then(|set| reclass_of.get(set)).copied().unwrap_or(0),
        });
    }

    // Classifiers in use, with the ifindex of their logical source port.
    let mut in_use = Vec::new();
    let mut chain_of = BTreeMap::new();
    for chain in &model.port_chains {
        for &i in &chain.flow_classifiers {
            let fc = &model.flow_classifiers[i];
            let res = format!("flow_classifiers[{}]", fc.name);
            let Some(src) = fact(format!("{res}.logical_source_port"), &fc.logical_source_port, &mut errors) else { continue };
            role(&mut out, src, &fc.logical_source_port, ROLE_SOURCE, None);
            zones.chain_port(chain, src.ifindex);
            out.attach.insert(src.ifindex);
            if let Some(d) = &fc.logical_destination_port
                && let Some(df) = fact(format!("{res}.logical_destination_port"), d, &mut errors)
            {
                role(&mut out, df, d, ROLE_DEST, None);
                if let Some(class) = reply_class_of.get(d.as_str()) {
                    out.ifaces.entry(df.ifindex).or_default().reply_class = *class;
                    in_use.push((i, fc, *class));
                }
                zones.chain_port(chain, df.ifindex);
                out.redirect_targets.insert(df.ifindex);
                if chain.symmetric {
                    out.attach.insert(df.ifindex);
                    // Replies are delivered back to the port the flow came in on.
                    out.redirect_targets.insert(src.ifindex);
                }
            }
            in_use.push((i, fc, src.ifindex));
            for (set, class) in &reclass_of {
                if set.contains(&chain.chain_id) {
                    in_use.push((i, fc, *class));
                }
            }
            chain_of.insert(i, chain.chain_id);
        }
    }
    for (ifindex, zone) in zones.resolve(model) {
        if let Some(e) = out.ifaces.get_mut(&ifindex) {
            e.zone = zone;
        }
    }
    let tables = cls::compile(&in_use);
    out.cls = tables.entries;
    out.cls_hash = tables.hash;
    for (class, set) in &tables.finals {
        let Some(i) = cls::most_specific(set, &model.flow_classifiers) else { continue };
        let fc = &model.flow_classifiers[i];
        let ifindex_of = |port: Option<&String>| port.and_then(|d| facts.get(d)).map_or(0, |f| f.ifindex);
        out.cls_res.insert(*class, ClsResult {
            chain_id: chain_of[&i],
            classifier: u32::try_from(i).unwrap_or(u32::MAX),
            dst_ifindex: ifindex_of(fc.logical_destination_port.as_ref()),
            src_ifindex: ifindex_of(Some(&fc.logical_source_port)),
        });
    }
    for (id, d) in draining {
        install_draining(&mut out, *id, d);
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// A draining member: its entry stays (flagged), and its interfaces keep their role and their
/// program so that its flows, and the packets inside it, still find their way on.
fn install_draining(out: &mut Compiled, id: u32, d: &plan::Draining) {
    let e = d.entry;
    out.port_pairs.entry(id).or_insert(PortPairEntry { flags: e.flags | PP_F_DRAINING, ..e });
    for (ifindex, name) in [(e.ingress_ifindex, &d.ingress), (e.egress_ifindex, &d.egress)] {
        let entry = out.ifaces.entry(ifindex).or_default();
        if entry.roles & (ROLE_SF_EGRESS | ROLE_SF_INGRESS) == 0 {
            entry.roles |= ROLE_SF_EGRESS | ROLE_SF_INGRESS;
            entry.port_pair = id;
        }
        out.attach.insert(ifindex);
        out.redirect_targets.insert(ifindex);
        if let Some(name) = name {
            out.names.ifaces.entry(ifindex).or_insert_with(|| name.clone());
        }
    }
}
