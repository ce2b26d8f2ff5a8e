//! The packet rate: 64-byte UDP frames from source to dest, one flow, counted on source's and
//! dest's own interfaces.
//!
//! The sender is a thread of this process inside source's namespace, pinned to [`SENDER_CPU`],
//! writing prebuilt frames to a raw packet socket with `sendmmsg`. RPS on the hub's port facing
//! source moves everything after that port (hub, service functions, dest) to [`PATH_CPU`], so
//! sender and path do not share a core. Where the hub runs XDP on that port, the frames never
//! meet RPS (XDP runs in the port's NAPI poll, before an skb exists), so the port gets threaded
//! NAPI instead, its thread pinned to [`PATH_CPU`]: the same split of the work. Sending flat out overloads the chain paths: the per-CPU
//! backlog fills with fresh packets and drops packets half-way along, so what arrives then
//! understates what a path can carry, the more so the more often the path re-queues a packet.
//! The rate reported is therefore the highest offered rate that arrives with at most
//! [`MAX_LOSS`] lost, found by a short binary search with a paced sender (RFC 2544's throughput,
//! shortened); the flat-out figures are kept as well.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use sfc_tests::{link, netns};

use super::{
    progs,
    topo::{DEST_IP, HOPS, Net, Port, SOURCE_IP, set_rps},
};

pub const SENDER_CPU: usize = 0;
pub const PATH_CPU: usize = 1;
/// UDP payload of a 64-byte frame: 64 - 4 (FCS) - 14 (Ethernet) - 20 (IPv4) - 8 (UDP).
const PAYLOAD: usize = 18;
const UDP_PORT: u16 = 9;
/// Datagrams per `sendmmsg` flat out, and when paced (smaller bursts).
const BATCH: usize = 64;
/// Frames sent in turn, each with its own IPv4 identification: a host's stack numbers its
/// packets, and sfc's SF timing samples packets by a fingerprint that includes the number
/// (1 in 16 by default). One frame sent over and over would be sampled always or never.
const IDS: usize = 1024;
const PACED_BATCH: usize = 16;
/// A paced sender spins (rather than sleeps) for the last this much before a batch.
const SPIN: Duration = Duration::from_micros(150);
/// The sender's socket buffer, bytes (see `RawSocket`).
const SNDBUF: libc::c_int = 64 << 20;
/// Traffic runs this long before anything is counted (flow set-up, OVS upcalls, caches).
const WARMUP: Duration = Duration::from_millis(300);
/// After a rate change, before counting. (50 ms was tried: a run on a freshly set-up machine
/// then had OVS (c) carry almost nothing in all three repetitions, cause not found; kept at
/// 100 ms, which has not shown that.)
const SETTLE: Duration = Duration::from_millis(100);
/// The programs' statistics probe: at 400-700 kpps this is hundreds of thousands of runs.
const STATS_PROBE: Duration = Duration::from_millis(250);
/// Loss a rate may have and still count as carried.
pub const MAX_LOSS: f64 = 0.01;
/// The search starts at the flat-out rate only if a probe at that rate sends this many packets.
const MIN_GUESS_PACKETS: f64 = 1000.0;
/// Paced probes of the binary search: the last is within 1/128 of the sender's top rate.
pub const SEARCH_STEPS: usize = 7;

/// One packet-rate measurement.
#[derive(Debug, Clone)]
pub struct Rate {
    /// Highest rate (packets per second arriving at dest) with at most [`MAX_LOSS`] lost.
    pub sustained: f64,
    /// Even flat out nothing was lost: the sender, not the path, set `sustained`.
    pub sender_limited: bool,
    /// Flat out: what the sender offered, and what arrived of it.
    pub flat_out_offered: f64,
    pub flat_out_delivered: f64,
    /// Packets that arrived at dest while the sender ran (counted from before it started until
    /// the path drained after it stopped), and what each service function received on `in` over
    /// the same time (sf1 first): the route check. Over the whole run, not one probe: a packet
    /// counted at dest has then been counted at every SF before it, however long it queued on
    /// the way (a probe's window of an overloaded path with deep queues, OVS (c) flat out,
    /// counts at dest packets that passed sf1 before the window opened).
    pub delivered_packets: u64,
    pub sf_packets: Vec<u64>,
    /// The path's BPF programs at the carried rate (`progs`, a probe of its own), or why not.
    pub bpf: std::result::Result<progs::Profile, String>,
    /// The path's core by symbol at the carried rate (`--profile`, a probe of its own).
    pub perf: Option<std::result::Result<super::perf::Symbols, String>>,
}

/// Measures the packet rate of the path, in about `5 + 1.5 * secs` seconds. `xdp`: the hub
/// runs XDP on its port facing source. `profile`: also sample the path's core into that file.
pub fn udp_rate(net: &Net, secs: Duration, cpus: usize, xdp: bool, profile: Option<&std::path::Path>) -> Result<Rate> {
    let split = cpus > 1;
    let hub_port = Port::Source.hub_dev();
    if split {
        if xdp {
            threaded_napi(&net.hub(), &hub_port, true)?;
        } else {
            set_rps(&net.hub(), &hub_port, &format!("{:x}", 1u64 << PATH_CPU))?;
        }
    }
    let core = PATH_CPU.min(cpus.saturating_sub(1));
    let result = search(net, secs, profile.map(|p| (core, p)));
    if split {
        if xdp {
            threaded_napi(&net.hub(), &hub_port, false)?;
        } else {
            set_rps(&net.hub(), &hub_port, "0")?;
        }
    }
    result
}

/// Turns threaded NAPI on `dev` (in `ns`) on, with its thread pinned to [`PATH_CPU`], or off.
/// The thread is `napi/<dev>-<id>`; only the XDP path's hub port of that name runs NAPI.
fn threaded_napi(ns: &str, dev: &str, on: bool) -> Result<()> {
    netns::write_sysfs(ns, &format!("/sys/class/net/{dev}/threaded"), &u8::from(on).to_string())
        .with_context(|| format!("threaded NAPI on {dev} in {ns}"))?;
    if !on {
        return Ok(());
    }
    let prefix = format!("napi/{dev}-");
    let pids: Vec<String> = std::fs::read_dir("/proc")?
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end().starts_with(&prefix)))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if pids.is_empty() {
        bail!("no NAPI thread {prefix}* after turning threaded NAPI on for {dev} in {ns} (is XDP attached?)");
    }
    for pid in pids {
        crate::cmd::run(crate::cmd::command("taskset").args(["-pc", &PATH_CPU.to_string(), &pid]))?;
    }
    Ok(())
}

/// After the sender stops, the path has drained when dest's count holds still this long.
const DRAIN_QUIET: Duration = Duration::from_millis(100);
/// ... or at the latest after this.
const DRAIN_MAX: Duration = Duration::from_secs(3);

/// Packets dest received and each service function received on `in` (sf1 first), so far.
fn route_counts(net: &Net) -> Result<(u64, Vec<u64>)> {
    let sf = (1..=HOPS).map(|n| Ok(net.link(Port::SfIn(n))?.rx_packets)).collect::<Result<_>>()?;
    Ok((net.link(Port::Dest)?.rx_packets, sf))
}

/// `route_counts` since `start`, once the path has drained: dest's count unchanged for
/// [`DRAIN_QUIET`] (or [`DRAIN_MAX`] passed).
fn drained_since(net: &Net, start: &(u64, Vec<u64>)) -> Result<(u64, Vec<u64>)> {
    let deadline = Instant::now() + DRAIN_MAX;
    let mut last = net.link(Port::Dest)?.rx_packets;
    loop {
        std::thread::sleep(DRAIN_QUIET);
        let now = net.link(Port::Dest)?.rx_packets;
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let (dest, sf) = route_counts(net)?;
    let sf = sf.iter().zip(&start.1).map(|(b, a)| b.saturating_sub(*a)).collect();
    Ok((dest.saturating_sub(start.0), sf))
}

/// What one probe counted.
struct Probe {
    delivered: f64,
    offered: f64,
}

impl Probe {
    fn loss(&self) -> f64 {
        if self.offered > 0.0 {
            1.0 - self.delivered / self.offered
        } else {
            1.0
        }
    }
}

fn search(net: &Net, secs: Duration, profile: Option<(usize, &std::path::Path)>) -> Result<Rate> {
    // A socket that is never read: the packets are delivered (up to its buffer) and dropped
    // there, with no ICMP port-unreachable going back.
    let dest = SocketAddr::from((DEST_IP, UDP_PORT));
    let _sink = netns::in_netns(&net.dest(), || UdpSocket::bind(dest))?
        .with_context(|| format!("bind the UDP sink {dest} in {}", net.dest()))?;
    let start = route_counts(net)?;
    let sender = Sender::start(&net.source());
    let probe_time = (secs / 5).max(Duration::from_millis(400));

    std::thread::sleep(WARMUP);
    // A rate, for the report and as the search's first bounds: a probe's length is enough.
    let flat = probe(net, probe_time)?;
    if flat.offered == 0.0 {
        sender.stop()?;
        bail!("the UDP sender sent nothing");
    }
    let mut rate = Rate {
        sustained: flat.delivered,
        sender_limited: flat.loss() <= MAX_LOSS,
        flat_out_offered: flat.offered,
        flat_out_delivered: flat.delivered,
        delivered_packets: 0,
        sf_packets: Vec::new(),
        bpf: Err("not measured".to_owned()),
        perf: None,
    };
    if !rate.sender_limited {
        // Known: 0 pps passes, the sender's top rate fails.
        let (mut pass, mut fail) = (0.0, flat.offered);
        let mut target = first_guess(&flat, probe_time);
        for _ in 0..SEARCH_STEPS {
            sender.pace(target);
            std::thread::sleep(SETTLE);
            if probe(net, probe_time)?.loss() <= MAX_LOSS {
                pass = target;
            } else {
                fail = target;
            }
            target = f64::midpoint(pass, fail);
        }
        if pass == 0.0 {
            sender.stop()?;
            bail!(
                "no rate down to {target:.0} pps arrived with at most {:.0}% loss",
                MAX_LOSS * 100.0
            );
        }
        // The figure reported: the highest passing rate, held for the full measurement time.
        sender.pace(pass);
        std::thread::sleep(SETTLE);
        rate.sustained = probe(net, secs)?.delivered;
    }
    rate.bpf = profiled(net, STATS_PROBE);
    rate.perf = profile.map(|(core, data)| super::perf::record(core, secs, data).map_err(|e| format!("{e:#}")));
    sender.stop()?;
    (rate.delivered_packets, rate.sf_packets) = drained_since(net, &start)?;
    Ok(rate)
}

/// The search's first rate: what arrived flat out, unless next to nothing did (OVS (c) flat out
/// often carries nothing at all): then half the offered rate. A guess of a few packets per
/// second makes a probe that sends too little to pass, and after a failed guess of 0 pps every
/// later guess would be 0 too.
fn first_guess(flat: &Probe, probe_time: Duration) -> f64 {
    if flat.delivered * probe_time.as_secs_f64() >= MIN_GUESS_PACKETS {
        flat.delivered
    } else {
        flat.offered / 2.0
    }
}

/// The path's BPF programs at the rate the sender sends now, in a probe of its own (the
/// statistics cost each run two clock reads).
fn profiled(net: &Net, time: Duration) -> std::result::Result<progs::Profile, String> {
    let run = || -> Result<progs::Profile> {
        let _on = progs::enable()?;
        // Reading every program's statistics takes milliseconds, and a program's figures are
        // read somewhere within that: the packets are counted around both readings and scaled
        // to the time between their midpoints (the rate is steady).
        let (rx0, t0) = (net.link(Port::Dest)?, Instant::now());
        let before = progs::snapshot()?;
        let t1 = Instant::now();
        std::thread::sleep(time);
        let t2 = Instant::now();
        let after = progs::snapshot()?;
        let (rx1, t3) = (net.link(Port::Dest)?, Instant::now());
        let between = ((t2 + (t3 - t2) / 2) - (t0 + (t1 - t0) / 2)).as_secs_f64();
        let counted = rx1.since(&rx0).rx_packets;
        #[expect(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "packet counts below 2^52, scaled by a fraction <= 1")]
        let delivered = (counted as f64 * between / (t3 - t0).as_secs_f64()).round() as u64;
        Ok(progs::profile(&before, &after, delivered))
    };
    run().map_err(|e| format!("{e:#}"))
}

/// Counts for `time`: dest's received and source's sent packets.
fn probe(net: &Net, time: Duration) -> Result<Probe> {
    let (rx0, tx0, t0) = (
        net.link(Port::Dest)?,
        net.link(Port::Source)?,
        Instant::now(),
    );
    std::thread::sleep(time);
    let (rx1, tx1, t1) = (
        net.link(Port::Dest)?,
        net.link(Port::Source)?,
        Instant::now(),
    );
    let elapsed = (t1 - t0).as_secs_f64();
    #[expect(
        clippy::cast_precision_loss,
        reason = "packet counts and nanoseconds below 2^52"
    )]
    Ok(Probe {
        delivered: rx1.since(&rx0).rx_packets as f64 / elapsed,
        offered: tx1.since(&tx0).tx_packets as f64 / elapsed,
    })
}

/// The sending thread: flat out, or paced to a rate; stopped and joined on drop.
struct Sender {
    stop: Arc<AtomicBool>,
    /// Packets per second; 0: flat out.
    rate: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<Result<()>>>>,
}

impl Sender {
    fn start(source_ns: &str) -> Sender {
        let stop = Arc::new(AtomicBool::new(false));
        let rate = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), rate.clone());
        let thread = netns::spawn_in_netns(source_ns, move || send(&s, &r));
        Sender {
            stop,
            rate,
            thread: Some(thread),
        }
    }

    fn pace(&self, pps: f64) {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive packet rate far below 2^64"
        )]
        self.rate.store(pps.max(1.0) as u64, Ordering::Relaxed);
    }

    /// Stops the thread and reports how it ended.
    fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().context("stopped twice")?;
        thread
            .join()
            .map_err(|_| anyhow!("the UDP sender thread panicked"))??
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends 64-byte frames ([`frame`]) out of source's `eth0` until `stop`: flat out in batches of
/// [`BATCH`] while `rate` is 0, else batches of [`PACED_BATCH`] spaced to make `rate` packets
/// per second (sleeping, then spinning, between batches). Runs on a thread inside source's
/// namespace, pinned to [`SENDER_CPU`].
///
/// A raw packet socket that bypasses the qdisc, not a UDP socket: the frames are built once, and
/// the sender's core does not spend its time in its own UDP/IP stack, so it outruns every path
/// (a UDP socket does not outrun the direct one). Source's stack is not on any path measured.
fn send(stop: &AtomicBool, rate: &AtomicU64) -> Result<()> {
    pin_thread(SENDER_CPU)?;
    let sock = RawSocket::bound_to(Port::Source.dev())?;
    let frames: Vec<Vec<u8>> = (0..IDS).map(frame).collect();
    let iovs: Vec<libc::iovec> =
        frames.iter().map(|f| libc::iovec { iov_base: f.as_ptr().cast_mut().cast(), iov_len: f.len() }).collect();
    // Raw pointers into `iovs` from one base: indexing for each would reborrow the whole Vec.
    let iov_base = iovs.as_ptr();
    // SAFETY: an all-zero mmsghdr is valid (no name: the socket is bound; no control data).
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    let (mut paced_at, mut next, mut sent_so_far) = (0, Instant::now(), 0usize);
    while !stop.load(Ordering::Relaxed) {
        let pps = rate.load(Ordering::Relaxed);
        let batch = if pps == 0 { BATCH } else { PACED_BATCH };
        // The next frames in turn (IPv4 ids counting up, as a host's stack numbers its packets).
        for (i, m) in msgs.iter_mut().take(batch).enumerate() {
            // SAFETY: the index is below IDS, the length of `iovs`; the kernel only reads it.
            m.msg_hdr.msg_iov = unsafe { iov_base.add((sent_so_far + i) % IDS) }.cast_mut();
            m.msg_hdr.msg_iovlen = 1;
        }
        if pps != 0 {
            let now = Instant::now();
            // A new rate, or far behind: start the schedule afresh.
            if pps != paced_at || now > next + Duration::from_millis(10) {
                (paced_at, next) = (pps, now);
            }
            // Sleep through long gaps (the core may be needed elsewhere), spin the rest.
            let ahead = next.saturating_duration_since(Instant::now());
            if let Some(sleep) = ahead.checked_sub(SPIN) {
                std::thread::sleep(sleep);
            }
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            #[expect(clippy::cast_precision_loss, reason = "small batch, sane rates")]
            let gap = Duration::from_secs_f64(batch as f64 / pps as f64);
            next += gap;
        }
        // SAFETY: the first `batch` of `msgs` are valid headers, each pointing at one of `iovs`,
        // which point at `frames`; all outlive the call, and the kernel only reads them.
        let sent = unsafe {
            libc::sendmmsg(
                sock.0,
                msgs.as_mut_ptr(),
                u32::try_from(batch).unwrap_or(1),
                0,
            )
        };
        if sent < 0 {
            // ENOBUFS and the like: the path is full; keep offering.
            std::thread::yield_now();
        } else {
            sent_so_far = (sent_so_far + usize::try_from(sent).unwrap_or(0)) % IDS;
        }
    }
    Ok(())
}

/// The 64-byte frame on the wire (60 bytes without the FCS): Ethernet from source to the hub,
/// IPv4 from [`SOURCE_IP`] to [`DEST_IP`] with identification `id`, UDP port [`UDP_PORT`] to
/// [`UDP_PORT`] (checksum 0: none, allowed for IPv4), [`PAYLOAD`] zero bytes.
fn frame(id: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend(Port::Source.hub_mac());
    f.extend(Port::Source.mac());
    f.extend([0x08, 0x00]);
    let ip_len = u16::try_from(20 + 8 + PAYLOAD).unwrap_or(u16::MAX);
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&u16::try_from(id % 65_536).unwrap_or(0).to_be_bytes());
    ip.extend(SOURCE_IP.octets());
    ip.extend(DEST_IP.octets());
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !u16::try_from((folded & 0xffff) + (folded >> 16)).unwrap_or(u16::MAX);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    f.extend(ip);
    f.extend(UDP_PORT.to_be_bytes());
    f.extend(UDP_PORT.to_be_bytes());
    f.extend(u16::try_from(8 + PAYLOAD).unwrap_or(0).to_be_bytes());
    f.extend([0, 0]);
    f.extend([0u8; PAYLOAD]);
    f
}

/// An `AF_PACKET` raw socket bound to one interface, sending past the qdisc; closed on drop.
struct RawSocket(libc::c_int);

impl RawSocket {
    fn bound_to(dev: &str) -> Result<RawSocket> {
        let ifindex = link::ifindex(dev)?;
        // SAFETY: plain syscalls on integers and on locals that outlive them; the fd is owned
        // by the returned value (closed on drop, also when a later step fails).
        unsafe {
            // Protocol 0: this socket receives nothing.
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                bail!("packet socket: {}", std::io::Error::last_os_error());
            }
            let sock = RawSocket(fd);
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap_or(17);
            addr.sll_protocol = u16::try_from(libc::ETH_P_IP).unwrap_or(0x800).to_be();
            addr.sll_ifindex = i32::try_from(ifindex).unwrap_or(0);
            let len = libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(20);
            if libc::bind(fd, (&raw const addr).cast(), len) != 0 {
                bail!(
                    "bind the packet socket to {dev}: {}",
                    std::io::Error::last_os_error()
                );
            }
            sock.option(libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
            // Packets charge the sender's buffer until the path frees them; a buffer larger
            // than any queue on the path keeps that from deciding the rate.
            sock.option(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, SNDBUF)?;
            Ok(sock)
        }
    }

    fn option(&self, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> Result<()> {
        let len = libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4);
        // SAFETY: setsockopt reads one c_int from a local that outlives the call.
        let rc = unsafe { libc::setsockopt(self.0, level, name, (&raw const value).cast(), len) };
        if rc != 0 {
            bail!(
                "setsockopt({level}, {name}): {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: closing the fd this value owns, once.
        unsafe { libc::close(self.0) };
    }
}

/// Pins the calling thread to `cpu`.
pub(super) fn pin_thread(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes within it; sched_setaffinity(0, ..)
    // applies to the calling thread only.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set)
    };
    if rc != 0 {
        bail!("pin to CPU {cpu}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_64_bytes_on_the_wire_with_a_valid_ip_checksum() {
        for id in [0, 1, 1000, IDS - 1] {
            let f = frame(id);
            assert_eq!(&f[18..20], &u16::try_from(id).unwrap().to_be_bytes());
            one_frame(&f);
        }
        // One flow: the frames differ in the IPv4 id and its checksum only.
        let (a, b) = (frame(1), frame(2));
        assert!(a.iter().zip(&b).enumerate().all(|(i, (x, y))| x == y || matches!(i, 18 | 19 | 24 | 25)));
    }

    #[test]
    #[expect(clippy::float_cmp, reason = "the guess is one of its inputs or half of one, exactly")]
    fn the_search_starts_at_the_flat_out_rate_unless_next_to_nothing_arrived() {
        let probe = Duration::from_millis(400);
        let flat = |delivered| Probe { delivered, offered: 1_400_000.0 };
        assert_eq!(first_guess(&flat(143_000.0), probe), 143_000.0);
        // OVS (c) flat out: nothing, or a few hundred packets a second.
        assert_eq!(first_guess(&flat(0.0), probe), 700_000.0);
        assert_eq!(first_guess(&flat(390.0), probe), 700_000.0);
        // A probe at the guess carries enough packets to judge it.
        assert_eq!(first_guess(&flat(2_500.0), probe), 2_500.0);
    }

    fn one_frame(f: &[u8]) {
        assert_eq!(f.len(), 60);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let sum: u32 = f[14..34]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!((folded & 0xffff) + (folded >> 16), 0xffff);
        assert_eq!(&f[26..30], &SOURCE_IP.octets());
        assert_eq!(&f[30..34], &DEST_IP.octets());
    }
}
