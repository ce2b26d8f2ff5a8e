//! Multi-host: the other hosts' interfaces as facts for compile, the overlay maps, and the
//! overlay device itself (see `sfc_common::overlay`).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use aya::maps::{HashMap, MapData};
use serde::{Deserialize, Serialize};
use sfc_common::{
    limits::{MAX_REMOTES, REMOTE_IFINDEX_BASE},
    overlay::{MAP_OVL_PORTS, MAP_REMOTES, OvlMac, OvlPort, RemoteEntry},
};

use super::{DatapathError, Location, Result, maps::typed, netlink};
use crate::compile::{Compiled, IfaceFacts};

/// What this host knows of the others for an apply (from etcd: `sfc run --etcd`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// This host's overlay device (VXLAN, external).
    pub overlay: String,
    /// Interface name -> where it lives, for interfaces on other hosts.
    pub remote: BTreeMap<String, RemotePort>,
}

/// An interface another host published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemotePort {
    pub node: String,
    pub vtep: IpAddr,
    /// The MAC behind the interface (the service function's or endpoint's), when its host knows it.
    pub mac: Option<[u8; 6]>,
    /// Operationally up on its host.
    pub up: bool,
}

/// Facts for the interfaces the model names that are not here but on another host: a stand-in
/// ifindex each, and whether it is down there (or its MAC unknown: nothing can be addressed to
/// it). An interface keeps the stand-in the last apply gave it; a new one gets the next after
/// every stand-in handed out before (`next`, kept in the state), so a stand-in that a flow of an
/// older generation may still carry never names another interface (they are reused only after
/// `MAX_REMOTES` more, wrapping).
pub fn remote_facts(
    names: &BTreeSet<String>,
    local: &BTreeMap<String, IfaceFacts>,
    cluster: &Cluster,
    old: Option<&BTreeMap<String, IfaceFacts>>,
    next: u32,
) -> (BTreeMap<String, IfaceFacts>, BTreeSet<String>) {
    let previous = |n: &str| old.and_then(|o| o.get(n)).filter(|f| f.remote.is_some()).map(|f| f.ifindex);
    let wanted: Vec<(&String, &RemotePort)> =
        names.iter().filter(|n| !local.contains_key(*n)).filter_map(|n| cluster.remote.get(n).map(|r| (n, r))).collect();
    let mut used: BTreeSet<u32> = wanted.iter().filter_map(|(n, _)| previous(n)).collect();
    let end = REMOTE_IFINDEX_BASE + MAX_REMOTES;
    let mut next = next.clamp(REMOTE_IFINDEX_BASE, end - 1);
    let (mut facts, mut down) = (BTreeMap::new(), BTreeSet::new());
    for (name, r) in wanted {
        let ifindex = if let Some(i) = previous(name) {
            i
        } else {
            let mut tries = 0;
            while used.contains(&next) && tries < MAX_REMOTES {
                next = if next + 1 >= end { REMOTE_IFINDEX_BASE } else { next + 1 };
                tries += 1;
            }
            if tries == MAX_REMOTES {
                log::warn!("more interfaces on other hosts than {MAX_REMOTES}: {name} left out");
                continue;
            }
            used.insert(next);
            next
        };
        if !r.up || r.mac.is_none() {
            down.insert(name.clone());
        }
        facts.insert(name.clone(), IfaceFacts {
            ifindex,
            peer_mac: r.mac,
            remote: Some(r.vtep),
            ..IfaceFacts::default()
        });
    }
    (facts, down)
}

/// The first stand-in the next apply may hand out: after every one `facts` uses and `before`.
pub fn next_stand_in(facts: &BTreeMap<String, IfaceFacts>, before: u32) -> u32 {
    let after = facts.values().filter(|f| f.remote.is_some()).map(|f| f.ifindex + 1).max().unwrap_or(0);
    let n = before.max(after).max(REMOTE_IFINDEX_BASE);
    if n >= REMOTE_IFINDEX_BASE + MAX_REMOTES { REMOTE_IFINDEX_BASE } else { n }
}

/// Adds and updates the overlay entries `c` has, before the flip that makes them used.
pub fn write_before(loc: &Location, c: &Compiled) -> Result<()> {
    let mut remotes: HashMap<MapData, u32, RemoteEntry> = typed(loc, MAP_REMOTES)?;
    for (k, v) in &c.remotes {
        remotes.insert(*k, *v, 0).map_err(super::maps::map_err(MAP_REMOTES, "writing"))?;
    }
    let mut ports: HashMap<MapData, OvlMac, OvlPort> = typed(loc, MAP_OVL_PORTS)?;
    for (k, v) in &c.ovl_ports {
        ports.insert(*k, *v, 0).map_err(super::maps::map_err(MAP_OVL_PORTS, "writing"))?;
    }
    Ok(())
}

/// Removes the overlay entries `c` no longer has, after the flip; an entry a port pair or an
/// interface of `c` still points at stays (a draining member on another host).
pub fn remove_after(loc: &Location, c: &Compiled) -> Result<()> {
    let mut remotes: HashMap<MapData, u32, RemoteEntry> = typed(loc, MAP_REMOTES)?;
    let referenced = |k: &u32| {
        c.remotes.contains_key(k) || c.ifaces.contains_key(k) || c.port_pairs.values().any(|p| p.ingress_ifindex == *k || p.egress_ifindex == *k)
    };
    let stale: Vec<u32> = remotes.keys().filter_map(std::result::Result::ok).filter(|k| !referenced(k)).collect();
    for k in stale {
        remotes.remove(&k).map_err(super::maps::map_err(MAP_REMOTES, "removing"))?;
    }
    let mut ports: HashMap<MapData, OvlMac, OvlPort> = typed(loc, MAP_OVL_PORTS)?;
    let stale: Vec<OvlMac> = ports.keys().filter_map(std::result::Result::ok).filter(|k| !c.ovl_ports.contains_key(k)).collect();
    for k in stale {
        ports.remove(&k).map_err(super::maps::map_err(MAP_OVL_PORTS, "removing"))?;
    }
    Ok(())
}

/// The overlay device called `name`: created (VXLAN in external mode on the IANA port, up,
/// with `mtu` when given) when there is none; an existing device must be one of those.
/// Returns its ifindex and whether it was created.
pub fn ensure_overlay(name: &str, mtu: Option<u32>) -> Result<(u32, bool)> {
    let port = sfc_common::limits::OVERLAY_PORT;
    match netlink::link_by_name(name) {
        Ok(l) if l.kind.as_deref() == Some("vxlan") && l.vxlan_external && l.vxlan_port == Some(port) => Ok((l.ifindex, false)),
        Ok(l) if l.kind.as_deref() == Some("vxlan") => Err(DatapathError::Other(format!(
            "overlay device {name} is a VXLAN device, but not in external mode on UDP {port} (external: {}, port {}): \
             delete it (sfc creates it) or name another with --overlay-dev",
            l.vxlan_external,
            l.vxlan_port.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
        ))),
        Ok(l) => Err(DatapathError::Other(format!(
            "overlay device {name} exists and is not a VXLAN device ({}): name another with --overlay-dev",
            l.kind.as_deref().unwrap_or("no kind")
        ))),
        Err(netlink::NetlinkError::NotFound(_)) => {
            netlink::create_vxlan(name, sfc_common::limits::OVERLAY_PORT, mtu)?;
            let l = netlink::link_by_name(name)?;
            Ok((l.ifindex, true))
        }
        Err(e) => Err(e.into()),
    }
}

/// The file in the state directory naming the overlay device sfc created (`sfc down` removes
/// it; a device the operator made stays).
const CREATED: &str = "overlay-created";

/// Notes that sfc created overlay device `name` for the datapath at `loc`.
pub fn remember_created(loc: &Location, name: &str) -> Result<()> {
    let dir = loc.state_dir();
    std::fs::create_dir_all(&dir).map_err(super::io_err(format!("creating {}", dir.display())))?;
    std::fs::write(dir.join(CREATED), name).map_err(super::io_err(format!("writing {}", dir.join(CREATED).display())))
}

/// Deletes the overlay device sfc created for the datapath at `loc`, if any; returns its name.
pub fn remove_created(loc: &Location) -> Result<Option<String>> {
    let Ok(name) = std::fs::read_to_string(loc.state_dir().join(CREATED)) else { return Ok(None) };
    match netlink::delete_link(name.trim()) {
        Ok(()) | Err(netlink::NetlinkError::NotFound(_)) => Ok(Some(name.trim().to_owned())),
        Err(e) => Err(e.into()),
    }
}
