//! Writing one imported resource's fields into the chain file: a `Writer` per resource and one
//! function per kind (port pair, group, classifier, chain, service graph).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{Kind, Lookup, Obj, is_uuid, port, q};

/// Writes one resource's fields as a YAML list entry.
pub(super) struct Writer<'a> {
    pub(super) y: &'a mut String,
    pub(super) errors: &'a mut Vec<String>,
    pub(super) at: &'a str,
    pub(super) first: bool,
}

impl Writer<'_> {
    pub(super) fn line(&mut self, k: &str, v: &str) {
        let lead = if self.first { "  - " } else { "    " };
        self.first = false;
        let _ = writeln!(self.y, "{lead}{k}: {v}");
    }

    pub(super) fn error(&mut self, msg: impl std::fmt::Display) {
        self.errors.push(format!("{}: {msg}", self.at));
    }

    fn port(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            let (value, comment) = port(v);
            let lead = if self.first { "  - " } else { "    " };
            self.first = false;
            let _ = writeln!(self.y, "{lead}{k}: {value}{comment}");
        }
    }

    fn int(&mut self, o: &Obj, k: &str) {
        match o.fields.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => self.line(k, &n.to_string()),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => self.line(k, s.trim()),
            Some(other) => self.error(format!("{k} is {other}, not an integer")),
        }
    }

    /// A list of references to objects of `kind`, by id or (unique) name.
    fn refs(&mut self, obj: &Obj, field: &str, kind: Kind, lookup: &Lookup) {
        let Some(value) = obj.fields.get(field) else { return };
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            Value::Null => Vec::new(),
            other => vec![other],
        };
        let mut out = Vec::new();
        for item in items {
            let Some(r) = item.as_str().map(str::trim) else {
                self.error(format!("{field}: {item} is not an id or a name"));
                continue;
            };
            let r = if is_uuid(r) { r.to_ascii_lowercase() } else { r.to_owned() };
            match lookup.get(&(kind, r.clone())) {
                Some(n) => out.push(q(n)),
                None => self.error(format!("{field}: '{r}' is not among the imported {}s", kind.what())),
            }
        }
        self.line(field, &format!("[{}]", out.join(", ")));
    }
}

pub(super) fn port_pair(out: &mut Writer<'_>, obj: &Obj) {
    out.port("ingress", obj.str("ingress"));
    out.port("egress", obj.str("egress"));
    match obj.fields.get("service_function_parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(params)) => {
            for (field, value) in params {
                match (field.as_str(), value) {
                    ("correlation" | "weight", Value::Null) => {}
                    ("correlation", Value::String(c)) if ["mpls", "nsh", "none"].contains(&c.trim().to_ascii_lowercase().as_str()) => {
                        let c = c.trim().to_ascii_lowercase();
                        if c != "none" {
                            out.line("correlation", &c);
                        }
                    }
                    ("correlation", value) => out.error(format!("service_function_parameters.correlation {value}: not none, mpls or nsh")),
                    ("weight", Value::Number(n)) if n.as_u64() == Some(1) => {}
                    ("weight", Value::Number(n)) => out.line("weight", &n.to_string()),
                    (field, value) => out.error(format!("service_function_parameters.{field} {value} has no counterpart in sfc")),
                }
            }
        }
        Some(other) => out.error(format!("service_function_parameters is {other}, not an object")),
    }
}

pub(super) fn group(out: &mut Writer<'_>, obj: &Obj, lookup: &Lookup) {
    out.refs(obj, "port_pairs", Kind::PortPair, lookup);
    match obj.fields.get("port_pair_group_parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(params)) => {
            for (field, value) in params {
                match (field.as_str(), value) {
                    ("lb_fields", Value::Array(a)) if a.is_empty() => {}
                    ("lb_fields", Value::Array(a)) => {
                        let fields: Vec<String> = a.iter().map(|f| q(f.as_str().unwrap_or_default())).collect();
                        out.line("lb_fields", &format!("[{}]", fields.join(", ")));
                    }
                    ("ppg_n_tuple_mapping", Value::Object(m)) => match n_tuple_mapping(m) {
                        Ok(None) => {}
                        Ok(Some(yaml)) => out.line("ppg_n_tuple_mapping", &yaml),
                        Err(e) => out.error(format!("port_pair_group_parameters.ppg_n_tuple_mapping: {e}")),
                    },
                    ("ppg_n_tuple_mapping", value) => out.error(format!("port_pair_group_parameters.ppg_n_tuple_mapping is {value}, not an object")),
                    (_, Value::Null) => {}
                    (field, value) => out.error(format!("port_pair_group_parameters.{field} {value} has no counterpart in sfc")),
                }
            }
        }
        Some(other) => out.error(format!("port_pair_group_parameters is {other}, not an object")),
    }
    match obj.fields.get("tap_enabled") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(Value::Bool(true)) => out.line("tap_enabled", "true"),
        Some(other) => out.error(format!("tap_enabled is {other}, not true or false")),
    }
}

/// The fields a tuple of `ppg_n_tuple_mapping` may have (networking-sfc's
/// `SUPPORTED_PPG_TUPLE_MAPPING`): the chain file's own, in its order.
fn tuple_fields() -> &'static [&'static str] {
    crate::config::read::fields_of::<crate::config::NTupleCfg>()
}

/// `ppg_n_tuple_mapping` as a YAML flow mapping, its tuples' null fields left out (what
/// `sfc validate` says of an ingress tuple is left to it); `None` when every tuple is empty.
fn n_tuple_mapping(m: &Map<String, Value>) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    if let Some(side) = m.keys().find(|k| !["ingress_n_tuple", "egress_n_tuple"].contains(&k.as_str())) {
        return Err(format!("{side} has no counterpart in sfc (ingress_n_tuple, egress_n_tuple)"));
    }
    for side in ["ingress_n_tuple", "egress_n_tuple"] {
        let fields = match m.get(side) {
            None | Some(Value::Null) => continue,
            Some(Value::Object(t)) => t,
            Some(other) => return Err(format!("{side} is {other}, not an object")),
        };
        if let Some(field) = fields.keys().find(|k| !tuple_fields().contains(&k.as_str())) {
            return Err(format!("{side}.{field} is not a field a NAT-ing function rewrites ({})", tuple_fields().join(", ")));
        }
        let mut out = Vec::new();
        for &field in tuple_fields() {
            match fields.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(v)) if field.ends_with("_prefix") => out.push(format!("{field}: {}", q(v.trim()))),
                Some(Value::Number(n)) if (n.is_u64() || n.is_i64()) && !field.ends_with("_prefix") => out.push(format!("{field}: {n}")),
                Some(other) => return Err(format!("{side}.{field} is {other}")),
            }
        }
        if !out.is_empty() {
            parts.push(format!("{side}: {{{}}}", out.join(", ")));
        }
    }
    Ok((!parts.is_empty()).then(|| format!("{{{}}}", parts.join(", "))))
}

/// `port_chains: {source: [destinations]}`, chains by id or (unique) name.
pub(super) fn graph(out: &mut Writer<'_>, obj: &Obj, lookup: &Lookup) {
    let m = match obj.fields.get("port_chains") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => return out.error("port_chains is missing (source chain: [destination chains])"),
        Some(other) => return out.error(format!("port_chains is {other}, not an object")),
    };
    let mut missing = std::collections::BTreeSet::new();
    let mut chain = |out: &mut Writer<'_>, r: &str| -> Option<String> {
        let r = r.trim();
        let r = if is_uuid(r) { r.to_ascii_lowercase() } else { r.to_owned() };
        let found = lookup.get(&(Kind::Chain, r.clone())).map(|n| q(n));
        if found.is_none() && missing.insert(r.clone()) {
            out.error(format!("port_chains: '{r}' is not among the imported port chains"));
        }
        found
    };
    let mut parts = Vec::new();
    for (src, dsts) in m {
        let src = chain(out, src);
        let Some(list) = dsts.as_array() else {
            out.error(format!("port_chains: the destinations of '{}' are {dsts}, not a list", src.unwrap_or_default()));
            continue;
        };
        let mut to = Vec::new();
        for d in list {
            match d.as_str() {
                Some(d) => to.extend(chain(out, d)),
                None => out.error(format!("port_chains: {d} is not an id or a name")),
            }
        }
        if let Some(src) = src {
            parts.push(format!("{src}: [{}]", to.join(", ")));
        }
    }
    out.line("port_chains", &format!("{{{}}}", parts.join(", ")));
}

pub(super) fn classifier(out: &mut Writer<'_>, obj: &Obj) {
    if obj.fields.contains_key("summary") && !obj.fields.contains_key("logical_source_port") {
        out.error("only a summary (`openstack sfc flow classifier list` without --long): import `list --long -f json` or `show -f json`");
        return;
    }
    if let Some(e) = obj.str("ethertype") {
        out.line("ethertype", &q(e));
    }
    if let Some(params) = obj.fields.get("protocol") {
        match params {
            Value::Null => {}
            Value::String(s) => out.line("protocol", &q(&s.trim().to_ascii_lowercase())),
            Value::Number(n) => out.line("protocol", &n.to_string()),
            other => out.error(format!("protocol is {other}")),
        }
    }
    for field in ["source_ip_prefix", "destination_ip_prefix"] {
        if let Some(value) = obj.str(field) {
            out.line(field, &q(value));
        }
    }
    for field in ["source_port_range_min", "source_port_range_max", "destination_port_range_min", "destination_port_range_max"] {
        out.int(obj, field);
    }
    out.port("logical_source_port", obj.str("logical_source_port"));
    out.port("logical_destination_port", obj.str("logical_destination_port"));
    match obj.fields.get("l7_parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) if m.is_empty() => {}
        Some(value) => out.error(format!("l7_parameters {value}: sfc classifies on L2-L4 fields only (networking-sfc defines no L7 parameter either)")),
    }
}

pub(super) fn chain(out: &mut Writer<'_>, obj: &Obj, lookup: &Lookup, notes: &mut Vec<String>, name: &str) {
    out.int(obj, "chain_id");
    out.refs(obj, "port_pair_groups", Kind::Group, lookup);
    out.refs(obj, "flow_classifiers", Kind::Classifier, lookup);
    let mut written = Vec::new();
    match obj.fields.get("chain_parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(params)) => {
            for (field, value) in params {
                match (field.as_str(), value) {
                    ("symmetric", Value::Bool(b)) => written.push(format!("symmetric: {b}")),
                    ("correlation", Value::String(c)) if ["mpls", "nsh"].contains(&c.trim().to_ascii_lowercase().as_str()) => {
                        // Each port pair carries its own correlation (SFC-aware members get
                        // their header); the chain's is how networking-sfc's OVS driver carries
                        // it between hosts, which sfc does not need.
                        notes.push(format!(
                            "port chain {name}: correlation '{c}' is networking-sfc's encapsulation between OVS bridges; sfc steers SFC-unaware members without one and gives SFC-aware members their port pair's (correlation: none)"
                        ));
                        written.push("correlation: none".to_owned());
                    }
                    ("correlation" | "symmetric", Value::Null) => {}
                    (field, value) => out.error(format!("chain_parameters.{field} {value} has no counterpart in sfc")),
                }
            }
        }
        Some(other) => out.error(format!("chain_parameters is {other}, not an object")),
    }
    if !written.is_empty() {
        out.line("chain_parameters", &format!("{{{}}}", written.join(", ")));
    }
}
