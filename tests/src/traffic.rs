//! Traffic inside namespaces, from threads of this process that entered them: a small web
//! server for `dest` (the blog's "Welcome to dest-vm"), a UDP echo server, and bounded clients;
//! and the same request loop from inside a VM, with its busybox `wget`. Every socket operation
//! has a timeout and every loop a bound.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

use crate::{
    netns::{self, spawn_in_netns},
    vm::Vm,
};

/// What the dest server answers (as the body of an HTTP response to an HTTP request).
pub const WELCOME: &str = "Welcome to dest-vm\n";
/// Connect, read and write timeout of every client and server socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// A client gives up after this many failures in a row (the path is broken; don't wait more).
pub const MAX_CONSECUTIVE_FAILURES: usize = 3;

/// Failures in a row of a bounded client loop: it gives up after [`MAX_CONSECUTIVE_FAILURES`].
#[derive(Debug, Default)]
pub(crate) struct Streak(usize);

impl Streak {
    /// Records one attempt; returns whether to go on.
    pub(crate) fn record(&mut self, ok: bool) -> bool {
        self.0 = if ok { 0 } else { self.0 + 1 };
        self.0 < MAX_CONSECUTIVE_FAILURES
    }
}
const POLL: Duration = Duration::from_millis(5);
const MAX_REQUEST: usize = 8192;

/// A server thread in a namespace; stopped and joined when dropped.
pub(crate) struct ServerThread {
    stop: Arc<AtomicBool>,
    pub(crate) handled: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl ServerThread {
    /// Starts `serve(stop, handled)` in `ns` once `setup` succeeded there.
    pub(crate) fn start<S: Send + 'static>(
        ns: &str,
        what: &str,
        setup: impl FnOnce() -> std::io::Result<S> + Send + 'static,
        serve: impl FnOnce(S, &AtomicBool, &AtomicUsize) + Send + 'static,
    ) -> Result<ServerThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let handled = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (s, h) = (stop.clone(), handled.clone());
        let thread = spawn_in_netns(ns, move || match setup() {
            Ok(state) => {
                let _ = ready_tx.send(Ok(()));
                serve(state, &s, &h);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(ServerThread {
                stop,
                handled,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(anyhow!(e).context(format!("start {what} in {ns}"))),
            // The thread ended without a word: entering the namespace failed.
            Err(_) => Err(match thread.join() {
                Ok(Err(e)) => e.context(format!("start {what} in {ns}")),
                _ => anyhow!("start {what} in {ns}: server thread died"),
            }),
        }
    }
}

impl ServerThread {
    /// A TCP listener on `addr` in `ns`, handing each connection to `serve`; a connection
    /// counts as handled when `serve` says so.
    pub(crate) fn tcp(
        ns: &str,
        what: &str,
        addr: SocketAddr,
        mut serve: impl FnMut(TcpStream) -> bool + Send + 'static,
    ) -> Result<ServerThread> {
        ServerThread::start(
            ns,
            &format!("{what} on {addr}"),
            move || {
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            },
            move |listener, stop, handled| {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if serve(stream) {
                                handled.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            },
        )
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The web server in `dest`: accepts, reads one request, answers [`WELCOME`], closes.
pub struct TcpServer {
    addr: SocketAddr,
    inner: ServerThread,
}

impl TcpServer {
    pub fn start(ns: &str, addr: SocketAddr) -> Result<TcpServer> {
        let inner = ServerThread::tcp(ns, "TCP server", addr, |stream| serve_one(stream).is_ok())?;
        Ok(TcpServer { addr, inner })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn served(&self) -> usize {
        self.inner.handled.load(Ordering::Relaxed)
    }
}

/// Reads one request (up to the blank line of an HTTP request, or one line) and answers it.
fn serve_one(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        req.extend_from_slice(&buf[..n]);
        let http = req.windows(5).any(|w| w == b"HTTP/");
        let done = if http {
            req.windows(4).any(|w| w == b"\r\n\r\n")
        } else {
            req.contains(&b'\n')
        };
        if n == 0 || done || req.len() >= MAX_REQUEST {
            break;
        }
    }
    let first_line = req.split(|&b| b == b'\n').next().unwrap_or_default();
    let reply = if first_line.windows(6).any(|w| w == b" HTTP/") {
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{WELCOME}",
            WELCOME.len()
        )
    } else {
        WELCOME.to_owned()
    };
    stream.write_all(reply.as_bytes())?;
    stream.shutdown(Shutdown::Write)
}

/// A UDP server that counts datagrams and echoes each back to its sender.
pub struct UdpEchoServer {
    addr: SocketAddr,
    inner: ServerThread,
}

impl UdpEchoServer {
    pub fn start(ns: &str, addr: SocketAddr) -> Result<UdpEchoServer> {
        let inner = ServerThread::start(
            ns,
            &format!("UDP echo server on {addr}"),
            move || {
                let sock = UdpSocket::bind(addr)?;
                sock.set_read_timeout(Some(Duration::from_millis(20)))?;
                Ok(sock)
            },
            |sock, stop, handled| {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        handled.fetch_add(1, Ordering::Relaxed);
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            },
        )?;
        Ok(UdpEchoServer { addr, inner })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams received so far.
    pub fn received(&self) -> usize {
        self.inner.handled.load(Ordering::Relaxed)
    }
}

/// What a batch of TCP requests achieved.
#[derive(Debug, Clone, Default)]
pub struct TcpOutcome {
    pub attempted: usize,
    pub ok: usize,
    /// One line per failed request.
    pub errors: Vec<String>,
    /// The client's source port of every connection that was established.
    pub source_ports: Vec<u16>,
}

/// `n` sequential connections from namespace `ns` to `to`, each sending one HTTP request and
/// reading the answer; a request succeeds when the body is [`WELCOME`]. Stops early after
/// [`MAX_CONSECUTIVE_FAILURES`] failures in a row.
pub fn tcp_requests(ns: &str, to: SocketAddr, n: usize) -> Result<TcpOutcome> {
    tcp_requests_with(ns, to, n, Duration::ZERO, |_, _| true)
}

/// As [`tcp_requests`], pausing `pace` between requests and calling `each(i, result)` after
/// each one (`Ok(body)` or `Err(reason)`); `each` returning false stops the loop.
pub fn tcp_requests_with(
    ns: &str,
    to: SocketAddr,
    n: usize,
    pace: Duration,
    each: impl FnMut(usize, &Result<String, String>) -> bool + Send,
) -> Result<TcpOutcome> {
    netns::in_netns(ns, || {
        request_loop(n, pace, |out| http_get(to, &mut out.source_ports).map_err(|e| format!("{e:#}")), each)
    })
}

/// How long one `wget` in a VM may take, its own timeout ([`IO_TIMEOUT`]) and a slow
/// (emulated) guest's process start included.
const VM_REQUEST_LIMIT: Duration = Duration::from_secs(15);

/// As [`tcp_requests_with`], from VM `vm`: `wget -qO- http://<to>/` through its command shell,
/// a new connection (and source port) each time. No source ports are recorded. An error only
/// when the VM's shell fails; a failed `wget` is a failed request.
pub fn vm_http_requests(
    vm: &Vm,
    to: SocketAddr,
    n: usize,
    pace: Duration,
    each: impl FnMut(usize, &Result<String, String>) -> bool,
) -> Result<TcpOutcome> {
    let timeout = IO_TIMEOUT.as_secs().max(1);
    // busybox's `timeout`, not `wget -T`, which segfaults in Debian 12's busybox-static (1.35).
    let cmd = format!("timeout {timeout} wget -q -O - http://{to}/");
    let mut shell_error = None;
    let out = request_loop(
        n,
        pace,
        |_| match vm.exec_status(&cmd, VM_REQUEST_LIMIT) {
            Ok((0, body)) => Ok(body),
            Ok((status, output)) => Err(format!("`{cmd}` exited with {status}: {}", output.trim())),
            Err(e) => {
                let msg = format!("{e:#}");
                shell_error = Some(e);
                Err(msg)
            }
        },
        each,
    );
    match shell_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Up to `n` requests, `pace` apart, each counted a success when `request` returns the body
/// [`WELCOME`]; `each(i, result)` after each one, false to stop. Stops after
/// [`MAX_CONSECUTIVE_FAILURES`] failures in a row.
fn request_loop(
    n: usize,
    pace: Duration,
    mut request: impl FnMut(&mut TcpOutcome) -> Result<String, String>,
    mut each: impl FnMut(usize, &Result<String, String>) -> bool,
) -> TcpOutcome {
    let mut out = TcpOutcome::default();
    let mut streak = Streak::default();
    for i in 0..n {
        if i > 0 && !pace.is_zero() {
            std::thread::sleep(pace);
        }
        out.attempted += 1;
        let result = request(&mut out);
        let ok = match &result {
            Ok(body) if body == WELCOME => {
                out.ok += 1;
                true
            }
            Ok(body) => {
                out.errors
                    .push(format!("request {i}: unexpected reply {body:?}"));
                false
            }
            Err(e) => {
                out.errors.push(format!("request {i}: {e}"));
                false
            }
        };
        let go_on = each(i, &result);
        if !streak.record(ok) || !go_on {
            break;
        }
    }
    out
}

/// One `GET /` over a fresh connection; returns the response body. Pushes the connection's
/// source port onto `ports` once connected.
fn http_get(to: SocketAddr, ports: &mut Vec<u16>) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&to, IO_TIMEOUT).context("connect")?;
    ports.push(s.local_addr()?.port());
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    write!(s, "GET / HTTP/1.0\r\nHost: {}\r\n\r\n", to.ip()).context("send request")?;
    let mut reply = Vec::new();
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).context("read reply")?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > MAX_REQUEST || Instant::now() > deadline {
            bail!("reply too long or too slow");
        }
    }
    let reply = String::from_utf8_lossy(&reply).into_owned();
    Ok(match reply.split_once("\r\n\r\n") {
        Some((_, body)) if reply.starts_with("HTTP/") => body.to_owned(),
        _ => reply,
    })
}

/// What a batch of UDP datagrams achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpOutcome {
    pub sent: usize,
    /// Echoes that came back.
    pub echoed: usize,
}

/// Sends `n` datagrams from namespace `ns` to `to`, one at a time, waiting up to a second for
/// each echo; stops after [`MAX_CONSECUTIVE_FAILURES`] lost echoes in a row.
pub fn udp_exchange(ns: &str, to: SocketAddr, n: usize) -> Result<UdpOutcome> {
    netns::in_netns(ns, || -> Result<UdpOutcome> {
        let any: SocketAddr = if to.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(any).context("bind UDP client")?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let mut out = UdpOutcome::default();
        let mut streak = Streak::default();
        let mut buf = [0u8; 2048];
        for i in 0..n {
            let msg = format!("sfc udp datagram {i}");
            sock.send_to(msg.as_bytes(), to).context("send datagram")?;
            out.sent += 1;
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut got = false;
            while !got && Instant::now() < deadline {
                if let Ok((len, from)) = sock.recv_from(&mut buf) {
                    got = from == to && &buf[..len] == msg.as_bytes();
                }
            }
            out.echoed += usize::from(got);
            if !streak.record(got) {
                break;
            }
        }
        Ok(out)
    })?
}

/// Forks a detached process that serves [`WELCOME`] on `addr` inside namespace `ns` for at most
/// `lifetime` (the demo's `--keep`: the web server must outlive this process). Returns its pid.
///
/// Call only while this process has a single thread: the child of a multi-threaded `fork` may
/// find a lock held by a thread that does not exist there.
pub fn spawn_detached_tcp_server(ns: &str, addr: SocketAddr, lifetime: Duration) -> Result<i32> {
    spawn_detached(
        ns,
        || {
            let l = TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            Ok(l)
        },
        |listener| {
            let end = Instant::now() + lifetime;
            while Instant::now() < end {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve_one(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        },
    )
    .with_context(|| format!("the detached web server on {addr} in {ns}"))
}

/// Forks a detached process that sends one HTTP request to `to` from namespace `ns` every
/// `every`, `count` times at most (the demo's `--observe`: traffic for the dashboard after this
/// process is gone). Returns its pid. Single-threaded callers only, as
/// [`spawn_detached_tcp_server`].
pub fn spawn_detached_requests(ns: &str, to: SocketAddr, every: Duration, count: usize) -> Result<i32> {
    spawn_detached(
        ns,
        || Ok(()),
        |()| {
            let mut ports = Vec::new();
            for _ in 0..count {
                let _ = http_get(to, &mut ports);
                ports.clear();
                std::thread::sleep(every);
            }
        },
    )
    .with_context(|| format!("the detached request loop to {to} from {ns}"))
}

/// Stops a process from [`spawn_detached_tcp_server`] or [`spawn_detached_requests`] (SIGTERM);
/// false if no such process.
pub fn stop_detached_server(pid: i32) -> bool {
    // SAFETY: kill(2) has no memory-safety preconditions; the caller vouches that `pid` is the
    // process it started.
    unsafe { libc::kill(pid, libc::SIGTERM) == 0 }
}

/// Forks a process of its own session (stdio on /dev/null, default SIGINT and SIGTERM) that
/// enters namespace `ns`, runs `setup` and, when that worked, `job`; returns its pid once
/// `setup` is done, or `setup`'s failure.
fn spawn_detached<T>(ns: &str, setup: impl FnOnce() -> std::io::Result<T>, job: impl FnOnce(T)) -> Result<i32> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two fds into the array we own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    let [read_fd, write_fd] = fds;
    // SAFETY: see the callers' doc comments: single-threaded, and the child never returns into
    // our code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: the child's copy of the read end is not needed.
        unsafe { libc::close(read_fd) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| detached_child(ns, setup, job, write_fd)))
            .map_or(2, |r| i32::from(r.is_err()));
        // SAFETY: leave without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closing our copy of the write end, reading one byte into a local.
    let ready = unsafe {
        libc::close(write_fd);
        let mut byte = 0u8;
        let n = libc::read(read_fd, (&raw mut byte).cast(), 1);
        libc::close(read_fd);
        n == 1 && byte == b'1'
    };
    if !ready {
        bail!("process {pid} could not start");
    }
    Ok(pid)
}

fn detached_child<T>(ns: &str, setup: impl FnOnce() -> std::io::Result<T>, job: impl FnOnce(T), ready_fd: i32) -> Result<()> {
    // SAFETY: plain syscalls on fds and signal dispositions of this (child) process.
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
    }
    let ready = netns::enter(ns).and_then(|()| setup().map_err(anyhow::Error::from));
    let byte: u8 = if ready.is_ok() { b'1' } else { b'0' };
    // SAFETY: one byte from a local to the pipe's write end.
    unsafe {
        libc::write(ready_fd, (&raw const byte).cast(), 1);
        libc::close(ready_fd);
    }
    job(ready?);
    Ok(())
}
