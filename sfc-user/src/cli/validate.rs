use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The chain file (YAML or JSON).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: String,
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let model = super::load_model(&a.file)?;
    println!(
        "{}: ok ({} port chains, {} port pair groups, {} port pairs, {} flow classifiers)",
        a.file,
        model.port_chains.len(),
        model.port_pair_groups.len(),
        model.port_pairs.len(),
        model.flow_classifiers.len()
    );
    Ok(ExitCode::SUCCESS)
}
