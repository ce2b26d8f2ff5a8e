//! The neutron ids and descriptions a chain file gives its resources (`id:`, `description:`):
//! kept in the model for `sfc export neutron`, never used to refer to anything. An id must be a
//! UUID and unique within its kind.

use std::collections::BTreeMap;

use super::{
    Identities, Identity,
    checker::{Checker, FC, PC, PG, PP},
    is_uuid,
    validate::Ctx,
};
use crate::config::{ConfigFile, S, line};

/// Each resource's id and description, by kind and name; problems go into `c`.
pub(super) fn identities(c: &mut Checker, ctx: &Ctx, cfg: &ConfigFile) -> Identities {
    let pp: Vec<_> = cfg.port_pairs.iter().map(|r| (r.value.id.as_ref(), r.value.description.as_ref())).collect();
    let pg: Vec<_> = cfg.port_pair_groups.iter().map(|r| (r.value.id.as_ref(), r.value.description.as_ref())).collect();
    let fc: Vec<_> = cfg.flow_classifiers.iter().map(|r| (r.value.id.as_ref(), r.value.description.as_ref())).collect();
    let pc: Vec<_> = cfg.port_chains.iter().map(|r| (r.value.id.as_ref(), r.value.description.as_ref())).collect();
    Identities {
        port_pairs: kind(c, PP, &ctx.pp.0, &pp),
        port_pair_groups: kind(c, PG, &ctx.pg.0, &pg),
        flow_classifiers: kind(c, FC, &ctx.fc.0, &fc),
        port_chains: kind(c, PC, &ctx.pc.0, &pc),
    }
}

type Fields<'a> = (Option<&'a S<String>>, Option<&'a S<String>>);

fn kind(c: &mut Checker, kind: &str, labels: &[String], fields: &[Fields<'_>]) -> BTreeMap<String, Identity> {
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (label, (id, description)) in labels.iter().zip(fields) {
        let id = id.and_then(|v| {
            let s = v.value.trim().to_ascii_lowercase();
            if !is_uuid(&s) {
                c.err(kind, label, "id", line(v), format!("'{}' is not a neutron id (a UUID like 4a334cd4-fe9c-4fae-af4b-321c5e2eb051)", v.value.trim()));
                return None;
            }
            if let Some(other) = seen.get(&s) {
                c.err(kind, label, "id", line(v), format!("id {s} is also the id of '{other}'"));
                return None;
            }
            seen.insert(s.clone(), label.clone());
            Some(s)
        });
        let description = description.map(|d| d.value.clone()).filter(|d| !d.is_empty());
        if id.is_some() || description.is_some() {
            out.insert(label.clone(), Identity { id, description });
        }
    }
    out
}
