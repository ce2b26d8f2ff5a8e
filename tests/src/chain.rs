//! Chain files (DESIGN.md section 5) built in code and rendered as YAML for `sfc apply -f`.
//!
//! Rendered by hand rather than through a YAML library: the schema is small, and the output
//! is meant to be read by a person (the demo prints it).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPair {
    pub name: String,
    pub ingress: String,
    pub egress: String,
    pub weight: Option<u32>,
    /// The SF's MACs when sfc cannot read them from a veth peer (taps).
    pub ingress_mac: Option<[u8; 6]>,
    pub egress_mac: Option<[u8; 6]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPairGroup {
    pub name: String,
    pub port_pairs: Vec<String>,
    /// `health_check:` as a YAML flow mapping, e.g. `{destination: 198.18.0.2}`.
    pub health_check: Option<String>,
    /// A tap group (`tap_enabled: true`), with its sampling fields as YAML (`tap_sample_every:
    /// 4`), one per line; `None`: an inline group.
    pub tap: Option<Vec<String>>,
    /// `ppg_n_tuple_mapping:` as a YAML flow mapping (a NAT-ing group).
    pub n_tuple_mapping: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowClassifier {
    pub name: String,
    /// `IPv4` or `IPv6`; `None`: IPv4.
    pub ethertype: Option<String>,
    /// `tcp`, `udp`, `icmp`, ... ; `None`: any protocol.
    pub protocol: Option<String>,
    pub source_ip_prefix: Option<String>,
    pub destination_ip_prefix: Option<String>,
    /// Inclusive destination port range.
    pub destination_ports: Option<(u16, u16)>,
    pub logical_source_port: String,
    pub logical_destination_port: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortChain {
    pub name: String,
    pub chain_id: Option<u32>,
    pub port_pair_groups: Vec<String>,
    pub flow_classifiers: Vec<String>,
    /// `chain_parameters: {symmetric: true}`.
    pub symmetric: bool,
}

/// The whole desired state: what one `sfc apply -f` installs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainFile {
    pub port_pairs: Vec<PortPair>,
    pub port_pair_groups: Vec<PortPairGroup>,
    pub flow_classifiers: Vec<FlowClassifier>,
    pub port_chains: Vec<PortChain>,
    /// `interfaces:`: (interface, attach mode) overrides.
    pub interfaces: Vec<(String, String)>,
}

impl PortPair {
    pub fn new(name: &str, ingress: &str, egress: &str) -> Self {
        PortPair {
            name: name.to_owned(),
            ingress: ingress.to_owned(),
            egress: egress.to_owned(),
            weight: None,
            ingress_mac: None,
            egress_mac: None,
        }
    }
}

impl PortPairGroup {
    pub fn new(name: &str, port_pairs: &[&str]) -> Self {
        PortPairGroup {
            name: name.to_owned(),
            port_pairs: port_pairs.iter().map(|&p| p.to_owned()).collect(),
            health_check: None,
            tap: None,
            n_tuple_mapping: None,
        }
    }
}

impl FlowClassifier {
    /// Traffic of `protocol` to destination port `port` arriving on `logical_source_port`.
    pub fn to_port(name: &str, protocol: &str, port: u16, logical_source_port: &str) -> Self {
        FlowClassifier {
            name: name.to_owned(),
            protocol: Some(protocol.to_owned()),
            destination_ports: Some((port, port)),
            logical_source_port: logical_source_port.to_owned(),
            ..FlowClassifier::default()
        }
    }

    /// Traffic of `protocol` (any port) arriving on `logical_source_port`.
    pub fn protocol(name: &str, protocol: &str, logical_source_port: &str) -> Self {
        FlowClassifier {
            name: name.to_owned(),
            protocol: Some(protocol.to_owned()),
            logical_source_port: logical_source_port.to_owned(),
            ..FlowClassifier::default()
        }
    }
}

impl PortChain {
    pub fn new(name: &str, chain_id: u32, groups: &[&str], classifiers: &[&str]) -> Self {
        PortChain {
            name: name.to_owned(),
            chain_id: Some(chain_id),
            port_pair_groups: groups.iter().map(|&g| g.to_owned()).collect(),
            flow_classifiers: classifiers.iter().map(|&c| c.to_owned()).collect(),
            symmetric: false,
        }
    }
}

impl ChainFile {
    pub fn group_mut(&mut self, name: &str) -> Option<&mut PortPairGroup> {
        self.port_pair_groups.iter_mut().find(|g| g.name == name)
    }

    pub fn chain_mut(&mut self, name: &str) -> Option<&mut PortChain> {
        self.port_chains.iter_mut().find(|c| c.name == name)
    }

    pub fn classifier_mut(&mut self, name: &str) -> Option<&mut FlowClassifier> {
        self.flow_classifiers.iter_mut().find(|c| c.name == name)
    }

    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        y.push_str("port_pairs:");
        empty_list(&mut y, self.port_pairs.is_empty());
        for pp in &self.port_pairs {
            let _ = writeln!(y, "  - name: {}", pp.name);
            let _ = writeln!(y, "    ingress: {}", pp.ingress);
            let _ = writeln!(y, "    egress: {}", pp.egress);
            for (field, mac) in [("ingress_mac", pp.ingress_mac), ("egress_mac", pp.egress_mac)] {
                if let Some(m) = mac {
                    let _ = writeln!(y, "    {field}: {}", crate::link::mac_string(m));
                }
            }
            if let Some(w) = pp.weight {
                let _ = writeln!(y, "    weight: {w}");
            }
        }
        y.push_str("port_pair_groups:");
        empty_list(&mut y, self.port_pair_groups.is_empty());
        for pg in &self.port_pair_groups {
            let _ = writeln!(y, "  - name: {}", pg.name);
            let _ = writeln!(y, "    port_pairs: {}", flow_list(&pg.port_pairs));
            if let Some(h) = &pg.health_check {
                let _ = writeln!(y, "    health_check: {h}");
            }
            if let Some(m) = &pg.n_tuple_mapping {
                let _ = writeln!(y, "    ppg_n_tuple_mapping: {m}");
            }
            if let Some(tap) = &pg.tap {
                let _ = writeln!(y, "    tap_enabled: true");
                for line in tap {
                    let _ = writeln!(y, "    {line}");
                }
            }
        }
        y.push_str("flow_classifiers:");
        empty_list(&mut y, self.flow_classifiers.is_empty());
        for fc in &self.flow_classifiers {
            let _ = writeln!(y, "  - name: {}", fc.name);
            let ethertype = fc.ethertype.as_deref().unwrap_or("IPv4");
            let _ = writeln!(y, "    ethertype: {ethertype}");
            if let Some(p) = &fc.protocol {
                let _ = writeln!(y, "    protocol: {p}");
            }
            if let Some(p) = &fc.source_ip_prefix {
                let _ = writeln!(y, "    source_ip_prefix: {p}");
            }
            if let Some(p) = &fc.destination_ip_prefix {
                let _ = writeln!(y, "    destination_ip_prefix: {p}");
            }
            if let Some((min, max)) = fc.destination_ports {
                let _ = writeln!(y, "    destination_port_range_min: {min}");
                let _ = writeln!(y, "    destination_port_range_max: {max}");
            }
            let _ = writeln!(y, "    logical_source_port: {}", fc.logical_source_port);
            if let Some(p) = &fc.logical_destination_port {
                let _ = writeln!(y, "    logical_destination_port: {p}");
            }
        }
        y.push_str("port_chains:");
        empty_list(&mut y, self.port_chains.is_empty());
        for pc in &self.port_chains {
            let _ = writeln!(y, "  - name: {}", pc.name);
            if let Some(id) = pc.chain_id {
                let _ = writeln!(y, "    chain_id: {id}");
            }
            let _ = writeln!(
                y,
                "    port_pair_groups: {}",
                flow_list(&pc.port_pair_groups)
            );
            let _ = writeln!(
                y,
                "    flow_classifiers: {}",
                flow_list(&pc.flow_classifiers)
            );
            if pc.symmetric {
                let _ = writeln!(y, "    chain_parameters: {{symmetric: true}}");
            }
        }
        if !self.interfaces.is_empty() {
            y.push_str("interfaces:\n");
            for (name, mode) in &self.interfaces {
                let _ = writeln!(y, "  - {{name: {name}, mode: {mode}}}");
            }
        }
        y
    }

    /// Writes the YAML to `path`, creating its directory.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        std::fs::write(path, self.to_yaml()).with_context(|| format!("write {}", path.display()))
    }
}

fn empty_list(y: &mut String, empty: bool) {
    y.push_str(if empty { " []\n" } else { "\n" });
}

fn flow_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// A line diff of two texts for people: changed lines as `- old` / `+ new`, with `context`
/// unchanged lines around each change (`  line`) and `...` where unchanged lines are left out.
/// Empty when the texts are equal.
pub fn line_diff(old: &str, new: &str, context: usize) -> String {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut out = String::new();
    for (i, group) in diff.grouped_ops(context).iter().enumerate() {
        if i > 0 {
            out.push_str("  ...\n");
        }
        for change in group.iter().flat_map(|op| diff.iter_changes(op)) {
            let op = match change.tag() {
                similar::ChangeTag::Equal => ' ',
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
            };
            let _ = writeln!(out, "{op} {}", change.value().trim_end_matches('\n'));
        }
    }
    out
}

/// A directory for chain files, removed (with its contents) when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    dir: tempfile::TempDir,
}

impl ScratchDir {
    /// Creates `<tmp>/<name>XXXXXX`; `name` says whose it is (e.g. the topology id).
    pub fn new(name: &str) -> Result<ScratchDir> {
        let dir = tempfile::Builder::new().prefix(&format!("{name}-")).tempdir().with_context(|| format!("creating a temporary directory for {name}"))?;
        Ok(ScratchDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `file` as `<dir>/<name>` and returns its path.
    pub fn write(&self, name: &str, file: &ChainFile) -> Result<PathBuf> {
        let path = self.path().join(name);
        file.write(&path)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_design_schema() {
        let file = ChainFile {
            port_pairs: vec![PortPair::new("pp1", "a-s1i", "a-s1o")],
            port_pair_groups: vec![PortPairGroup::new("pg1", &["pp1"])],
            flow_classifiers: vec![FlowClassifier::to_port("web", "tcp", 80, "a-src")],
            port_chains: vec![PortChain::new("pc1", 1, &["pg1"], &["web"])],
            interfaces: Vec::new(),
        };
        assert_eq!(
            file.to_yaml(),
            "port_pairs:\n  - name: pp1\n    ingress: a-s1i\n    egress: a-s1o\n\
             port_pair_groups:\n  - name: pg1\n    port_pairs: [pp1]\n\
             flow_classifiers:\n  - name: web\n    ethertype: IPv4\n    protocol: tcp\n    \
             destination_port_range_min: 80\n    destination_port_range_max: 80\n    \
             logical_source_port: a-src\n\
             port_chains:\n  - name: pc1\n    chain_id: 1\n    port_pair_groups: [pg1]\n    \
             flow_classifiers: [web]\n"
        );
    }

    #[test]
    fn line_diff_shows_changes_with_context() {
        let old = "a\nb\nc\nd\ne\nf\n";
        let new = "a\nb\nC\nd\ne\nf\ng\n";
        assert_eq!(
            line_diff(old, new, 1),
            "  b\n- c\n+ C\n  d\n  ...\n  f\n+ g\n"
        );
        assert_eq!(line_diff(old, old, 1), "");
    }

    #[test]
    fn renders_symmetric_chains_and_ipv6() {
        let mut chain = PortChain::new("pc1", 1, &["pg1"], &["web6"]);
        chain.symmetric = true;
        let file = ChainFile {
            flow_classifiers: vec![FlowClassifier {
                ethertype: Some("IPv6".to_owned()),
                ..FlowClassifier::protocol("web6", "tcp", "a-src")
            }],
            port_chains: vec![chain],
            ..ChainFile::default()
        };
        let y = file.to_yaml();
        assert!(
            y.contains("    ethertype: IPv6\n    protocol: tcp\n"),
            "{y}"
        );
        assert!(
            y.contains("    chain_parameters: {symmetric: true}\n"),
            "{y}"
        );
    }

    #[test]
    fn renders_a_chain_without_classifiers() {
        let file = ChainFile {
            port_chains: vec![PortChain::new("pc1", 1, &[], &[])],
            ..ChainFile::default()
        };
        assert!(file.to_yaml().contains("port_pairs: []\n"));
        assert!(file.to_yaml().contains("flow_classifiers: []\n"));
    }
}
