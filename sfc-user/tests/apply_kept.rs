//! Applies in one process (what `sfc run` does): after the first, each starts from what the last
//! one kept (`datapath::warm`) and writes the classifier maps from the compiler's log, with
//! nothing read back. Edit after edit (classifiers moved, removed, added, a chain made symmetric
//! and back, a NAT group's mapping changed), both banks as read back from the kernel must hold
//! exactly what was kept, and what was kept must be a fresh compile of the model (up to class
//! numbers). The state is written behind each apply (as `sfc run` has it). Now and then another
//! "process" applies (rewrites the maps and flips, or fails before its flip having left its
//! mark): the next apply must start over (read everything) and go on from there. Needs root
//! (bpf, a network namespace).

#[path = "common/down.rs"]
mod down;
#[path = "common/sandbox.rs"]
#[expect(dead_code, reason = "no ifindex lookups here")]
mod sandbox;

use std::{collections::BTreeMap, time::Duration};

use sfc::{
    compile::{self, cls},
    config,
    datapath::{self, LoadOptions, Location, maps::Maps},
    model::{self, AttachMode, Model, Prefix},
};
use sfc_tests::rng::Rng;

const PAIRS: &[(&str, &str)] = &[("ksrc", "kdst"), ("ks1i", "ks1o"), ("ks2i", "ks2o")];

const FILE: &str = "
port_pairs:
  - {name: pp1, ingress: ks1i, egress: ks1o}
  - {name: pp2, ingress: ks2i, egress: ks2o}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
  - name: nat
    port_pairs: [pp2]
    ppg_n_tuple_mapping:
      egress_n_tuple: {source_ip_prefix: 10.9.9.9/32}
flow_classifiers:
  - {name: a, protocol: udp, destination_ip_prefix: 10.1.0.1/32, logical_source_port: ksrc, logical_destination_port: kdst}
  - {name: b, protocol: tcp, destination_ip_prefix: 10.2.0.1/32, logical_source_port: ksrc, logical_destination_port: kdst}
port_chains:
  - {name: pc1, chain_id: 1, port_pair_groups: [pg1, nat], flow_classifiers: [a]}
  - {name: pc2, chain_id: 2, port_pair_groups: [pg1], flow_classifiers: [b]}
";

/// 300 classifiers: chain 1 UDP /32s under 10.1/16, chain 2 TCP /32s under 10.2/16 and the /16
/// itself (nested in its own chain).
fn base() -> Model {
    let cfg = config::parse("kept.yaml", FILE).unwrap_or_else(|e| panic!("{e}"));
    let mut m = model::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (m.flow_classifiers[0].clone(), m.flow_classifiers[1].clone());
    m.flow_classifiers = (0..300)
        .map(|i| {
            let t = if i % 2 == 0 { &a } else { &b };
            let dst = if i == 1 { "10.2.0.0/16".to_owned() } else { format!("10.{}.{}.{}/32", 1 + i % 2, i / 200, i % 200) };
            model::FlowClassifier { name: format!("c{i}"), destination_prefix: Prefix::parse(&dst).expect("prefix"), ..t.clone() }
        })
        .collect();
    chains_by_protocol(&mut m);
    m
}

/// Chain 1 takes the UDP classifiers, chain 2 the TCP ones (after an edit moved positions).
fn chains_by_protocol(m: &mut Model) {
    let udp = m.flow_classifiers[0].protocol.filter(|p| *p == 17);
    let (one, two): (Vec<usize>, Vec<usize>) = (0..m.flow_classifiers.len()).partition(|&i| m.flow_classifiers[i].protocol == udp);
    m.port_chains[0].flow_classifiers = one;
    m.port_chains[1].flow_classifiers = two;
}

/// One random edit; what it was.
fn edit(m: &mut Model, rng: &mut Rng, round: usize) -> String {
    let n = m.flow_classifiers.len();
    let pick = |rng: &mut Rng| usize::try_from(rng.next_u64() % n as u64).expect("small");
    match rng.next_u64() % 6 {
        0 => {
            let k = 1 + pick(rng) % 5;
            for j in 0..k {
                let i = pick(rng);
                let net = if m.flow_classifiers[i].protocol == Some(17) { 1 } else { 2 };
                if m.flow_classifiers[i].destination_prefix.len == 32 {
                    m.flow_classifiers[i].destination_prefix = Prefix::parse(&format!("10.{net}.{}.{}/32", 100 + round % 100, j)).expect("prefix");
                }
            }
            format!("{k} moved")
        }
        1 if n > 10 => {
            let i = pick(rng);
            m.flow_classifiers.remove(i);
            chains_by_protocol(m);
            format!("c at {i} removed")
        }
        2 => {
            let mut c = m.flow_classifiers[pick(rng)].clone();
            let net = if c.protocol == Some(17) { 1 } else { 2 };
            c.name = format!("new{round}");
            c.destination_prefix = Prefix::parse(&format!("10.{net}.250.{}/32", round % 250)).expect("prefix");
            m.flow_classifiers.push(c);
            chains_by_protocol(m);
            "one added".to_owned()
        }
        3 => {
            m.port_chains[0].symmetric = !m.port_chains[0].symmetric;
            format!("pc1 symmetric: {}", m.port_chains[0].symmetric)
        }
        4 => {
            let nat = m.port_pair_groups.iter_mut().find(|g| g.egress_n_tuple.is_some()).expect("the NAT group");
            let t = nat.egress_n_tuple.as_mut().expect("a mapping");
            let last = u8::try_from(1 + round % 200).expect("small");
            t.source_prefix = Some(Prefix::parse(&format!("10.9.9.{last}/32")).expect("prefix"));
            "NAT mapping changed".to_owned()
        }
        _ => "nothing".to_owned(),
    }
}

/// The applies' options here: a small flow table, no drains, tc; `absent_ok` as `sfc run` has it.
fn opts(absent_ok: bool) -> LoadOptions {
    LoadOptions { flow_table_size: 4096, drain_timeout: Duration::ZERO, mode: AttachMode::Tc, new_flow_rate: 0, absent_ok, latency_every: 0 }
}

#[test]
fn kept_applies_write_what_a_fresh_apply_would() {
    sandbox::sweep_stale();
    let _ns = sandbox::namespace(PAIRS);
    let pins = sandbox::pin_dir();
    let loc = Location::new(None, Some(pins.path().to_owned()));
    // Before the pins go (dropped first): detach, unpin, and remove the state under /run/sfc,
    // also when an assertion fails.
    let _down = down::Down(&loc);
    let opts = opts(false);
    let mut m = base();
    datapath::write_behind(true);
    let (mut rng, seed) = Rng::from_env_or_clock();
    eprintln!("apply_kept: seed {seed} (SFC_TEST_SEED={seed} replays it)");
    let (mut kept_runs, mut cold_runs) = (0, 0);
    for round in 0..40 {
        let what = if round == 0 { "first install".to_owned() } else { edit(&mut m, &mut rng, round) };
        // Another process's apply, as far as this one can tell: the live bank written again
        // (read back, written whole into the other bank) and flipped.
        let cold = round > 0 && round % 9 == 0;
        if cold && round % 18 == 0 {
            // One that failed before its flip: it left its mark, and may have left half-written
            // entries in the inactive bank.
            datapath::settle(&loc).expect("the state written");
            std::fs::write(loc.state_dir().join("apply.mark"), "another process\n").expect("marking");
        } else if cold {
            datapath::settle(&loc).expect("the state written");
            let mut maps = Maps::open(&loc).expect("maps");
            let live = maps.live_bank().expect("live bank");
            let w = maps.write(&live, true).expect("another apply");
            assert!(w.flipped);
        }
        let r = datapath::apply(&loc, &m, opts).unwrap_or_else(|e| panic!("seed {seed}, round {round} ({what}): {e}"));
        assert_eq!(r.from_kept, round > 0 && !cold, "round {round} ({what}): started from what was kept");
        if r.from_kept {
            kept_runs += 1;
        } else {
            cold_runs += 1;
        }
        datapath::check_kept(&loc).unwrap_or_else(|e| panic!("seed {seed}, round {round} ({what}): {e}"));
        // The interfaces' array slots, in both banks, copy the hash (written whole from scratch,
        // only the changed interfaces' from what was kept).
        datapath::direct::check(&loc)
            .expect("reading the slots")
            .unwrap_or_else(|e| panic!("seed {seed}, round {round} ({what}): {e}"));
        datapath::settle(&loc).unwrap_or_else(|e| panic!("seed {seed}, round {round} ({what}): {e}"));
        // The live bank against a fresh compile of the model.
        let maps = Maps::open(&loc).expect("maps");
        let facts = datapath::gather_facts(&loc, &datapath::model_ifaces(&m)).expect("facts").0;
        let state = datapath::State::load(&loc.state_dir()).expect("state").expect("saved");
        let inputs = compile::Inputs { ids: state.ids.clone(), ..compile::Inputs::new(&m, &facts) };
        let fresh = compile::compile_with(&m, &inputs).expect("compiles");
        let live = live_bank(&maps);
        let finals = |res: &BTreeMap<u32, sfc_common::maps::ClsResult>| res.keys().map(|k| (*k, std::collections::BTreeSet::new())).collect::<BTreeMap<u32, _>>();
        let pair = cls::equivalent((&live.0, &live.1, &finals(&live.2)), (&fresh.cls, &fresh.cls_hash, &finals(&fresh.cls_res)))
            .unwrap_or_else(|e| panic!("seed {seed}, round {round} ({what}): the live bank is not the model's compile: {e}"));
        for (a, b) in pair.iter().filter(|(a, _)| live.2.contains_key(*a)) {
            assert_eq!(live.2.get(a), fresh.cls_res.get(b), "round {round} ({what}): result of class {a:#x}");
        }
        assert_eq!(state.class_ids.len(), fresh.class_ids.len(), "round {round} ({what}): the classes saved for the next process");
        // What the process reads of the state after an apply is the saved one.
        let kept = datapath::with_state(&loc, |s| (s.model.flow_classifiers.len(), s.ids.clone(), s.facts.clone())).expect("state").expect("installed");
        assert_eq!(kept, (state.model.flow_classifiers.len(), state.ids.clone(), state.facts.clone()), "round {round} ({what})");
        assert!(*state.model == m, "round {round} ({what}): the saved model");
    }
    assert!(kept_runs >= 30 && cold_runs >= 5, "{kept_runs} kept, {cold_runs} from scratch");
}

/// The live bank's classifier trie, hash and results.
fn live_bank(maps: &Maps<'_>) -> (cls::ClsEntries, cls::ClsHash, BTreeMap<u32, sfc_common::maps::ClsResult>) {
    let c = maps.live_bank().expect("reading the live bank");
    (c.cls, c.cls_hash, c.cls_res)
}

/// Three members, one behind interfaces that do not exist.
const LINKS: &str = "
port_pairs:
  - {name: pp1, ingress: ks1i, egress: ks1o}
  - {name: pp2, ingress: ks2i, egress: ks2o}
  - {name: pp3, ingress: ks3i, egress: ks3o}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1, pp2, pp3]}
flow_classifiers:
  - {name: a, protocol: udp, destination_ip_prefix: 10.1.0.1/32, logical_source_port: ksrc, logical_destination_port: kdst}
port_chains:
  - {name: pc1, chain_id: 1, port_pair_groups: [pg1], flow_classifiers: [a]}
";

/// What an apply found of the links (`ApplyReport::links_down`), which `sfc run` compares its
/// next look with: a link set down (and its veth peer, without carrier), interfaces missing;
/// and once the link is up again, the member reported back up. A daemon that compared with a
/// look of its own taken before the apply kept a member down when its link went down and up
/// while the apply looked (a replugged tap): its next look found the links as it had seen them.
#[test]
fn an_apply_reports_the_links_it_found_down_or_missing() {
    sandbox::sweep_stale();
    let ns = sandbox::namespace(PAIRS);
    let pins = sandbox::pin_dir();
    let loc = Location::new(None, Some(pins.path().to_owned()));
    let _down = down::Down(&loc);
    let opts = opts(true);
    let cfg = config::parse("links.yaml", LINKS).unwrap_or_else(|e| panic!("{e}"));
    let m = model::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let set = |dev: &str, state: &str| {
        sfc_tests::netns::ip_in(ns.name(), &["link", "set", "dev", dev, state]).unwrap_or_else(|e| panic!("{e:#}"));
    };
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<std::collections::BTreeSet<String>>();
    // A link's operational state follows its peer's through the kernel's link watch, which
    // may take a moment: waits until the links that exist and are down are `down`.
    let settle_links = |down: &[&str]| {
        let all: std::collections::BTreeSet<String> = PAIRS.iter().flat_map(|(a, b)| [(*a).to_owned(), (*b).to_owned()]).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while datapath::gather_facts(&loc, &all).expect("facts").1 != names(down) {
            assert!(std::time::Instant::now() < deadline, "the links' states did not settle to {down:?} down in 5 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for (a, b) in PAIRS {
        set(a, "up");
        set(b, "up");
    }
    set("ks2o", "down");
    settle_links(&["ks2i", "ks2o"]);
    let r = datapath::apply(&loc, &m, opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.links_down, names(&["ks2i", "ks2o", "ks3i", "ks3o"]), "ks2o down, ks2i without carrier, pp3's missing");
    assert_eq!(r.went_down, vec!["pp2".to_owned(), "pp3".to_owned()]);
    datapath::settle(&loc).expect("the state written");

    set("ks2o", "up");
    settle_links(&[]);
    let r = datapath::apply(&loc, &m, opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.links_down, names(&["ks3i", "ks3o"]));
    assert_eq!(r.came_up, vec!["pp2".to_owned()]);
    datapath::settle(&loc).expect("the state written");
}
