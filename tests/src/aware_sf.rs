//! An SFC-aware service function for the tests: a thread in the function's namespace reads the
//! frames sfc sends into its `in` interface (`AF_PACKET`), lowers the SI of their NSH header or
//! MPLS label as [`AwareSf::set_step`] says (by one, as RFC 8300 asks; by two to skip the next
//! hop; or to 0), and sends them out of its `out` interface from that interface's MAC. It
//! records the SI of every frame it got. Frames without a header are left to the kernel.
//!
//! What a third-party NSH-aware function must do to work with sfc is exactly this: take
//! Ethernet frames with ethertype 0x894F (NSH MD type 1 or 2 without TLVs, next protocol IPv4
//! or IPv6) or 0x8847 (one MPLS label, bottom of stack), and send them back out of its egress
//! with the same SPI (chain id) and a lower SI, the header kept as it came otherwise.

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Result, anyhow};

use crate::traffic::ServerThread;

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_NSH: u16 = 0x894f;
const ETH_P_MPLS_UC: u16 = 0x8847;

/// What the function does to the SI: lower it by this much; 0 sets it to 0.
pub struct AwareSf {
    step: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<u8>>>,
    _thread: ServerThread,
}

/// A raw socket bound to `dev` for every protocol.
fn packet_socket(dev: &str) -> std::io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(ETH_P_ALL.to_be())) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(dev).map_err(|e| std::io::Error::other(e.to_string()))?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: zeroed is a valid sockaddr_ll; the fields are set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = u16::try_from(libc::AF_PACKET).map_err(|e| std::io::Error::other(e.to_string()))?;
    addr.sll_protocol = ETH_P_ALL.to_be();
    addr.sll_ifindex = i32::try_from(ifindex).map_err(|e| std::io::Error::other(e.to_string()))?;
    // SAFETY: bind with a sockaddr_ll we own and its size.
    let rc = unsafe { libc::bind(sock.as_raw_fd(), (&raw const addr).cast(), u32::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(0)) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let timeout = libc::timeval { tv_sec: 0, tv_usec: 20_000 };
    // SAFETY: SO_RCVTIMEO with a timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&raw const timeout).cast(), u32::try_from(size_of::<libc::timeval>()).unwrap_or(0))
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

/// Offset of the SI in `frame`, if it has a header this function speaks.
fn si_at(frame: &[u8]) -> Option<usize> {
    match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        ETH_P_NSH if frame.len() >= 22 => Some(21),
        // The label's low 8 bits of 20 are bytes 15 (low nibble) and 16 (high nibble).
        ETH_P_MPLS_UC if frame.len() >= 18 => Some(15),
        _ => None,
    }
}

fn get_si(frame: &[u8], at: usize) -> u8 {
    if at == 21 { frame[21] } else { (frame[15] << 4) | (frame[16] >> 4) }
}

fn set_si(frame: &mut [u8], at: usize, si: u8) {
    if at == 21 {
        frame[21] = si;
    } else {
        frame[15] = (frame[15] & 0xf0) | (si >> 4);
        frame[16] = (frame[16] & 0x0f) | (si << 4);
    }
}

impl AwareSf {
    /// Starts the function in namespace `ns`, reading `in_dev`, sending from `out_dev` (whose
    /// MAC is `out_mac`).
    pub fn start(ns: &str, in_dev: &str, out_dev: &str, out_mac: [u8; 6]) -> Result<AwareSf> {
        let step = Arc::new(AtomicU8::new(1));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (in_dev, out_dev) = (in_dev.to_owned(), out_dev.to_owned());
        let (st, sn) = (step.clone(), seen.clone());
        let thread = ServerThread::start(
            ns,
            "SFC-aware function",
            move || Ok((packet_socket(&in_dev)?, packet_socket(&out_dev)?)),
            move |(rx, tx), stop: &AtomicBool, handled: &AtomicUsize| {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    // SAFETY: recv into a buffer we own, its length passed.
                    let n = unsafe { libc::recv(rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                    let Ok(n) = usize::try_from(n) else { continue };
                    let frame = &mut buf[..n];
                    let Some(at) = si_at(frame) else { continue };
                    let si = get_si(frame, at);
                    if let Ok(mut v) = sn.lock() {
                        v.push(si);
                    }
                    let step = st.load(Ordering::Relaxed);
                    set_si(frame, at, if step == 0 { 0 } else { si.saturating_sub(step) });
                    frame[6..12].copy_from_slice(&out_mac);
                    // SAFETY: send from a buffer we own, its length passed.
                    let sent = unsafe { libc::send(tx.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
                    if sent > 0 {
                        handled.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
        )
        .map_err(|e| anyhow!("{e:#}"))?;
        std::thread::sleep(Duration::from_millis(20));
        Ok(AwareSf { step, seen, _thread: thread })
    }

    /// How much the function lowers the SI from now on (0: sets it to 0).
    pub fn set_step(&self, step: u8) {
        self.step.store(step, Ordering::Relaxed);
    }

    /// The SIs of the frames it got, and forgets them.
    pub fn take_seen(&self) -> Vec<u8> {
        self.seen.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}
