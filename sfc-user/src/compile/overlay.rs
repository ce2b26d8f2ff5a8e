//! Multi-host: what the overlay needs from a compiled state (see `sfc_common::overlay`).
//! Interfaces on other hosts are compiled like local ones under stand-in ifindexes; here they
//! are taken out of what needs a program or an XDP redirect, and listed with their hosts'
//! VTEPs; the local interfaces another host may send to are listed by the MAC behind them.

use std::net::IpAddr;

use sfc_common::{
    limits::REMOTE_IFINDEX_BASE,
    maps::IF_F_MAC,
    overlay::{OVL_F_PEER, OvlMac, OvlPort, RemoteEntry, VTEP_V4, VTEP_V6},
};

use super::{CompileError, Compiled, Inputs, sf_mac};

pub(super) fn finish(c: &mut Compiled, inputs: &Inputs<'_>) -> Result<(), CompileError> {
    // No program and no XDP redirect for a stand-in, also one a draining member still has
    // (its interface no longer named, so not in the facts; its `SFC_REMOTES` entry stays).
    c.attach.retain(|i| *i < REMOTE_IFINDEX_BASE);
    c.redirect_targets.retain(|i| *i < REMOTE_IFINDEX_BASE);
    let remote: Vec<(&String, u32, IpAddr)> =
        inputs.facts.iter().filter_map(|(n, f)| f.remote.map(|ip| (n, f.ifindex, ip))).collect();
    if remote.is_empty() {
        return Ok(());
    }
    let Some(overlay) = inputs.overlay else {
        let names: Vec<&str> = remote.iter().map(|(n, ..)| n.as_str()).collect();
        return Err(CompileError::NoOverlay { ifaces: names.join(", ") });
    };
    for (_, ifindex, ip) in &remote {
        c.attach.remove(ifindex);
        c.redirect_targets.remove(ifindex);
        let mut e = RemoteEntry { overlay_ifindex: overlay, ..RemoteEntry::default() };
        match ip {
            IpAddr::V4(a) => {
                e.family = VTEP_V4;
                e.vtep[..4].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                e.family = VTEP_V6;
                e.vtep = a.octets();
            }
        }
        c.remotes.insert(*ifindex, e);
    }
    // Where a frame from another host may be addressed: the local redirect targets (members'
    // ingresses, and for symmetric chains their egresses and the source ports; destination
    // ports), by the MAC behind them, as the compiled entries address them.
    for (name, f) in inputs.facts.iter().filter(|(_, f)| f.remote.is_none() && c.redirect_targets.contains(&f.ifindex)) {
        let by_pp = c.port_pairs.values().find_map(|p| {
            if p.ingress_ifindex == f.ifindex && p.ingress_mac != [0; 6] {
                Some(p.ingress_mac)
            } else if p.egress_ifindex == f.ifindex && p.egress_mac != [0; 6] {
                Some(p.egress_mac)
            } else {
                None
            }
        });
        let by_iface = c.ifaces.get(&f.ifindex).filter(|i| i.flags & IF_F_MAC != 0).map(|i| i.peer_mac);
        let Some(mac) = by_pp.or(by_iface).or_else(|| sf_mac(None, f)) else {
            log::debug!("{name}: no MAC known behind it: frames from other hosts cannot be addressed to it yet");
            continue;
        };
        let port = OvlPort { ifindex: f.ifindex, flags: if f.peer_in_other_netns { OVL_F_PEER } else { 0 } };
        if let Some(other) = c.ovl_ports.insert(OvlMac { mac, _pad: [0; 2] }, port).filter(|o| o.ifindex != f.ifindex) {
            let mac = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            return Err(CompileError::SameMac { iface: name.clone(), other: other.ifindex, mac });
        }
    }
    Ok(())
}
