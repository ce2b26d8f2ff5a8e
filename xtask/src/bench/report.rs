//! Results: medians per path, the table with ratios against the direct path, the notes on
//! paths against each other, and the goal checks. Where they go: `document`.

use std::fmt::Write as _;

use super::paths::Spec;

/// Goals from the issue, for sfc tc mode.
const GOAL_PPS_VS_DIRECT: f64 = 0.65;
const GOAL_PPS_VS_POLICY: f64 = 2.0;
const GOAL_PPS_VS_OVS: f64 = 3.0;
const GOAL_TCP_VS_DIRECT: f64 = 0.80;
const GOAL_US_PER_HOP: f64 = 1.0;
/// Against the limit of tc steering here, path (f) (issue 17).
const GOAL_PPS_VS_LIMIT: f64 = 0.90;
const GOAL_TCP_VS_LIMIT: f64 = 0.95;
const GOAL_US_PER_HOP_VS_LIMIT: f64 = 0.2;

/// Every sample of one path.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Highest rate carried with at most `udp::MAX_LOSS` lost.
    pub pps: Vec<f64>,
    /// Some repetition lost nothing even flat out: the path may carry more than the sender sent.
    pub sender_limited: bool,
    pub flat_out_offered: Vec<f64>,
    pub flat_out_delivered: Vec<f64>,
    pub gbps: Vec<f64>,
    pub p50: Vec<f64>,
    pub p99: Vec<f64>,
    /// Measurements that failed, with why.
    pub errors: Vec<String>,
    /// The path's BPF programs at the carried rate, per UDP measurement that had them.
    pub bpf: Vec<super::progs::Profile>,
    /// The path's core by symbol while it carried UDP (`--profile`, first repetition).
    pub perf: Option<super::perf::Symbols>,
    /// pps, TCP and RTT p50 by repetition (`None`: that repetition's measurement failed), for
    /// comparing two paths repetition by repetition.
    pub by_rep: ByRep,
}

/// One path's pps, TCP and RTT p50 in each repetition it was measured in, in order.
#[derive(Debug, Clone, Default)]
pub struct ByRep {
    pub pps: Vec<Option<f64>>,
    pub gbps: Vec<Option<f64>>,
    pub p50: Vec<Option<f64>>,
}

/// One path's medians; `None` where no sample succeeded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Medians {
    pub pps: Option<f64>,
    pub sender_limited: bool,
    pub flat_out_offered: Option<f64>,
    pub flat_out_delivered: Option<f64>,
    pub gbps: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

pub fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some(f64::midpoint(v[n / 2 - 1], v[n / 2])),
    }
}

impl Samples {
    pub fn medians(&self) -> Medians {
        Medians {
            pps: median(&self.pps),
            sender_limited: self.sender_limited,
            flat_out_offered: median(&self.flat_out_offered),
            flat_out_delivered: median(&self.flat_out_delivered),
            gbps: median(&self.gbps),
            p50: median(&self.p50),
            p99: median(&self.p99),
        }
    }
}

/// A path's row: measured (its medians and every sample), or not available with a reason.
pub enum Row {
    Measured(Spec, Medians, Box<Samples>),
    Unavailable(Spec, String),
}

impl Row {
    fn spec(&self) -> &Spec {
        match self {
            Row::Measured(s, ..) | Row::Unavailable(s, _) => s,
        }
    }

    fn medians(&self) -> Option<&Medians> {
        match self {
            Row::Measured(_, m, _) => Some(m),
            Row::Unavailable(..) => None,
        }
    }
}

fn samples_of<'a>(rows: &'a [Row], key: &str) -> Option<&'a Samples> {
    rows.iter().find_map(|r| match r {
        Row::Measured(spec, _, s) if spec.key == key => Some(&**s),
        _ => None,
    })
}

/// (d) against (f) repetition by repetition: both ran within the same repetition (the paths
/// interleaved), so a ratio of one repetition is less at the mercy of the machine's load
/// drifting over the run than the ratio of the medians. Empty without both paths; a repetition
/// of a metric that failed on either is left out. With the flow-keeping floor (g), also (g)
/// against (f) and (d) against (g), in the repetitions (g) was measured in.
pub fn paired_note(rows: &[Row]) -> String {
    let mut lines = Vec::new();
    if let Some(parts) = paired(rows, "d", "f") {
        lines.push(format!("(d) against (f) repetition by repetition (both measured within each): {parts}."));
    }
    for (a, b) in [("g", "f"), ("d", "g")] {
        if let Some(parts) = paired(rows, a, b) {
            lines.push(format!("({a}) against ({b}), the same way: {parts}."));
        }
    }
    lines.join("\n")
}

/// Path `a`'s measurements against `b`'s, repetition by repetition: pps and TCP as ratios, the
/// latency as the difference per hop. `None` without both paths or any pair.
fn paired(rows: &[Row], a: &str, b: &str) -> Option<String> {
    let (x_a, x_b) = (samples_of(rows, a)?, samples_of(rows, b)?);
    let pair = |a: &[Option<f64>], b: &[Option<f64>], cmp: fn(f64, f64) -> f64, fmt: fn(f64) -> String| -> Option<String> {
        // Repetition by repetition; one where either failed (or was not measured) is left out.
        let v: Vec<f64> = a.iter().zip(b).filter_map(|(a, b)| Some(cmp((*a)?, (*b)?))).collect();
        let each = v.iter().map(|x| fmt(*x)).collect::<Vec<_>>().join(", ");
        Some(format!("{each} (median {})", fmt(median(&v)?)))
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let per_hop = |a: f64, b: f64| (a - b) / f64::from(super::topo::HOPS);
    let x = |v: f64| format!("{v:.2}x");
    let us = |v: f64| format!("{v:+.2} us");
    let above = format!("latency per hop above ({b})");
    let parts: Vec<String> = [
        ("pps", pair(&x_a.by_rep.pps, &x_b.by_rep.pps, ratio, x)),
        ("TCP", pair(&x_a.by_rep.gbps, &x_b.by_rep.gbps, ratio, x)),
        (above.as_str(), pair(&x_a.by_rep.p50, &x_b.by_rep.p50, per_hop, us)),
    ]
    .into_iter()
    .filter_map(|(what, v)| Some(format!("{what} {}", v?)))
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn by_key<'a>(rows: &'a [Row], key: &str) -> Option<&'a Medians> {
    rows.iter().find(|r| r.spec().key == key)?.medians()
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn times(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}x"))
}

/// The results table (Markdown), ratios against the first row.
pub fn table(rows: &[Row]) -> String {
    let base = rows
        .first()
        .and_then(Row::medians)
        .copied()
        .unwrap_or_default();
    let base_key = rows.first().map_or("a", |r| r.spec().key);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| path | UDP 64 B kpps | vs ({base_key}) | TCP Gbit/s | vs ({base_key}) | RTT p50 us | RTT p99 us | added p50 per hop us |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let spec = row.spec();
        let label = format!("({}) {}", spec.key, spec.title);
        match row {
            Row::Unavailable(_, why) => {
                let _ = writeln!(out, "| {label} | n/a: {why} | | | | | | |");
            }
            Row::Measured(_, m, _) => {
                let per_hop = match (m.p50, base.p50) {
                    (Some(p), Some(b)) if spec.hops > 0 => Some((p - b) / f64::from(spec.hops)),
                    _ => None,
                };
                let at_least = if m.sender_limited { ">= " } else { "" };
                let pps = format!("{at_least}{}", num(m.pps.map(|p| p / 1e3), 0));
                let _ = writeln!(
                    out,
                    "| {label} | {pps} | {} | {} | {} | {} | {} | {} |",
                    times(ratio(m.pps, base.pps)),
                    num(m.gbps, 1),
                    times(ratio(m.gbps, base.gbps)),
                    num(m.p50, 1),
                    num(m.p99, 1),
                    num(per_hop, 2),
                );
            }
        }
    }
    out
}

/// The flat-out figures per path: how fast the sender went, and what arrived of it.
pub fn flat_out_note(rows: &[Row]) -> String {
    let parts: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let m = r.medians()?;
            Some(format!(
                "({}) {} / {}",
                r.spec().key,
                num(m.flat_out_offered.map(|p| p / 1e3), 0),
                num(m.flat_out_delivered.map(|p| p / 1e3), 0)
            ))
        })
        .collect();
    format!(
        "UDP sent flat out, kpps offered / arrived: {}. \">= \" marks a path that lost nothing \
         even flat out (the sender, not the path, was the limit).",
        parts.join(", ")
    )
}

/// Time in BPF programs per delivered packet, per path that runs any (medians over the UDP
/// measurements), against the time the path's core has per packet at the carried rate.
pub fn bpf_note(rows: &[Row]) -> String {
    let parts: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let Row::Measured(spec, m, s) = r else { return None };
            let per_packet = median(&s.bpf.iter().map(|p| p.ns_per_packet).collect::<Vec<_>>()).filter(|ns| *ns > 0.0)?;
            let runs = median(&s.bpf.iter().map(|p| p.runs_per_packet).collect::<Vec<_>>()).unwrap_or(0.0);
            let per_run = median(&s.bpf.iter().map(|p| p.ns_per_run).collect::<Vec<_>>()).unwrap_or(0.0);
            let budget = m.pps.filter(|p| *p > 0.0).map_or_else(String::new, |p| format!(" of the {:.0} ns the path's core has per packet", 1e9 / p));
            Some(format!("({}) {per_packet:.0} ns ({runs:.1} runs of {per_run:.0} ns){budget}", spec.key))
        })
        .collect();
    if parts.is_empty() {
        return "Time in BPF programs: no path had kernel BPF statistics.".to_owned();
    }
    format!(
        "Time in BPF programs per packet delivered, at the carried rate (the kernel's BPF statistics, \
         run count and run time per program, in a probe of its own after each UDP measurement; \
         medians): {}. The rest of the path's time per packet is the kernel's: veth transmit and \
         receive, the backlog, routing in the service functions, the redirects.",
        parts.join(", ")
    )
}

/// The profile of each path's core (`--profile`); `None` when no path was profiled.
pub fn perf_note(rows: &[Row]) -> Option<String> {
    let parts: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let Row::Measured(spec, _, s) = r else { return None };
            let p = s.perf.as_ref()?;
            let lines = if p.1.shares.is_empty() {
                String::new()
            } else {
                format!("\n  sfc's hottest source lines ({} samples in its programs): {}", p.1.samples, p.top_lines(8).join(", "))
            };
            Some(format!(
                "- ({}): BPF programs {:.1} %, the kernel's hash-map code {:.1} %; largest: {}{lines}",
                spec.key,
                p.programs(),
                p.map_code(),
                p.top(8).join(", ")
            ))
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "Profile of the path's core while each path carried UDP at its rate (`--profile`: perf by \
             cpu-clock, a probe of its own after the first repetition's measurement; shares of all \
             the core's samples):\n\n{}",
            parts.join("\n")
        )
    })
}

/// What the tap path (t) measures, with its figures against (d).
pub fn tap_note(rows: &[Row]) -> String {
    let r = |m: Metric| against_d(rows, "t", m);
    format!(
        "Path (t) is (d) with the service functions behind taps, each NIC's frames copied by a \
         userspace thread (`sfc_tests::tap::TapPump`: one read and one write per frame, as \
         qemu's userspace virtio-net backend does; vhost-net does it in the kernel, faster). Its \
         figures are that pump's limit, not sfc's: sfc does the same work per hop on a tap as \
         on a veth, with `bpf_redirect` into the tap instead of `bpf_redirect_peer`. (t) vs (d) \
         (in the repetitions both were measured in): pps {}, TCP {}, RTT p50 {}.",
        times(r(Metric::Pps).map(|(v, d)| v / d)),
        times(r(Metric::Gbps).map(|(v, d)| v / d)),
        times(r(Metric::P50).map(|(v, d)| v / d)),
    )
}

/// Which of `ByRep`'s metrics.
#[derive(Clone, Copy)]
enum Metric {
    Pps,
    Gbps,
    P50,
}

/// The median of variant `key`'s `m` and the median of (d)'s in the same repetitions (a variant
/// measured in the first repetition only is compared with (d)'s first, not its median).
fn against_d(rows: &[Row], key: &str, m: Metric) -> Option<(f64, f64)> {
    let pick = |s: &Samples| match m {
        Metric::Pps => s.by_rep.pps.clone(),
        Metric::Gbps => s.by_rep.gbps.clone(),
        Metric::P50 => s.by_rep.p50.clone(),
    };
    let (v, d) = (pick(samples_of(rows, key)?), pick(samples_of(rows, "d")?));
    let both: Vec<(f64, f64)> = v.iter().zip(&d).filter_map(|(v, d)| Some(((*v)?, (*d)?))).collect();
    let (v, d): (Vec<f64>, Vec<f64>) = both.into_iter().unzip();
    Some((median(&v)?, median(&d)?))
}

/// What tracing costs the datapath, from paths (d1) and (d2) against (d).
pub fn trace_note(rows: &[Row]) -> String {
    let r = |key: &str| times(against_d(rows, key, Metric::Pps).map(|(v, d)| v / d));
    let added = |key: &str| against_d(rows, key, Metric::P50).map_or_else(|| "-".to_owned(), |(v, d)| format!("{:+.1} us", v - d));
    format!(
        "What tracing costs (`sfc trace` running on (d)'s datapath the whole time; TCP not \
         measured on these; against (d) in the repetitions both were measured in): with a filter \
         no packet matches (d1) vs (d): pps {}, RTT p50 {}; \
         every packet traced, four events each (one per hop decision: into each of the three \
         members, then the delivery) read by `sfc trace --json` into /dev/null (d2) vs (d): pps {}, RTT p50 {}. The reader is not pinned: on \
         this two-core machine it competes with the sender or the path for a core, which is part \
         of what (d2) measures. The per-packet cost in the program alone is in the micro \
         benchmark's tracing rows.",
        r("d1"),
        added("d1"),
        r("d2"),
        added("d2"),
    )
}

/// The goals for sfc tc mode (path d), against what was measured.
pub fn goals(rows: &[Row]) -> String {
    let direct = by_key(rows, "a");
    let (policy, ovs, tc) = (by_key(rows, "b"), by_key(rows, "c"), by_key(rows, "d"));
    let get = |m: Option<&Medians>, f: fn(&Medians) -> Option<f64>| m.and_then(f);
    let pps = |m: &Medians| m.pps;
    let mut out = String::new();
    let mut line = |what: &str, value: Option<f64>, goal: f64, at_least: bool, unit: &str| {
        let verdict = match value {
            None => "not measured",
            Some(value) if (at_least && value >= goal) || (!at_least && value <= goal) => "reached",
            Some(_) => "short",
        };
        let cmp = if at_least { ">=" } else { "<=" };
        let _ = writeln!(
            out,
            "- {what}: {}{unit} (goal {cmp} {goal}{unit}): **{verdict}**",
            num(value, 2)
        );
    };
    line(
        "sfc tc pps through 3 hops vs direct (a)",
        ratio(get(tc, pps), get(direct, pps)),
        GOAL_PPS_VS_DIRECT,
        true,
        "x",
    );
    line(
        "sfc tc pps vs policy routing (b)",
        ratio(get(tc, pps), get(policy, pps)),
        GOAL_PPS_VS_POLICY,
        true,
        "x",
    );
    line(
        "sfc tc pps vs OVS userspace (c)",
        ratio(get(tc, pps), get(ovs, pps)),
        GOAL_PPS_VS_OVS,
        true,
        "x",
    );
    line(
        "sfc tc TCP vs direct (a)",
        ratio(get(tc, |m| m.gbps), get(direct, |m| m.gbps)),
        GOAL_TCP_VS_DIRECT,
        true,
        "x",
    );
    let per_hop = match (get(tc, |m| m.p50), get(direct, |m| m.p50)) {
        (Some(with), Some(without)) => Some((with - without) / f64::from(super::topo::HOPS)),
        _ => None,
    };
    line(
        "sfc tc added latency per hop (p50 RTT)",
        per_hop,
        GOAL_US_PER_HOP,
        false,
        " us",
    );
    // Against the limit of tc steering on this topology, path (f).
    let limit = by_key(rows, "f");
    line("sfc tc pps vs minimal tc steering (f)", ratio(get(tc, pps), get(limit, pps)), GOAL_PPS_VS_LIMIT, true, "x");
    line("sfc tc TCP vs minimal tc steering (f)", ratio(get(tc, |m| m.gbps), get(limit, |m| m.gbps)), GOAL_TCP_VS_LIMIT, true, "x");
    let over_limit = match (get(tc, |m| m.p50), get(limit, |m| m.p50)) {
        (Some(with), Some(min)) => Some((with - min) / f64::from(super::topo::HOPS)),
        _ => None,
    };
    line("sfc tc latency per hop above minimal tc steering (f)", over_limit, GOAL_US_PER_HOP_VS_LIMIT, false, " us");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn d_and_f_are_compared_repetition_by_repetition() {
        let spec = |key: &str| super::super::paths::all().into_iter().find(|s| s.key == key).expect("a path");
        let some = |v: &[f64]| v.iter().map(|x| (!x.is_nan()).then_some(*x)).collect::<Vec<_>>();
        let row = |key: &str, pps: &[f64], p50: &[f64], gbps: &[f64]| {
            let by_rep = ByRep { pps: some(pps), gbps: some(gbps), p50: some(p50) };
            let flat = |v: &[f64]| v.iter().copied().filter(|x| !x.is_nan()).collect::<Vec<_>>();
            let s = Samples { pps: flat(pps), p50: flat(p50), gbps: flat(gbps), by_rep, ..Samples::default() };
            Row::Measured(spec(key), s.medians(), Box::new(s))
        };
        let nan = f64::NAN;
        // TCP: (d) failed in repetition 1 and (f) in 3: same number of samples, nothing to pair
        // but repetition 2.
        let rows = [
            row("d", &[90.0, 50.0, 80.0], &[16.0, 17.0, 18.0], &[nan, 2.0, 1.0]),
            row("f", &[100.0, 100.0, 80.0], &[15.0, 15.0, 15.0], &[1.0, 4.0, nan]),
        ];
        let note = paired_note(&rows);
        // Medians of each would say 0.80x; pairs say 0.90, 0.50, 1.00.
        assert!(note.contains("pps 0.90x, 0.50x, 1.00x (median 0.90x)"), "{note}");
        let hops = f64::from(super::super::topo::HOPS);
        let us = |v: f64| format!("{:+.2} us", v / hops);
        assert!(note.contains(&format!("latency per hop above (f) {}, {}, {} (median {})", us(1.0), us(2.0), us(3.0), us(2.0))), "{note}");
        assert!(note.contains("TCP 0.50x (median 0.50x)"), "{note}");
        // A variant against (d) in the repetitions both have: here all three, medians 100 and 80.
        assert_eq!(against_d(&rows, "f", Metric::Pps), Some((100.0, 80.0)));
        assert_eq!(paired_note(&rows[..1]), "");
        // The floor (g), measured in the first repetition only and without TCP: one pair each.
        let mut rows = Vec::from(rows);
        rows.push(row("g", &[90.0], &[15.5], &[]));
        let note = paired_note(&rows);
        assert!(note.contains(&format!("(g) against (f), the same way: pps 0.90x (median 0.90x); latency per hop above (f) {}", us(0.5))), "{note}");
        assert!(note.contains("(d) against (g), the same way: pps 1.00x (median 1.00x)"), "{note}");
        assert!(!note.contains("(g) against (f), the same way: pps 0.90x (median 0.90x); TCP"), "no TCP pair without TCP: {note}");
    }

    #[test]
    fn bpf_time_is_reported_for_the_paths_that_run_programs() {
        let spec = |key: &str| super::super::paths::all().into_iter().find(|s| s.key == key).expect("a path");
        let prof = |ns: f64| super::super::progs::Profile { runs_per_packet: 4.0, ns_per_run: ns / 4.0, ns_per_packet: ns, ..Default::default() };
        let row = |key: &str, pps: f64, bpf: Vec<super::super::progs::Profile>| {
            let s = Samples { pps: vec![pps], bpf, ..Samples::default() };
            Row::Measured(spec(key), s.medians(), Box::new(s))
        };
        let rows = [row("a", 500_000.0, vec![prof(0.0)]), row("d", 250_000.0, vec![prof(800.0), prof(600.0), prof(700.0)]), row("f", 400_000.0, vec![prof(160.0)])];
        let note = bpf_note(&rows);
        assert!(note.contains("(d) 700 ns (4.0 runs of 175 ns) of the 4000 ns"), "{note}");
        assert!(note.contains("(f) 160 ns (4.0 runs of 40 ns) of the 2500 ns"), "{note}");
        assert!(!note.contains("(a)"), "a path without programs: {note}");
        assert!(bpf_note(&rows[..1]).contains("no path had"));
    }
}
