//! SFC-aware service functions (`correlation: mpls | nsh` on a port pair, networking-sfc's
//! `service_function_parameters.correlation`): the member gets the chain's packets with an MPLS
//! label or an NSH header naming the chain and the hop, and sends them back with the SI it chose.
//! What sfc needs of them: a forward path (asymmetric chains: the reverse direction would enter
//! through the egress, where no header is pushed), no tap group (a tap sends nothing back), an
//! MPLS chain id that fits the label (`chain_id << 8 | SI` in 20 bits), the chain's own
//! correlation (when it names one) the same, and XDP on the member's egress (only XDP can remove
//! a non-IP header there; `IF_F_DECAP`).

use std::collections::BTreeMap;

use super::{
    Aware, AttachMode, Correlation, PortChain, PortPair, PortPairGroup,
    checker::{Checker, PC, PP},
};
use crate::config::{ConfigFile, PortPairCfg, line};

/// The highest chain id an MPLS label can carry (12 bits above the 8-bit SI).
pub const MAX_MPLS_CHAIN_ID: u32 = 4095;

/// Port pair `name`'s `correlation`, `nsh_md_type` and `nsh_context`; problems go into `c`.
pub(super) fn parameters(c: &mut Checker, name: &str, p: &PortPairCfg) -> Aware {
    let correlation = match p.correlation.as_ref().map(|v| (v.value.trim().to_ascii_lowercase(), line(v))) {
        None => Correlation::None,
        Some((v, _)) if v == "none" => Correlation::None,
        Some((v, _)) if v == "mpls" => Correlation::Mpls,
        Some((v, _)) if v == "nsh" => Correlation::Nsh,
        Some((v, l)) => {
            c.err(PP, name, "correlation", l, format!("unknown correlation '{v}' (none, mpls or nsh)"));
            Correlation::None
        }
    };
    let nsh = correlation == Correlation::Nsh;
    let md_type = match &p.nsh_md_type {
        None => 1,
        Some(v) if !nsh => {
            c.err(PP, name, "nsh_md_type", line(v), "only an NSH function (correlation: nsh) has an MD type");
            1
        }
        Some(v) if let Ok(t @ (1 | 2)) = u8::try_from(v.value) => t,
        Some(v) => {
            c.err(PP, name, "nsh_md_type", line(v), format!("MD type {} is not 1 (fixed context) or 2 (no metadata)", v.value));
            1
        }
    };
    let mut context = [0u8; 16];
    if let Some(list) = &p.nsh_context {
        if !nsh || md_type != 1 {
            c.err(PP, name, "nsh_context", line(list), "only NSH MD type 1 carries a fixed context");
        } else if list.value.len() != 4 {
            c.err(PP, name, "nsh_context", line(list), format!("{} words, MD type 1's context is 4 32-bit words", list.value.len()));
        } else {
            for (i, w) in list.value.iter().enumerate() {
                match u32::try_from(w.value) {
                    Ok(v) => context[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes()),
                    Err(_) => c.err(PP, name, "nsh_context", line(w), format!("{} is not a 32-bit word (0..=4294967295)", w.value)),
                }
            }
        }
    }
    Aware { correlation, md_type, context }
}

/// What the chains ask of their SFC-aware members, and XDP on each one's egress.
pub(super) fn check(c: &mut Checker, cfg: &ConfigFile, port_pairs: &[PortPair], groups: &[PortPairGroup], chains: &[PortChain], modes: &mut BTreeMap<String, AttachMode>) {
    let pp_line = |name: &str| cfg.port_pairs.iter().find(|r| r.value.name.as_ref().is_some_and(|n| n.value.trim() == name)).map_or(0, line);
    for (pi, pp) in port_pairs.iter().enumerate() {
        let kind = pp.aware.correlation;
        if kind == Correlation::None {
            continue;
        }
        let l = pp_line(&pp.name);
        let Some((gi, g)) = groups.iter().enumerate().find(|(_, g)| g.port_pairs.contains(&pi)) else { continue };
        if g.health_check.is_some() {
            c.err(PP, &pp.name, "correlation", l, format!("group '{}' has a health_check: its probes carry no header, which an SFC-aware function need not answer", g.name));
        }
        if g.tap_enabled {
            c.err(PP, &pp.name, "correlation", l, format!("port pair '{}' is in tap group '{}': a tap sends nothing back, there is no header to read", pp.name, g.name));
        }
        for chain in chains.iter().filter(|ch| ch.port_pair_groups.contains(&gi)) {
            if let Some(tap) = chain.port_pair_groups.iter().map(|&i| &groups[i]).find(|x| x.tap_enabled && x.name != g.name) {
                c.err(PC, &chain.name, "port_pair_groups", 0, format!(
                    "tap group '{}' needs tc on the chain's members' interfaces, and SFC-aware member '{}' needs XDP on its egress",
                    tap.name, pp.name
                ));
            }
            if chain.symmetric {
                c.err(PC, &chain.name, "chain_parameters.symmetric", 0, format!(
                    "group '{}' has an SFC-aware member ('{}'): sfc pushes its header on the forward path only; make the chain asymmetric",
                    g.name, pp.name
                ));
            }
            if kind == Correlation::Mpls && chain.chain_id > MAX_MPLS_CHAIN_ID {
                c.err(PC, &chain.name, "chain_id", 0, format!(
                    "chain_id {} does not fit an MPLS label (chain_id << 8 | SI in 20 bits: at most {MAX_MPLS_CHAIN_ID}) and member '{}' is MPLS",
                    chain.chain_id, pp.name
                ));
            }
            if chain.correlation != Correlation::None && chain.correlation != kind {
                c.err(PP, &pp.name, "correlation", l, format!("{kind:?} but chain '{}' says {:?}", chain.name, chain.correlation).to_lowercase());
            }
        }
        match modes.get(&pp.egress) {
            Some(AttachMode::Tc) => c.err(PP, &pp.name, "egress", l, format!(
                "'{}' is set to tc in interfaces:, but the header an SFC-aware function sends back can only be removed by XDP",
                pp.egress
            )),
            _ => {
                modes.insert(pp.egress.clone(), AttachMode::Xdp);
            }
        }
    }
}
