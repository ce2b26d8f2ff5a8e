//! `sfc validate`: parse and validate a chain file without touching the kernel. Every problem is
//! printed on its own line with its resource, field and line; the exit status is 1 if there is
//! any.

use std::process::ExitCode;

use serde::Serialize;

use crate::{
    config::{self, ConfigError},
    model::{self, ValidationError},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The chain file (YAML or JSON).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: String,
    /// Print JSON: `{"file":..,"ok":bool,"problems":[{"kind","resource","field","line","message"}]}`.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    file: &'a str,
    ok: bool,
    problems: Vec<ValidationError>,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let problems = match config::load(&a.file) {
        Err(ConfigError::Read { source, .. }) => return Err(super::exit::invalid!("{}: {source}", a.file)),
        // Not YAML at all: one problem, the parser's, with its line.
        Err(ConfigError::Syntax { line, column, message, .. }) => {
            let message = if column > 0 { format!("YAML syntax error at column {column}: {message}") } else { format!("YAML syntax error: {message}") };
            vec![ValidationError { kind: String::new(), resource: String::new(), field: String::new(), line, message }]
        }
        Ok(cfg) => match model::validate(&cfg) {
            Ok(m) => {
                if a.json {
                    println!("{}", serde_json::to_string(&Report { file: &a.file, ok: true, problems: Vec::new() })?);
                } else {
                    println!(
                        "{}: ok ({} port chains, {} port pair groups, {} port pairs, {} flow classifiers)",
                        a.file,
                        m.port_chains.len(),
                        m.port_pair_groups.len(),
                        m.port_pairs.len(),
                        m.flow_classifiers.len()
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            Err(errs) => errs.0,
        },
    };
    if a.json {
        println!("{}", serde_json::to_string(&Report { file: &a.file, ok: false, problems })?);
    } else {
        let n = problems.len();
        eprintln!("{}: {n} problem{}:", a.file, if n == 1 { "" } else { "s" });
        for p in &problems {
            eprintln!("  {p}");
        }
    }
    Ok(ExitCode::FAILURE)
}
