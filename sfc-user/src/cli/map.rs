//! `sfc map list` and `sfc map dump NAME`: every pinned map, decoded into names.

use std::process::ExitCode;

use serde_json::Value;
use sfc_common::maps::{ALL_MAPS, MAP_FLOWS, MAP_LB};

use super::table::{fill, print_table};
use crate::{
    datapath::Location,
    view::inspect::{self, Namer},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Every pinned map: type, key and value size, capacity and current entries.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every entry of one map, decoded into chain, group, port pair and interface names.
    Dump {
        /// The map: `SFC_FLOWS`, `sfc_flows` or `flows` (see `sfc map list`).
        name: String,
        /// Print JSON: an array of objects, one per entry.
        #[arg(long)]
        json: bool,
    },
}


/// A JSON value as a table cell.
pub(super) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) if a.is_empty() => "-".to_owned(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(o) => o.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect::<Vec<_>>().join(" "),
    }
}

/// `1 entry`, `3 entries`.
fn entries(n: usize) -> String {
    format!("{n} {}", if n == 1 { "entry" } else { "entries" })
}

fn unknown_map(name: &str) -> anyhow::Error {
    super::exit::invalid!("no map called '{name}'; the maps are: {}", ALL_MAPS.join(", "))
}

fn list(loc: &Location, json: bool) -> anyhow::Result<()> {
    let maps = inspect::map_summaries(loc)?;
    if maps.is_empty() {
        return Err(crate::datapath::DatapathError::NotInstalled(loc.pin_dir.clone()).into());
    }
    if json {
        println!("{}", serde_json::to_string(&maps)?);
        return Ok(());
    }
    println!("pinned maps in {}", loc.pin_dir.display());
    let rows: Vec<Vec<String>> = maps
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.map_type.clone(),
                m.id.to_string(),
                m.key_size.to_string(),
                m.value_size.to_string(),
                m.max_entries.to_string(),
                m.entries.map_or_else(|| "?".to_owned(), |e| e.to_string()),
                fill(m.entries, m.max_entries),
            ]
        })
        .collect();
    print_table(&["name", "type", "id", "key", "value", "max entries", "entries", "fill"], &rows);
    Ok(())
}


fn dump(loc: &Location, name: &str, json: bool) -> anyhow::Result<()> {
    let map = inspect::resolve_map_name(name).ok_or_else(|| unknown_map(name))?;
    let state = inspect::load_state(loc)?;
    let namer = Namer { state: &state };
    if map == MAP_FLOWS && !json {
        // The flow table reads better as `sfc flows` prints it.
        let flows = inspect::flows(loc, &namer)?;
        println!("{map}: {}", entries(flows.len()));
        super::flows::print(&flows);
        return Ok(());
    }
    let d = inspect::dump(loc, &namer, map)?;
    if json {
        println!("{}", serde_json::to_string(&d.rows)?);
        return Ok(());
    }
    println!("{map}: {}", entries(d.rows.len()));
    if d.rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = d
        .rows
        .iter()
        .map(|r| d.columns.iter().map(|c| r.get(*c).map_or_else(String::new, cell)).collect())
        .collect();
    print_table(d.columns, &rows);
    if map == MAP_LB {
        println!("buckets per member:");
        for (group, members) in inspect::lb_shares(loc, &namer)? {
            let shares: Vec<String> = members.iter().map(|(pp, n)| format!("{pp} {n}")).collect();
            println!("  {group}: {}", shares.join(", "));
        }
    }
    Ok(())
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    match &a.command {
        Command::List { json } => list(loc, *json)?,
        Command::Dump { name, json } => dump(loc, name, *json)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{cell, unknown_map};

    #[test]
    fn cells_read_as_text() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["source", "sf_egress"])), "source,sf_egress");
        assert_eq!(cell(&json!([])), "-");
        assert_eq!(cell(&json!(true)), "yes");
        assert_eq!(cell(&json!(42)), "42");
    }


    #[test]
    fn unknown_map_lists_the_valid_names() {
        let e = unknown_map("SFC_NOPE").to_string();
        assert!(e.contains("SFC_NOPE") && e.contains("SFC_FLOWS") && e.contains("SFC_CLS_RES"), "{e}");
    }
}
