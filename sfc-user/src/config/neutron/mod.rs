//! `sfc import neutron`: networking-sfc's API objects -> an sfc chain file that keeps every name,
//! id and description. Pure: JSON texts in, chain file text out.
//!
//! What is read: the bodies networking-sfc's API returns (`GET /v2.0/sfc/port_pairs` and the
//! other lists, `{"port_pairs": [...]}`; one object, `{"port_pair": {...}}`; several lists merged
//! into one object), and what `openstack sfc ... list --long -f json` and `show -f json` print
//! (column titles such as "Ingress Logical Port" are read as the API's field names). Any number
//! of texts; an object given twice (a list and a show of it) is read once.
//!
//! What is written: the chain file's own schema (DESIGN.md section 5). Resources keep their
//! neutron names (a missing or repeated name becomes `<kind>-<first 8 characters of the id>`),
//! ids and descriptions; references use names. Neutron ports are written as their ids, which
//! sfc reads as the tap nova plugs the port into (`tap` and 11 characters of the id), named in a
//! comment. Nothing is dropped silently: a field or value the chain file cannot hold is an error
//! naming the object, and the import stops.

use std::{collections::BTreeMap, fmt::Write as _};

use serde_json::{Map, Value};

mod write;
use write::{Writer, chain, classifier, graph, group, port_pair};

/// Whether `s` is a UUID as neutron writes its ids (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A neutron port id (a UUID, `897df85a-26c3-4491-888e-8cc58f19cea1`) -> the name of the tap
/// nova plugs the port's VM into: `tap` and the id's first 11 characters (`tap897df85a-26`).
/// `None` for anything that is not a UUID.
pub fn neutron_tap(s: &str) -> Option<String> {
    is_uuid(s).then(|| format!("tap{}", &s.to_ascii_lowercase()[..11]))
}

/// The chain file, and what the import changed on the way (said on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub yaml: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    PortPair,
    Group,
    Classifier,
    Chain,
    Graph,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::PortPair, Kind::Group, Kind::Classifier, Kind::Chain, Kind::Graph];

    const fn collection(self) -> &'static str {
        match self {
            Kind::PortPair => "port_pairs",
            Kind::Group => "port_pair_groups",
            Kind::Classifier => "flow_classifiers",
            Kind::Chain => "port_chains",
            Kind::Graph => "service_graphs",
        }
    }

    const fn singular(self) -> &'static str {
        match self {
            Kind::PortPair => "port_pair",
            Kind::Group => "port_pair_group",
            Kind::Classifier => "flow_classifier",
            Kind::Chain => "port_chain",
            Kind::Graph => "service_graph",
        }
    }

    /// How messages name one.
    const fn what(self) -> &'static str {
        match self {
            Kind::PortPair => "port pair",
            Kind::Group => "port pair group",
            Kind::Classifier => "flow classifier",
            Kind::Chain => "port chain",
            Kind::Graph => "service graph",
        }
    }

    /// The fields networking-sfc's API gives this kind (all of them are read or refused).
    const fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::PortPair => &["id", "name", "description", "tenant_id", "project_id", "ingress", "egress", "service_function_parameters"],
            Kind::Group => &[
                "id",
                "name",
                "description",
                "tenant_id",
                "project_id",
                "port_pairs",
                "port_pair_group_parameters",
                "tap_enabled",
                "group_id",
            ],
            Kind::Classifier => &[
                "id",
                "name",
                "description",
                "tenant_id",
                "project_id",
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
                "l7_parameters",
                "summary",
            ],
            Kind::Chain => &[
                "id",
                "name",
                "description",
                "tenant_id",
                "project_id",
                "chain_id",
                "port_pair_groups",
                "flow_classifiers",
                "chain_parameters",
            ],
            Kind::Graph => &["id", "name", "description", "tenant_id", "project_id", "port_chains"],
        }
    }
}

/// `openstack sfc ... -f json` column titles (lowercased, spaces as `_`) -> API field names.
const COLUMN_ALIASES: [(&str, &str); 7] = [
    ("ingress_logical_port", "ingress"),
    ("egress_logical_port", "egress"),
    ("port_pair", "port_pairs"),
    ("source_ip", "source_ip_prefix"),
    ("destination_ip", "destination_ip_prefix"),
    ("project", "project_id"),
    ("branching_points", "port_chains"),
];

fn normalize(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let k = k.trim().to_ascii_lowercase().replace(' ', "_");
            let k = if k == "is_tap_enabled" { "tap_enabled".to_owned() } else { k };
            let k = COLUMN_ALIASES.iter().find(|(a, _)| *a == k).map_or(k, |(_, b)| (*b).to_owned());
            (k, v.clone())
        })
        .collect()
}

/// The kind of an object with normalized keys, from the fields only it has.
fn infer(m: &Map<String, Value>) -> Option<Kind> {
    let has = |k: &str| m.contains_key(k);
    if has("ingress") || has("egress") {
        Some(Kind::PortPair)
    } else if has("port_pairs") {
        Some(Kind::Group)
    } else if has("port_pair_groups") {
        Some(Kind::Chain)
    } else if has("port_chains") {
        Some(Kind::Graph)
    } else if Kind::Classifier.fields()[5..].iter().any(|k| has(k)) {
        Some(Kind::Classifier)
    } else {
        None
    }
}

/// One object as read: its kind and normalized fields, and where it came from.
struct Obj {
    kind: Kind,
    fields: Map<String, Value>,
    source: String,
    /// Its position among all objects read (set once duplicates are gone).
    index: usize,
}

impl Obj {
    fn str(&self, k: &str) -> Option<&str> {
        self.fields.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }

    fn id(&self) -> Option<String> {
        self.str("id").map(str::to_ascii_lowercase)
    }
}

/// Every object in one text.
fn collect(source: &str, v: &Value, out: &mut Vec<Obj>, errors: &mut Vec<String>) {
    let push = |kind: Option<Kind>, m: &Map<String, Value>, out: &mut Vec<Obj>, errors: &mut Vec<String>| {
        let fields = normalize(m);
        if let Some(kind) = kind.or_else(|| infer(&fields)) {
            out.push(Obj { kind, fields, source: source.to_owned(), index: 0 });
        } else {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            errors.push(format!("{source}: not a networking-sfc object (fields: {})", keys.join(", ")));
        }
    };
    match v {
        Value::Object(m) => {
            let mut found = false;
            // A list body says so when it is one page of several (`<collection>_links`).
            for (k, links) in m.iter().filter(|(k, _)| k.ends_with("_links")) {
                let next = links.as_array().is_some_and(|l| l.iter().any(|x| x["rel"] == "next"));
                if next {
                    errors.push(format!("{source}: {k} has a next page: this is one page of a paginated list; fetch every page (or use `openstack sfc ... list`, which does)"));
                }
            }
            for kind in Kind::ALL {
                if let Some(Value::Array(items)) = m.get(kind.collection())
                    && items.iter().all(Value::is_object)
                {
                    found = true;
                    for item in items {
                        if let Value::Object(o) = item {
                            push(Some(kind), o, out, errors);
                        }
                    }
                }
                if let Some(Value::Object(o)) = m.get(kind.singular()) {
                    found = true;
                    push(Some(kind), o, out, errors);
                }
            }
            if found {
                let known = |k: &str| Kind::ALL.iter().any(|kind| k == kind.collection() || k == kind.singular()) || k.ends_with("_links");
                for k in m.keys().filter(|k| !known(k)) {
                    errors.push(format!("{source}: unknown top-level field '{k}' beside networking-sfc's lists"));
                }
            } else {
                push(None, m, out, errors);
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(o) => push(None, o, out, errors),
                    other => errors.push(format!("{source}: a list of objects was expected, found {other}")),
                }
            }
        }
        other => errors.push(format!("{source}: networking-sfc's API answers with JSON objects, found {other}")),
    }
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of YAML's; the characters
/// YAML does not allow raw and JSON leaves raw, DEL and C1 controls, escaped too).
fn q(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"));
    json.chars()
        .map(|c| if c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) { format!("\\u{:04x}", u32::from(c)) } else { c.to_string() })
        .collect()
}

/// What a neutron port id becomes in the file: the id (sfc reads it as its tap), with the tap
/// named in a comment; anything else as written.
fn port(v: &str) -> (String, String) {
    match neutron_tap(v) {
        Some(tap) => (v.to_ascii_lowercase(), format!("  # {tap}")),
        None => (q(v), String::new()),
    }
}

/// Imports `sources` (label, text). Errors name the source and the object.
pub fn import(sources: &[(String, String)]) -> Result<Imported, Vec<String>> {
    let mut errors = Vec::new();
    let mut objs = Vec::new();
    for (label, text) in sources {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => collect(label, &v, &mut objs, &mut errors),
            Err(e) => errors.push(format!("{label}: not JSON: {e}")),
        }
    }
    // An object given twice (by id: a list and a show of it) is read once, if both say the same.
    let mut seen: BTreeMap<(Kind, String), Map<String, Value>> = BTreeMap::new();
    objs.retain(|o| {
        let Some(id) = o.id() else { return true };
        match seen.get(&(o.kind, id.clone())) {
            None => {
                seen.insert((o.kind, id), o.fields.clone());
                true
            }
            Some(first) => {
                // Fields one source has and the other lacks (a short list) are not a difference.
                let differs = o.fields.iter().any(|(k, v)| first.get(k).is_some_and(|f| f != v));
                if differs {
                    errors.push(format!("{}: {} {id} is given twice, differently", o.source, o.kind.what()));
                }
                false
            }
        }
    });
    for (i, o) in objs.iter_mut().enumerate() {
        o.index = i;
    }
    let mut notes = Vec::new();
    let names = names(&objs, &mut errors, &mut notes);
    let lookup = lookup(&objs, &names);
    let mut y = String::from(
        "# Imported from networking-sfc by `sfc import neutron`: names, ids and descriptions as\n\
         # neutron has them. Ports are written as their neutron ids; sfc uses the tap nova plugs\n\
         # each port into (tap + 11 characters of the id), named in the comments.\n",
    );
    let mut projects = std::collections::BTreeSet::new();
    for kind in Kind::ALL {
        let of_kind: Vec<&Obj> = objs.iter().filter(|o| o.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let _ = writeln!(y, "{}:", kind.collection());
        for o in of_kind {
            let at = format!("{}: {} {}", o.source, kind.what(), names[&key(o)]);
            for k in o.fields.keys() {
                if !kind.fields().contains(&k.as_str()) {
                    errors.push(format!("{at}: unknown field '{k}'"));
                }
            }
            if let Some(p) = o.str("project_id").or_else(|| o.str("tenant_id")) {
                projects.insert(p.to_owned());
            }
            let mut w = Writer { y: &mut y, errors: &mut errors, at: &at, first: true };
            w.line("name", &q(&names[&key(o)]));
            match o.id() {
                Some(id) if is_uuid(&id) => w.line("id", &id),
                Some(id) => w.error(format!("id {} is not a neutron id (a UUID)", q(&id))),
                None => {}
            }
            if o.fields.get("group_id").is_some_and(|g| !g.is_null()) {
                notes.push(format!("{at}: group_id (networking-sfc's internal number for the group) is not kept"));
            }
            if let Some(d) = o.str("description") {
                w.line("description", &q(d));
            }
            match kind {
                Kind::PortPair => port_pair(&mut w, o),
                Kind::Group => group(&mut w, o, &lookup),
                Kind::Classifier => classifier(&mut w, o),
                Kind::Chain => chain(&mut w, o, &lookup, &mut notes, &names[&key(o)]),
                Kind::Graph => graph(&mut w, o, &lookup),
            }
        }
    }
    if !projects.is_empty() {
        let list: Vec<String> = projects.into_iter().collect();
        notes.push(format!("project ids are not kept (a chain file is one datapath's): {}", list.join(", ")));
    }
    if errors.is_empty() { Ok(Imported { yaml: y, notes }) } else { Err(errors) }
}

type Key = (Kind, usize);

fn key(o: &Obj) -> Key {
    (o.kind, o.index)
}

/// Each object's name in the file: its own, or `<kind>-<id prefix>` when it has none or shares
/// it with another object of its kind.
fn names(objs: &[Obj], errors: &mut Vec<String>, notes: &mut Vec<String>) -> BTreeMap<Key, String> {
    let mut count: BTreeMap<(Kind, &str), usize> = BTreeMap::new();
    for o in objs {
        if let Some(n) = o.str("name") {
            *count.entry((o.kind, n)).or_default() += 1;
        }
    }
    let mut out = BTreeMap::new();
    for (i, o) in objs.iter().enumerate() {
        let own = o.str("name").filter(|n| count.get(&(o.kind, *n)).is_some_and(|c| *c == 1));
        let name = match (own, o.id()) {
            (Some(n), _) => n.to_owned(),
            (None, Some(id)) => {
                let made = format!("{}-{}", o.kind.singular().replace('_', "-"), id.get(..8).unwrap_or(&id));
                match o.str("name") {
                    Some(n) => notes.push(format!("{} '{n}' ({id}): the name is not unique, written as '{made}'", o.kind.what())),
                    None => notes.push(format!("{} {id} has no name: written as '{made}'", o.kind.what())),
                }
                made
            }
            (None, None) => {
                errors.push(format!("{}: {} #{i} has neither a unique name nor an id", o.source, o.kind.what()));
                format!("{}-{i}", o.kind.singular())
            }
        };
        out.insert(key(o), name);
    }
    out
}

/// (kind, id or unique name) -> the name in the file, for references.
type Lookup = BTreeMap<(Kind, String), String>;

fn lookup(objs: &[Obj], names: &BTreeMap<Key, String>) -> Lookup {
    let mut out = Lookup::new();
    for o in objs {
        let name = &names[&key(o)];
        if let Some(id) = o.id() {
            out.insert((o.kind, id), name.clone());
        }
        // Its own name, when it kept it (unique among its kind).
        if o.str("name") == Some(name.as_str()) {
            out.insert((o.kind, name.clone()), name.clone());
        }
    }
    out
}
