//! Multi-host control plane on etcd (v3 API): where the chain file and every host's ports live.
//!
//! Keys, under a prefix (default `/sfc`):
//! - `<prefix>/config`: the chain file as pushed (`sfc push`), validated before it is stored;
//!   its mod revision is the configuration's revision.
//! - `<prefix>/nodes/<node>`: a host's agent (`NodeRecord`: VTEP, revision applied), under the
//!   agent's lease: it disappears when the agent stops renewing it.
//! - `<prefix>/ports/<node>/<interface>`: an interface the chain file names that exists on that
//!   host (`PortRecord`: the MAC behind it, up or not), under the same lease.
//!
//! Every agent compiles the whole chain file; an interface that is not local but published by
//! another host is reached over the overlay (`datapath::cluster`). A host whose lease expired
//! takes its ports with it: their members go down on every host and their flows fail over.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::Duration,
};

use anyhow::Context as _;
use etcd_client::{Client, ConnectOptions, GetOptions, PutOptions};
use serde::{Deserialize, Serialize};

use crate::datapath::cluster::{Cluster, RemotePort};

pub const DEFAULT_PREFIX: &str = "/sfc";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The key layout under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.trim_end_matches('/').to_owned() }
    }
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }
    pub fn config(&self) -> String {
        format!("{}/config", self.prefix)
    }
    pub fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.prefix)
    }
    pub fn ports(&self, node: &str) -> String {
        format!("{}/ports/{node}/", self.prefix)
    }
    pub fn port(&self, node: &str, iface: &str) -> String {
        format!("{}/ports/{node}/{iface}", self.prefix)
    }
}

/// What an agent says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub vtep: IpAddr,
    /// The configuration revision running there (`None`: none applied yet).
    pub applied_revision: Option<i64>,
    /// The datapath generation live there.
    pub generation: u32,
    /// Why the last configuration could not be applied there, if it could not.
    #[serde(default)]
    pub error: Option<String>,
    /// Interfaces the configuration names that are on no host this one knows of (their
    /// members are out, their classifiers off there), and the port pairs installed down there.
    /// Both empty: the host runs the whole configuration.
    #[serde(default)]
    pub absent: Vec<String>,
    #[serde(default)]
    pub down: Vec<String>,
}

/// An interface of the chain file that exists on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRecord {
    /// The MAC behind the interface (`aa:bb:..`), when the host knows it.
    pub mac: Option<String>,
    pub up: bool,
}

/// Everything under the prefix, as read at `revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub revision: i64,
    /// (mod revision, chain file).
    pub config: Option<(i64, Vec<u8>)>,
    pub nodes: BTreeMap<String, NodeRecord>,
    /// (node, interface) -> record.
    pub ports: BTreeMap<(String, String), PortRecord>,
}

impl View {
    /// The other hosts' interfaces as `me` (whose overlay device is `overlay`) reaches them:
    /// those of hosts with a live node record. An interface two hosts publish is taken from
    /// the first by name (a warning: names must be unique across hosts).
    pub fn cluster(&self, me: &str, overlay: &str) -> Cluster {
        let mut remote = BTreeMap::new();
        for ((node, iface), p) in &self.ports {
            if node == me {
                continue;
            }
            let Some(n) = self.nodes.get(node) else { continue };
            if remote.contains_key(iface) {
                log::warn!("interface {iface} is published by more than one host; using the first");
                continue;
            }
            let mac = p.mac.as_deref().and_then(|m| crate::model::parse_mac(m).ok());
            remote.insert(iface.clone(), RemotePort { node: node.clone(), vtep: n.vtep, mac, up: p.up });
        }
        Cluster { overlay: overlay.to_owned(), remote }
    }

    /// Interfaces published by `me` (as etcd has them).
    pub fn own_ports(&self, me: &str) -> BTreeMap<String, PortRecord> {
        self.ports.iter().filter(|((n, _), _)| n == me).map(|((_, i), p)| (i.clone(), p.clone())).collect()
    }
}

/// Endpoints from `URL[,URL...]`.
pub fn endpoints(urls: &str) -> Vec<String> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect()
}

pub async fn connect(urls: &str) -> anyhow::Result<Client> {
    let opts = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT).with_timeout(REQUEST_TIMEOUT);
    Client::connect(endpoints(urls), Some(opts)).await.with_context(|| format!("connecting to etcd at {urls}"))
}

/// Reads everything under the prefix in one request (one revision).
pub async fn read(client: &mut Client, keys: &Keys) -> anyhow::Result<View> {
    let r = client.get(keys.root(), Some(GetOptions::new().with_prefix())).await.context("reading from etcd")?;
    let mut view = View { revision: r.header().map_or(0, etcd_client::ResponseHeader::revision), ..View::default() };
    let root = keys.root();
    for kv in r.kvs() {
        let Some(rest) = kv.key_str().ok().and_then(|k| k.strip_prefix(&root)) else { continue };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["config"] => view.config = Some((kv.mod_revision(), kv.value().to_vec())),
            ["nodes", node] => match serde_json::from_slice::<NodeRecord>(kv.value()) {
                Ok(n) => {
                    view.nodes.insert((*node).to_owned(), n);
                }
                Err(e) => log::warn!("etcd {}: not a node record ({e}); ignored", kv.key_str().unwrap_or("?")),
            },
            ["ports", node, iface] => match serde_json::from_slice::<PortRecord>(kv.value()) {
                Ok(p) => {
                    view.ports.insert(((*node).to_owned(), (*iface).to_owned()), p);
                }
                Err(e) => log::warn!("etcd {}: not a port record ({e}); ignored", kv.key_str().unwrap_or("?")),
            },
            _ => {}
        }
    }
    Ok(view)
}

/// Stores a chain file (validated by the caller); returns the revision it got.
pub async fn push(client: &mut Client, keys: &Keys, text: &[u8]) -> anyhow::Result<i64> {
    let r = client.put(keys.config(), text.to_vec(), None).await.context("writing the chain file to etcd")?;
    Ok(r.header().map_or(0, etcd_client::ResponseHeader::revision))
}

/// Writes `value` (JSON) at `key` under `lease`.
pub async fn put_leased<T: Serialize>(client: &mut Client, key: String, value: &T, lease: i64) -> anyhow::Result<()> {
    let v = serde_json::to_vec(value).context("encoding a record")?;
    client.put(key.clone(), v, Some(PutOptions::new().with_lease(lease))).await.with_context(|| format!("writing {key}"))?;
    Ok(())
}
