//! What tracing and SF timing cost a packet, in the micro benchmark's set-up (`Bench` with one
//! classifier): the `classify_and_steer` table's tracing rows.

use sfc::datapath;

use super::{Bench, SF_OUT, SRC, dst_of, median, ns, sandbox, test_run::REDIRECT, udp64};

/// Runs of one packet per sample when every run emits a trace event: the ring (1 MiB, 88-byte
/// events) holds them, and is drained between samples, so no event is lost to a full ring.
pub const TRACED_REPEAT: u32 = 5_000;
pub const TRACED_SAMPLES: usize = 21;

impl Bench {
    /// The median time per packet of `TRACED_SAMPLES` runs of `TRACED_REPEAT` with the trace
    /// configuration `conf`, the ring drained between runs; and the events received.
    fn traced(&self, ifindex: u32, packet: &[u8], conf: sfc_common::trace::TraceConf) -> (f64, u64) {
        datapath::trace::set_conf(&self.loc, conf).unwrap_or_else(|e| panic!("{e}"));
        let mut ring = datapath::trace::ring(&self.loc).unwrap_or_else(|e| panic!("{e}"));
        let mut events = 0;
        let mut drain = |ring: &mut aya::maps::RingBuf<aya::maps::MapData>| {
            while ring.next().is_some() {
                events += 1;
            }
        };
        let mut samples = Vec::new();
        for _ in 0..TRACED_SAMPLES {
            samples.push(ns(self.run(ifindex, packet, TRACED_REPEAT).1));
            drain(&mut ring);
        }
        datapath::trace::set_conf(&self.loc, sfc_common::trace::TraceConf::default()).unwrap_or_else(|e| panic!("{e}"));
        (median(samples), events)
    }
}

/// What tracing and SF timing cost a packet (one classifier; the known flow at its entry port,
/// and the same packet back from the SF): off, on with a filter nothing matches, on for every
/// packet (the ring drained between runs); and SF timing for every packet (both halves: the
/// stamp on the way in, the histogram on the way out). Markdown lines.
pub fn tracing_cost() -> Vec<String> {
    use sfc_common::trace::{TF_DPORT, TraceConf};
    let b = Bench::new(1);
    let (src, sf_out) = (sandbox::ifindex(SRC), sandbox::ifindex(SF_OUT));
    let p = udp64(dst_of(0), 1000);
    assert_eq!(b.run(src, &p, 1).0, REDIRECT, "the flow is steered");
    let on = TraceConf { enabled: 1, ..TraceConf::default() };
    let rows = [
        ("tracing off", TraceConf::default()),
        ("tracing on, a filter nothing matches (dport 9)", TraceConf { filters: TF_DPORT, dport: 9u16.to_be_bytes(), ..on }),
        ("tracing on, every packet", on),
        ("SF timing of every packet (--sf-latency-every 1), tracing off", TraceConf { latency_every: 1, ..TraceConf::default() }),
    ];
    let mut out = vec![
        "| tc program, 1 classifier | entry port ns | SF hop ns | events per run |".to_owned(),
        "|---|---:|---:|---:|".to_owned(),
    ];
    for (what, conf) in rows {
        let (entry, e1) = b.traced(src, &p, conf);
        let (hop, e2) = b.traced(sf_out, &p, conf);
        let runs = 2 * TRACED_REPEAT * u32::try_from(TRACED_SAMPLES).expect("few samples");
        let per_run = u32::try_from(e1 + e2).map_or(f64::NAN, f64::from) / f64::from(runs);
        eprintln!("bench_micro: {what}: entry {entry:.0} ns, SF hop {hop:.0} ns");
        out.push(format!("| {what} | {entry:.0} | {hop:.0} | {per_run:.2} |"));
    }
    out
}
