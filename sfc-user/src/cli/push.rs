//! `sfc push -f FILE --etcd URL`: validates a chain file as `sfc validate` does and stores it in
//! etcd as one revision, for every host's `sfc run --etcd` to apply. A file with any problem
//! is refused whole: nothing is written.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::etcd::{self, Keys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The chain file (YAML or JSON).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: String,
    /// etcd endpoints, URL[,URL...] (v3 API).
    #[arg(long, value_name = "URL")]
    etcd: String,
    /// Key prefix in etcd.
    #[arg(long, value_name = "PREFIX", default_value = etcd::DEFAULT_PREFIX)]
    etcd_prefix: String,
    /// Print JSON: {"file", "revision", "chains"}.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(&a.file).map_err(|e| super::exit::invalid!("reading {}: {e}", a.file))?;
    let model = super::model_of(&a.file, &text)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    let keys = Keys::new(&a.etcd_prefix);
    let revision = rt.block_on(async {
        let mut c = etcd::connect(&a.etcd).await?;
        etcd::push(&mut c, &keys, &text).await
    })?;
    if a.json {
        println!("{}", serde_json::json!({ "file": a.file, "revision": revision, "chains": model.port_chains.len() }));
    } else {
        println!("pushed {} to {} ({}): revision {revision}, {} chains", a.file, a.etcd, keys.config(), model.port_chains.len());
    }
    Ok(ExitCode::SUCCESS)
}
