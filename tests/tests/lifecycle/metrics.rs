//! (d) The daemon's metrics say exactly what `sfc stats --json` says.

use std::{net::SocketAddr, thread::sleep, time::Duration};

use sfc_tests::{
    Sfc, Stats, TopologyConfig,
    process::{Daemon, indent},
    prometheus::Exposition,
    scenario::Fixture,
    topology::DEST_IP,
    traffic::{UdpEchoServer, udp_exchange},
};

use super::{METRICS, chain_files, scrape, sports_on_both_pg1_members, stream};

/// Every (chain, hop, member, direction) counter of `stats` next to its metric; panics on a
/// difference.
fn assert_hops_equal_stats(e: &Exposition, stats: &Stats, ctx: &str) {
    let mut members = 0;
    for chain in stats.json["chains"].as_array().unwrap() {
        let name = chain["name"].as_str().unwrap();
        let id = chain["chain_id"].to_string();
        for (h, hop) in chain["hops"].as_array().unwrap().iter().enumerate() {
            let group = hop["group"].as_str().unwrap();
            let h = h.to_string();
            for m in hop["members"].as_array().unwrap() {
                members += 1;
                let pp = m["port_pair"].as_str().unwrap();
                for (direction, packets, bytes) in [
                    ("forward", "packets", "bytes"),
                    ("reverse", "reverse_packets", "reverse_bytes"),
                ] {
                    let labels = [
                        ("chain", name),
                        ("chain_id", id.as_str()),
                        ("hop", h.as_str()),
                        ("group", group),
                        ("port_pair", pp),
                        ("direction", direction),
                    ];
                    for (family, field) in [
                        ("sfc_hop_packets_total", packets),
                        ("sfc_hop_bytes_total", bytes),
                    ] {
                        assert_eq!(
                            e.value(family, &labels),
                            m[field].as_u64(),
                            "{family}{labels:?} vs stats {field}: {ctx}"
                        );
                    }
                }
            }
        }
    }
    for family in ["sfc_hop_packets_total", "sfc_hop_bytes_total"] {
        assert_eq!(
            e.family(family).len(),
            members * 2,
            "{family}: one sample per member and direction: {ctx}"
        );
    }
}

/// Every counter of `stats` next to its metric; panics on a difference.
fn assert_metrics_equal_stats(e: &Exposition, stats: &Stats, ctx: &str) {
    assert_hops_equal_stats(e, stats, ctx);
    let drops = stats.drops();
    assert!(!drops.is_empty(), "stats has no drop reasons: {ctx}");
    for (reason, n) in &drops {
        assert_eq!(
            e.value("sfc_drops_total", &[("reason", reason)]),
            Some(*n),
            "sfc_drops_total{{reason={reason:?}}}: {ctx}"
        );
    }
    assert_eq!(e.family("sfc_drops_total").len(), drops.len(), "{ctx}");

    let interfaces = stats.json["interfaces"].as_array().unwrap();
    assert!(!interfaces.is_empty(), "stats has no interfaces: {ctx}");
    for i in interfaces {
        let name = i["name"].as_str().unwrap();
        for kind in ["classified", "unclassified", "from_sf", "malformed"] {
            assert_eq!(
                e.value(
                    "sfc_interface_packets_total",
                    &[("interface", name), ("kind", kind)]
                ),
                i[kind].as_u64(),
                "sfc_interface_packets_total{{interface={name:?},kind={kind:?}}}: {ctx}"
            );
        }
        assert_eq!(
            e.value(
                "sfc_interface_recomputed_packets_total",
                &[("interface", name)]
            ),
            i["recomputed"].as_u64(),
            "sfc_interface_recomputed_packets_total{{interface={name:?}}}: {ctx}"
        );
    }
    assert_eq!(
        e.family("sfc_interface_packets_total").len(),
        interfaces.len() * 4,
        "{ctx}"
    );
    assert_eq!(
        e.family("sfc_interface_recomputed_packets_total").len(),
        interfaces.len(),
        "{ctx}"
    );
    for (family, field) in [
        ("sfc_flows_created_total", "created"),
        ("sfc_flows_capped_total", "capped"),
        ("sfc_flows_removed_total", "removed"),
        ("sfc_flows_evicted_total", "evicted"),
    ] {
        assert_eq!(e.value(family, &[]), stats.json["flow_table"][field].as_u64(), "{family}: {ctx}");
    }
    assert_eq!(
        e.value("sfc_failovers_total", &[]),
        stats.json["failovers"].as_u64(),
        "{ctx}"
    );
    assert_eq!(
        e.value("sfc_chains", &[]),
        Some(stats.json["chains"].as_array().unwrap().len() as u64),
        "{ctx}"
    );
}

/// (d) The daemon's /metrics (scraped inside the hub) and `sfc stats --json`, read with no
/// traffic in between, agree on every counter; every family has its HELP and TYPE; the flow
/// table gauges agree with `sfc flows --json`; anything but /metrics is a 404.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn metrics_match_stats() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let sfc = Sfc::for_topology(&fx.topo);
    let (a, _) = chain_files(&fx);
    let log = fx.dir.path().join("daemon.log");
    let daemon = Daemon::start(&sfc, &["-f", &a.to_string_lossy()], &log)
        .unwrap_or_else(|e| panic!("{e:#}"));

    // Chain traffic on both PG1 members, and unclassified traffic (UDP to another port, and
    // its echoes) so that every interface counter kind has something to show.
    let sports = sports_on_both_pg1_members(&fx, &sfc);
    let s = stream(&fx, sports);
    sleep(Duration::from_millis(300));
    let report = s.finish().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.received() > 0, "{report}");
    let echo_to = SocketAddr::new(DEST_IP.into(), 5001);
    let _echo = UdpEchoServer::start(&fx.topo.dest(), echo_to).unwrap();
    let echoed = udp_exchange(&fx.topo.source(), echo_to, 10).unwrap();
    assert!(echoed.echoed > 0, "{echoed:?}");

    let (_, settled_stats) = fx.settled(&sfc);
    let first = scrape(&fx.topo);
    let stats = sfc.stats();
    let flows = sfc.run(&["flows", "--json"]);
    let second = scrape(&fx.topo);
    let ctx = format!(
        "stats:\n{stats}\nmetrics:\n{}\ndaemon log:\n{}",
        indent(
            &first
                .samples
                .iter()
                .map(|s| format!("{} {:?} {}", s.name, s.labels, s.value))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        indent(&daemon.log())
    );
    assert_eq!(
        stats, settled_stats,
        "the counters moved after settling: {ctx}"
    );
    assert_eq!(first.samples, second.samples, "two scrapes differ: {ctx}");

    let families = [
        ("sfc_hop_packets_total", "counter"),
        ("sfc_hop_bytes_total", "counter"),
        ("sfc_drops_total", "counter"),
        ("sfc_interface_packets_total", "counter"),
        ("sfc_interface_recomputed_packets_total", "counter"),
        ("sfc_flows_created_total", "counter"),
        ("sfc_flows_capped_total", "counter"),
        ("sfc_flows_removed_total", "counter"),
        ("sfc_flows_evicted_total", "counter"),
        ("sfc_flow_table_entries", "gauge"),
        ("sfc_flow_table_capacity", "gauge"),
        ("sfc_port_pair_up", "gauge"),
        ("sfc_chains", "gauge"),
        ("sfc_failovers_total", "counter"),
        ("sfc_sf_latency_seconds", "histogram"),
        ("sfc_trace_events_total", "counter"),
        ("sfc_trace_events_lost_total", "counter"),
    ];
    for (family, kind) in families {
        assert_eq!(
            first.types.get(family).map(String::as_str),
            Some(kind),
            "# TYPE {family}: {ctx}"
        );
        assert!(
            first.help.get(family).is_some_and(|h| !h.is_empty()),
            "# HELP {family}: {ctx}"
        );
    }
    for s in &first.samples {
        // A histogram's samples are `<family>_bucket`, `_sum` and `_count`.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| s.name.strip_suffix(suffix).filter(|f| first.types.get(*f).is_some_and(|k| k == "histogram")))
            .unwrap_or(&s.name);
        assert!(
            first.types.contains_key(family),
            "sample {} has no TYPE: {ctx}",
            s.name
        );
    }

    assert_metrics_equal_stats(&first, &stats, &ctx);
    // Something was counted everywhere, so the comparison above was not of zeros.
    let by_member = stats.packets_by_port_pair();
    for pp in ["pp1", "pp2", "pp3"] {
        assert!(
            by_member.get(pp).is_some_and(|&n| n > 0),
            "no packets counted into {pp}: {ctx}"
        );
    }
    let counted: u64 = by_member.values().sum();
    for pp in ["pp1", "pp2", "pp3"] {
        assert_eq!(
            first.value("sfc_port_pair_up", &[("port_pair", pp)]),
            Some(1),
            "{ctx}"
        );
    }
    let flows: serde_json::Value = serde_json::from_str(&flows).unwrap();
    assert_eq!(
        first.value("sfc_flow_table_entries", &[]),
        flows["flows"].as_array().map(|f| f.len() as u64),
        "flow table entries vs sfc flows --json: {flows}: {ctx}"
    );
    assert_eq!(
        first.value("sfc_flow_table_capacity", &[]),
        flows["capacity"].as_u64(),
        "flow table capacity vs sfc flows --json: {ctx}"
    );

    let nope = sfc_tests::http::http_get_in(&fx.topo.hub(), METRICS, "/nope")
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(nope.status, 404, "{}\n{}", nope.head, nope.body);
    println!(
        "metrics_match_stats: {} samples agree with sfc stats --json ({} members, {} interfaces, \
         {counted} member packets); /nope -> {}",
        first.samples.len(),
        first
            .family("sfc_hop_packets_total")
            .iter()
            .filter(|s| s.labels["direction"] == "forward")
            .count(),
        stats.json["interfaces"].as_array().map_or(0, Vec::len),
        nope.status
    );
}
