//! A problem in a chain file, as reading it (this layer) and validating it (`model`) report it.

use std::fmt;

use serde::Serialize;

/// One problem in a chain file: which resource, which field, which line, what is wrong.
/// Displayed as `port_chains[pc1].port_pair_groups: unknown group 'pg9' (line 31)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// `port_pairs`, `port_pair_groups`, `flow_classifiers`, `port_chains`, `interfaces`, an unknown section's
    /// name, or empty for the file as a whole.
    pub kind: String,
    /// The resource's name (`#3` for the fourth one when it has none); empty for a section.
    pub resource: String,
    /// The field (`chain_parameters.symmetric` for nested ones); empty for the whole resource.
    pub field: String,
    /// 1-based line, 0 when unknown (limits that concern the whole file).
    pub line: u32,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.kind.is_empty() {
            f.write_str(&self.kind)?;
            if !self.resource.is_empty() {
                write!(f, "[{}]", self.resource)?;
            }
            if !self.field.is_empty() {
                write!(f, ".{}", self.field)?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)?;
        if self.line > 0 {
            write!(f, " (line {})", self.line)?;
        }
        Ok(())
    }
}

/// Every problem found in a file, in line order, one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
