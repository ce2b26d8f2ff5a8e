//! `sfc flows`: the flow table, decoded: 5-tuple, chain, the member picked at each hop.

use std::process::ExitCode;

use serde::Serialize;

use crate::{
    datapath::Location,
    view::inspect::{self, Flow, Namer},
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON: `{"capacity":N,"flows":[...]}` (with `--flush`: `{"flushed":N}`).
    #[arg(long)]
    json: bool,
    /// Forget every flow entry (like `conntrack -F`). Traffic is not disturbed: each flow's path
    /// is recomputed at its next packet; members stay the same unless the configuration changed
    /// since the flow started.
    #[arg(long)]
    flush: bool,
}

#[derive(Serialize)]
struct Out<'a> {
    capacity: u32,
    flows: &'a [Flow],
}

/// `addr:port`, with brackets around an IPv6 address; the address alone without a port.
fn endpoint(f: &Flow, a: &str, port: u16) -> String {
    let ports = f.sport != 0 || f.dport != 0;
    match (ports, f.family) {
        (false, _) => a.to_owned(),
        (true, "ipv6") => format!("[{a}]:{port}"),
        (true, _) => format!("{a}:{port}"),
    }
}

/// The hops as `group:member` in crossing order; `-` for a skipped hop.
fn path(f: &Flow) -> String {
    if f.hops.is_empty() {
        return "-".to_owned();
    }
    f.hops
        .iter()
        .map(|h| {
            format!(
                "{}:{}",
                h.group.as_deref().unwrap_or("?"),
                h.port_pair.as_deref().unwrap_or("(skipped)")
            )
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// The human table of `flows`.
pub(super) fn print(flows: &[Flow]) {
    let rows: Vec<Vec<String>> = flows
        .iter()
        .map(|f| {
            vec![
                f.protocol.clone(),
                endpoint(f, &f.src, f.sport),
                endpoint(f, &f.dst, f.dport),
                format!("{} ({})", f.chain, f.chain_id),
                if f.reverse { "reverse" } else { "forward" }.to_owned(),
                path(f),
                f.destination.clone(),
                f.generation.to_string(),
                f.zone.to_string(),
                format!("{}s{}", f.idle_s, if f.closing { " closing" } else { "" }),
            ]
        })
        .collect();
    super::table::print_table(&["proto", "source", "destination", "chain", "dir", "path", "then", "gen", "zone", "idle"], &rows);
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    let state = inspect::load_state(loc)?;
    if a.flush {
        let n = crate::datapath::flows::flush(loc)?;
        if a.json {
            println!("{}", serde_json::json!({ "flushed": n }));
        } else {
            println!("flushed {n} flow entr{}", if n == 1 { "y" } else { "ies" });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let namer = Namer { state: &state };
    let flows = inspect::flows(loc, &namer)?;
    let (_, capacity) = inspect::flow_table_fill(loc)?;
    if a.json {
        println!("{}", serde_json::to_string(&Out { capacity, flows: &flows })?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} (the table holds {capacity})", if flows.len() == 1 { "1 flow".to_owned() } else { format!("{} flows", flows.len()) });
    if !flows.is_empty() {
        print(&flows);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{endpoint, path};
    use crate::view::inspect::{Flow, FlowHop};

    fn flow(family: &'static str, sport: u16, dport: u16) -> Flow {
        Flow {
            family,
            src: "a".into(),
            dst: "b".into(),
            sport,
            dport,
            protocol: "tcp".into(),
            chain: "pc1".into(),
            chain_id: 1,
            hops: vec![
                FlowHop { hop: 0, group: Some("pg1".into()), port_pair: Some("pp1".into()) },
                FlowHop { hop: 1, group: Some("pg2".into()), port_pair: None },
            ],
            previous_hops: vec![],
            reverse: false,
            destination: "host".into(),
            generation: 1,
            zone: 3,
            closing: false,
            idle_s: 0,
        }
    }

    #[test]
    fn endpoints_and_paths() {
        let f = flow("ipv4", 1234, 80);
        assert_eq!(endpoint(&f, "10.0.0.1", 1234), "10.0.0.1:1234");
        assert_eq!(endpoint(&flow("ipv6", 1, 2), "::1", 1), "[::1]:1");
        assert_eq!(endpoint(&flow("ipv4", 0, 0), "10.0.0.1", 0), "10.0.0.1");
        assert_eq!(path(&f), "pg1:pp1 -> pg2:(skipped)");
    }
}
