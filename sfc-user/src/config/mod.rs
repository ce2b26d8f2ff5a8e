//! The chain file as written (DESIGN.md section 5), with the line of every value so validation
//! errors can point at it. YAML and JSON are both read by the YAML parser (JSON is YAML), so JSON
//! files get line numbers too.
//!
//! Reading is two steps. The parser turns the text into a tree of spanned nodes; only a YAML
//! syntax error stops there. The tree is built from the parser's events (`events`) for the
//! documents chain files are, and by serde-saphyr for anything those leave (anchors, tags,
//! merge keys, errors): the same tree either way, serde-saphyr's rules deciding what a scalar
//! is. The tree is then read resource by resource against the schema, and every shape problem
//! (unknown or repeated field, wrong type) becomes a [`ValidationError`] naming the resource,
//! the field and the line, while the rest of the file is still read. So one run of `sfc
//! validate` reports every problem, not just the first one serde trips over.

mod events;
pub mod neutron;
mod node;
mod problem;
mod read;

use std::{fmt, marker::PhantomData};

use serde::{Deserialize, Deserializer, de};

pub use problem::{ValidationError, ValidationErrors};
pub use read::field_names;

pub(crate) use read::edit_distance;

/// The sections of a chain file, in the order errors list them.
pub const SECTIONS: [&str; 6] = ["port_pairs", "port_pair_groups", "flow_classifiers", "port_chains", "service_graphs", "interfaces"];

/// A value with the line it was written on (1-based, 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S<T> {
    pub value: T,
    pub line: u32,
}

/// The name under which the config reader recognises an [`S`] and hands it its line.
const SPANNED: &str = "$sfc::config::S";

impl<'de, T: Deserialize<'de>> Deserialize<'de> for S<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(SPANNED, SVisitor(PhantomData))
    }
}

struct SVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> de::Visitor<'de> for SVisitor<T> {
    type Value = S<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }
    /// From the config reader: the line, then the value.
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<S<T>, A::Error> {
        let line = a.next_element()?.unwrap_or(0);
        let value = a.next_element()?.ok_or_else(|| de::Error::custom("a value without its line"))?;
        Ok(S { value, line })
    }
    /// From any other deserializer: the value, line unknown.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<S<T>, D::Error> {
        Ok(S { value: T::deserialize(d)?, line: 0 })
    }
}

/// A parsed chain file. Fields that were absent, `null` or of the wrong type are `None` (the
/// wrong type is already in `problems`); required fields are checked by `model::validate`.
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub port_pairs: Vec<S<PortPairCfg>>,
    pub port_pair_groups: Vec<S<PortPairGroupCfg>>,
    pub flow_classifiers: Vec<S<FlowClassifierCfg>>,
    pub port_chains: Vec<S<PortChainCfg>>,
    pub service_graphs: Vec<S<ServiceGraphCfg>>,
    /// Per-interface datapath settings (not a networking-sfc resource).
    pub interfaces: Vec<S<InterfaceCfg>>,
    /// Shape problems found while reading; `model::validate` reports them with its own.
    pub problems: Vec<ValidationError>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PortPairCfg {
    pub name: Option<S<String>>,
    /// The resource's neutron id (a UUID), kept for `sfc export neutron`; references use names.
    pub id: Option<S<String>>,
    pub description: Option<S<String>>,
    pub ingress: Option<S<String>>,
    pub egress: Option<S<String>>,
    pub weight: Option<S<i128>>,
    /// The MAC address of the service function behind `ingress` / `egress` (a VM's, behind a
    /// tap), when sfc cannot read it from a veth peer. An sfc extension.
    pub ingress_mac: Option<S<String>>,
    pub egress_mac: Option<S<String>>,
    /// `none` (SFC-unaware, the default), `mpls` or `nsh`: the header the function gets and
    /// sends back (networking-sfc's `service_function_parameters.correlation`).
    pub correlation: Option<S<String>>,
    /// NSH MD type: 1 (the default; 16 bytes of context) or 2 (no metadata). An sfc extension.
    pub nsh_md_type: Option<S<i128>>,
    /// NSH MD type 1's fixed context: four 32-bit words (default zeros). An sfc extension.
    pub nsh_context: Option<S<Vec<S<i128>>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PortPairGroupCfg {
    pub name: Option<S<String>>,
    /// The resource's neutron id (a UUID), kept for `sfc export neutron`; references use names.
    pub id: Option<S<String>>,
    pub description: Option<S<String>>,
    pub port_pairs: Option<S<Vec<S<String>>>>,
    pub lb_fields: Option<S<Vec<S<String>>>>,
    pub failure_policy: Option<S<String>>,
    pub tap_enabled: Option<S<bool>>,
    /// A tap group copies 1 packet in N (counted per CPU). An sfc extension.
    pub tap_sample_every: Option<S<i128>>,
    /// A tap group copies a packet with this probability (0 < p <= 1). An sfc extension.
    pub tap_sample_probability: Option<S<String>>,
    /// What the members' output looks like when they rewrite addresses or ports (a NAT), as
    /// networking-sfc's `port_pair_group_parameters.ppg_n_tuple_mapping` says it.
    pub ppg_n_tuple_mapping: Option<S<NTupleMappingCfg>>,
    pub health_check: Option<S<HealthCheckCfg>>,
}

/// `ppg_n_tuple_mapping`: the tuple packets have going into the group and coming out of it.
#[derive(Debug, Default, Deserialize)]
pub struct NTupleMappingCfg {
    pub ingress_n_tuple: Option<S<NTupleCfg>>,
    pub egress_n_tuple: Option<S<NTupleCfg>>,
}

/// Classifier fields a NAT-ing function rewrites (networking-sfc's `SUPPORTED_PPG_TUPLE_MAPPING`).
#[derive(Debug, Default, Deserialize)]
pub struct NTupleCfg {
    pub source_ip_prefix: Option<S<String>>,
    pub destination_ip_prefix: Option<S<String>>,
    pub source_port_range_min: Option<S<i128>>,
    pub source_port_range_max: Option<S<i128>>,
    pub destination_port_range_min: Option<S<i128>>,
    pub destination_port_range_max: Option<S<i128>>,
}

/// A group's `health_check:` (probes through each member; an sfc extension).
#[derive(Debug, Default, Deserialize)]
pub struct HealthCheckCfg {
    pub interval_ms: Option<S<i128>>,
    pub failures: Option<S<i128>>,
    pub recoveries: Option<S<i128>>,
    pub source: Option<S<String>>,
    pub destination: Option<S<String>>,
}

/// A protocol given by name (`tcp`) or number (`6`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolCfg {
    Number(i128),
    Name(String),
}

impl<'de> Deserialize<'de> for ProtocolCfg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ProtocolCfg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a protocol name or number")
            }
            fn visit_i128<E>(self, v: i128) -> Result<ProtocolCfg, E> {
                Ok(ProtocolCfg::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ProtocolCfg, E> {
                Ok(ProtocolCfg::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ProtocolCfg, E> {
                Ok(ProtocolCfg::Number(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<ProtocolCfg, E> {
                Ok(ProtocolCfg::Name(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct FlowClassifierCfg {
    pub name: Option<S<String>>,
    /// The resource's neutron id (a UUID), kept for `sfc export neutron`; references use names.
    pub id: Option<S<String>>,
    pub description: Option<S<String>>,
    pub ethertype: Option<S<String>>,
    pub protocol: Option<S<ProtocolCfg>>,
    pub source_ip_prefix: Option<S<String>>,
    pub destination_ip_prefix: Option<S<String>>,
    pub source_port_range_min: Option<S<i128>>,
    pub source_port_range_max: Option<S<i128>>,
    pub destination_port_range_min: Option<S<i128>>,
    pub destination_port_range_max: Option<S<i128>>,
    pub logical_source_port: Option<S<String>>,
    pub logical_destination_port: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PortChainCfg {
    pub name: Option<S<String>>,
    /// The resource's neutron id (a UUID), kept for `sfc export neutron`; references use names.
    pub id: Option<S<String>>,
    pub description: Option<S<String>>,
    pub chain_id: Option<S<i128>>,
    pub port_pair_groups: Option<S<Vec<S<String>>>>,
    pub flow_classifiers: Option<S<Vec<S<String>>>>,
    pub chain_parameters: Option<S<ChainParametersCfg>>,
}

/// A service graph (networking-sfc's `service_graphs`): traffic leaving a source chain's last
/// hop enters the destination chain whose classifiers it matches.
#[derive(Debug, Default, Deserialize)]
pub struct ServiceGraphCfg {
    pub name: Option<S<String>>,
    /// The resource's neutron id (a UUID), kept for `sfc export neutron`.
    pub id: Option<S<String>>,
    pub description: Option<S<String>>,
    /// Source chain -> its destination chains, as networking-sfc writes it (`{pc1: [pc2, pc3]}`).
    pub port_chains: Option<S<Branches>>,
}

/// A service graph's `port_chains`: each source chain's destination chains.
pub type Branches = std::collections::BTreeMap<String, S<Vec<S<String>>>>;

/// How sfc attaches to one interface, overriding `sfc apply --mode`, and the MAC behind it.
#[derive(Debug, Default, Deserialize)]
pub struct InterfaceCfg {
    pub name: Option<S<String>>,
    pub mode: Option<S<String>>,
    /// The MAC of what is behind the interface (a VM's, behind a tap): a logical destination
    /// port's frames are addressed to it. An sfc extension.
    pub mac: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChainParametersCfg {
    pub symmetric: Option<S<bool>>,
    pub correlation: Option<S<String>>,
}

/// Why a file could not be read as a chain file at all (before validation).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// Not YAML (or JSON) at all. `line` and `column` are 1-based, 0 when unknown.
    #[error("{path}: YAML syntax error: {message}{}", at(*line, *column))]
    Syntax { path: String, line: u32, column: u32, message: String },
}

fn at(line: u32, column: u32) -> String {
    match (line, column) {
        (0, _) => String::new(),
        (l, 0) => format!(" (line {l})"),
        (l, c) => format!(" (line {l}, column {c})"),
    }
}

/// YAML nodes a chain file may have: room for a million classifiers of ten fields.
const MAX_NODES: usize = 25_000_000;

/// Parses chain-file text (YAML or JSON). Only a syntax error is an `Err`; everything else is
/// in `ConfigFile::problems`.
pub fn parse(path: &str, text: &str) -> Result<ConfigFile, ConfigError> {
    let root = match events::tree(text, MAX_NODES, |v| serde_saphyr::from_str_with_options(v, saphyr_options()).ok()) {
        Some(root) => root,
        None => serde_saphyr::from_str_with_options(text, saphyr_options()).map_err(|e| syntax(path, &e))?,
    };
    Ok(read::file(text, &root))
}

/// How serde-saphyr reads a chain file (and `events` follows).
fn saphyr_options() -> serde_saphyr::Options {
    // The parser's default node budget (250,000) stops near 20,000 classifiers; the classifier
    // tables are built for 100,000 and more. Depth and alias limits stay at their defaults.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_NODES;
    budget.max_events = 4 * MAX_NODES;
    serde_saphyr::options! {
        // Repeated keys are reported per resource, with both lines, by `Reader`.
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        with_snippet: false,
        budget: Some(budget),
    }
}

/// Reads and parses a chain file.
pub fn load(path: &str) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse(path, &text)
}

fn syntax(path: &str, e: &serde_saphyr::Error) -> ConfigError {
    let loc = e.location();
    let line = loc.map_or(0, |l| u32::try_from(l.line()).unwrap_or(0));
    let column = loc.map_or(0, |l| u32::try_from(l.column()).unwrap_or(0));
    let message = if let serde_saphyr::Error::MultipleDocuments { .. } = e {
        "a chain file is one YAML document, found a second one ('---')".to_owned()
    } else {
        let m = e.without_snippet().to_string();
        // The parser ends its messages with " at line L, column C": the location is kept apart.
        match m.rfind(" at line ") {
            Some(i) if line > 0 => m[..i].to_owned(),
            _ => m,
        }
    };
    ConfigError::Syntax { path: path.to_owned(), line, column, message }
}

/// 1-based line of a value, 0 when unknown.
pub fn line<T>(s: &S<T>) -> u32 {
    s.line
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::read::edit_distance;

    fn problems(text: &str) -> Vec<String> {
        parse("t.yaml", text).expect("parses").problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn scalars_keep_their_text_when_a_string_is_wanted() {
        let c = parse("t", "port_pairs:\n  - name: 5\n    ingress: on\n    egress: 010\n").expect("parses");
        let p = &c.port_pairs[0].value;
        assert_eq!(p.name.as_ref().map(|s| s.value.as_str()), Some("5"));
        assert_eq!(p.ingress.as_ref().map(|s| s.value.as_str()), Some("on"));
        assert_eq!(p.egress.as_ref().map(|s| s.value.as_str()), Some("010"));
        assert!(c.problems.is_empty());
    }

    #[test]
    fn numbers_may_be_quoted_and_null_means_absent() {
        let c = parse("t", "port_pairs:\n  - name: a\n    weight: \"3\"\n    description: ~\nport_chains:\n").expect("parses");
        assert_eq!(c.port_pairs[0].value.weight.as_ref().map(|w| w.value), Some(3));
        assert!(c.port_pairs[0].value.description.is_none());
        assert!(c.port_chains.is_empty() && c.problems.is_empty());
    }

    #[test]
    fn shape_problems_name_resource_field_and_line() {
        let p = problems("port_pairs:\n  - name: a\n    wieght: 3\n    weight: [1]\n  - 7\nport_pair: []\n");
        assert_eq!(p, [
            "port_pairs[a].wieght: unknown field (did you mean 'weight'?) (line 3)",
            "port_pairs[a].weight: expected a whole number, found a list (line 4)",
            "port_pairs[#1]: expected a mapping (one port pair), found a number (line 5)",
            "port_pair: unknown section (did you mean 'port_pairs'?) (line 6)",
        ]);
    }

    #[test]
    fn repeated_fields_and_sections_are_reported() {
        let p = problems("port_pairs:\n  - name: a\n    name: b\nport_pairs: []\n");
        assert_eq!(p, [
            "port_pairs[a].name: given twice (first on line 2) (line 3)",
            "port_pairs: section given twice (first on line 1); put all its entries in one list (line 4)",
        ]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("t.yaml", "a: [1, 2\n").map(|_| ()).expect_err("not YAML");
        assert_eq!(e.to_string(), "t.yaml: YAML syntax error: unclosed bracket '[' (line 1, column 4)");
        let e = parse("t.yaml", "port_pairs:\n\t- name: a\n").map(|_| ()).expect_err("not YAML");
        assert_eq!(e.to_string(), "t.yaml: YAML syntax error: tabs disallowed within this context (block indentation) (line 2, column 2)");
        let e = parse("t.yaml", "a: 1\n---\nb: 2\n").map(|_| ()).expect_err("two documents");
        assert_eq!(e.to_string(), "t.yaml: YAML syntax error: a chain file is one YAML document, found a second one ('---') (line 3, column 1)");
    }

    #[test]
    fn a_bad_value_leaves_its_siblings_read() {
        let text = "port_pair_groups:\n  - name: g\n    port_pairs: [a, {b: 1}, c]\n    health_check: {interval_ms: x, failures: 5}\n    tap_enabled: 3\n    failure_policy: fail-open\n";
        let c = parse("t", text).expect("parses");
        let g = &c.port_pair_groups[0].value;
        let members: Vec<&str> = g.port_pairs.as_ref().map(|l| l.value.iter().map(|s| s.value.as_str()).collect()).unwrap_or_default();
        assert_eq!(members, ["a", "c"]);
        let h = &g.health_check.as_ref().expect("health_check kept").value;
        assert_eq!((h.interval_ms.is_none(), h.failures.as_ref().map(|f| (f.value, f.line))), (true, Some((5, 4))));
        assert!(g.tap_enabled.is_none());
        assert_eq!(g.failure_policy.as_ref().map(|s| s.value.as_str()), Some("fail-open"));
        let p: Vec<String> = c.problems.iter().map(ToString::to_string).collect();
        assert_eq!(p, [
            "port_pair_groups[g].port_pairs: expected a name, found a mapping (line 3)",
            "port_pair_groups[g].health_check.interval_ms: expected a whole number, found 'x' (line 4)",
            "port_pair_groups[g].tap_enabled: expected true or false, found a number (line 5)",
        ]);
    }

    #[test]
    fn problems_on_one_line_keep_the_order_of_the_text() {
        let p = problems("port_pairs: [{name: a, weight: [1], wieght: 3, ingress: {x: 1}}]\n");
        assert_eq!(p, [
            "port_pairs[a].weight: expected a whole number, found a list (line 1)",
            "port_pairs[a].wieght: unknown field (did you mean 'weight'?) (line 1)",
            "port_pairs[a].ingress: expected a string, found a mapping (line 1)",
        ]);
    }

    #[test]
    fn many_bad_items_in_a_list_are_each_reported_once() {
        let items = vec!["{x: 1}"; 5000].join(", ");
        let p = problems(&format!("port_chains:\n  - name: c\n    flow_classifiers: [a, {items}, b]\n"));
        assert_eq!(p.len(), 5000);
        assert!(p.iter().all(|l| l == "port_chains[c].flow_classifiers: expected a name, found a mapping (line 3)"), "{:?}", &p[..3]);
    }

    #[test]
    fn the_schema_is_the_structs() {
        let names = field_names();
        for f in ["weight", "lb_fields", "health_check", "interval_ms", "logical_destination_port", "correlation", "mode"] {
            assert!(names.contains(f), "{f} missing from {names:?}");
        }
        let every_section = SECTIONS.join(": []\n") + ": []\n";
        let c = parse("t", &every_section).expect("parses");
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("wieght", "weight"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("egress", "egress"), 0);
    }
}
