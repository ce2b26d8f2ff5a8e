//! The applied model, saved beside the pins so later commands can name things and compute diffs,
//! and the lock that keeps two loaders off one pin directory.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use super::{DatapathError, Result, io_err};
use crate::{
    compile::{IfaceFacts, Ids, plan::Drain},
    model::Model,
};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
/// Bumped when the file's meaning changes; an unknown version is refused, not guessed at.
const STATE_VERSION: u32 = 3;
/// Versions this one reads: 2 wrote prefixes as their 16 bytes (`model::prefix_serde` reads
/// both forms).
const READS: [u32; 2] = [2, 3];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Shared with the apply's caller when it keeps the model in an `Arc` (`sfc run`).
    pub model: Arc<Model>,
    pub facts: BTreeMap<String, IfaceFacts>,
    pub flow_table_size: u32,
    pub netns: Option<String>,
    /// Port pair and group ids by name, stable across applies.
    #[serde(default)]
    pub ids: Ids,
    /// Port pairs removed from their group whose existing flows may still use them: id -> when
    /// they go. Their map entries stay (flagged draining) until then.
    #[serde(default)]
    pub draining: BTreeMap<u32, Drain>,
    /// Port pairs installed down (an interface not up), and how many times one went down.
    #[serde(default)]
    pub down: std::collections::BTreeSet<String>,
    #[serde(default)]
    pub failovers: u64,
    /// Port pairs waiting for the MAC behind an interface (installed down), with what is missing.
    #[serde(default)]
    pub no_mac: BTreeMap<String, Vec<String>>,
    /// Interfaces the model names that did not exist at the last apply (`sfc run`), and where.
    #[serde(default)]
    pub absent: BTreeMap<String, Vec<String>>,
    /// Multi-host: the first stand-in ifindex a new remote interface may get
    /// (`cluster::remote_facts`).
    #[serde(default)]
    pub next_remote: u32,
    /// The classifier classes of the installed generation (`compile::cls::ClassIds`).
    #[serde(default)]
    pub class_ids: crate::compile::cls::ClassIds,
}

/// Not `#[serde(flatten)]`: flattening buffers the map through serde's content type, and
/// integer map keys (as in `draining`) then fail to read back.
#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    state: State,
}

/// `OnDisk` to write: the state's fields by reference, its classes given apart (the writer
/// behind an apply has them while the state itself stays readable, `warm`). The same JSON as
/// `OnDisk`.
#[derive(Serialize)]
struct Saving<'a> {
    version: u32,
    state: SavingState<'a>,
}

#[derive(Serialize)]
struct SavingState<'a> {
    model: &'a Model,
    facts: &'a BTreeMap<String, IfaceFacts>,
    flow_table_size: u32,
    netns: &'a Option<String>,
    ids: &'a Ids,
    draining: &'a BTreeMap<u32, Drain>,
    down: &'a std::collections::BTreeSet<String>,
    failovers: u64,
    no_mac: &'a BTreeMap<String, Vec<String>>,
    absent: &'a BTreeMap<String, Vec<String>>,
    next_remote: u32,
    class_ids: &'a crate::compile::cls::ClassIds,
}

/// The version of a state file as `save` writes it (`{"version":N,...`), without reading the
/// rest.
fn leading_version(text: &str) -> Option<u32> {
    let rest = text.strip_prefix("{\"version\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

impl State {
    pub fn load(dir: &Path) -> Result<Option<State>> {
        let path = dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DatapathError::Io { what: format!("reading {}", path.display()), source: e }),
        };
        // The version first (it leads the file), so that a file of another version is refused
        // as such rather than as unreadable.
        let version = |v: u32| {
            // (version 1 had the state flattened into the top level; nothing can read it now)
            if READS.contains(&v) {
                Ok(())
            } else {
                Err(DatapathError::Other(format!(
                    "{}: state version {v} is not one this sfc reads ({}; written by another sfc version); `sfc down` resets it",
                    path.display(),
                    READS.map(|r| r.to_string()).join(" or ")
                )))
            }
        };
        if let Some(v) = leading_version(&text) {
            version(v)?;
        }
        let disk: OnDisk = serde_json::from_str(&text)
            .map_err(|e| DatapathError::Other(format!("{}: unreadable state ({e}); `sfc down` resets it", path.display())))?;
        version(disk.version)?;
        Ok(Some(disk.state))
    }

    /// Written to a temporary file and renamed, so a crash never leaves half a state.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_with(dir, &self.class_ids)
    }

    /// The state without its model and classes (the parts that grow with the configuration),
    /// for readers of the rest.
    #[must_use]
    pub fn without_model(&self) -> State {
        let State { model: _, facts, flow_table_size, netns, ids, draining, down, failovers, no_mac, absent, next_remote, class_ids: _ } = self;
        State {
            model: Arc::default(),
            facts: facts.clone(),
            flow_table_size: *flow_table_size,
            netns: netns.clone(),
            ids: ids.clone(),
            draining: draining.clone(),
            down: down.clone(),
            failovers: *failovers,
            no_mac: no_mac.clone(),
            absent: absent.clone(),
            next_remote: *next_remote,
            class_ids: crate::compile::cls::ClassIds::new(),
        }
    }

    /// `save`, with `class_ids` in place of the state's own.
    pub(super) fn save_with(&self, dir: &Path, class_ids: &crate::compile::cls::ClassIds) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let State { model, facts, flow_table_size, netns, ids, draining, down, failovers, no_mac, absent, next_remote, class_ids: _ } = self;
        let state = SavingState {
            model,
            facts,
            flow_table_size: *flow_table_size,
            netns,
            ids,
            draining,
            down,
            failovers: *failovers,
            no_mac,
            absent,
            next_remote: *next_remote,
            class_ids,
        };
        let text = serde_json::to_string(&Saving { version: STATE_VERSION, state }).map_err(|e| DatapathError::Other(format!("encoding state: {e}")))?;
        // Root only, like the pins (it names every interface and port pair).
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io_err(format!("writing {}", tmp.display())))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err(format!("renaming {} to {}", tmp.display(), path.display())))
    }

    /// The name of port pair `id`, also while it drains.
    pub fn port_pair_name(&self, id: u32) -> Option<String> {
        self.ids
            .port_pairs
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(n, _)| n.clone())
            .or_else(|| self.draining.get(&id).map(|d| d.name.clone()))
    }

    /// The interface name the model used for `ifindex`.
    pub fn ifname(&self, ifindex: u32) -> Option<String> {
        self.facts.iter().find(|(_, f)| f.ifindex == ifindex).map(|(n, _)| n.clone())
    }
}

/// An exclusive `flock` on the state directory's lock file, held while changing the datapath
/// (released when the file is closed).
pub struct Lock {
    _file: File,
}

impl Lock {
    pub fn acquire(dir: &Path) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(DatapathError::Other(format!(
                "another sfc is changing this datapath ({} is locked); try again when it is done",
                path.display()
            )));
        }
        Ok(Lock { _file: f })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "
port_pairs:
  - {name: pp1, ingress: a1, egress: a2}
port_pair_groups:
  - {name: pg1, port_pairs: [pp1]}
flow_classifiers:
  - {name: c1, protocol: udp, destination_ip_prefix: 10.1.0.0/16, logical_source_port: s, logical_destination_port: d}
port_chains:
  - {name: pc1, chain_id: 1, port_pair_groups: [pg1], flow_classifiers: [c1]}
";

    fn state() -> State {
        let cfg = crate::config::parse("state.yaml", FILE).unwrap_or_else(|e| panic!("{e}"));
        let model = crate::model::validate(&cfg).unwrap_or_else(|e| panic!("{e}"));
        State {
            model: Arc::new(model),
            facts: BTreeMap::new(),
            flow_table_size: 4096,
            netns: None,
            ids: Ids::default(),
            draining: BTreeMap::new(),
            down: std::collections::BTreeSet::new(),
            failovers: 0,
            no_mac: BTreeMap::new(),
            absent: BTreeMap::new(),
            next_remote: 0,
            class_ids: crate::compile::cls::ClassIds::new(),
        }
    }

    /// This version writes 3 (prefixes as text) and reads it back; a file of version 2 (the
    /// byte form) still reads; a file of a version it does not know is refused as such, before
    /// its content is read.
    #[test]
    fn versions_read_and_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = state();
        s.save(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join(STATE_FILE);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(leading_version(&text), Some(3), "{}", &text[..40]);
        assert!(text.contains(r#""destination_prefix":"10.1.0.0/16""#), "prefixes as text");
        let back = State::load(dir.path()).unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| panic!("saved"));
        assert!(back.model == s.model, "the model reads back");

        let bytes = r#""destination_prefix":{"ethertype":"IPv4","addr":[10,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"len":16}"#;
        let v2 = text.replacen(r#"{"version":3"#, r#"{"version":2"#, 1).replace(r#""destination_prefix":"10.1.0.0/16""#, bytes);
        fs::write(&path, v2).unwrap_or_else(|e| panic!("{e}"));
        let old = State::load(dir.path()).unwrap_or_else(|e| panic!("version 2: {e}")).unwrap_or_else(|| panic!("saved"));
        assert!(old.model == s.model, "a version 2 file reads as it was");

        // Of a version to come: refused by its version, though its content would not parse.
        fs::write(&path, r#"{"version":9,"state":{"model":"something else"}}"#).unwrap_or_else(|e| panic!("{e}"));
        let e = State::load(dir.path()).map(|_| ()).expect_err("version 9 is refused").to_string();
        assert!(e.contains("state version 9 is not one this sfc reads (2 or 3"), "{e}");
    }
}
