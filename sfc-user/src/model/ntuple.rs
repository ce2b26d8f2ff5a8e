//! NAT-ing functions (`ppg_n_tuple_mapping` on a group): the members rewrite addresses or ports,
//! so what comes back out of them no longer matches the chain's classifiers. The group says
//! what its output looks like (`egress_n_tuple`: networking-sfc's classifier fields); packets
//! coming back are matched against the chain's classifiers with those fields replaced, and go
//! on along the same chain from the next hop. What went in needs no description
//! (`ingress_n_tuple`): sfc remembers every flow by the tuple it entered with.

use super::{
    FlowClassifier, NTuple, PortChain, PortPairGroup, PortRange, Prefix, carries_ports,
    checker::{Checker, PG},
};
use crate::config::{ConfigFile, NTupleCfg, PortPairGroupCfg, S, line};

const FIELD: &str = "ppg_n_tuple_mapping";

/// The mapping of group `name`, or `None`; problems go into `c`.
pub(super) fn mapping(c: &mut Checker, name: &str, group: &PortPairGroupCfg, tap: bool) -> Option<NTuple> {
    let mapping = group.ppg_n_tuple_mapping.as_ref()?;
    if tap {
        c.err(PG, name, FIELD, line(mapping), "a tap group's members send nothing back: there is no output to match");
        return None;
    }
    if let Some(ingress) = &mapping.value.ingress_n_tuple
        && !is_empty(&ingress.value)
    {
        c.err(PG, name, &format!("{FIELD}.ingress_n_tuple"), line(ingress), "sfc remembers each flow by the tuple it entered with: only egress_n_tuple (what the functions send back) is needed; leave ingress_n_tuple out");
    }
    let egress = mapping.value.egress_n_tuple.as_ref()?;
    let at = format!("{FIELD}.egress_n_tuple");
    let t = &egress.value;
    let mut prefix = |field: &str, v: &Option<S<String>>| -> Option<Prefix> {
        let v = v.as_ref()?;
        Prefix::parse(&v.value).map_err(|msg| c.err(PG, name, &format!("{at}.{field}"), line(v), msg)).ok()
    };
    let out = NTuple {
        source_prefix: prefix("source_ip_prefix", &t.source_ip_prefix),
        destination_prefix: prefix("destination_ip_prefix", &t.destination_ip_prefix),
        source_ports: ports(c, name, &at, "source", t.source_port_range_min.as_ref(), t.source_port_range_max.as_ref()),
        destination_ports: ports(c, name, &at, "destination", t.destination_port_range_min.as_ref(), t.destination_port_range_max.as_ref()),
    };
    (out != NTuple::default()).then_some(out)
}

fn is_empty(t: &NTupleCfg) -> bool {
    t.source_ip_prefix.is_none()
        && t.destination_ip_prefix.is_none()
        && t.source_port_range_min.is_none()
        && t.source_port_range_max.is_none()
        && t.destination_port_range_min.is_none()
        && t.destination_port_range_max.is_none()
}

fn ports(c: &mut Checker, name: &str, at: &str, dir: &str, lo: Option<&S<i128>>, hi: Option<&S<i128>>) -> Option<PortRange> {
    if lo.is_none() && hi.is_none() {
        return None;
    }
    let mut get = |suffix: &str, v: Option<&S<i128>>, default: u16| -> Option<u16> {
        let Some(v) = v else { return Some(default) };
        u16::try_from(v.value)
            .map_err(|_| c.err(PG, name, &format!("{at}.{dir}_port_range_{suffix}"), line(v), format!("port {} is out of range 0..=65535", v.value)))
            .ok()
    };
    let (min, max) = (get("min", lo, 0)?, get("max", hi, u16::MAX)?);
    if min > max {
        c.err(PG, name, &format!("{at}.{dir}_port_range_min"), lo.map_or(0, line), format!("{min} is above {max}: the range is empty"));
        return None;
    }
    Some(PortRange { min, max })
}

/// The mapping must fit every classifier of every chain through the group: the same address
/// family, and ports only for protocols that have them.
pub(super) fn check_chains(c: &mut Checker, cfg: &ConfigFile, groups: &[PortPairGroup], chains: &[PortChain], classifiers: &[FlowClassifier]) {
    for g in groups {
        let Some(t) = &g.egress_n_tuple else { continue };
        let through: Vec<&str> = chains.iter().filter(|ch| ch.port_pair_groups.iter().any(|&i| groups.get(i).is_some_and(|x| x.name == g.name))).map(|ch| ch.name.as_str()).collect();
        let at = cfg
            .port_pair_groups
            .iter()
            .find(|x| x.value.name.as_ref().is_some_and(|n| n.value == g.name))
            .and_then(|x| x.value.ppg_n_tuple_mapping.as_ref())
            .map_or(0, line);
        if through.len() > 1 {
            // What comes back translated may no longer tell the chains apart (networking-sfc
            // gives such a group to one chain too).
            c.err(PG, &g.name, FIELD, at, format!("a NAT-ing group serves one chain; chains {} all cross it", through.join(", ")));
        }
        for chain in chains.iter().filter(|ch| ch.port_pair_groups.iter().any(|&i| groups.get(i).is_some_and(|x| x.name == g.name))) {
            for fc in chain.flow_classifiers.iter().filter_map(|&i| classifiers.get(i)) {
                let family = [t.source_prefix, t.destination_prefix].into_iter().flatten().find(|p| p.ethertype != fc.ethertype);
                if let Some(p) = family {
                    c.err(PG, &g.name, FIELD, at, format!("{p} is {:?} but classifier '{}' of chain '{}' is {:?}", p.ethertype, fc.name, chain.name, fc.ethertype));
                }
                let has_ports = t.source_ports.is_some() || t.destination_ports.is_some();
                if has_ports && !fc.protocol.is_some_and(carries_ports) {
                    c.err(PG, &g.name, FIELD, at, format!("port ranges need a protocol with ports; classifier '{}' of chain '{}' has none", fc.name, chain.name));
                }
            }
        }
    }
}
