//! `sfc trace --probe`: one synthetic packet through the live datapath (see
//! `datapath::traceflow`), reported hop by hop and as a path, or as one JSON object.

use std::process::ExitCode;

use anyhow::Context as _;
use sfc_common::proto::carries_ports;

use super::trace::Args;
use crate::{
    datapath::{Location, trace, traceflow},
    view::{
        inspect::{self, Namer},
        trace::probe_view,
    },
};

/// The probe `a` asks for; errors name the missing flag.
fn spec(a: &Args) -> anyhow::Result<traceflow::ProbeSpec> {
    let (Some(in_iface), Some(proto), Some(src), Some(dst)) = (&a.in_iface, &a.proto, a.src, a.dst) else {
        return Err(super::exit::invalid!("--probe needs --in IFACE, --proto, --src and --dst (and --sport and --dport for protocols with ports)"));
    };
    let proto = crate::model::parse_protocol(proto).map_err(|e| super::exit::invalid!("--proto: {e}"))?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(super::exit::invalid!("--src and --dst must both be IPv4 or both IPv6"));
    }
    let ports = carries_ports(proto);
    let (sport, dport) = match (a.sport, a.dport) {
        (Some(s), Some(d)) if ports => (s, d),
        (None, None) if !ports => (0, 0),
        _ if ports => return Err(super::exit::invalid!("--probe with {} needs --sport and --dport", crate::model::protocol_name(proto))),
        _ => return Err(super::exit::invalid!("{} has no ports: leave out --sport and --dport", crate::model::protocol_name(proto))),
    };
    // A neutron port id names its tap, as in the chain file.
    let in_iface = crate::model::neutron_tap(in_iface).unwrap_or_else(|| in_iface.clone());
    Ok(traceflow::ProbeSpec { in_iface, proto, src, dst, sport, dport })
}

pub fn run(loc: &Location, a: &Args) -> anyhow::Result<ExitCode> {
    let spec = spec(a)?;
    let state = inspect::load_state(loc)?;
    let _lock = trace::TraceLock::acquire(loc)?;
    let report = traceflow::probe(loc, &state, &spec).context("sending the probe")?;
    let view = probe_view(&Namer { state: &state }, &spec.in_iface, &traceflow::flow_key(&spec), &report);
    if a.json {
        println!("{}", serde_json::to_string(&view).context("encoding the report")?);
    } else {
        println!("{view}");
    }
    Ok(ExitCode::SUCCESS)
}
