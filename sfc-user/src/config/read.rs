//! Reading the node tree against the schema: every field checked for its name and type, every
//! problem recorded with its resource, field and line, and reading goes on after each one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::{
    ChainParametersCfg, ConfigFile, HealthCheckCfg, FlowClassifierCfg, InterfaceCfg, PortChainCfg, PortPairCfg, PortPairGroupCfg, ProtocolCfg, S, line,
};
use super::ValidationError;

/// Reads a parsed document into a `ConfigFile`, shape problems in line order.
pub(super) fn file(text: &str, root: &S<Node>) -> ConfigFile {
    let mut r = Reader { text, problems: Vec::new() };
    let mut cfg = r.file(root);
    r.problems.sort_by_key(|p| p.line);
    cfg.problems = r.problems;
    cfg
}

/// Any YAML value, every child with its location.
#[derive(Debug)]
pub(super) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<S<Node>>),
    Map(Vec<(S<Node>, S<Node>)>),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "nothing (null)",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(i128::try_from(v).map_or(Node::Float(f64::INFINITY), Node::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = a.next_element::<S<Node>>()? {
            v.push(x);
        }
        Ok(Node::Seq(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut v = Vec::new();
        while let Some(kv) = a.next_entry::<S<Node>, S<Node>>()? {
            v.push(kv);
        }
        Ok(Node::Map(v))
    }
}

// ---- the schema -------------------------------------------------------------------------------

const SECTIONS: [&str; 5] = ["port_pairs", "port_pair_groups", "flow_classifiers", "port_chains", "interfaces"];
const IF_FIELDS: &[&str] = &["name", "mode"];
const PP_FIELDS: &[&str] = &["name", "description", "ingress", "egress", "weight"];
const PG_FIELDS: &[&str] = &["name", "description", "port_pairs", "lb_fields", "failure_policy", "tap_enabled", "health_check"];
const HC_FIELDS: &[&str] = &["interval_ms", "failures", "recoveries", "source", "destination"];
const FC_FIELDS: &[&str] = &[
    "name",
    "description",
    "ethertype",
    "protocol",
    "source_ip_prefix",
    "destination_ip_prefix",
    "source_port_range_min",
    "source_port_range_max",
    "destination_port_range_min",
    "destination_port_range_max",
    "logical_source_port",
    "logical_destination_port",
];
const PC_FIELDS: &[&str] =
    &["name", "description", "chain_id", "port_pair_groups", "flow_classifiers", "chain_parameters"];
const PARAM_FIELDS: &[&str] = &["symmetric", "correlation"];

fn spanned<T>(value: T, like: &S<Node>) -> S<T> {
    Spanned::new(value, like.referenced, like.defined)
}

/// Where a field is: section, resource label, field path (for error messages).
struct At<'a> {
    kind: &'a str,
    resource: &'a str,
}

struct Reader<'t> {
    text: &'t str,
    problems: Vec<ValidationError>,
}

impl Reader<'_> {
    fn problem(&mut self, at: &At<'_>, field: &str, line: u32, message: impl Into<String>) {
        self.problems.push(ValidationError {
            kind: at.kind.to_owned(),
            resource: at.resource.to_owned(),
            field: field.to_owned(),
            line,
            message: message.into(),
        });
    }

    /// The text of a scalar as written: what a string field gets when YAML typed the scalar as
    /// something else (`name: 5`, `ingress: on`, `egress: 010`).
    fn raw(&self, n: &S<Node>) -> Option<String> {
        let loc: Location = n.defined;
        let span = loc.span();
        let (start, len) = (usize::try_from(span.byte_offset()?).ok()?, usize::try_from(span.byte_len()?).ok()?);
        let s = self.text.get(start..start.checked_add(len)?)?.trim();
        (!s.is_empty()).then(|| s.to_owned())
    }

    fn scalar_text(&self, n: &S<Node>) -> Option<String> {
        match &n.value {
            Node::Str(s) => Some(s.clone()),
            Node::Bool(b) => self.raw(n).or_else(|| Some(b.to_string())),
            Node::Int(i) => self.raw(n).or_else(|| Some(i.to_string())),
            Node::Float(f) => self.raw(n).or_else(|| Some(f.to_string())),
            Node::Null | Node::Seq(_) | Node::Map(_) => None,
        }
    }

    fn string(&mut self, at: &At<'_>, field: &str, n: &S<Node>) -> Option<S<String>> {
        if let Node::Null = n.value {
            return None;
        }
        if let Some(s) = self.scalar_text(n) {
            Some(spanned(s, n))
        } else {
            self.problem(at, field, line(n), format!("expected a string, found {}", n.value.kind()));
            None
        }
    }

    fn int(&mut self, at: &At<'_>, field: &str, n: &S<Node>) -> Option<S<i128>> {
        let v = match &n.value {
            Node::Null => return None,
            Node::Int(i) => Some(*i),
            Node::Str(s) => s.trim().parse::<i128>().ok(),
            Node::Float(_) => self.raw(n).and_then(|r| r.parse::<i128>().ok()),
            Node::Bool(_) | Node::Seq(_) | Node::Map(_) => None,
        };
        if v.is_none() {
            let found = match self.scalar_text(n) {
                Some(t) => format!("'{t}'"),
                None => n.value.kind().to_owned(),
            };
            self.problem(at, field, line(n), format!("expected a whole number, found {found}"));
        }
        v.map(|v| spanned(v, n))
    }

    fn boolean(&mut self, at: &At<'_>, field: &str, n: &S<Node>) -> Option<S<bool>> {
        let v = match &n.value {
            Node::Null => return None,
            Node::Bool(b) => Some(*b),
            Node::Str(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Node::Str(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        if v.is_none() {
            self.problem(at, field, line(n), format!("expected true or false, found {}", n.value.kind()));
        }
        v.map(|v| spanned(v, n))
    }

    fn protocol(&mut self, at: &At<'_>, field: &str, n: &S<Node>) -> Option<S<ProtocolCfg>> {
        let v = match &n.value {
            Node::Null => return None,
            Node::Int(i) => Some(ProtocolCfg::Number(*i)),
            Node::Str(s) => Some(ProtocolCfg::Name(s.clone())),
            Node::Bool(_) | Node::Float(_) => self.scalar_text(n).map(ProtocolCfg::Name),
            Node::Seq(_) | Node::Map(_) => None,
        };
        if v.is_none() {
            self.problem(at, field, line(n), format!("expected a protocol name or number, found {}", n.value.kind()));
        }
        v.map(|v| spanned(v, n))
    }

    /// A list of names (references or `lb_fields`).
    fn names(&mut self, at: &At<'_>, field: &str, n: &S<Node>) -> Option<S<Vec<S<String>>>> {
        let items = match &n.value {
            Node::Null => return None,
            Node::Seq(items) => items,
            other => {
                let hint = self.scalar_text(n).map_or_else(String::new, |t| format!(" (write [{t}])"));
                self.problem(at, field, line(n), format!("expected a list, found {}{hint}", other.kind()));
                return None;
            }
        };
        let mut out = Vec::new();
        for item in items {
            match self.scalar_text(item) {
                Some(s) => out.push(spanned(s, item)),
                None => self.problem(at, field, line(item), format!("expected a name, found {}", item.value.kind())),
            }
        }
        Some(spanned(out, n))
    }

    /// The entries of a resource's mapping, each known field once; problems for the rest.
    fn fields<'n>(&mut self, at: &At<'_>, prefix: &str, known: &[&str], n: &'n S<Node>) -> Vec<(String, &'n S<Node>)> {
        let Node::Map(entries) = &n.value else { return Vec::new() };
        let mut seen: Vec<(String, u32)> = Vec::new();
        let mut out = Vec::new();
        for (k, v) in entries {
            let Some(key) = self.scalar_text(k) else {
                self.problem(at, prefix.trim_end_matches('.'), line(k), format!("expected a field name, found {}", k.value.kind()));
                continue;
            };
            let field = format!("{prefix}{key}");
            if !known.contains(&key.as_str()) {
                let msg = unknown_field(&key, known);
                self.problem(at, &field, line(k), msg);
                continue;
            }
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == key) {
                let first = *first;
                self.problem(at, &field, line(k), format!("given twice (first on line {first})"));
                continue;
            }
            seen.push((key.clone(), line(k)));
            out.push((key, v));
        }
        out
    }

    /// A section's list of resources, each as a mapping with its label (name, or `#index`).
    fn section<'n>(&mut self, kind: &str, what: &str, n: &'n S<Node>) -> Vec<(&'n S<Node>, String)> {
        let items = match &n.value {
            Node::Null => return Vec::new(),
            Node::Seq(items) => items,
            other => {
                let at = At { kind, resource: "" };
                self.problem(&at, "", line(n), format!("expected a list of {what}, found {}", other.kind()));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut label = format!("#{i}");
            if let Node::Map(entries) = &item.value {
                let name = entries.iter().find(|(k, _)| matches!(&k.value, Node::Str(s) if s == "name"));
                if let Some(name) = name.and_then(|(_, v)| self.scalar_text(v))
                    && !name.trim().is_empty()
                {
                    name.trim().clone_into(&mut label);
                }
                out.push((item, label));
            } else {
                let at = At { kind, resource: &label };
                self.problem(&at, "", line(item), format!("expected a mapping (one {}), found {}", what.trim_end_matches('s'), item.value.kind()));
            }
        }
        out
    }

    fn file(&mut self, root: &S<Node>) -> ConfigFile {
        let mut cfg = ConfigFile::default();
        let entries = match &root.value {
            Node::Null => return cfg,
            Node::Map(entries) => entries,
            other => {
                let at = At { kind: "", resource: "" };
                self.problem(&at, "", line(root), format!(
                    "a chain file is a mapping of {}, found {}",
                    SECTIONS.join(", "),
                    other.kind()
                ));
                return cfg;
            }
        };
        let mut seen: Vec<(String, u32)> = Vec::new();
        for (k, v) in entries {
            let Some(key) = self.scalar_text(k) else {
                let at = At { kind: "", resource: "" };
                self.problem(&at, "", line(k), format!("expected a section name ({}), found {}", SECTIONS.join(", "), k.value.kind()));
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == key) {
                let at = At { kind: &key, resource: "" };
                let first = *first;
                self.problem(&at, "", line(k), format!("section given twice (first on line {first}); put all its entries in one list"));
                continue;
            }
            seen.push((key.clone(), line(k)));
            match key.as_str() {
                "port_pairs" => cfg.port_pairs = self.section(&key, "port pairs", v).into_iter().map(|(n, l)| self.port_pair(n, &l)).collect(),
                "port_pair_groups" => cfg.port_pair_groups = self.section(&key, "port pair groups", v).into_iter().map(|(n, l)| self.group(n, &l)).collect(),
                "flow_classifiers" => cfg.flow_classifiers = self.section(&key, "flow classifiers", v).into_iter().map(|(n, l)| self.classifier(n, &l)).collect(),
                "port_chains" => cfg.port_chains = self.section(&key, "port chains", v).into_iter().map(|(n, l)| self.chain(n, &l)).collect(),
                "interfaces" => cfg.interfaces = self.section(&key, "interfaces", v).into_iter().map(|(n, l)| self.interface(n, &l)).collect(),
                other => {
                    let at = At { kind: other, resource: "" };
                    let msg = unknown_field(other, &SECTIONS).replace("unknown field", "unknown section");
                    self.problem(&at, "", line(k), msg);
                }
            }
        }
        cfg
    }

    fn interface(&mut self, n: &S<Node>, label: &str) -> S<InterfaceCfg> {
        let at = At { kind: "interfaces", resource: label };
        let mut i = InterfaceCfg::default();
        for (key, v) in self.fields(&at, "", IF_FIELDS, n) {
            match key.as_str() {
                "name" => i.name = self.string(&at, &key, v),
                _ => i.mode = self.string(&at, &key, v),
            }
        }
        spanned(i, n)
    }

    fn port_pair(&mut self, n: &S<Node>, label: &str) -> S<PortPairCfg> {
        let at = At { kind: "port_pairs", resource: label };
        let mut p = PortPairCfg::default();
        for (key, v) in self.fields(&at, "", PP_FIELDS, n) {
            match key.as_str() {
                "name" => p.name = self.string(&at, &key, v),
                "description" => p.description = self.string(&at, &key, v),
                "ingress" => p.ingress = self.string(&at, &key, v),
                "egress" => p.egress = self.string(&at, &key, v),
                _ => p.weight = self.int(&at, &key, v),
            }
        }
        spanned(p, n)
    }

    fn group(&mut self, n: &S<Node>, label: &str) -> S<PortPairGroupCfg> {
        let at = At { kind: "port_pair_groups", resource: label };
        let mut g = PortPairGroupCfg::default();
        for (key, v) in self.fields(&at, "", PG_FIELDS, n) {
            match key.as_str() {
                "name" => g.name = self.string(&at, &key, v),
                "description" => g.description = self.string(&at, &key, v),
                "port_pairs" => g.port_pairs = self.names(&at, &key, v),
                "lb_fields" => g.lb_fields = self.names(&at, &key, v),
                "failure_policy" => g.failure_policy = self.string(&at, &key, v),
                "tap_enabled" => g.tap_enabled = self.boolean(&at, &key, v),
                _ => g.health_check = self.health_check(&at, v),
            }
        }
        spanned(g, n)
    }

    fn classifier(&mut self, n: &S<Node>, label: &str) -> S<FlowClassifierCfg> {
        let at = At { kind: "flow_classifiers", resource: label };
        let mut f = FlowClassifierCfg::default();
        for (key, v) in self.fields(&at, "", FC_FIELDS, n) {
            match key.as_str() {
                "name" => f.name = self.string(&at, &key, v),
                "description" => f.description = self.string(&at, &key, v),
                "ethertype" => f.ethertype = self.string(&at, &key, v),
                "protocol" => f.protocol = self.protocol(&at, &key, v),
                "source_ip_prefix" => f.source_ip_prefix = self.string(&at, &key, v),
                "destination_ip_prefix" => f.destination_ip_prefix = self.string(&at, &key, v),
                "source_port_range_min" => f.source_port_range_min = self.int(&at, &key, v),
                "source_port_range_max" => f.source_port_range_max = self.int(&at, &key, v),
                "destination_port_range_min" => f.destination_port_range_min = self.int(&at, &key, v),
                "destination_port_range_max" => f.destination_port_range_max = self.int(&at, &key, v),
                "logical_source_port" => f.logical_source_port = self.string(&at, &key, v),
                _ => f.logical_destination_port = self.string(&at, &key, v),
            }
        }
        spanned(f, n)
    }

    fn chain(&mut self, n: &S<Node>, label: &str) -> S<PortChainCfg> {
        let at = At { kind: "port_chains", resource: label };
        let mut c = PortChainCfg::default();
        for (key, v) in self.fields(&at, "", PC_FIELDS, n) {
            match key.as_str() {
                "name" => c.name = self.string(&at, &key, v),
                "description" => c.description = self.string(&at, &key, v),
                "chain_id" => c.chain_id = self.int(&at, &key, v),
                "port_pair_groups" => c.port_pair_groups = self.names(&at, &key, v),
                "flow_classifiers" => c.flow_classifiers = self.names(&at, &key, v),
                _ => c.chain_parameters = self.parameters(&at, v),
            }
        }
        spanned(c, n)
    }

    fn health_check(&mut self, at: &At<'_>, n: &S<Node>) -> Option<S<HealthCheckCfg>> {
        match &n.value {
            Node::Null => return None,
            Node::Map(_) => {}
            other => {
                let msg = format!("expected a mapping ({}), found {}", HC_FIELDS.join(", "), other.kind());
                self.problem(at, "health_check", line(n), msg);
                return None;
            }
        }
        let mut h = HealthCheckCfg::default();
        for (key, v) in self.fields(at, "health_check.", HC_FIELDS, n) {
            let field = format!("health_check.{key}");
            match key.as_str() {
                "interval_ms" => h.interval_ms = self.int(at, &field, v),
                "failures" => h.failures = self.int(at, &field, v),
                "recoveries" => h.recoveries = self.int(at, &field, v),
                "source" => h.source = self.string(at, &field, v),
                _ => h.destination = self.string(at, &field, v),
            }
        }
        Some(spanned(h, n))
    }

    fn parameters(&mut self, at: &At<'_>, n: &S<Node>) -> Option<S<ChainParametersCfg>> {
        match &n.value {
            Node::Null => return None,
            Node::Map(_) => {}
            other => {
                self.problem(at, "chain_parameters", line(n), format!("expected a mapping (symmetric, correlation), found {}", other.kind()));
                return None;
            }
        }
        let mut p = ChainParametersCfg::default();
        for (key, v) in self.fields(at, "chain_parameters.", PARAM_FIELDS, n) {
            let field = format!("chain_parameters.{key}");
            if key == "symmetric" {
                p.symmetric = self.boolean(at, &field, v);
            } else {
                p.correlation = self.string(at, &field, v);
            }
        }
        Some(spanned(p, n))
    }
}

/// "unknown field", with the closest known name when there is one, else the list of them.
fn unknown_field(key: &str, known: &[&str]) -> String {
    // Fields of the networking-sfc API that sfc takes in a flatter form.
    let moved = match key {
        "service_function_parameters" => Some("sfc takes `weight` directly on the port pair"),
        "port_pair_group_parameters" => Some("sfc takes `lb_fields` directly on the group"),
        "id" | "tenant_id" | "project_id" => Some("resources are named, not identified by id"),
        _ => None,
    };
    if let Some(m) = moved {
        return format!("unknown field ({m})");
    }
    let best = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, k)) => format!("unknown field (did you mean '{k}'?)"),
        None => format!("unknown field (expected one of: {})", known.join(", ")),
    }
}

/// Levenshtein distance, for "did you mean" (strsim, which clap already brings).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

