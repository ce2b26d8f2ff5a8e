//! `sfc import neutron` and `sfc export neutron`: moving chains between networking-sfc's API
//! objects and sfc's chain file (`config::neutron`, `model::neutron`).

use std::{io::Read as _, path::PathBuf, process::ExitCode};

use anyhow::Context as _;

use crate::{config, datapath::Location, model, view::inspect};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    from: ImportFrom,
}

#[derive(Debug, clap::Subcommand)]
enum ImportFrom {
    /// networking-sfc's API objects (JSON: `GET /v2.0/sfc/...` bodies, or `openstack sfc ...
    /// list --long -f json` / `show -f json` output) -> a chain file that keeps every name, id
    /// and description. Ports become the taps nova plugs them into.
    Neutron {
        /// JSON files, any number (port pairs, groups, classifiers and chains may come in
        /// separate files); `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        /// Write the chain file here instead of standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    to: ExportTo,
}

#[derive(Debug, clap::Subcommand)]
enum ExportTo {
    /// A chain file (or the applied one) as networking-sfc's API objects: one JSON object with
    /// `port_pairs`, `port_pair_groups`, `flow_classifiers` and `port_chains`, ids where the
    /// file gives them.
    Neutron {
        /// The chain file [default: the one applied to the datapath].
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<String>,
    },
}

fn read(path: &str) -> anyhow::Result<(String, String)> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading standard input")?;
        return Ok(("<stdin>".to_owned(), s));
    }
    Ok((path.to_owned(), std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?))
}

pub fn import(a: &ImportArgs) -> anyhow::Result<ExitCode> {
    let ImportFrom::Neutron { files, output } = &a.from;
    let sources = files.iter().map(|f| read(f)).collect::<anyhow::Result<Vec<_>>>()?;
    let imported = match config::neutron::import(&sources) {
        Ok(i) => i,
        Err(errors) => return Err(super::exit::invalid!("nothing written; the import stopped at:\n  {}", errors.join("\n  "))),
    };
    for n in &imported.notes {
        eprintln!("note: {n}");
    }
    let label = output.as_ref().map_or_else(|| "<imported>".to_owned(), |p| p.display().to_string());
    let problems =
        config::parse(&label, &imported.yaml).map_err(|e| e.to_string()).and_then(|cfg| model::validate(&cfg).map_err(|e| e.to_string())).err();
    match output {
        Some(p) => std::fs::write(p, &imported.yaml).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{}", imported.yaml),
    }
    if let Some(e) = problems {
        eprintln!("the chain file was written, but it does not validate yet (`sfc validate` says):\n{e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(loc: &Location, a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let ExportTo::Neutron { file } = &a.to;
    let m = match file {
        Some(f) => super::load_model(f)?,
        None => std::sync::Arc::unwrap_or_clone(inspect::load_state(loc)?.model),
    };
    let (body, notes) = model::neutron::export(&m);
    println!("{}", serde_json::to_string_pretty(&body).context("encoding")?);
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
