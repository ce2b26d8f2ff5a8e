//! The `interfaces` section: per-interface attach modes and the MACs behind them.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    AttachMode, FlowClassifier, PortPair,
    checker::{Checker, IF},
};
use crate::config::{ConfigFile, S, line};

/// `interfaces`: per-interface attach modes and the MACs behind them. Every entry names an
/// interface the file uses (a typo would otherwise leave the interface in the default mode
/// without a word), and sets `mode`, `mac` or both.
pub(super) fn interfaces(c: &mut Checker, cfg: &ConfigFile, port_pairs: &[PortPair], classifiers: &[FlowClassifier]) -> (BTreeMap<String, AttachMode>, BTreeMap<String, [u8; 6]>) {
    // A neutron port id names the port's tap, as it does in the other sections.
    let mapped: Vec<Option<S<String>>> = cfg
        .interfaces
        .iter()
        .map(|r| r.value.name.as_ref().map(|n| S { value: c.ifname((IF, n.value.trim()), "name", n), line: n.line }))
        .collect();
    let names: Vec<_> = cfg.interfaces.iter().zip(&mapped).map(|(r, n)| (n.as_ref(), line(r))).collect();
    let (labels, _) = c.names(IF, &names);
    let used: BTreeSet<&str> = port_pairs
        .iter()
        .flat_map(|p| [p.ingress.as_str(), p.egress.as_str()])
        .chain(classifiers.iter().flat_map(|f| std::iter::once(f.logical_source_port.as_str()).filter(|p| !p.is_empty()).chain(f.logical_destination_port.as_deref())))
        .collect();
    let (mut out, mut macs) = (BTreeMap::new(), BTreeMap::new());
    for (i, s) in cfg.interfaces.iter().enumerate() {
        let label = labels[i].as_str();
        let at = (IF, label);
        if let Some(n) = &mapped[i] {
            let name = n.value.trim();
            if !name.is_empty() && !used.contains(name) {
                let near = used.iter().min_by_key(|u| crate::config::edit_distance(name, u)).filter(|u| crate::config::edit_distance(name, u) <= 2);
                let hint = near.map_or_else(String::new, |u| format!(" (did you mean '{u}'?)"));
                c.err(IF, label, "name", line(n), format!("'{name}' is not an interface of any port pair or flow classifier{hint}"));
            }
        }
        if let Some(mac) = &s.value.mac {
            match crate::model::parse_mac(&mac.value) {
                Ok(m) => {
                    macs.insert(label.to_owned(), m);
                }
                Err(e) => c.err(IF, label, "mac", line(mac), e),
            }
        }
        let mode = if s.value.mac.is_some() {
            s.value.mode.as_ref()
        } else {
            c.required(at, "mode", line(s), s.value.mode.as_ref(), "tc or xdp; or `mac`, the MAC behind the interface")
        };
        let Some(mode) = mode else { continue };
        match AttachMode::parse(&mode.value) {
            Ok(m) => {
                if s.value.name.is_some() {
                    out.insert(label.to_owned(), m);
                }
            }
            Err(e) => c.err(IF, label, "mode", line(mode), e),
        }
    }
    (out, macs)
}
