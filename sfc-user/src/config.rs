//! The chain file as written (DESIGN.md section 5): serde types that keep each value's line so
//! validation errors can point at it. YAML and JSON are both read by the YAML parser (JSON is
//! YAML), so JSON files get line numbers too.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A value with the line it was written on.
pub type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub port_pairs: Vec<S<PortPairCfg>>,
    #[serde(default)]
    pub port_pair_groups: Vec<S<PortPairGroupCfg>>,
    #[serde(default)]
    pub flow_classifiers: Vec<S<FlowClassifierCfg>>,
    #[serde(default)]
    pub port_chains: Vec<S<PortChainCfg>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortPairCfg {
    pub name: S<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub ingress: S<String>,
    pub egress: S<String>,
    #[serde(default)]
    pub weight: Option<S<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortPairGroupCfg {
    pub name: S<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub port_pairs: S<Vec<S<String>>>,
    #[serde(default)]
    pub lb_fields: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub failure_policy: Option<S<String>>,
    #[serde(default)]
    pub tap_enabled: Option<S<bool>>,
}

/// A protocol given by name (`tcp`) or number (`6`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ProtocolCfg {
    Number(u32),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowClassifierCfg {
    pub name: S<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub ethertype: Option<S<String>>,
    #[serde(default)]
    pub protocol: Option<S<ProtocolCfg>>,
    #[serde(default)]
    pub source_ip_prefix: Option<S<String>>,
    #[serde(default)]
    pub destination_ip_prefix: Option<S<String>>,
    #[serde(default)]
    pub source_port_range_min: Option<S<u32>>,
    #[serde(default)]
    pub source_port_range_max: Option<S<u32>>,
    #[serde(default)]
    pub destination_port_range_min: Option<S<u32>>,
    #[serde(default)]
    pub destination_port_range_max: Option<S<u32>>,
    #[serde(default)]
    pub logical_source_port: Option<S<String>>,
    #[serde(default)]
    pub logical_destination_port: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortChainCfg {
    pub name: S<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub chain_id: Option<S<u32>>,
    pub port_pair_groups: S<Vec<S<String>>>,
    #[serde(default)]
    pub flow_classifiers: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub chain_parameters: Option<S<ChainParametersCfg>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainParametersCfg {
    #[serde(default)]
    pub symmetric: Option<S<bool>>,
    #[serde(default)]
    pub correlation: Option<S<String>>,
}

/// Why a file could not be read as a chain file at all (before validation).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
}

/// Parses chain-file text (YAML or JSON).
pub fn parse(path: &str, text: &str) -> Result<ConfigFile, ConfigError> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_saphyr::from_str(text)
        .map_err(|e| ConfigError::Syntax { path: path.to_owned(), message: e.to_string() })
}

/// Reads and parses a chain file.
pub fn load(path: &str) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse(path, &text)
}
