//! A steady-rate, sequence-numbered UDP stream from a topology's source to its dest that
//! reports every missing datagram and when each one was sent and arrived, and the kernel's own
//! drop counters to read beside it.

use std::{
    fmt::{self, Write as _},
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::{
    Topology,
    netns::{self, spawn_in_netns},
    topology::{DEST_IP, SOURCE_IP},
};

/// Destination port of [`SeqStream`] datagrams.
pub const STREAM_PORT: u16 = 5000;
/// Every stream datagram: magic, stream id, sequence number, padding.
const DATAGRAM_LEN: usize = 64;
const MAGIC: [u8; 4] = *b"sfcS";
/// Most datagrams one stream sends (a bound on memory and time whatever the caller asks).
const MAX_DATAGRAMS: u64 = 200_000;
/// After the sender stopped, the receiver waits this long without a new datagram...
const DRAIN_QUIET: Duration = Duration::from_millis(300);
/// ...but at most this long.
const DRAIN_LIMIT: Duration = Duration::from_secs(3);
const RECV_POLL: Duration = Duration::from_millis(10);

/// What to send: `rate` datagrams per second in total, round robin over one socket per source
/// port in `sports` (one 5-tuple each), from source to dest:[`STREAM_PORT`], for at most `limit`.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub rate: u32,
    pub sports: Vec<u16>,
    pub limit: Duration,
}

/// A sequence-numbered UDP stream from the topology's source to its dest, sent at a steady
/// rate by a thread in the source namespace and received by one in the dest namespace. Stopped
/// (both threads joined) by [`SeqStream::finish`], or when dropped.
pub struct SeqStream {
    spec: StreamSpec,
    started: Instant,
    /// [`backlog_drops`] when the stream started.
    backlog_drops_before: u64,
    stop_sender: Arc<AtomicBool>,
    stop_receiver: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    /// Each thread's result inside the result of entering its namespace.
    sender: Option<JoinHandle<Result<Result<SenderLog>>>>,
    receiver: Option<JoinHandle<Result<Result<ReceiverLog>>>>,
}

#[derive(Debug, Default)]
struct SenderLog {
    /// When datagram `seq` was handed to the kernel (index = seq).
    sent_at: Vec<Instant>,
    /// Sequence numbers whose `send_to` failed, and why.
    failures: Vec<(u64, String)>,
}

#[derive(Debug, Default)]
struct ReceiverLog {
    arrived_at: Vec<Option<Instant>>,
    duplicates: u64,
    /// Datagrams on the port that are not this stream's.
    foreign: u64,
}

impl SeqStream {
    /// Starts the receiver in `dest_ns` (bound to dest:[`STREAM_PORT`]), then the sender in
    /// `source_ns`.
    pub fn start(source_ns: &str, dest_ns: &str, spec: StreamSpec) -> Result<SeqStream> {
        if spec.rate == 0 || spec.sports.is_empty() {
            bail!("a stream needs a rate and at least one source port: {spec:?}");
        }
        let id = stream_id();
        let stop_sender = Arc::new(AtomicBool::new(false));
        let stop_receiver = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let arrived = Arc::new(AtomicU64::new(0));

        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, count) = (stop_receiver.clone(), arrived.clone());
        let receiver = spawn_in_netns(dest_ns, move || -> Result<ReceiverLog> {
            let sock = UdpSocket::bind((DEST_IP, STREAM_PORT))
                .and_then(|s| s.set_read_timeout(Some(RECV_POLL)).map(|()| s));
            let sock = match sock {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    bail!("bind {DEST_IP}:{STREAM_PORT}: {e}");
                }
            };
            Ok(receive_loop(&sock, id, &stop, &count))
        });
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("stream receiver in {dest_ns}: {e}"),
            Err(_) => {
                let why = match receiver.join() {
                    Ok(Err(e) | Ok(Err(e))) => format!("{e:#}"),
                    _ => "the thread died".to_owned(),
                };
                bail!("stream receiver in {dest_ns}: {why}");
            }
        }

        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, count, sender_spec) = (stop_sender.clone(), sent.clone(), spec.clone());
        let backlog_drops_before = backlog_drops();
        let started = Instant::now();
        let sender = spawn_in_netns(source_ns, move || -> Result<SenderLog> {
            let socks: std::io::Result<Vec<UdpSocket>> = sender_spec
                .sports
                .iter()
                .map(|&p| UdpSocket::bind((SOURCE_IP, p)))
                .collect();
            let socks = match socks {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    bail!("bind source ports {:?}: {e}", sender_spec.sports);
                }
            };
            Ok(send_loop(&socks, &sender_spec, id, started, &stop, &count))
        });
        let mut stream = SeqStream {
            spec,
            started,
            backlog_drops_before,
            stop_sender,
            stop_receiver,
            sent,
            received: arrived,
            sender: Some(sender),
            receiver: Some(receiver),
        };
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(anyhow!("stream sender in {source_ns}: {e}")),
            Err(_) => {
                let why = match stream.sender.take().map(JoinHandle::join) {
                    Some(Ok(Err(e) | Ok(Err(e)))) => format!("{e:#}"),
                    _ => "the thread died".to_owned(),
                };
                Err(anyhow!("stream sender in {source_ns}: {why}"))
            }
        }
    }

    /// When the sender started (its datagram `seq` is due `seq / rate` seconds later).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Datagrams sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Datagrams received so far (first copies).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops the sender, waits until the receiver got every datagram or heard nothing for
    /// [`DRAIN_QUIET`] (at most [`DRAIN_LIMIT`]), stops it and reports.
    pub fn finish(mut self) -> Result<StreamReport> {
        self.stop_sender.store(true, Ordering::Relaxed);
        let sender = self
            .sender
            .take()
            .context("stream already finished")?
            .join()
            .map_err(|_| anyhow!("stream sender panicked"))?
            .context("stream sender: entering the namespace")?
            .context("stream sender")?;
        let sent = sender.sent_at.len() as u64;
        let deadline = Instant::now() + DRAIN_LIMIT;
        let (mut last, mut since) = (self.received(), Instant::now());
        while self.received() < sent && since.elapsed() < DRAIN_QUIET && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            if self.received() != last {
                (last, since) = (self.received(), Instant::now());
            }
        }
        self.stop_receiver.store(true, Ordering::Relaxed);
        let backlog = backlog_drops().saturating_sub(self.backlog_drops_before);
        let receiver = self
            .receiver
            .take()
            .context("stream already finished")?
            .join()
            .map_err(|_| anyhow!("stream receiver panicked"))?
            .context("stream receiver: entering the namespace")?
            .context("stream receiver")?;
        let mut arrived_at = receiver.arrived_at;
        arrived_at.resize(arrived_at.len().max(sender.sent_at.len()), None);
        Ok(StreamReport {
            rate: self.spec.rate,
            sports: self.spec.sports.clone(),
            started: self.started,
            sent_at: sender.sent_at,
            send_failures: sender.failures,
            arrived_at,
            duplicates: receiver.duplicates,
            foreign: receiver.foreign,
            backlog_drops: backlog,
        })
    }
}

impl Drop for SeqStream {
    fn drop(&mut self) {
        self.stop_sender.store(true, Ordering::Relaxed);
        self.stop_receiver.store(true, Ordering::Relaxed);
        if let Some(t) = self.sender.take() {
            let _ = t.join();
        }
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
    }
}

/// A stream id that tells this process's streams from anything else on the port.
fn stream_id() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::process::id().rotate_left(16) ^ nanos
}

fn send_loop(
    socks: &[UdpSocket],
    spec: &StreamSpec,
    id: u32,
    started: Instant,
    stop: &AtomicBool,
    count: &AtomicU64,
) -> SenderLog {
    let to = SocketAddr::new(IpAddr::V4(DEST_IP), STREAM_PORT);
    let period = Duration::from_secs(1) / spec.rate;
    let mut log = SenderLog::default();
    let mut buf = [0u8; DATAGRAM_LEN];
    buf[..4].copy_from_slice(&MAGIC);
    buf[4..8].copy_from_slice(&id.to_be_bytes());
    for seq in 0..MAX_DATAGRAMS {
        let due = started + period * u32::try_from(seq).expect("MAX_DATAGRAMS fits u32");
        if stop.load(Ordering::Relaxed) || due.duration_since(started) > spec.limit {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        buf[8..16].copy_from_slice(&seq.to_be_bytes());
        let sock = &socks[usize::try_from(seq).unwrap_or(0) % socks.len()];
        if let Err(e) = sock.send_to(&buf, to) {
            log.failures.push((seq, e.to_string()));
        }
        log.sent_at.push(Instant::now());
        count.fetch_add(1, Ordering::Relaxed);
    }
    log
}

fn receive_loop(sock: &UdpSocket, id: u32, stop: &AtomicBool, count: &AtomicU64) -> ReceiverLog {
    let mut log = ReceiverLog::default();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let now = Instant::now();
        if n != DATAGRAM_LEN || buf[..4] != MAGIC || buf[4..8] != id.to_be_bytes() {
            log.foreign += 1;
            continue;
        }
        let seq = u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes"));
        let Ok(i) = usize::try_from(seq) else {
            log.foreign += 1;
            continue;
        };
        if seq >= MAX_DATAGRAMS {
            log.foreign += 1;
            continue;
        }
        if log.arrived_at.len() <= i {
            log.arrived_at.resize(i + 1, None);
        }
        if log.arrived_at[i].is_some() {
            log.duplicates += 1;
        } else {
            log.arrived_at[i] = Some(now);
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
    log
}

/// What a [`SeqStream`] did: when every datagram was sent and when (if) it arrived.
#[derive(Debug, Clone)]
pub struct StreamReport {
    pub rate: u32,
    pub sports: Vec<u16>,
    pub started: Instant,
    /// Index = sequence number.
    pub sent_at: Vec<Instant>,
    pub send_failures: Vec<(u64, String)>,
    /// Index = sequence number; `None`: never arrived. As long as `sent_at` at least.
    pub arrived_at: Vec<Option<Instant>>,
    pub duplicates: u64,
    pub foreign: u64,
    /// What [`backlog_drops`] grew by while the stream ran: packets of any namespace (this
    /// machine may run other traffic) the kernel dropped for a full per-CPU input queue.
    pub backlog_drops: u64,
}

/// Packets the kernel dropped because a CPU's input backlog (`net.core.netdev_max_backlog`)
/// was full, over all CPUs and namespaces (`/proc/net/softnet_stat`, second column). Loss a
/// test sees while this grows may be the machine's load rather than the datapath.
pub fn backlog_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

/// Where the kernel dropped packets in `topo`: every interface of its namespaces whose drop
/// counters are not zero (`ns dev: rx dropped N, tx dropped M`) and dest's non-zero UDP error
/// counters (e.g. `RcvbufErrors`: a receiver too slow), one line each; "none" when nothing was.
/// A veth that could not hand a packet to its peer (the receiving CPU's backlog full: the
/// machine's load) counts it as a tx drop, and its peer as an rx drop.
pub fn kernel_drops(topo: &Topology) -> String {
    let mut out = String::new();
    for ns in topo.namespaces() {
        let json = match netns::ip_in(&ns, &["-s", "-j", "link", "show"]) {
            Ok(j) => j,
            Err(e) => {
                let _ = writeln!(out, "{ns}: {e:#}");
                continue;
            }
        };
        let links: Value = serde_json::from_str(&json).unwrap_or_default();
        for l in links.as_array().map_or(&[][..], Vec::as_slice) {
            let dropped = |dir: &str| l["stats64"][dir]["dropped"].as_u64().unwrap_or(0);
            let (rx, tx) = (dropped("rx"), dropped("tx"));
            if rx + tx > 0 {
                let dev = l["ifname"].as_str().unwrap_or("?");
                let _ = writeln!(out, "{ns} {dev}: rx dropped {rx}, tx dropped {tx}");
            }
        }
    }
    let udp = netns::in_netns(&topo.dest(), || {
        std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default()
    })
    .unwrap_or_default();
    // Two `Udp:` lines: the field names, then the values.
    let mut rows = udp.lines().filter(|l| l.starts_with("Udp:"));
    if let (Some(names), Some(values)) = (rows.next(), rows.next()) {
        for (name, value) in names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
        {
            if name.ends_with("Errors") && value != "0" {
                let _ = writeln!(out, "{} UDP {name}: {value}", topo.dest());
            }
        }
    }
    if out.is_empty() {
        out.push_str("none\n");
    }
    out
}

/// A run of consecutive sequence numbers that never arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// First and last missing sequence number (inclusive).
    pub first: u64,
    pub last: u64,
}

impl Gap {
    /// How many datagrams are missing.
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }
}

impl StreamReport {
    pub fn sent(&self) -> u64 {
        self.sent_at.len() as u64
    }

    pub fn received(&self) -> u64 {
        self.arrived_at.iter().flatten().count() as u64
    }

    /// Datagrams sent that never arrived.
    pub fn lost(&self) -> u64 {
        self.sent() - self.received_of_sent()
    }

    fn received_of_sent(&self) -> u64 {
        self.arrived_at[..self.sent_at.len()]
            .iter()
            .flatten()
            .count() as u64
    }

    /// Runs of missing sequence numbers, in order.
    pub fn gaps(&self) -> Vec<Gap> {
        let mut gaps: Vec<Gap> = Vec::new();
        for (seq, a) in self.arrived_at[..self.sent_at.len()].iter().enumerate() {
            if a.is_some() {
                continue;
            }
            let seq = seq as u64;
            match gaps.last_mut() {
                Some(g) if g.last + 1 == seq => g.last = seq,
                _ => gaps.push(Gap {
                    first: seq,
                    last: seq,
                }),
            }
        }
        gaps
    }

    /// When datagram `seq` was sent.
    pub fn sent_at(&self, seq: u64) -> Option<Instant> {
        self.sent_at.get(usize::try_from(seq).ok()?).copied()
    }

    /// When datagram `seq` arrived.
    pub fn arrived_at(&self, seq: u64) -> Option<Instant> {
        *self.arrived_at.get(usize::try_from(seq).ok()?)?
    }

    /// Datagrams whose send time satisfies `sent` and that arrived.
    pub fn received_where(&self, sent: impl Fn(Instant) -> bool) -> u64 {
        self.sent_at
            .iter()
            .zip(&self.arrived_at)
            .filter(|(s, a)| sent(**s) && a.is_some())
            .count() as u64
    }

    /// Longest time between two consecutive arrivals (in arrival order).
    pub fn longest_silence(&self) -> Duration {
        let mut times: Vec<Instant> = self.arrived_at.iter().flatten().copied().collect();
        times.sort_unstable();
        times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }

    /// From the first to the last send.
    pub fn duration(&self) -> Duration {
        match (self.sent_at.first(), self.sent_at.last()) {
            (Some(a), Some(b)) => *b - *a,
            _ => Duration::ZERO,
        }
    }

    /// Milliseconds of `at` since the stream started, for messages.
    pub fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64() * 1000.0
    }
}

impl fmt::Display for StreamReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gaps = self.gaps();
        write!(
            f,
            "stream {} pps over source ports {:?}: sent {} in {:.2} s, received {}, lost {}, \
             duplicates {}, foreign {}, send failures {}, longest silence {:.1} ms, kernel \
             backlog drops (whole machine) meanwhile {}",
            self.rate,
            self.sports,
            self.sent(),
            self.duration().as_secs_f64(),
            self.received(),
            self.lost(),
            self.duplicates,
            self.foreign,
            self.send_failures.len(),
            self.longest_silence().as_secs_f64() * 1000.0,
            self.backlog_drops
        )?;
        if let Some((seq, e)) = self.send_failures.first() {
            write!(f, "; first send failure: #{seq}: {e}")?;
        }
        if !gaps.is_empty() {
            write!(f, "; missing:")?;
            for g in gaps.iter().take(10) {
                let sent = self.sent_at(g.first).map_or(0.0, |t| self.ms(t));
                write!(
                    f,
                    " #{}..=#{} ({} datagrams, sent from {sent:.1} ms)",
                    g.first,
                    g.last,
                    g.count()
                )?;
            }
            if gaps.len() > 10 {
                write!(f, " ... ({} runs)", gaps.len())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_group_consecutive_missing_datagrams() {
        let t = Instant::now();
        let r = StreamReport {
            rate: 1000,
            sports: vec![1],
            started: t,
            sent_at: vec![t; 7],
            send_failures: vec![],
            arrived_at: vec![Some(t), None, None, Some(t), None, Some(t), Some(t)],
            duplicates: 0,
            foreign: 0,
            backlog_drops: 0,
        };
        assert_eq!(
            r.gaps(),
            vec![Gap { first: 1, last: 2 }, Gap { first: 4, last: 4 }]
        );
        assert_eq!((r.sent(), r.received(), r.lost()), (7, 4, 3));
    }
}
