//! Prometheus text exposition (format 0.0.4) of what the datapath counted. Pure: the daemon
//! (`sfc run`) gathers a `Snapshot` from the pinned maps, this only renders it. The counter
//! values are exactly those of `sfc stats --json` (the snapshot carries that very `Stats`).

use std::fmt::{Display, Write as _};

use crate::view::stats::{ChainStats, HopStats, IfaceStats, MemberStats, Stats};

/// `Content-Type` of the rendered text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape shows.
#[derive(Debug)]
pub struct Snapshot {
    pub stats: Stats,
    /// Every port pair of the applied model, and whether it serves (both interfaces up, and in
    /// its group).
    pub port_pairs_up: Vec<(String, bool)>,
}

/// A label value escaped as the text format wants: backslash, double quote and newline.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// One sample per (chain, hop, member) of `ch`; `value` picks the counter.
fn hop_samples(out: &mut Out, name: &str, ch: &ChainStats, value: impl Fn(&MemberStats) -> u64) {
    let chain_id = ch.chain_id.to_string();
    for (h, hop) in ch.hops.iter().enumerate() {
        let hop: &HopStats = hop;
        let h = h.to_string();
        for m in &hop.members {
            let labels = [
                ("chain", ch.name.as_str()),
                ("chain_id", chain_id.as_str()),
                ("hop", h.as_str()),
                ("group", hop.group.as_str()),
                ("port_pair", m.port_pair.as_str()),
            ];
            out.sample(name, &labels, value(m));
        }
    }
}

fn iface_samples(out: &mut Out, i: &IfaceStats) {
    for (kind, v) in [
        ("classified", i.classified),
        ("unclassified", i.unclassified),
        ("from_sf", i.from_sf),
        ("malformed", i.malformed),
        ("recomputed", i.recomputed),
    ] {
        out.sample("sfc_interface_packets_total", &[("interface", &i.name), ("kind", kind)], v);
    }
}

/// Which counter of a member a hop family shows.
type Pick = fn(&MemberStats) -> u64;

/// The exposition text of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = Out(String::new());
    let st = &s.stats;
    let hop_families: [(&str, &str, Pick); 4] = [
        ("sfc_hop_packets_total", "Packets sent into a port pair at a hop of a chain.", |m| m.packets),
        ("sfc_hop_bytes_total", "Bytes sent into a port pair at a hop of a chain.", |m| m.bytes),
        (
            "sfc_hop_reverse_packets_total",
            "Packets of the reverse direction of a symmetric chain sent into a port pair at a hop.",
            |m| m.reverse_packets,
        ),
        (
            "sfc_hop_reverse_bytes_total",
            "Bytes of the reverse direction of a symmetric chain sent into a port pair at a hop.",
            |m| m.reverse_bytes,
        ),
    ];
    for (name, help, pick) in hop_families {
        out.family(name, "counter", help);
        for ch in &st.chains {
            hop_samples(&mut out, name, ch, pick);
        }
    }

    out.family("sfc_drops_total", "counter", "Packets the datapath dropped, by reason.");
    for (reason, v) in &st.drops {
        out.sample("sfc_drops_total", &[("reason", reason)], v);
    }

    out.family(
        "sfc_interface_packets_total",
        "counter",
        "Packets the program saw on an interface: classified into a chain, left untouched (unclassified), back from a service function (from_sf), or unparsable (malformed); recomputed counts the packets back from a service function whose path was recomputed because their flow entry was gone (also in from_sf).",
    );
    for i in &st.interfaces {
        iface_samples(&mut out, i);
    }

    let f = &st.flow_table;
    for (name, kind, help, v) in [
        ("sfc_flow_table_entries", "gauge", "Flows in the flow table.", f.entries),
        ("sfc_flow_table_capacity", "gauge", "Flows the flow table can hold.", f.capacity),
        ("sfc_flows_created_total", "counter", "Flow entries the datapath created for new flows.", f.created),
        (
            "sfc_flows_capped_total",
            "counter",
            "New flows steered without a flow entry: over the new-flow rate cap (--new-flow-rate).",
            f.capped,
        ),
        ("sfc_flows_removed_total", "counter", "Flow entries sfc removed: aged out, closed, or flushed.", f.removed),
        (
            "sfc_flows_evicted_total",
            "counter",
            "Flow entries the table's LRU evicted to make room (created - removed - entries).",
            f.evicted,
        ),
    ] {
        out.family(name, kind, help);
        out.sample(name, &[], v);
    }

    out.family(
        "sfc_port_pair_up",
        "gauge",
        "1 when the port pair serves: both of its interfaces exist and are operationally up, and it is in its group (not taken out for a link down or unanswered health probes); else 0.",
    );
    for (pp, up) in &s.port_pairs_up {
        out.sample("sfc_port_pair_up", &[("port_pair", pp)], u8::from(*up));
    }

    out.family("sfc_chains", "gauge", "Port chains installed.");
    out.sample("sfc_chains", &[], st.chains.len());

    out.family("sfc_failovers_total", "counter", "Times a port pair went down and its flows moved to other members.");
    out.sample("sfc_failovers_total", &[], st.failovers);
    out.0
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::{Snapshot, escape, render};
    use crate::{
        datapath::flows::FlowTableStats,
        view::stats::{ChainStats, HopStats, IfaceStats, MemberStats, Stats},
    };

    fn member(name: &str, packets: u64, bytes: u64) -> MemberStats {
        MemberStats { port_pair: name.into(), packets, bytes, reverse_packets: packets / 2, reverse_bytes: bytes / 2 }
    }

    fn snapshot() -> Snapshot {
        let stats = Stats {
            chains: vec![ChainStats {
                name: "pc1".into(),
                chain_id: 1,
                hops: vec![
                    HopStats { group: "pg1".into(), members: vec![member("pp1", 10, 1000), member("pp2", 4, 400)] },
                    HopStats { group: "pg2".into(), members: vec![member("pp3", 14, 1400)] },
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
                recomputed: 0,
            }],
            failovers: 2,
            flow_table: FlowTableStats { entries: 2, capacity: 65_536, created: 9, capped: 1, removed: 3, evicted: 4 },
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
            r#"sfc_hop_packets_total{chain="pc1",chain_id="1",hop="0",group="pg1",port_pair="pp1"} 10"#,
            r#"sfc_hop_packets_total{chain="pc1",chain_id="1",hop="0",group="pg1",port_pair="pp2"} 4"#,
            r#"sfc_hop_packets_total{chain="pc1",chain_id="1",hop="1",group="pg2",port_pair="pp3"} 14"#,
            r#"sfc_hop_bytes_total{chain="pc1",chain_id="1",hop="1",group="pg2",port_pair="pp3"} 1400"#,
            r#"sfc_hop_reverse_packets_total{chain="pc1",chain_id="1",hop="0",group="pg1",port_pair="pp1"} 5"#,
            r#"sfc_hop_reverse_bytes_total{chain="pc1",chain_id="1",hop="0",group="pg1",port_pair="pp2"} 200"#,
            r#"sfc_drops_total{reason="no_member"} 3"#,
            r#"sfc_drops_total{reason="hop_limit"} 0"#,
            r#"sfc_interface_packets_total{interface="src-port",kind="classified"} 14"#,
            r#"sfc_interface_packets_total{interface="src-port",kind="unclassified"} 2"#,
            r#"sfc_interface_packets_total{interface="src-port",kind="from_sf"} 0"#,
            r#"sfc_interface_packets_total{interface="src-port",kind="malformed"} 1"#,
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
    }

    #[test]
    fn every_sample_has_help_and_type_and_counters_end_in_total() {
        let text = render(&snapshot());
        let mut typed = BTreeMap::new();
        let mut helped = BTreeSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none(), "{name} typed twice");
            } else if let Some(rest) = l.strip_prefix("# HELP ") {
                helped.insert(rest.split_once(' ').unwrap().0.to_owned());
            } else {
                let name = l.split(['{', ' ']).next().unwrap();
                let kind = typed.get(name).unwrap_or_else(|| panic!("sample before its TYPE: {l}"));
                assert!(helped.contains(name), "no HELP for {name}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
                let value = l.rsplit(' ').next().unwrap();
                assert!(value.parse::<u64>().is_ok(), "value of {l}");
            }
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
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
            },
            port_pairs_up: vec![],
        };
        let text = render(&s);
        assert!(text.contains("\nsfc_chains 0\n"));
        assert!(text.contains("# TYPE sfc_hop_packets_total counter\n"));
    }
}
