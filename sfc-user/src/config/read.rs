//! Reading the node tree against the schema. The schema is the `*Cfg` structs in `config/mod.rs`
//! and nothing else: their serde derive gives the field names and types, and the deserializer
//! here ([`De`]) reads a resource's nodes into them, so that every problem is recorded with its
//! resource, field and line, and reading goes on after each one.
//!
//! How reading goes on: serde stops a struct at its first error, so a resource whose value is
//! of the wrong type is read again with that value left out (its problem recorded), until it
//! reads. A resource has a handful of fields, so that is a handful of passes at most, and only
//! for a resource with problems. Unknown and repeated fields never stop a pass: they are
//! recorded and never handed to serde.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeSet,
    fmt,
};

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::node::{At, Node, line};
use super::{
    ChainParametersCfg, ConfigFile, FlowClassifierCfg, HealthCheckCfg, InterfaceCfg, PortChainCfg, PortPairCfg, PortPairGroupCfg, S, SECTIONS, SPANNED,
    ValidationError,
};

/// Reads a parsed document into a `ConfigFile`, shape problems in the order of the text.
pub(super) fn file(text: &str, root: &At<Node>) -> ConfigFile {
    let mut r = Reader { text, problems: Vec::new() };
    let mut cfg = r.file(root);
    r.problems.sort_by_key(|(at, p)| (p.line, *at));
    cfg.problems = r.problems.into_iter().map(|(_, p)| p).collect();
    cfg
}

/// Where a node starts in the text (bytes), to order problems found on one line.
fn offset(n: &At<Node>) -> usize {
    n.offset.and_then(|o| usize::try_from(o).ok()).unwrap_or(usize::MAX)
}

/// Every field name the schema knows (all resources, nested ones included), from the serde
/// derive: for tools and tests that generate chain files.
pub fn field_names() -> BTreeSet<&'static str> {
    [
        fields_of::<PortPairCfg>(),
        fields_of::<PortPairGroupCfg>(),
        fields_of::<HealthCheckCfg>(),
        fields_of::<super::NTupleMappingCfg>(),
        fields_of::<super::NTupleCfg>(),
        fields_of::<FlowClassifierCfg>(),
        fields_of::<PortChainCfg>(),
        fields_of::<ChainParametersCfg>(),
        fields_of::<InterfaceCfg>(),
        fields_of::<super::ServiceGraphCfg>(),
    ]
    .into_iter()
    .flatten()
    .copied()
    .collect()
}

struct Reader<'t> {
    text: &'t str,
    /// Each with where it is in the text.
    problems: Vec<(usize, ValidationError)>,
}

impl Reader<'_> {
    fn problem(&mut self, kind: &str, resource: &str, n: &At<Node>, message: impl Into<String>) {
        let e = ValidationError { kind: kind.to_owned(), resource: resource.to_owned(), field: String::new(), line: line(n), message: message.into() };
        self.problems.push((offset(n), e));
    }

    fn file(&mut self, root: &At<Node>) -> ConfigFile {
        let mut cfg = ConfigFile::default();
        let entries = match &root.value {
            Node::Null => return cfg,
            Node::Map(entries) => entries,
            other => {
                self.problem("", "", root, format!("a chain file is a mapping of {}, found {}", SECTIONS.join(", "), other.kind()));
                return cfg;
            }
        };
        let mut seen: Vec<(String, u32)> = Vec::new();
        for (k, v) in entries {
            let Some(key) = scalar_text(self.text, k) else {
                self.problem("", "", k, format!("expected a section name ({}), found {}", SECTIONS.join(", "), k.value.kind()));
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == key) {
                let first = *first;
                self.problem(&key, "", k, format!("section given twice (first on line {first}); put all its entries in one list"));
                continue;
            }
            seen.push((key.clone(), line(k)));
            match key.as_str() {
                "port_pairs" => cfg.port_pairs = self.section(&key, "port pairs", v),
                "port_pair_groups" => cfg.port_pair_groups = self.section(&key, "port pair groups", v),
                "flow_classifiers" => cfg.flow_classifiers = self.section(&key, "flow classifiers", v),
                "port_chains" => cfg.port_chains = self.section(&key, "port chains", v),
                "service_graphs" => cfg.service_graphs = self.section(&key, "service graphs", v),
                "interfaces" => cfg.interfaces = self.section(&key, "interfaces", v),
                other => {
                    let msg = unknown_field(other, &SECTIONS).replace("unknown field", "unknown section");
                    self.problem(other, "", k, msg);
                }
            }
        }
        cfg
    }

    /// A section's list of resources, each a mapping labelled by its name (or `#index`).
    fn section<T: DeserializeOwned + Default>(&mut self, kind: &str, what: &str, n: &At<Node>) -> Vec<S<T>> {
        let items = match &n.value {
            Node::Null => return Vec::new(),
            Node::Seq(items) => items,
            other => {
                self.problem(kind, "", n, format!("expected a list of {what}, found {}", other.kind()));
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mut label = format!("#{i}");
            if let Node::Map(entries) = &item.value {
                let name = entries.iter().find(|(k, _)| matches!(&k.value, Node::Str(s) if s == "name"));
                if let Some(name) = name.and_then(|(_, v)| scalar_text(self.text, v))
                    && !name.trim().is_empty()
                {
                    name.trim().clone_into(&mut label);
                }
                out.push(self.resource(kind, &label, item));
            } else {
                self.problem(kind, &label, item, format!("expected a mapping (one {}), found {}", what.trim_end_matches('s'), item.value.kind()));
            }
        }
        out
    }

    /// One resource, read again without each value that failed until it reads.
    fn resource<T: DeserializeOwned + Default>(&mut self, kind: &str, resource: &str, n: &At<Node>) -> S<T> {
        let mut skip = BTreeSet::new();
        let mut failed = Vec::new();
        loop {
            let pass = Pass { text: self.text, kind, resource, skip: &skip, problems: RefCell::default() };
            let read = T::deserialize(De::new(n, &pass));
            let problems = pass.problems.into_inner();
            match read {
                Ok(value) => {
                    self.problems.extend(problems);
                    self.problems.extend(failed);
                    return S { value, line: line(n) };
                }
                Err(e) => {
                    // A problem with no value to leave out (none expected) ends the resource.
                    let again = !e.key.is_empty() && skip.insert(e.key.clone());
                    let at = if e.line > 0 { (e.offset, e.line) } else { (offset(n), line(n)) };
                    failed.push((at.0, ValidationError { kind: kind.to_owned(), resource: resource.to_owned(), field: e.field, line: at.1, message: e.message }));
                    if !again {
                        self.problems.extend(problems);
                        self.problems.extend(failed);
                        return S { value: T::default(), line: line(n) };
                    }
                }
            }
        }
    }
}

/// One reading of one resource.
struct Pass<'a> {
    text: &'a str,
    kind: &'a str,
    resource: &'a str,
    /// Values this pass leaves out (their problem is recorded already), by [`De::key`].
    skip: &'a BTreeSet<String>,
    /// Unknown and repeated fields and bad list items met on the way, each with its offset.
    problems: RefCell<Vec<(usize, ValidationError)>>,
}

impl Pass<'_> {
    fn problem(&self, field: &str, line: u32, offset: usize, message: String) {
        let e = ValidationError { kind: self.kind.to_owned(), resource: self.resource.to_owned(), field: field.to_owned(), line, message };
        self.problems.borrow_mut().push((offset, e));
    }
}

/// A value of the wrong shape: where it is and what was wrong.
#[derive(Debug)]
pub(super) struct Bad {
    field: String,
    line: u32,
    offset: usize,
    message: String,
    /// What to leave out to read past it (empty: nothing can be).
    key: String,
}

impl fmt::Display for Bad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Bad {}

impl de::Error for Bad {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Bad { field: String::new(), line: 0, offset: usize::MAX, message: msg.to_string(), key: String::new() }
    }
}

/// The deserializer over one node.
#[derive(Clone)]
struct De<'a> {
    n: &'a At<Node>,
    pass: &'a Pass<'a>,
    /// The field for messages: `weight`, `health_check.failures`, a list's name for its items.
    field: String,
    /// The value's own path, what a pass leaves out: the field, or `field#index` for an item.
    key: String,
    /// An item of a list of names (`port_pairs: [a, b]`, `lb_fields`).
    item: bool,
}

impl<'a> De<'a> {
    fn new(n: &'a At<Node>, pass: &'a Pass<'a>) -> Self {
        De { n, pass, field: String::new(), key: String::new(), item: false }
    }

    fn bad(&self, message: String) -> Bad {
        Bad { field: self.field.clone(), line: line(self.n), offset: offset(self.n), message, key: self.key.clone() }
    }

    /// Gives an error raised by a visitor (no location of its own) this value's location.
    fn locate(&self, e: Bad) -> Bad {
        if e.key.is_empty() { Bad { message: e.message, ..self.bad(String::new()) } } else { e }
    }

    fn text(&self) -> Option<String> {
        scalar_text(self.pass.text, self.n)
    }

    fn kind(&self) -> &'static str {
        self.n.value.kind()
    }
}

impl<'de> Deserializer<'de> for De<'_> {
    type Error = Bad;

    /// Whole numbers as numbers, every other scalar as the text it was written as.
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        let read = match &self.n.value {
            Node::Null => v.visit_unit(),
            Node::Int(i) => v.visit_i128(*i),
            Node::Str(_) | Node::Bool(_) | Node::Float(_) => v.visit_string(self.text().unwrap_or_default()),
            Node::Seq(_) | Node::Map(_) => return Err(self.bad(format!("expected {}, found {}", Expecting(&v), self.kind()))),
        };
        read.map_err(|e| self.locate(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        if let Node::Null = self.n.value { v.visit_none() } else { v.visit_some(self) }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        let b = match &self.n.value {
            Node::Bool(b) => Some(*b),
            Node::Str(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Node::Str(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        };
        match b {
            Some(b) => v.visit_bool(b).map_err(|e| self.locate(e)),
            None => Err(self.bad(format!("expected true or false, found {}", self.kind()))),
        }
    }

    /// A whole number, also when quoted (`"3"`) or too large for YAML's integers (it reads those
    /// as floats; the text as written is parsed here).
    fn deserialize_i128<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        let i = match &self.n.value {
            Node::Int(i) => Some(*i),
            Node::Str(s) => s.trim().parse::<i128>().ok(),
            Node::Float(_) => raw(self.pass.text, self.n).and_then(|r| r.parse::<i128>().ok()),
            Node::Null | Node::Bool(_) | Node::Seq(_) | Node::Map(_) => None,
        };
        if let Some(i) = i {
            v.visit_i128(i).map_err(|e| self.locate(e))
        } else {
            let found = self.text().map_or_else(|| self.kind().to_owned(), |t| format!("'{t}'"));
            Err(self.bad(format!("expected a whole number, found {found}")))
        }
    }

    /// Any scalar as the text it was written as (`name: 5`, `ingress: on`, `egress: 010`).
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        match self.text() {
            Some(s) => v.visit_string(s).map_err(|e| self.locate(e)),
            None => Err(self.bad(format!("expected {}, found {}", if self.item { "a name" } else { "a string" }, self.kind()))),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        self.deserialize_string(v)
    }

    /// A list of names: a bad item is left out, the others are kept.
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        let Node::Seq(items) = &self.n.value else {
            let hint = self.text().map_or_else(String::new, |t| format!(" (write [{t}])"));
            return Err(self.bad(format!("expected a list, found {}{hint}", self.kind())));
        };
        let read = v.visit_seq(Items { of: &self, items: items.iter().enumerate() });
        read.map_err(|e| self.locate(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _name: &'static str, fields: &'static [&'static str], v: V) -> Result<V::Value, Bad> {
        let Node::Map(entries) = &self.n.value else {
            return Err(self.bad(format!("expected a mapping ({}), found {}", fields.join(", "), self.kind())));
        };
        let prefix = if self.field.is_empty() { String::new() } else { format!("{}.", self.field) };
        let read = v.visit_map(Fields { of: &self, entries: entries.iter(), known: fields, prefix, seen: Vec::new(), value: None, any: false });
        read.map_err(|e| self.locate(e))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> Result<V::Value, Bad> {
        if name == SPANNED {
            let line = line(self.n);
            v.visit_seq(Span { line: Some(line), value: Some(self) })
        } else {
            v.visit_newtype_struct(self)
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        v.visit_unit()
    }

    /// A mapping whose keys are names (a service graph's source chains): every key is taken.
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Bad> {
        let Node::Map(entries) = &self.n.value else {
            return Err(self.bad(format!("expected a mapping, found {}", self.kind())));
        };
        let prefix = if self.field.is_empty() { String::new() } else { format!("{}.", self.field) };
        let read = v.visit_map(Fields { of: &self, entries: entries.iter(), known: &[], prefix, seen: Vec::new(), value: None, any: true });
        read.map_err(|e| self.locate(e))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct tuple tuple_struct enum identifier
    }
}

/// A struct's fields: each known one handed to serde once, the rest recorded as problems.
struct Fields<'a, 'b> {
    of: &'b De<'a>,
    entries: std::slice::Iter<'a, (At<Node>, At<Node>)>,
    known: &'static [&'static str],
    prefix: String,
    seen: Vec<(String, u32)>,
    value: Option<(&'a At<Node>, String)>,
    /// Any key is taken (a mapping of names), not only `known` ones.
    any: bool,
}

impl<'de> MapAccess<'de> for Fields<'_, '_> {
    type Error = Bad;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Bad> {
        let pass = self.of.pass;
        for (k, v) in self.entries.by_ref() {
            let Some(key) = scalar_text(pass.text, k) else {
                pass.problem(self.prefix.trim_end_matches('.'), line(k), offset(k), format!("expected a field name, found {}", k.value.kind()));
                continue;
            };
            let field = format!("{}{key}", self.prefix);
            if !self.any && !self.known.contains(&key.as_str()) {
                pass.problem(&field, line(k), offset(k), unknown_field(&key, self.known));
                continue;
            }
            if let Some((_, first)) = self.seen.iter().find(|(s, _)| *s == key) {
                pass.problem(&field, line(k), offset(k), format!("given twice (first on line {first})"));
                continue;
            }
            self.seen.push((key.clone(), line(k)));
            if pass.skip.contains(&field) {
                continue;
            }
            self.value = Some((v, field));
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Bad> {
        let Some((n, field)) = self.value.take() else { return Err(de::Error::custom("a value asked for before its field")) };
        seed.deserialize(De { n, pass: self.of.pass, key: field.clone(), field, item: false })
    }
}

/// The items of a list. Every list in the schema is a list of names: an item that is not a
/// scalar is recorded and left out here, in the same pass (a pass per bad item would make a
/// list of N bad items cost N passes of N items).
struct Items<'a, 'b> {
    of: &'b De<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, At<Node>>>,
}

impl<'de> SeqAccess<'de> for Items<'_, '_> {
    type Error = Bad;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Bad> {
        for (i, n) in self.items.by_ref() {
            if scalar_text(self.of.pass.text, n).is_none() {
                self.of.pass.problem(&self.of.field, line(n), offset(n), format!("expected a name, found {}", n.value.kind()));
                continue;
            }
            let key = format!("{}#{i}", self.of.key);
            if !self.of.pass.skip.contains(&key) {
                return seed.deserialize(De { n, pass: self.of.pass, field: self.of.field.clone(), key, item: true }).map(Some);
            }
        }
        Ok(None)
    }
}

/// What an [`S`] reads: its line, then its value.
struct Span<'a> {
    line: Option<u32>,
    value: Option<De<'a>>,
}

impl<'de> SeqAccess<'de> for Span<'_> {
    type Error = Bad;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Bad> {
        if let Some(line) = self.line.take() {
            return seed.deserialize(line.into_deserializer()).map(Some);
        }
        self.value.take().map(|de| seed.deserialize(de)).transpose()
    }
}

/// A visitor's "expected ..." text.
struct Expecting<'v, V>(&'v V);

impl<'de, V: Visitor<'de>> fmt::Display for Expecting<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
}

/// The field names a derived struct declares (serde hands them to `deserialize_struct`).
pub(in crate::config) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Capture<'c>(&'c Cell<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, fields: &'static [&'static str], _: V) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(de::Error::custom("fields taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit unit_struct
            newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let fields = Cell::new(&[][..]);
    let _ = T::deserialize(Capture(&fields));
    fields.get()
}

/// The text of a scalar as written, so a string field keeps `010` and `on` as they were.
fn raw(text: &str, n: &At<Node>) -> Option<String> {
    let (start, len) = n.span?;
    let (start, len) = (usize::try_from(start).ok()?, usize::try_from(len).ok()?);
    let s = text.get(start..start.checked_add(len)?)?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn scalar_text(text: &str, n: &At<Node>) -> Option<String> {
    match &n.value {
        Node::Str(s) => Some(s.clone()),
        Node::Bool(b) => raw(text, n).or_else(|| Some(b.to_string())),
        Node::Int(i) => raw(text, n).or_else(|| Some(i.to_string())),
        Node::Float(f) => raw(text, n).or_else(|| Some(f.to_string())),
        Node::Null | Node::Seq(_) | Node::Map(_) => None,
    }
}

/// "unknown field", with the closest known name when there is one, else the list of them.
fn unknown_field(key: &str, known: &[&str]) -> String {
    // Fields of the networking-sfc API that sfc takes in a flatter form.
    let moved = match key {
        "service_function_parameters" => Some("sfc takes `weight` directly on the port pair"),
        "port_pair_group_parameters" => Some("sfc takes `lb_fields` directly on the group"),
        "tenant_id" | "project_id" => Some("sfc has no projects: a chain file is one datapath's"),
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
