//! The applied model, saved beside the pins so later commands can name things and compute diffs,
//! and the lock that keeps two loaders off one pin directory.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
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
const STATE_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub model: Model,
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

impl State {
    pub fn load(dir: &Path) -> Result<Option<State>> {
        let path = dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DatapathError::Io { what: format!("reading {}", path.display()), source: e }),
        };
        let disk: OnDisk = serde_json::from_str(&text)
            .map_err(|e| DatapathError::Other(format!("{}: unreadable state ({e}); `sfc down` resets it", path.display())))?;
        if disk.version != STATE_VERSION {
            // (version 1 had the state flattened into the top level; nothing can read it now)
            return Err(DatapathError::Other(format!(
                "{}: state version {} is not {STATE_VERSION} (written by another sfc version); `sfc down` resets it",
                path.display(),
                disk.version
            )));
        }
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
            model: Model::default(),
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
