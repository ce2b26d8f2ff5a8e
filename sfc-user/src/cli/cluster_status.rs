//! `sfc status --etcd URL`: the hosts of a multi-host deployment as etcd has them: which
//! configuration revision each runs, its VTEP, its ports, and why an apply failed there.

use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use super::table::print_table;
use crate::etcd::{self, Keys, NodeRecord};

#[derive(Debug, Serialize)]
struct ClusterStatus {
    /// The configuration revision stored (`sfc push`), if any.
    config_revision: Option<i64>,
    nodes: Vec<Node>,
}

#[derive(Debug, Serialize)]
struct Node {
    name: String,
    #[serde(flatten)]
    record: NodeRecord,
    /// Runs the stored configuration.
    current: bool,
    ports: Vec<String>,
}

pub fn run(urls: &str, prefix: &str, json: bool) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let keys = Keys::new(prefix);
    let view = rt.block_on(async {
        let mut c = etcd::connect(urls).await?;
        etcd::read(&mut c, &keys).await
    })?;
    let config_revision = view.config.as_ref().map(|(r, _)| *r);
    let nodes: Vec<Node> = view
        .nodes
        .iter()
        .map(|(name, record)| Node {
            name: name.clone(),
            current: record.applied_revision.is_some() && record.applied_revision == config_revision,
            ports: view.own_ports(name).into_keys().collect(),
            record: record.clone(),
        })
        .collect();
    let s = ClusterStatus { config_revision, nodes };
    if json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "configuration in etcd ({}): {}",
        keys.config(),
        config_revision.map_or_else(|| "none pushed yet".to_owned(), |r| format!("revision {r}"))
    );
    let rows: Vec<Vec<String>> = s
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.record.vtep.to_string(),
                n.record.applied_revision.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                if n.current { "yes".to_owned() } else { "no".to_owned() },
                n.record.generation.to_string(),
                n.ports.len().to_string(),
                [
                    n.record.error.clone(),
                    (!n.record.absent.is_empty()).then(|| format!("absent: {}", n.record.absent.join(", "))),
                    (!n.record.down.is_empty()).then(|| format!("down: {}", n.record.down.join(", "))),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; "),
            ]
        })
        .collect();
    print_table(&["node", "vtep", "revision", "current", "generation", "ports", "problems"], &rows);
    Ok(ExitCode::SUCCESS)
}
