//! What an apply decides from the datapath it finds, before compiling: which port pairs drain
//! (out of the model, still serving the flows they have for a while) and which ids new names
//! get (never one that a draining member, or the group it was in, still holds). Both are
//! inputs of `compile`. Pure: the installed entries, the saved state and the clock come in as
//! data.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sfc_common::maps::PortPairEntry;

use super::{Ids, Reserved};
use crate::model::Model;

/// A draining port pair, as the state file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    pub name: String,
    /// Seconds since the Unix epoch after which the port pair is removed.
    pub until: u64,
    /// The id of the group it was in (not given to a new group while it drains).
    #[serde(default)]
    pub group: Option<u32>,
    /// Its interfaces' names (the model that named them is gone).
    #[serde(default)]
    pub ingress: Option<String>,
    #[serde(default)]
    pub egress: Option<String>,
}

/// A draining port pair as compile installs it: its entry as the map has it, and the names of
/// its interfaces (for the attach step, the XDP peers and counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draining {
    pub entry: PortPairEntry,
    pub ingress: Option<String>,
    pub egress: Option<String>,
}

/// The datapath as the previous apply left it.
#[derive(Default)]
pub struct Previous<'a> {
    pub ids: Ids,
    pub draining: BTreeMap<u32, Drain>,
    /// The port pairs installed now (map slots in use), by id.
    pub installed: BTreeMap<u32, PortPairEntry>,
    /// The name a port pair id had, and the name of an ifindex.
    pub port_pair_name: Option<&'a dyn Fn(u32) -> Option<String>>,
    pub ifname: Option<&'a dyn Fn(u32) -> Option<String>>,
}

/// The decisions: ids for the model and the drains that go with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ids: Ids,
    /// Draining port pairs after this apply (what the state file keeps).
    pub draining: BTreeMap<u32, Drain>,
    /// The same, as compile installs them.
    pub drain_entries: BTreeMap<u32, Draining>,
    /// Port pairs that start draining with this apply, and those whose drain ended.
    pub started: Vec<String>,
    pub ended: Vec<String>,
}

/// Plans an apply of `model` at `now` (seconds since the epoch) over `prev`.
pub fn plan(model: &Model, prev: &Previous<'_>, now: u64, drain_timeout: std::time::Duration) -> Plan {
    let draining_on = !drain_timeout.is_zero();
    // A draining port pair named again gets its id back; the ids of those still out of the
    // model stay unused, and so do their groups' ids (a draining member is kept by flows of its
    // old group's id, so a new group under that id would inherit it).
    let mut prev_ids = prev.ids.clone();
    for (id, d) in &prev.draining {
        prev_ids.port_pairs.entry(d.name.clone()).or_insert(*id);
    }
    let in_model = |name: &str| model.port_pairs.iter().any(|p| p.name == name);
    // Groups that vanish now may have members that start draining below: their ids stay
    // unused this time too (later, `Drain::group` keeps them). So do the ids of installed
    // members leaving the model now: they start draining below, and a new member under the
    // same id would take over their flows.
    let vanishing = prev.ids.groups.iter().filter(|(name, _)| draining_on && !model.port_pair_groups.iter().any(|g| &g.name == *name)).map(|(_, id)| *id);
    let named_in_model: BTreeSet<u32> = prev_ids.port_pairs.iter().filter(|(name, _)| in_model(name)).map(|(_, id)| *id).collect();
    let leaving = prev.installed.keys().filter(|id| draining_on && !named_in_model.contains(id)).copied();
    let reserved = Reserved {
        port_pairs: prev.draining.iter().filter(|(_, d)| !in_model(&d.name)).map(|(id, _)| *id).chain(leaving).collect(),
        groups: prev.draining.values().filter_map(|d| d.group).chain(vanishing).collect(),
    };
    let ids = Ids::assign(model, &prev_ids, &reserved);
    let in_use = in_use(model, &ids);
    // A draining port pair back in use stops draining; one still unused drains on (its timer
    // is not restarted, also when the model still defines it).
    let mut draining: BTreeMap<u32, Drain> = prev.draining.iter().filter(|(id, _)| !in_use.contains(*id)).map(|(id, d)| (*id, d.clone())).collect();

    let mut plan = Plan::default();
    // Installed port pairs that are no longer used start draining; expired drains end.
    let until = now.saturating_add(drain_timeout.as_secs());
    let ifname = |ifindex: u32| prev.ifname.and_then(|f| f(ifindex));
    for (id, e) in prev.installed.iter().filter(|(id, _)| !in_use.contains(*id)) {
        if draining_on && !draining.contains_key(id) {
            let name = prev.port_pair_name.and_then(|f| f(*id)).unwrap_or_else(|| format!("#{id}"));
            plan.started.push(name.clone());
            let (ingress, egress) = (ifname(e.ingress_ifindex), ifname(e.egress_ifindex));
            draining.insert(*id, Drain { name, until, group: Some(e.group), ingress, egress });
        }
    }
    draining.retain(|_, d| {
        let live = d.until > now;
        if !live {
            plan.ended.push(d.name.clone());
        }
        live
    });
    plan.drain_entries = prev
        .installed
        .iter()
        .filter_map(|(id, e)| {
            let d = draining.get(id)?;
            let ingress = d.ingress.clone().or_else(|| ifname(e.ingress_ifindex));
            let egress = d.egress.clone().or_else(|| ifname(e.egress_ifindex));
            Some((*id, Draining { entry: *e, ingress, egress }))
        })
        .collect();
    plan.ids = ids;
    plan.draining = draining;
    plan
}

/// Ids of the port pairs the model's chains use (members of groups in a chain).
fn in_use(model: &Model, ids: &Ids) -> BTreeSet<u32> {
    model
        .port_chains
        .iter()
        .flat_map(|c| &c.port_pair_groups)
        .flat_map(|&g| &model.port_pair_groups[g].port_pairs)
        .map(|&p| ids.port_pair(&model.port_pairs[p].name))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{compile, config, model};

    fn model(groups: &str) -> Model {
        let text = format!(
            "port_pairs:\n  - {{name: a, ingress: a-in, egress: a-out}}\n  - {{name: b, ingress: b-in, egress: b-out}}\n\
             port_pair_groups:\n{groups}\
             flow_classifiers:\n  - {{name: fc, logical_source_port: src}}\n\
             port_chains:\n  - {{name: pc, port_pair_groups: [g], flow_classifiers: [fc]}}\n"
        );
        model::validate(&config::parse("t", &text).expect("parses")).expect("valid")
    }

    fn prev_clone<'a>(p: &Previous<'a>) -> Previous<'a> {
        Previous { ids: p.ids.clone(), draining: p.draining.clone(), installed: p.installed.clone(), port_pair_name: p.port_pair_name, ifname: p.ifname }
    }

    fn entry(ingress: u32, group: u32) -> PortPairEntry {
        PortPairEntry { ingress_ifindex: ingress, egress_ifindex: ingress + 1, group, ..PortPairEntry::default() }
    }

    const DRAIN: Duration = Duration::from_secs(30);

    #[test]
    fn a_member_taken_out_drains_keeps_its_id_and_ends_on_time() {
        let before = model("  - {name: g, port_pairs: [a, b]}\n");
        let after = model("  - {name: g, port_pairs: [a]}\n");
        let names = |id: u32| Some(["a", "b"][id as usize].to_owned());
        let ifname = |ifindex: u32| Some(format!("if{ifindex}"));
        let prev = Previous {
            ids: Ids::by_index(&before),
            installed: BTreeMap::from([(0, entry(10, 0)), (1, entry(20, 0))]),
            port_pair_name: Some(&names),
            ifname: Some(&ifname),
            ..Previous::default()
        };
        let p = plan(&after, &prev, 1000, DRAIN);
        assert_eq!((p.started.clone(), p.ended.clone()), (vec!["b".to_owned()], vec![]));
        assert_eq!(p.draining[&1], Drain { name: "b".into(), until: 1030, group: Some(0), ingress: Some("if20".into()), egress: Some("if21".into()) });
        assert_eq!(p.drain_entries[&1].ingress.as_deref(), Some("if20"));
        // Still unused at the next apply: it drains on, its timer not restarted.
        let later = Previous { draining: p.draining.clone(), ..prev };
        let again = plan(&after, &later, 1010, DRAIN);
        assert_eq!((again.started.len(), again.draining.get(&1).map(|d| d.until)), (0, Some(1030)));
        // Back in use while it drains: `b` again, same id, no longer draining.
        let back = plan(&before, &later, 1010, DRAIN);
        assert!(back.draining.is_empty() && back.ids.port_pair("b") == 1);
        // Its interfaces keep their names while it drains, also when no one knows them any more.
        let forgetful = Previous { ifname: None, port_pair_name: None, ..Previous { draining: p.draining.clone(), ..prev_clone(&later) } };
        assert_eq!(plan(&after, &forgetful, 1010, DRAIN).drain_entries[&1].egress.as_deref(), Some("if21"));
        // Expired: the drain ends and the entry is no longer installed by compile.
        let done = plan(&after, &later, 1030, DRAIN);
        assert_eq!((done.ended, done.draining.len(), done.drain_entries.len()), (vec!["b".to_owned()], 0, 0));
        // No drain timeout: removed at once.
        let now = plan(&after, &Previous { draining: BTreeMap::new(), ..later }, 1000, Duration::ZERO);
        assert!(now.started.is_empty() && now.draining.is_empty());
    }

    #[test]
    fn a_member_replaced_in_one_apply_drains_and_its_id_is_not_reused() {
        let m = |pairs: &str, group: &str| {
            let text = format!(
                "port_pairs:\n{pairs}port_pair_groups:\n  - {{name: g, port_pairs: [{group}]}}\n\
                 flow_classifiers:\n  - {{name: fc, logical_source_port: src}}\n\
                 port_chains:\n  - {{name: pc, port_pair_groups: [g], flow_classifiers: [fc]}}\n"
            );
            model::validate(&config::parse("t", &text).expect("parses")).expect("valid")
        };
        let before = m("  - {name: a, ingress: a-in, egress: a-out}\n  - {name: b, ingress: b-in, egress: b-out}\n", "a, b");
        let after = m("  - {name: a, ingress: a-in, egress: a-out}\n  - {name: c, ingress: c-in, egress: c-out}\n", "a, c");
        let names = |id: u32| ["a", "b"].get(id as usize).map(|s| (*s).to_owned());
        let prev = Previous {
            ids: Ids::by_index(&before),
            installed: BTreeMap::from([(0, entry(10, 0)), (1, entry(20, 0))]),
            port_pair_name: Some(&names),
            ..Previous::default()
        };
        let p = plan(&after, &prev, 1000, DRAIN);
        assert_eq!(p.started, ["b"]);
        assert!(p.draining.contains_key(&1));
        assert_eq!((p.ids.port_pair("a"), p.ids.port_pair("c")), (0, 2));
        // Without drains the id is free at once.
        assert_eq!(plan(&after, &prev, 1000, Duration::ZERO).ids.port_pair("c"), 1);
    }

    #[test]
    fn compile_installs_draining_members_flagged_with_their_interfaces() {
        let m = model("  - {name: g, port_pairs: [a]}\n");
        let facts: BTreeMap<String, compile::IfaceFacts> = ["a-in", "a-out", "src"]
            .iter()
            .zip(1u32..)
            .map(|(n, i)| ((*n).to_owned(), compile::IfaceFacts { ifindex: i, peer_mac: Some([2, 0, 0, 0, 0, 1]), peer_in_other_netns: true, ..Default::default() }))
            .collect();
        let d = Draining { entry: entry(20, 0), ingress: Some("b-in".into()), egress: None };
        let inputs = compile::Inputs { draining: BTreeMap::from([(7, d)]), ..compile::Inputs::new(&m, &facts) };
        let c = compile::compile_with(&m, &inputs).expect("compiles");
        assert_eq!(c.port_pairs[&7].flags & sfc_common::maps::PP_F_DRAINING, sfc_common::maps::PP_F_DRAINING);
        assert!(c.attach.contains(&20) && c.attach.contains(&21) && c.redirect_targets.contains(&20));
        assert_eq!((c.ifaces[&20].port_pair, c.names.ifaces.get(&20).map(String::as_str)), (7, Some("b-in")));
        assert!(!c.names.ifaces.contains_key(&21));
    }
}
