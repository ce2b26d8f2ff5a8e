//! `sfc status`: what is installed: the program, the interfaces it is attached to and what each
//! is to sfc, the chains, and how full every map is.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::ExitCode,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use sfc_common::maps::{IF_F_LEARN, IF_F_MAC, IF_F_PEER};

use super::table::{fill, print_table};
use crate::{
    datapath::{Location, State, attach::LinkKind, netlink},
    view::inspect::{self, LinkSummary, MapSummary, Namer, ProgramSummary},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Multi-host: show every host's agent as etcd at URL[,URL...] has it (the configuration
    /// revision each runs) instead of this host's datapath.
    #[arg(long, value_name = "URL")]
    pub(super) etcd: Option<String>,
    /// Key prefix in etcd.
    #[arg(long, value_name = "PREFIX", default_value = crate::etcd::DEFAULT_PREFIX)]
    etcd_prefix: String,
}

#[derive(Debug, Serialize)]
struct Status {
    netns: Option<String>,
    pin_dir: PathBuf,
    state_dir: PathBuf,
    /// How the programs are attached: `tc` (tcx ingress links), `xdp` (XDP links), `mixed`
    /// (per-interface modes), or `none`.
    mode: &'static str,
    program: ProgramSummary,
    interfaces: Vec<Interface>,
    /// Interfaces the file names that did not exist at the last apply (`sfc run`: a VM not
    /// started yet, or deleted), with where the file names them.
    absent: std::collections::BTreeMap<String, Vec<String>>,
    chains: Vec<ChainInfo>,
    maps: Vec<MapSummary>,
}

#[derive(Debug, Serialize)]
struct Interface {
    name: String,
    ifindex: u32,
    /// `source` (a classifier's logical source port), `sf_egress`, `sf_ingress`, `destination`.
    roles: Vec<&'static str>,
    /// With an SF role: the port pair the interface belongs to.
    port_pair: Option<String>,
    /// A program is attached (a pinned link exists); only source and SF egress ports (and, for
    /// symmetric chains, SF ingresses and destination ports) need one.
    attached: bool,
    /// `tc` or `xdp`: which program is attached.
    attach_mode: Option<&'static str>,
    link_id: Option<u32>,
    /// XDP mode redirects into this interface, and its veth peer carries sfc's XDP pass program.
    xdp_peer: bool,
    /// Operationally up, as the kernel says now (`None`: the interface is gone).
    oper_up: Option<bool>,
    /// Multi-host: the interface is on another host, reached over the overlay at this VTEP
    /// (`oper_up` is then `None`: its host publishes its state).
    remote_vtep: Option<String>,
    /// The MAC behind the interface that frames sent into it are addressed to (`None`: not
    /// known, or not needed).
    mac: Option<String>,
    /// Where `mac` comes from: `peer` (the veth peer's) or `file`, `learnt` (from the frames
    /// the VM behind a tap sent), `learning` (not known yet: members behind it wait).
    mac_source: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct ChainInfo {
    name: String,
    chain_id: u32,
    symmetric: bool,
    classifiers: Vec<String>,
    hops: Vec<Hop>,
}

#[derive(Debug, Serialize)]
struct Hop {
    group: String,
    port_pairs: Vec<String>,
    /// Members taken out of the group at the last apply: a link down, or (with a
    /// `health_check:`) probes unanswered. They serve again once up (or answering).
    down: Vec<String>,
    /// Whether the group's members are probed through (`health_check:`).
    probed: bool,
    /// Members not used until the MAC behind an interface of theirs is known (a VM behind a tap
    /// that has sent nothing yet), with what is missing.
    no_mac: std::collections::BTreeMap<String, Vec<String>>,
}

fn interfaces(loc: &Location, namer: &Namer<'_>, state: &State, links: &[LinkSummary]) -> anyhow::Result<Vec<Interface>> {
    let entries = inspect::ifaces(loc)?;
    let all: BTreeSet<u32> = entries.keys().copied().chain(links.iter().map(|l| l.ifindex)).collect();
    Ok(all
        .into_iter()
        .map(|ifindex| {
            let e = entries.get(&ifindex).copied().unwrap_or_default();
            let link = links.iter().find(|l| l.ifindex == ifindex && l.kind != LinkKind::XdpPeer);
            let sf = e.roles & (sfc_common::maps::ROLE_SF_EGRESS | sfc_common::maps::ROLE_SF_INGRESS) != 0;
            Interface {
                name: namer.iface(ifindex),
                ifindex,
                roles: inspect::role_names(e.roles),
                port_pair: sf.then(|| namer.port_pair(e.port_pair)),
                attached: link.is_some(),
                attach_mode: link.map(|l| l.kind.name()),
                link_id: link.and_then(|l| l.link_id),
                xdp_peer: links.iter().any(|l| l.ifindex == ifindex && l.kind == LinkKind::XdpPeer),
                oper_up: netlink::link_by_index(ifindex, None).ok().map(|l| l.oper_up),
                remote_vtep: state.facts.get(&namer.iface(ifindex)).and_then(|f| f.remote).map(|v| v.to_string()),
                mac: (e.flags & IF_F_MAC != 0).then(|| inspect::mac(&e.peer_mac)),
                mac_source: match (e.flags & IF_F_MAC != 0, e.flags & IF_F_LEARN != 0) {
                    (true, true) => Some("learnt"),
                    (false, true) => Some("learning"),
                    (true, false) if e.flags & IF_F_PEER != 0 => Some("peer"),
                    (true, false) => Some(if state.facts.get(&namer.iface(ifindex)).is_some_and(|f| f.peer_mac.is_some()) { "peer" } else { "file" }),
                    (false, false) => None,
                },
            }
        })
        .collect())
}

fn chains(state: &State) -> Vec<ChainInfo> {
    let m = &state.model;
    m.port_chains
        .iter()
        .map(|c| ChainInfo {
            name: c.name.clone(),
            chain_id: c.chain_id,
            symmetric: c.symmetric,
            classifiers: c.flow_classifiers.iter().map(|&i| m.flow_classifiers[i].name.clone()).collect(),
            hops: c
                .port_pair_groups
                .iter()
                .map(|&g| {
                    let port_pairs: Vec<String> = m.port_pair_groups[g].port_pairs.iter().map(|&p| m.port_pairs[p].name.clone()).collect();
                    Hop {
                        group: m.port_pair_groups[g].name.clone(),
                        down: port_pairs.iter().filter(|p| state.down.contains(*p)).cloned().collect(),
                        probed: m.port_pair_groups[g].health_check.is_some(),
                        no_mac: port_pairs.iter().filter_map(|p| state.no_mac.get(p).map(|w| (p.clone(), w.clone()))).collect(),
                        port_pairs,
                    }
                })
                .collect(),
        })
        .collect()
}

fn gather(loc: &Location) -> anyhow::Result<Status> {
    let program = inspect::program(loc)?;
    let state = inspect::load_state(loc)?;
    let namer = Namer { state: &state };
    let links = inspect::links(loc)?;
    let has = |k: LinkKind| links.iter().any(|l| l.kind == k);
    let mode = match (has(LinkKind::Tc), has(LinkKind::Xdp)) {
        (true, false) => "tc",
        (false, true) => "xdp",
        (true, true) => "mixed",
        (false, false) => "none",
    };
    Ok(Status {
        netns: loc.netns.clone(),
        pin_dir: loc.pin_dir.clone(),
        state_dir: loc.state_dir(),
        mode,
        interfaces: interfaces(loc, &namer, &state, &links)?,
        absent: state.absent.clone(),
        chains: chains(&state),
        maps: inspect::map_summaries(loc)?,
        program,
    })
}

fn ago(secs: Option<u64>) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match secs {
        Some(t) => {
            let d = now.saturating_sub(t);
            match d {
                0..120 => format!("{d} s ago"),
                120..7200 => format!("{} min ago", d / 60),
                _ => format!("{} h ago", d / 3600),
            }
        }
        None => "unknown".to_owned(),
    }
}

/// One line of the interfaces table.
fn interface_row(i: &Interface) -> Vec<String> {
    vec![
        i.name.clone(),
        i.ifindex.to_string(),
        if i.roles.is_empty() { "-".to_owned() } else { i.roles.join(",") },
        i.port_pair.clone().unwrap_or_else(|| "-".to_owned()),
        match (i.attach_mode, i.link_id) {
            (Some("xdp"), Some(id)) => format!("xdp (link {id})"),
            (Some("xdp"), None) => "xdp".to_owned(),
            (Some(_), Some(id)) => format!("tc ingress (link {id})"),
            (Some(_), None) => "tc ingress".to_owned(),
            (None, _) => "-".to_owned(),
        },
        if i.xdp_peer { "xdp pass" } else { "-" }.to_owned(),
        match (i.oper_up, &i.remote_vtep) {
            (_, Some(vtep)) => format!("on {vtep}"),
            (Some(true), None) => "up".to_owned(),
            (Some(false), None) => "down".to_owned(),
            (None, None) => "missing".to_owned(),
        },
        match (&i.mac, i.mac_source) {
            (Some(m), Some(src)) => format!("{m} ({src})"),
            (Some(m), None) => m.clone(),
            (None, Some(src)) => src.to_owned(),
            (None, None) => "-".to_owned(),
        },
    ]
}

fn print(s: &Status) {
    let opt = |v: Option<u32>| v.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
    let p = &s.program;
    println!(
        "sfc datapath for {}",
        s.netns.as_deref().map_or_else(|| "the host namespace".to_owned(), |n| format!("netns {n}"))
    );
    println!("  pins:  {}", s.pin_dir.display());
    println!("  state: {}", s.state_dir.display());
    println!();
    println!("program {} (tc ingress, tcx links; XDP mode: sfc_xdp){}", p.name, match s.mode {
        "none" => String::new(),
        m => format!(", attach mode {m}"),
    });
    println!("  pinned at {}", p.pin.display());
    println!("  id {}, tag {}, loaded {}", p.id, p.tag, ago(p.loaded_at));
    println!(
        "  verified instructions {}, translated {} bytes, JITed {} bytes",
        opt(p.verified_instructions),
        opt(p.xlated_bytes),
        p.jited_bytes
    );
    println!();
    println!("interfaces");
    let rows: Vec<Vec<String>> = s.interfaces.iter().map(interface_row).collect();
    print_table(&["name", "ifindex", "roles", "port pair", "attached", "peer", "state", "mac behind"], &rows);
    for (iface, at) in &s.absent {
        println!("  absent: {iface} ({}): out of use until it appears (sfc run re-applies then)", at.join(", "));
    }
    println!();
    println!("chains");
    let rows: Vec<Vec<String>> = s
        .chains
        .iter()
        .map(|c| {
            let hops: Vec<String> = c
                .hops
                .iter()
                .map(|h| {
                    let members: Vec<String> =
                        h.port_pairs
                            .iter()
                            .map(|p| match h.no_mac.get(p) {
                                Some(w) => format!("{p} (no MAC yet: {})", w.join(", ")),
                                None if h.down.contains(p) => format!("{p} (down)"),
                                None => p.clone(),
                            })
                            .collect();
                    format!("{}{}{{{}}}", h.group, if h.probed { " (probed)" } else { "" }, members.join(","))
                })
                .collect();
            vec![
                c.name.clone(),
                c.chain_id.to_string(),
                if c.symmetric { "yes" } else { "no" }.to_owned(),
                c.classifiers.join(","),
                hops.join(" -> "),
            ]
        })
        .collect();
    print_table(&["name", "chain_id", "symmetric", "classifiers", "hops"], &rows);
    println!();
    println!("maps");
    let rows: Vec<Vec<String>> = s
        .maps
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.map_type.clone(),
                m.entries.map_or_else(|| "?".to_owned(), |e| e.to_string()),
                m.max_entries.to_string(),
                fill(m.entries, m.max_entries),
            ]
        })
        .collect();
    print_table(&["name", "type", "entries", "max entries", "fill"], &rows);
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    if let Some(urls) = &a.etcd {
        return super::cluster_status::run(urls, &a.etcd_prefix, a.json);
    }
    let s = gather(loc)?;
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        print(&s);
    }
    Ok(ExitCode::SUCCESS)
}
