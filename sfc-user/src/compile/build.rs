//! The compile itself, in steps that share one output: the chains, then each group they use
//! (its members and their Maglev table), then the classifiers (and the classes that recompute a
//! path or classify a reply), then the zones, then the draining members.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt as _};
use sfc_common::{
    limits::LB_TABLE_SIZE,
    maps::{
        CHAIN_F_SYMMETRIC, CHAIN_TAPS_SHIFT, ChainEntry, ClsResult, ENCAP_MPLS, ENCAP_NSH, EncapEntry, FAIL_CLOSED, IF_F_DECAP, PP_F_ENCAP, FAIL_OPEN, GroupEntry, IF_F_LEARN, IF_F_MAC, IF_F_PEER,
        IF_F_TAP, PP_F_DOWN, PP_F_DRAINING, PP_F_NO_MAC, PP_F_TAP, PP_F_EGRESS_PEER, PP_F_INGRESS_PEER, PortPairEntry, ROLE_DEST, ROLE_SF_EGRESS, ROLE_SF_INGRESS, ROLE_SOURCE,
    },
};

use super::{CompileError, Compiled, IfaceFacts, Inputs, LbKey, MAX_IFINDEX, RECLASS, cls, incr, plan};
use crate::{
    maglev,
    model::{FailurePolicy, FlowClassifier, Model, PortChain},
};

/// A count or position of the model as a 32-bit map field. `validate` keeps every list far
/// below `u32::MAX`; a model beyond that (built without it) gets an error, not a wrapped value.
fn small(n: usize, what: &'static str, errors: &mut Vec<CompileError>) -> u32 {
    u32::try_from(n).unwrap_or_else(|_| {
        errors.push(CompileError::TooMany { what, n });
        0
    })
}

/// The reclassification classes: a packet back from a member whose flow entry is gone is
/// reclassified against the classifiers of the chains its group serves (`GroupEntry::reclass`;
/// groups serving the same chains share a class), and a reply arriving at a logical destination
/// port with no reverse entry is classified by its forward 5-tuple against the symmetric
/// classifiers delivering there (`IfaceEntry::reply_class`), in classes numbered after the
/// groups'.
///
/// Behind a NAT-ing group (`PortPairGroup::egress_n_tuple`) packets no longer carry the tuple
/// the chain's classifiers name: a group's class holds each chain's classifiers as the group
/// sees them, translated by every NAT-ing group up to and including it (`Passed`).
struct Reclass<'m> {
    chains_of_group: BTreeMap<usize, BTreeSet<Passed>>,
    of_chains: BTreeMap<BTreeSet<Passed>, u32>,
    reply_to: BTreeMap<&'m str, u32>,
}

/// A chain (by id) as a group sees its packets: the NAT-ing groups they went through first (in
/// chain order, the group itself included).
type Passed = (u32, Vec<usize>);

impl<'m> Reclass<'m> {
    fn of(model: &'m Model, errors: &mut Vec<CompileError>) -> Self {
        let mut chains_of_group: BTreeMap<usize, BTreeSet<Passed>> = BTreeMap::new();
        for chain in &model.port_chains {
            let mut nat = Vec::new();
            for &g in &chain.port_pair_groups {
                if model.port_pair_groups.get(g).is_some_and(|x| x.egress_n_tuple.is_some()) {
                    nat.push(g);
                }
                chains_of_group.entry(g).or_default().insert((chain.chain_id, nat.clone()));
            }
        }
        let mut of_chains: BTreeMap<BTreeSet<Passed>, u32> = BTreeMap::new();
        for set in chains_of_group.values() {
            if !of_chains.contains_key(set) {
                let n = small(of_chains.len() + 1, "reclassification classes", errors);
                of_chains.insert(set.clone(), RECLASS | n);
            }
        }
        let mut replies_to: BTreeSet<&str> = BTreeSet::new();
        for chain in model.port_chains.iter().filter(|c| c.symmetric) {
            for &i in &chain.flow_classifiers {
                if let Some(d) = &model.flow_classifiers[i].logical_destination_port {
                    replies_to.insert(d.as_str());
                }
            }
        }
        let first = of_chains.len() + 1;
        let reply_to = replies_to.into_iter().enumerate().map(|(k, port)| (port, RECLASS | small(first + k, "reply classes", errors))).collect();
        Reclass { chains_of_group, of_chains, reply_to }
    }
}

pub(super) struct Build<'a> {
    model: &'a Model,
    inputs: &'a Inputs<'a>,
    out: Compiled,
    errors: Vec<CompileError>,
    zones: Zones,
    /// Groups in a symmetric chain (their members are entered from both sides).
    symmetric_groups: BTreeSet<usize>,
    /// The previous compile's classifier tables, updated rather than built anew.
    kept: Option<&'a mut incr::Kept>,
    /// Interfaces found absent so far (`Inputs::absent_ok`), counted once per resource naming one.
    absent_named: usize,
}

impl<'a> Build<'a> {
    pub(super) fn new(model: &'a Model, inputs: &'a Inputs<'a>) -> Self {
        Build { model, inputs, out: Compiled::default(), errors: Vec::new(), zones: Zones::default(), symmetric_groups: BTreeSet::new(), kept: None, absent_named: 0 }
    }

    /// Updates `kept`'s classifier tables instead of building them (they are lent to the
    /// output: `Kept::restore` takes them back).
    pub(super) fn kept(mut self, kept: &'a mut incr::Kept) -> Self {
        self.kept = Some(kept);
        self
    }

    pub(super) fn run(mut self) -> Result<Compiled, Vec<CompileError>> {
        let reclass = Reclass::of(self.model, &mut self.errors);
        let used_groups = self.chains();
        for g in used_groups {
            self.group(g, &reclass);
        }
        self.classifiers(&reclass);
        for (ifindex, zone) in std::mem::take(&mut self.zones).resolve(self.model) {
            if let Some(e) = self.out.ifaces.get_mut(&ifindex) {
                e.zone = zone;
            }
        }
        for (id, d) in &self.inputs.draining {
            install_draining(&mut self.out, *id, d);
        }
        if self.errors.is_empty() { Ok(self.out) } else { Err(self.errors) }
    }

    /// What the loader found about `iface`, which `resource` names; an error when it is not
    /// there, is not an Ethernet interface, or its ifindex is too large to be a classifier class.
    fn fact(&mut self, resource: impl FnOnce() -> String, iface: &str) -> Option<IfaceFacts> {
        let f = self.inputs.facts.get(iface).copied();
        match f {
            None if self.inputs.absent_ok => {
                self.out.absent.entry(iface.to_owned()).or_default().push(resource());
                self.absent_named += 1;
            }
            None => {
                let where_ = self.inputs.netns.map_or_else(|| " in the host namespace".to_owned(), |n| format!(" in network namespace '{n}'"));
                self.errors.push(CompileError::NoInterface { resource: resource(), iface: self.model.describe_iface(iface), where_ });
            }
            Some(f) if let Some(what) = f.not_ethernet() => {
                self.errors.push(CompileError::NotEthernet { resource: resource(), iface: self.model.describe_iface(iface), what });
                return None;
            }
            // Stage-1 classifier classes are ifindexes below the reclassification bit.
            Some(f) if f.ifindex >= MAX_IFINDEX => {
                self.errors.push(CompileError::IfindexTooLarge { resource: resource(), iface: iface.to_owned(), ifindex: f.ifindex, max: MAX_IFINDEX - 1 });
                return None;
            }
            Some(_) => {}
        }
        f
    }

    /// Gives interface `f` (named `name`) `roles`, and its port pair when it has one; the MAC
    /// behind it is `configured` (the file's), else its veth peer's, else the learnt one. An
    /// interface without a veth peer or a configured MAC learns it: its program sees what the
    /// VM behind it sends, so it is attached even where its roles alone would not need it.
    fn role(&mut self, f: IfaceFacts, name: &str, roles: u32, pp: Option<u32>, configured: Option<[u8; 6]>) {
        let e = self.out.ifaces.entry(f.ifindex).or_default();
        e.roles |= roles;
        if let Some(pp) = pp {
            e.port_pair = pp;
        }
        if f.peer_in_other_netns {
            e.flags |= IF_F_PEER;
        }
        if let Some(mac) = super::sf_mac(configured, &f) {
            e.flags |= IF_F_MAC;
            e.peer_mac = mac;
        }
        if configured.is_none() && f.learns() {
            e.flags |= IF_F_LEARN;
            self.out.attach.insert(f.ifindex);
        }
        self.out.names.ifaces.insert(f.ifindex, name.to_owned());
    }

    /// The MAC the file gives for port pair `p`'s interface `iface`: on the port pair
    /// (`ingress_mac` / `egress_mac`), else in `interfaces:`.
    fn configured_mac(&self, on_pair: Option<[u8; 6]>, iface: &str) -> Option<[u8; 6]> {
        on_pair.or_else(|| self.model.interface_macs.get(iface).copied())
    }

    /// One `ChainEntry` per chain; returns the groups the chains use, each once.
    fn chains(&mut self) -> Vec<usize> {
        let (model, ids) = (self.model, &self.inputs.ids);
        let mut used = Vec::new();
        for chain in &model.port_chains {
            if chain.symmetric {
                self.symmetric_groups.extend(chain.port_pair_groups.iter().copied());
            }
            let taps = chain.port_pair_groups.iter().enumerate().filter(|(_, g)| model.port_pair_groups[**g].tap_enabled).fold(0u32, |bits, (h, _)| bits | 1 << h);
            let mut entry = ChainEntry {
                n_hops: small(chain.port_pair_groups.len(), "hops", &mut self.errors),
                flags: if chain.symmetric { CHAIN_F_SYMMETRIC } else { 0 } | taps << CHAIN_TAPS_SHIFT,
                ..ChainEntry::default()
            };
            for (slot, &g) in entry.groups.iter_mut().zip(&chain.port_pair_groups) {
                *slot = ids.group(&model.port_pair_groups[g].name);
                used.push(g);
            }
            self.out.chains.insert(chain.chain_id, entry);
        }
        // A group may serve several chains: it is compiled once.
        used.sort_unstable();
        used.dedup();
        used
    }

    /// Group `g`: its members' entries and interfaces, its Maglev table over the members that
    /// are up, and its `GroupEntry`.
    fn group(&mut self, g: usize, reclass: &Reclass<'_>) {
        let (model, ids) = (self.model, &self.inputs.ids);
        let group = &model.port_pair_groups[g];
        let gid = ids.group(&group.name);
        let mut members = Vec::new();
        for &p in &group.port_pairs {
            let pp = &model.port_pairs[p];
            if let Some(up) = self.member(g, gid, p)
                && up
            {
                members.push(maglev::Member { id: ids.port_pair(&pp.name), name: &pp.name, weight: pp.weight });
            }
        }
        for (bucket, pp) in maglev::table(&members, LB_TABLE_SIZE).into_iter().enumerate() {
            let bucket = small(bucket, "lookup table buckets", &mut self.errors);
            self.out.lb.insert(LbKey { group: gid, bucket }, pp);
        }
        let n_members = small(members.len(), "group members", &mut self.errors);
        self.out.groups.insert(gid, GroupEntry {
            n_members,
            lb_fields: group.lb_fields,
            // A tap never stops traffic: with no member up, nothing is copied.
            failure_policy: match group.failure_policy {
                _ if group.tap_enabled => FAIL_OPEN,
                FailurePolicy::FailClosed => FAIL_CLOSED,
                FailurePolicy::FailOpen => FAIL_OPEN,
            },
            reclass: reclass.chains_of_group.get(&g).and_then(|set| reclass.of_chains.get(set)).copied().unwrap_or(0),
            tap_every: group.tap_sample.every,
            tap_threshold: group.tap_sample.threshold,
        });
    }

    /// Port pair `p` of group `g` (id `gid`): its entry (flagged down when an interface is),
    /// its interfaces' roles, programs and redirect targets. Whether it is up; `None` when it
    /// cannot be installed (the error is recorded).
    fn member(&mut self, g: usize, gid: u32, p: usize) -> Option<bool> {
        let (model, inputs) = (self.model, self.inputs);
        let pp = &model.port_pairs[p];
        let id = inputs.ids.port_pair(&pp.name);
        let res = format!("port_pairs[{}]", pp.name);
        let ingress = self.fact(|| format!("{res}.ingress"), &pp.ingress);
        let egress = self.fact(|| format!("{res}.egress"), &pp.egress);
        let (Some(ingress), Some(egress)) = (ingress, egress) else {
            if inputs.absent_ok {
                // Not installed at all: flows pinned to it find no entry and move on.
                self.out.down.insert(pp.name.clone());
            }
            return None;
        };
        let symmetric = self.symmetric_groups.contains(&g);
        let (in_mac, out_mac) = (self.configured_mac(pp.ingress_mac, &pp.ingress), self.configured_mac(pp.egress_mac, &pp.egress));
        // Behind a tap the MAC comes from the file or is learnt from the VM's frames; until it
        // is known the member is not used (nothing is sent to a wrong address). The egress MAC
        // is only needed when reverse traffic is sent into the egress.
        let mut missing = Vec::new();
        let ingress_mac = super::sf_mac(in_mac, &ingress).unwrap_or_else(|| {
            missing.push(format!("ingress {}", self.model.describe_iface(&pp.ingress)));
            [0; 6]
        });
        // Copies go into a tap member's ingress only, in both directions.
        let tap = model.port_pair_groups[g].tap_enabled;
        let egress_mac = super::sf_mac(out_mac, &egress).unwrap_or_else(|| {
            if symmetric && !tap {
                missing.push(format!("egress {}", self.model.describe_iface(&pp.egress)));
            }
            [0; 6]
        });
        let mut flags = 0;
        if ingress.peer_in_other_netns {
            flags |= PP_F_INGRESS_PEER;
        }
        if egress.peer_in_other_netns {
            flags |= PP_F_EGRESS_PEER;
        }
        let link_up = !inputs.down_ifaces.contains(&pp.ingress) && !inputs.down_ifaces.contains(&pp.egress);
        if !link_up {
            flags |= PP_F_DOWN;
            self.out.down.insert(pp.name.clone());
        }
        if !missing.is_empty() {
            flags |= PP_F_DOWN | PP_F_NO_MAC;
            self.out.no_mac.insert(pp.name.clone(), missing);
        }
        if tap {
            flags |= PP_F_TAP;
        }
        let aware = pp.aware;
        if aware.correlation != crate::model::Correlation::None {
            flags |= PP_F_ENCAP;
            let kind = if aware.correlation == crate::model::Correlation::Mpls { ENCAP_MPLS } else { ENCAP_NSH };
            self.out.encap.insert(id, EncapEntry { kind, md_type: aware.md_type, _pad: [0; 2], context: aware.context });
            // What it sends back carries the header: read and removed there (XDP, `aware`).
            self.out.ifaces.entry(egress.ifindex).or_default().flags |= IF_F_DECAP;
        }
        let up = flags & PP_F_DOWN == 0;
        let entry = PortPairEntry { ingress_ifindex: ingress.ifindex, egress_ifindex: egress.ifindex, ingress_mac, egress_mac, flags, group: gid };
        self.out.port_pairs.insert(id, entry);
        let (in_ifindex, out_ifindex) = (ingress.ifindex, egress.ifindex);
        self.role(ingress, &pp.ingress, ROLE_SF_INGRESS, Some(id), in_mac);
        self.role(egress, &pp.egress, ROLE_SF_EGRESS, Some(id), out_mac);
        self.out.attach.insert(egress.ifindex);
        self.out.redirect_targets.insert(ingress.ifindex);
        if tap {
            // Whatever a passive function sends back, on either side, is dropped.
            for i in [in_ifindex, out_ifindex] {
                self.out.ifaces.entry(i).or_default().flags |= IF_F_TAP;
                self.out.attach.insert(i);
            }
        }
        if symmetric {
            self.out.attach.insert(ingress.ifindex);
            self.out.redirect_targets.insert(egress.ifindex);
        }
        self.zones.group_member(g, ingress.ifindex, egress.ifindex);
        Some(up)
    }

    /// The classifiers the chains use: their ports' roles and programs, then the classifier
    /// tables over every class they are asked in (the source port's ifindex, the
    /// reclassification classes of their chain, the reply class of their destination port),
    /// and each final class's result.
    fn classifiers(&mut self, reclass: &Reclass<'_>) {
        let model = self.model;
        // Classifiers as NAT-ing groups' output matches them: (the classifier, it translated, class).
        let mut translated: Vec<(usize, FlowClassifier, u32)> = Vec::new();
        let mut in_use: Vec<(usize, &FlowClassifier, u32)> = Vec::new();
        let n = model.flow_classifiers.len();
        let mut chain_of: Vec<Option<u32>> = vec![None; n];
        // Where each classifier leads (`cls::Place`), found with its ports: the compiler asks
        // for every classifier at every apply.
        let mut places: Vec<cls::Place> = vec![None; n];
        let facts = self.inputs.facts;
        let ifindex_of = |port: Option<&String>| port.and_then(|d| facts.get(d)).map_or(0, |f| f.ifindex);
        for chain in &model.port_chains {
            // A reply's forward tuple at the destination is what the chain's last NAT sent.
            let nat: Vec<usize> = chain.port_pair_groups.iter().copied().filter(|&g| model.port_pair_groups.get(g).is_some_and(|x| x.egress_n_tuple.is_some())).collect();
            let reclasses: Vec<(u32, &Vec<usize>)> =
                reclass.of_chains.iter().flat_map(|(set, class)| set.iter().filter(|(id, _)| *id == chain.chain_id).map(move |(_, nat)| (*class, nat))).collect();
            // The ports' work is the same for every classifier with the same ports (and found
            // nothing wrong the first time): done once. A chain's classifiers mostly share their
            // ports, so the last pair is tried before the map.
            let mut ports_done: HashMap<Ports<'_>, PortsDone> = HashMap::new();
            let mut last: Option<(Ports<'_>, PortsDone)> = None;
            for &i in &chain.flow_classifiers {
                let fc = &model.flow_classifiers[i];
                // Without a source port it is a graph destination's: matched through its paths only.
                if fc.logical_source_port.is_empty() {
                    continue;
                }
                let key = (fc.logical_source_port.as_str(), fc.logical_destination_port.as_deref());
                let (src, reply, dst) = if let Some((_, done)) = last.filter(|(k, _)| *k == key) {
                    done
                } else if let Some(done) = ports_done.get(&key) {
                    last = Some((key, *done));
                    *done
                } else {
                    let problems = (self.errors.len(), self.absent_named);
                    let Some((src, reply)) = self.classifier_ports(chain, fc, reclass) else { continue };
                    let done = (src, reply, ifindex_of(fc.logical_destination_port.as_ref()));
                    if problems == (self.errors.len(), self.absent_named) {
                        ports_done.insert(key, done);
                        last = Some((key, done));
                    }
                    done
                };
                places[i] = Some([chain.chain_id, dst, src]);
                if let Some(class) = reply {
                    in_use.push((i, fc, class));
                }
                in_use.push((i, fc, src));
                if let Some(&class) = fc.logical_destination_port.as_ref().and_then(|d| reclass.reply_to.get(d.as_str()))
                    && !nat.is_empty()
                {
                    translated.push((i, nat_output(model, &nat, fc), class));
                }
                for (class, nat) in &reclasses {
                    if nat.is_empty() {
                        in_use.push((i, fc, *class));
                    } else {
                        translated.push((i, nat_output(model, nat, fc), *class));
                    }
                }
                chain_of[i] = Some(chain.chain_id);
            }
        }
        // Translated classifiers are numbered after the model's, and stand for their original.
        for (k, (_, fc, class)) in translated.iter().enumerate() {
            in_use.push((n + k, fc, *class));
        }
        let fc_at = |j: usize| if j < n { &model.flow_classifiers[j] } else { &translated[j - n].1 };
        let chain_of = |j: usize| if j < n { chain_of[j] } else { chain_of[translated[j - n].0] };
        let original = |j: usize| if j < n { j } else { translated[j - n].0 };
        // A path through service graphs may have the very classifier of its first chain (the
        // branch's is broader): the longer path is the more specific.
        let depth = |j: usize| chain_of(j).and_then(|id| model.chain_by_id(id)).map_or(0, |c| c.graph.len());
        let result = |set: &BTreeSet<usize>, errors: &mut Vec<CompileError>| {
            let j = cls::most_specific_by(set, fc_at)?;
            let j = set.iter().copied().filter(|&k| fc_at(k).contains(fc_at(j)) && fc_at(j).contains(fc_at(k))).max_by_key(|&k| (depth(k), std::cmp::Reverse(k))).unwrap_or(j);
            let chain_id = chain_of(j)?;
            let i = original(j);
            let fc = &model.flow_classifiers[i];
            Some(ClsResult {
                chain_id,
                classifier: small(i, "flow classifiers", errors),
                dst_ifindex: ifindex_of(fc.logical_destination_port.as_ref()),
                src_ifindex: ifindex_of(Some(&fc.logical_source_port)),
            })
        };
        // Where a classifier leads: what its result says but its own index (classifiers with
        // the same place share classes); a translated copy leads where its original does.
        let place = |j: usize| -> cls::Place { places.get(original(j)).copied().flatten() };
        let from = incr::ResFrom { chains: model.port_chains.clone(), groups: model.port_pair_groups.clone(), facts: facts.clone(), n };
        let errors = &mut self.errors;
        // A compile without a kept compiler runs a new one: the same code, so that a cold apply
        // numbers classes as a warm one does.
        let mut fresh = None;
        let k = match self.kept.as_deref_mut() {
            Some(k) => k,
            None => fresh.insert(incr::Kept::new(self.inputs.class_ids.unwrap_or(&cls::ClassIds::new()))),
        };
        k.update(&in_use, from, &place, &original, |set| result(set, errors));
        k.lend(&mut self.out);
    }

    /// The logical ports of classifier `fc` of `chain`: their roles, programs and redirect
    /// targets. The source port's ifindex and the destination port's reply class; `None` when
    /// the source port is missing.
    fn classifier_ports(&mut self, chain: &PortChain, fc: &FlowClassifier, reclass: &Reclass<'_>) -> Option<(u32, Option<u32>)> {
        let res = |what: &str| format!("flow_classifiers[{}].{what}", fc.name);
        let src = self.fact(|| res("logical_source_port"), &fc.logical_source_port)?;
        let model = self.model;
        let mac_of = |port: &str| model.interface_macs.get(port).copied();
        self.role(src, &fc.logical_source_port, ROLE_SOURCE, None, mac_of(&fc.logical_source_port));
        self.zones.chain_port(chain, src.ifindex);
        self.out.attach.insert(src.ifindex);
        let mut reply = None;
        if let Some(d) = &fc.logical_destination_port
            && let Some(df) = self.fact(|| res("logical_destination_port"), d)
        {
            self.role(df, d, ROLE_DEST, None, mac_of(d));
            if let Some(class) = reclass.reply_to.get(d.as_str()) {
                self.out.ifaces.entry(df.ifindex).or_default().reply_class = *class;
                reply = Some(*class);
            }
            self.zones.chain_port(chain, df.ifindex);
            self.out.redirect_targets.insert(df.ifindex);
            if chain.symmetric {
                self.out.attach.insert(df.ifindex);
                // Replies are delivered back to the port the flow came in on.
                self.out.redirect_targets.insert(src.ifindex);
            }
        }
        Some((src.ifindex, reply))
    }
}

/// A classifier's logical source and destination ports.
type Ports<'m> = (&'m str, Option<&'m str>);

/// What a classifier's ports give (`Build::classifier_ports`): the source port's ifindex, the
/// destination port's reply class, and its ifindex (0 when it has none or is not here).
type PortsDone = (u32, Option<u32>, u32);

/// Classifier `fc` as packets match it after the NAT-ing groups `nat` (in chain order).
fn nat_output(model: &Model, nat: &[usize], fc: &FlowClassifier) -> FlowClassifier {
    nat.iter()
        .filter_map(|&g| model.port_pair_groups.get(g)?.egress_n_tuple)
        .fold(fc.clone(), |out, t| t.translate(&out))
}

/// A draining member: its entry stays (flagged), and its interfaces keep their role and their
/// program so that its flows, and the packets inside it, still find their way on.
fn install_draining(out: &mut Compiled, id: u32, d: &plan::Draining) {
    let e = d.entry;
    out.port_pairs.entry(id).or_insert(PortPairEntry { flags: e.flags | PP_F_DRAINING, ..e });
    for (ifindex, name) in [(e.ingress_ifindex, &d.ingress), (e.egress_ifindex, &d.egress)] {
        let entry = out.ifaces.entry(ifindex).or_default();
        // An SFC-aware member's frames still come back with their header while it drains.
        if e.flags & PP_F_ENCAP != 0 && ifindex == e.egress_ifindex {
            entry.flags |= IF_F_DECAP;
        }
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
