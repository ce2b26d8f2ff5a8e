//! A VM's network card without a VM: a thread that owns two tap devices and copies frames
//! between them, the way qemu's virtio-net backend does between the host's tap and the guest.
//!
//! The *host tap* lives in the host-side namespace (the hub, where sfc runs): frames the host
//! sends into it are what the VM receives, and frames the VM sends come out of it, where the
//! host's tc ingress sees them. The *NIC* is a second tap, inside the "VM" namespace: to that
//! namespace's kernel it is an ordinary Ethernet interface with the VM's MAC, which it routes
//! or answers on. Both taps are made by the pump (`TUNSETIFF`, not persistent): they disappear
//! when it stops, as a VM's tap does when the VM is deleted.

use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, Read as _, Write as _},
    os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use anyhow::{Context as _, Result, bail};

use crate::netns::{self, ip_in};

/// `TUNSETIFF` (`include/uapi/linux/if_tun.h`: `_IOW('T', 202, int)`).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
/// How often the copy loop looks at its stop flag.
const POLL_MS: libc::c_int = 50;

/// Opens `/dev/net/tun` as tap `name` in the calling thread's namespace (created if missing).
fn open_tap(name: &str) -> Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        bail!("'{name}' is not an interface name (1 to {} bytes)", libc::IFNAMSIZ - 1);
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")
        .context("opening /dev/net/tun")?;
    // SAFETY: `ifreq` is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = libc::c_char::from_ne_bytes([src]);
    }
    req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
    // SAFETY: TUNSETIFF reads one `ifreq`, which lives across the call; `f` is open.
    if unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, &raw mut req) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("TUNSETIFF {name}"));
    }
    Ok(f)
}

/// Frames copied by a pump, each way.
#[derive(Debug, Default)]
pub struct PumpCounts {
    /// Host tap -> NIC: frames the host sent to the VM.
    pub to_vm: AtomicU64,
    /// NIC -> host tap: frames the VM sent.
    pub from_vm: AtomicU64,
}

/// One VM NIC; stopping it (drop) removes both taps.
#[derive(Debug)]
pub struct TapPump {
    stop: Arc<AtomicBool>,
    counts: Arc<PumpCounts>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl TapPump {
    /// Plugs a NIC with `mac` called `nic` into namespace `vm`, behind tap `host_tap` in
    /// namespace `host`. Both are up when this returns; addresses are the caller's.
    pub fn start(host: &str, host_tap: &str, vm: &str, nic: &str, mac: [u8; 6]) -> Result<TapPump> {
        let host_fd = netns::in_netns(host, || open_tap(host_tap))??;
        let nic_fd = netns::in_netns(vm, || open_tap(nic))??;
        let mac_s = crate::link::mac_string(mac);
        ip_in(vm, &["link", "set", nic, "address", &mac_s, "up"])?;
        ip_in(host, &["link", "set", host_tap, "up"])?;
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(PumpCounts::default());
        let (s, c) = (stop.clone(), counts.clone());
        let thread = std::thread::spawn(move || copy_loop(&host_fd, &nic_fd, &s, &c));
        Ok(TapPump { stop, counts, thread: Some(thread) })
    }

    /// Frames copied so far: (to the VM, from the VM).
    pub fn frames(&self) -> (u64, u64) {
        (self.counts.to_vm.load(Ordering::Relaxed), self.counts.from_vm.load(Ordering::Relaxed))
    }

    /// Stops copying and closes both taps (they disappear); an error the loop met, if any.
    pub fn stop(mut self) -> Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the tap pump thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for TapPump {
    fn drop(&mut self) {
        if let Err(e) = self.halt() {
            eprintln!("tap pump: {e:#}");
        }
    }
}

/// Copies every frame readable on one tap to the other until `stop`.
fn copy_loop(host: &File, nic: &File, stop: &AtomicBool, counts: &PumpCounts) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    let mut fds = [
        libc::pollfd { fd: host.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: nic.as_raw_fd(), events: libc::POLLIN, revents: 0 },
    ];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `fds` is a live array of two pollfds, its length passed with it.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, POLL_MS) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("poll on the taps");
        }
        for (i, (from, to, count)) in [(host, nic, &counts.to_vm), (nic, host, &counts.from_vm)].into_iter().enumerate() {
            if fds[i].revents & libc::POLLIN != 0 {
                pump(from, to, &mut buf, count)?;
            }
        }
    }
    Ok(())
}

/// Moves the frames waiting on `from` to `to`. A frame the other side cannot take now is
/// dropped, as a NIC's full ring drops it.
fn pump(mut from: &File, mut to: &File, buf: &mut [u8], count: &AtomicU64) -> Result<()> {
    loop {
        match from.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => match to.write(&buf[..n]) {
                Ok(_) => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // A NIC that is down (EIO) drops the frame, like a cable pulled.
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {}
                Err(e) => return Err(e).context("writing a frame to a tap"),
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading a frame from a tap"),
        }
    }
}
