//! The metrics the daemon exports, in the `OpenMetrics` text format, encoded by
//! `prometheus-client`. Pure: the daemon (`sfc run`) gathers a `Snapshot` from the pinned maps,
//! this only renders it. The counter values are exactly those of `sfc stats --json` (the
//! snapshot carries that very `Stats`). Counters are registered without their `_total` suffix,
//! which the format adds to each sample: `# TYPE sfc_hop_packets counter` heads the samples
//! `sfc_hop_packets_total{...}`; a family with a unit is registered without it too, the crate
//! appends it and writes `# UNIT`. README.md's "Metrics" table documents every family.

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet, text::encode},
    metrics::MetricType,
    registry::{Registry, Unit},
};

use crate::view::stats::{ChainStats, MemberStats, Stats};

/// `Content-Type` of the rendered text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Everything one scrape shows.
#[derive(Debug)]
pub struct Snapshot {
    pub stats: Stats,
    /// Every port pair of the applied model, and whether it serves (both interfaces up, and in
    /// its group).
    pub port_pairs_up: Vec<(String, bool)>,
}

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// One family's samples, in the order given: values read from the maps at the scrape, so no
/// atomics, and a fixed order (the crate's `Family` is a hash map, whose order changes from one
/// scrape to the next).
#[derive(Debug)]
struct Samples {
    kind: MetricType,
    samples: Vec<(Labels, u64)>,
}

impl EncodeMetric for Samples {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let value = |e: &mut MetricEncoder<'_>, v: &u64| {
            if self.kind == MetricType::Counter { e.encode_counter::<NoLabelSet, _, u64>(v, None) } else { e.encode_gauge(v) }
        };
        for (l, v) in &self.samples {
            if l.is_empty() {
                value(&mut encoder, v)?;
            } else {
                value(&mut encoder.encode_family(l)?, v)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// A counter family (`name` without `_total`, which the format adds to each sample). The
/// encoder ends each help text with a period.
fn counters(r: &mut Registry, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, u64)>) {
    r.register(name, help.trim_end_matches('.'), Samples { kind: MetricType::Counter, samples: samples.into_iter().collect() });
}

fn gauges(r: &mut Registry, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, u64)>) {
    r.register(name, help.trim_end_matches('.'), Samples { kind: MetricType::Gauge, samples: samples.into_iter().collect() });
}

/// A counter family of bytes, `name` without `_bytes` (the crate appends the unit to the name and
/// writes `# UNIT`), nor `_total`.
fn byte_counters(r: &mut Registry, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, u64)>) {
    r.register_with_unit(name, help.trim_end_matches('.'), Unit::Bytes, Samples { kind: MetricType::Counter, samples: samples.into_iter().collect() });
}

/// An unlabelled counter.
fn counter(r: &mut Registry, name: &str, help: &str, v: u64) {
    counters(r, name, help, [(Labels::new(), v)]);
}

fn gauge(r: &mut Registry, name: &str, help: &str, v: u64) {
    gauges(r, name, help, [(Labels::new(), v)]);
}

/// The `direction` label of a hop sample: the chain's own direction, and the replies of a
/// symmetric chain.
const DIRECTIONS: [&str; 2] = ["forward", "reverse"];

/// Two samples per (chain, hop, member) of `chains`, one per [`DIRECTIONS`]; `value` picks the
/// member's counters in that order. Inline hops (`taps` false) or tap groups' copies (true).
fn hop_samples(chains: &[ChainStats], taps: bool, value: impl Fn(&MemberStats) -> [u64; 2]) -> Vec<(Labels, u64)> {
    let mut out = Vec::new();
    for ch in chains {
        let chain_id = ch.chain_id.to_string();
        for (h, hop) in ch.hops.iter().enumerate().filter(|(_, hop)| hop.tap == taps) {
            let h = h.to_string();
            for m in &hop.members {
                for (direction, v) in DIRECTIONS.into_iter().zip(value(m)) {
                    let l = labels(&[("chain", &ch.name), ("chain_id", &chain_id), ("hop", &h), ("group", &hop.group), ("port_pair", &m.port_pair), ("direction", direction)]);
                    out.push((l, v));
                }
            }
        }
    }
    out
}

/// A histogram family: per label set, per-bucket counts (not cumulative) with their upper bounds,
/// and the sum. Fixed order, like `Samples`.
/// One histogram: its labels, its sum, and (upper bound, count) per bucket.
type Histogram = (Labels, f64, Vec<(f64, u64)>);

#[derive(Debug)]
struct Histograms {
    samples: Vec<Histogram>,
}

impl EncodeMetric for Histograms {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (l, sum, buckets) in &self.samples {
            let count = buckets.iter().map(|(_, n)| n).sum();
            encoder.encode_family(l)?.encode_histogram::<NoLabelSet>(*sum, count, buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The SF latency histograms, one per (member, direction) with samples. The kernel keeps
/// counts per log2 bucket only, so `_sum` counts each sample at its bucket's middle (an
/// estimate within a factor of 1.5); the buckets are exact.
fn latency_samples(chains: &[ChainStats]) -> Vec<Histogram> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for m in chains.iter().flat_map(|c| &c.hops).flat_map(|h| &h.members) {
        if !seen.insert(m.port_pair.clone()) {
            continue;
        }
        for (direction, l) in DIRECTIONS.into_iter().zip([&m.latency, &m.reverse_latency]) {
            let Some(l) = l else { continue };
            let mut sum = 0.0;
            let buckets: Vec<(f64, u64)> = (0u32..)
                .zip(&l.buckets)
                .map(|(b, n)| {
                    let le = sfc_common::trace::latency_bucket_le(b);
                    let lower = if b == 0 { 0.0 } else { sfc_common::trace::latency_bucket_le(b - 1) };
                    let mid = if le.is_finite() { f64::midpoint(lower, le) } else { lower };
                    #[expect(clippy::cast_precision_loss, reason = "an estimate of the sum")]
                    let n_f = *n as f64;
                    sum += n_f * mid;
                    (le, *n)
                })
                .collect();
            out.push((labels(&[("port_pair", &m.port_pair), ("direction", direction)]), sum, buckets));
        }
    }
    out
}

/// The exposition text of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut r = Registry::default();
    let st = &s.stats;
    counters(
        &mut r,
        "sfc_hop_packets",
        "Packets sent into a port pair at a hop of a chain; direction reverse: the replies of a symmetric chain.",
        hop_samples(&st.chains, false, |m| [m.packets, m.reverse_packets]),
    );
    byte_counters(
        &mut r,
        "sfc_hop",
        "Bytes sent into a port pair at a hop of a chain; direction reverse: the replies of a symmetric chain.",
        hop_samples(&st.chains, false, |m| [m.bytes, m.reverse_bytes]),
    );
    counters(
        &mut r,
        "sfc_tap_packets",
        "Copies sent to a tap group's member at its hop of a chain (the packets themselves went on); direction reverse: the replies of a symmetric chain.",
        hop_samples(&st.chains, true, |m| [m.packets, m.reverse_packets]),
    );
    byte_counters(
        &mut r,
        "sfc_tap",
        "Bytes of the copies sent to a tap group's member.",
        hop_samples(&st.chains, true, |m| [m.bytes, m.reverse_bytes]),
    );
    counters(&mut r, "sfc_drops", "Packets the datapath dropped, by reason.", st.drops.iter().map(|(reason, v)| (labels(&[("reason", reason)]), *v)));
    // The kinds partition what the program saw, so their sum is every packet; recomputed is a
    // part of from_sf and has a family of its own, or that sum would count it twice.
    let iface = st.interfaces.iter().flat_map(|i| {
        [("classified", i.classified), ("unclassified", i.unclassified), ("from_sf", i.from_sf), ("malformed", i.malformed)]
            .map(|(kind, v)| (labels(&[("interface", &i.name), ("kind", kind)]), v))
    });
    counters(
        &mut r,
        "sfc_interface_packets",
        "Packets the program saw on an interface: classified into a chain, left untouched (unclassified), back from a service function (from_sf), or unparsable (malformed).",
        iface,
    );
    counters(
        &mut r,
        "sfc_interface_recomputed_packets",
        "Packets back from a service function on an interface whose path was recomputed because their flow entry was gone (part of kind from_sf of sfc_interface_packets_total).",
        st.interfaces.iter().map(|i| (labels(&[("interface", &i.name)]), i.recomputed)),
    );
    let f = &st.flow_table;
    gauge(&mut r, "sfc_flow_table_entries", "Flows in the flow table.", f.entries);
    gauge(&mut r, "sfc_flow_table_capacity", "Flows the flow table can hold.", f.capacity);
    counter(&mut r, "sfc_flows_created", "Flow entries the datapath created for new flows.", f.created);
    counter(&mut r, "sfc_flows_capped", "New flows steered without a flow entry: over the new-flow rate cap (--new-flow-rate).", f.capped);
    counter(&mut r, "sfc_flows_removed", "Flow entries sfc removed: aged out, closed, or flushed.", f.removed);
    counter(&mut r, "sfc_flows_evicted", "Flow entries the table's LRU evicted to make room (created - removed - entries).", f.evicted);
    gauges(
        &mut r,
        "sfc_port_pair_up",
        "1 when the port pair serves: both of its interfaces exist and are operationally up, and it is in its group (not taken out for a link down, unanswered health probes, or a MAC behind it not known yet); else 0.",
        s.port_pairs_up.iter().map(|(pp, up)| (labels(&[("port_pair", pp)]), u64::from(*up))),
    );
    gauge(&mut r, "sfc_chains", "Port chains installed.", st.chains.len() as u64);
    counter(&mut r, "sfc_failovers", "Times a port pair went down and its flows moved to other members.", st.failovers);
    r.register_with_unit(
        "sfc_sf_latency",
        "Time sampled packets spend inside a service function, from being sent into its ingress to coming back out of its egress (1 packet in --sf-latency-every; log2 buckets; _sum estimated from the bucket middles)",
        Unit::Seconds,
        Histograms { samples: latency_samples(&st.chains) },
    );
    counter(&mut r, "sfc_trace_events", "Events sfc trace received from the datapath.", st.trace.emitted);
    counters(
        &mut r,
        "sfc_trace_events_lost",
        "Trace events lost: over the per-CPU budget (budget) or to a full ring buffer (ring_full).",
        [(labels(&[("reason", "budget")]), st.trace.lost_budget), (labels(&[("reason", "ring_full")]), st.trace.lost_ring_full)],
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{Snapshot, render};
    use crate::{
        view::stats::FlowTableStats,
        view::stats::{ChainStats, HopStats, IfaceStats, MemberStats, Stats},
    };

    fn member(name: &str, packets: u64, bytes: u64) -> MemberStats {
        let mut buckets = vec![0u64; 32];
        buckets[3] = packets;
        let latency = crate::view::stats::Latency { samples: packets, p50_seconds: 16.0 * 1024e-9, p99_seconds: 16.0 * 1024e-9, buckets };
        MemberStats { port_pair: name.into(), packets, bytes, reverse_packets: packets / 2, reverse_bytes: bytes / 2, latency: Some(latency), reverse_latency: None }
    }

    fn snapshot() -> Snapshot {
        let stats = Stats {
            chains: vec![ChainStats {
                name: "pc1".into(),
                chain_id: 1,
                hops: vec![
                    HopStats { group: "pg1".into(), tap: false, members: vec![member("pp1", 10, 1000), member("pp2", 4, 400)] },
                    HopStats { group: "pg2".into(), tap: false, members: vec![member("pp3", 14, 1400)] },
                    HopStats { group: "pgt".into(), tap: true, members: vec![member("pp4", 6, 600)] },
                ],
            }],
            drops: BTreeMap::from([("no_member", 3), ("hop_limit", 0)]),
            interfaces: vec![IfaceStats {
                name: "src-port".into(),
                ifindex: 5,
                classified: 14,
                unclassified: 2,
                from_sf: 0,
                malformed: 1,
                recomputed: 7,
            }],
            failovers: 2,
            flow_table: FlowTableStats { entries: 2, capacity: 65_536, created: 9, capped: 1, removed: 3, evicted: 4 },
            trace: crate::datapath::trace::TraceStats::default(),
        };
        Snapshot {
            stats,
            port_pairs_up: vec![("pp1".into(), true), ("pp2".into(), false)],
        }
    }

    #[test]
    fn renders_every_family_with_the_stats_values() {
        let text = render(&snapshot());
        for line in [
            r#"sfc_hop_packets_total{chain="pc1",chain_id="1",hop="0",group="pg1",port_pair="pp1",direction="forward"} 10"#,
            r#"sfc_tap_packets_total{chain="pc1",chain_id="1",hop="2",group="pgt",port_pair="pp4",direction="forward"} 6"#,
            r#"sfc_tap_bytes_total{chain="pc1",chain_id="1",hop="2",group="pgt",port_pair="pp4",direction="forward"} 600"#,
            r#"sfc_hop_packets_total{chain="pc1",chain_id="1",hop="0",group="pg1",port_pair="pp2",direction="forward"} 4"#,
            r#"sfc_hop_packets_total{chain="pc1",chain_id="1",hop="1",group="pg2",port_pair="pp3",direction="forward"} 14"#,
            r#"sfc_hop_bytes_total{chain="pc1",chain_id="1",hop="1",group="pg2",port_pair="pp3",direction="forward"} 1400"#,
            r#"sfc_hop_packets_total{chain="pc1",chain_id="1",hop="0",group="pg1",port_pair="pp1",direction="reverse"} 5"#,
            r#"sfc_hop_bytes_total{chain="pc1",chain_id="1",hop="0",group="pg1",port_pair="pp2",direction="reverse"} 200"#,
            "# UNIT sfc_hop_bytes bytes",
            r#"sfc_drops_total{reason="no_member"} 3"#,
            r#"sfc_drops_total{reason="hop_limit"} 0"#,
            r#"sfc_interface_packets_total{interface="src-port",kind="classified"} 14"#,
            r#"sfc_interface_packets_total{interface="src-port",kind="unclassified"} 2"#,
            r#"sfc_interface_packets_total{interface="src-port",kind="from_sf"} 0"#,
            r#"sfc_interface_packets_total{interface="src-port",kind="malformed"} 1"#,
            r#"sfc_interface_recomputed_packets_total{interface="src-port"} 7"#,
            "sfc_flow_table_entries 2",
            "sfc_flow_table_capacity 65536",
            "sfc_flows_created_total 9",
            "sfc_flows_capped_total 1",
            "sfc_flows_removed_total 3",
            "sfc_flows_evicted_total 4",
            r#"sfc_port_pair_up{port_pair="pp1"} 1"#,
            r#"sfc_port_pair_up{port_pair="pp2"} 0"#,
            "sfc_chains 1",
            "sfc_failovers_total 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains(r#"kind="recomputed""#), "recomputed is not a kind (it is part of from_sf): {text}");
    }

    #[test]
    fn every_sample_has_help_and_type_and_counters_end_in_total() {
        let text = render(&snapshot());
        let mut typed = BTreeMap::new();
        let mut helped = BTreeSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# UNIT ") {
                let (name, unit) = rest.split_once(' ').unwrap();
                assert!(name.ends_with(&format!("_{unit}")), "{name} does not end with its unit {unit}");
            } else if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none(), "{name} typed twice");
            } else if let Some(rest) = l.strip_prefix("# HELP ") {
                helped.insert(rest.split_once(' ').unwrap().0.to_owned());
            } else if l != "# EOF" {
                // A counter family `x` has the samples `x_total`, a histogram `x_bucket`,
                // `x_sum` and `x_count` (OpenMetrics).
                let name = l.split(['{', ' ']).next().unwrap();
                let histogram = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix).filter(|f| typed.get(*f).is_some_and(|k| k == "histogram")));
                let family = histogram
                    .or_else(|| name.strip_suffix("_total").filter(|f| typed.get(*f).is_some_and(|k| k == "counter")))
                    .unwrap_or(name);
                let kind = typed.get(family).unwrap_or_else(|| panic!("sample before its TYPE: {l}"));
                assert!(helped.contains(family), "no HELP for {family}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
                let value = l.rsplit(' ').next().unwrap();
                if name.ends_with("_sum") && histogram.is_some() {
                    assert!(value.parse::<f64>().is_ok_and(|v| v >= 0.0), "value of {l}");
                } else {
                    assert!(value.parse::<u64>().is_ok(), "value of {l}");
                }
            }
        }
        assert!(text.ends_with("\n# EOF\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = snapshot();
        s.port_pairs_up = vec![("we\"ird".into(), true)];
        assert!(render(&s).contains(r#"sfc_port_pair_up{port_pair="we\"ird"} 1"#));
    }

    #[test]
    fn empty_datapath_still_renders_gauges() {
        let s = Snapshot {
            stats: Stats {
                chains: vec![],
                drops: BTreeMap::new(),
                interfaces: vec![],
                failovers: 0,
                flow_table: FlowTableStats { capacity: 1024, ..FlowTableStats::default() },
                trace: crate::datapath::trace::TraceStats::default(),
            },
            port_pairs_up: vec![],
        };
        let text = render(&s);
        assert!(text.contains("\nsfc_chains 0\n"));
        assert!(text.contains("# TYPE sfc_hop_packets counter\n"), "{text}");
        assert!(text.contains("# HELP sfc_chains Port chains installed.\n# TYPE sfc_chains gauge\n"), "{text}");
    }
}
