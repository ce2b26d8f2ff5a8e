//! What every validation pass shares: the resource kinds as errors name them, and the checker
//! that collects errors (with the common checks of names and interface names). Below
//! `validate`, `overlap` and `health`, so none of them imports another's internals.

use std::collections::BTreeMap;

use super::ValidationError;
use crate::config::{S, line};

pub(super) const PP: &str = "port_pairs";
pub(super) const PG: &str = "port_pair_groups";
pub(super) const FC: &str = "flow_classifiers";
pub(super) const PC: &str = "port_chains";
pub(super) const IF: &str = "interfaces";
/// Linux interface names are at most 15 bytes.
const IFNAMSIZ_MAX: usize = 15;
/// networking-sfc's name column width.
const NAME_MAX: usize = 255;

pub(super) struct Checker {
    pub errors: Vec<ValidationError>,
    /// Interfaces named by a neutron port id: tap name -> port id.
    pub port_ids: BTreeMap<String, String>,
}

impl Checker {
    pub fn err(&mut self, kind: &str, resource: &str, field: &str, line: u32, message: impl Into<String>) {
        self.errors.push(ValidationError {
            kind: kind.to_owned(),
            resource: resource.to_owned(),
            field: field.to_owned(),
            line,
            message: message.into(),
        });
    }

    /// A required field: `None` is reported unless reading the file already reported this field
    /// (it was there, with the wrong type).
    pub fn required<'v, T>(&mut self, at: (&str, &str), field: &str, line: u32, v: Option<&'v S<T>>, what: &str) -> Option<&'v S<T>> {
        if v.is_none() {
            let (kind, resource) = at;
            let known = self.errors.iter().any(|e| e.kind == kind && e.resource == resource && e.field == field);
            if !known {
                self.err(kind, resource, field, line, format!("required field is missing ({what})"));
            }
        }
        v
    }

    /// Names must be present, non-empty, not too long and unique per kind. Returns each
    /// resource's label (its name, or `#index`) and name -> index for references.
    pub fn names(&mut self, kind: &str, names: &[(Option<&S<String>>, u32)]) -> (Vec<String>, BTreeMap<String, usize>) {
        let mut labels = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut first_line: BTreeMap<String, u32> = BTreeMap::new();
        for (i, (n, res_line)) in names.iter().enumerate() {
            let name = n.map_or("", |n| n.value.trim());
            let label = if name.is_empty() { format!("#{i}") } else { name.to_owned() };
            match n {
                None => {
                    self.required((kind, &label), "name", *res_line, *n, "every resource is named; references use the name");
                }
                Some(n) if name.is_empty() => self.err(kind, &label, "name", line(n), "name must not be empty"),
                Some(n) if name.len() > NAME_MAX => {
                    self.err(kind, &label, "name", line(n), format!("name is {} bytes long, at most {NAME_MAX}", name.len()));
                }
                Some(n) => {
                    if let Some(prev) = first_line.get(name) {
                        self.err(kind, name, "name", line(n), format!("duplicate name (first defined on line {prev})"));
                    } else {
                        index.insert(name.to_owned(), i);
                        first_line.insert(name.to_owned(), line(n));
                    }
                }
            }
            labels.push(label);
        }
        (labels, index)
    }

    /// An interface name, or a neutron port id (a UUID), which names the port's tap as nova and
    /// neutron do: `tap` and the id's first 11 characters.
    pub fn ifname(&mut self, at: (&str, &str), field: &str, v: &S<String>) -> String {
        let n = v.value.trim();
        if let Some(tap) = super::neutron_tap(n) {
            self.port_ids.insert(tap.clone(), n.to_ascii_lowercase());
            return tap;
        }
        if n.is_empty() || n.len() > IFNAMSIZ_MAX || n.contains(['/', ' ', '\t', ':']) || n == "." || n == ".." {
            self.err(at.0, at.1, field, line(v), format!(
                "'{n}' is not a valid interface name (1-{IFNAMSIZ_MAX} bytes, no '/', ':' or spaces)"
            ));
        }
        n.to_owned()
    }
}
