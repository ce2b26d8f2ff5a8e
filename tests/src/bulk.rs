//! Bulk TCP: a sink in dest that checks every byte it reads, and a client that sends a given
//! amount as fast as it can (TCP through a chain, offloads and all).

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{
    netns,
    traffic::{IO_TIMEOUT, ServerThread},
};

/// Byte `i` of a bulk transfer: a pattern no two nearby positions share, so a lost, repeated
/// or corrupted segment shows.
fn bulk_byte(i: u64) -> u8 {
    let [.., a] = (i.wrapping_mul(2_654_435_761) >> 13).to_be_bytes();
    let [.., b] = i.to_be_bytes();
    a ^ b
}

/// What one bulk transfer did, as the receiver saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    pub received: u64,
    /// Every byte as sent (the pattern checked at every offset).
    pub intact: bool,
}

/// A TCP sink in a namespace: one connection at a time, read to the end, checked against the
/// bulk pattern. Stopped when dropped.
pub struct TcpSink {
    inner: ServerThread,
    last: Arc<std::sync::Mutex<Option<BulkOutcome>>>,
}

impl TcpSink {
    pub fn start(ns: &str, addr: SocketAddr) -> Result<TcpSink> {
        let last = Arc::new(std::sync::Mutex::new(None));
        let store = last.clone();
        let inner = ServerThread::tcp(ns, "TCP sink", addr, move |stream| {
            let out = drain(stream);
            if let Ok(mut l) = store.lock() {
                *l = Some(out);
            }
            true
        })?;
        Ok(TcpSink { inner, last })
    }

    /// What the last finished connection brought.
    pub fn last(&self) -> Option<BulkOutcome> {
        self.last.lock().ok().and_then(|l| *l)
    }

    /// Connections finished.
    pub fn connections(&self) -> usize {
        self.inner.handled.load(Ordering::Relaxed)
    }
}

fn drain(mut stream: TcpStream) -> BulkOutcome {
    let mut out = BulkOutcome { received: 0, intact: true };
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(IO_TIMEOUT)).is_err() {
        out.intact = false;
        return out;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => {
                for (k, b) in buf[..n].iter().enumerate() {
                    if *b != bulk_byte(out.received + k as u64) {
                        out.intact = false;
                    }
                }
                out.received += n as u64;
            }
            Err(_) => {
                out.intact = false;
                return out;
            }
        }
    }
}

/// Sends `bytes` of the bulk pattern from namespace `ns` to `to` over one TCP connection and
/// closes it; returns how long the writes took. Bounded by [`IO_TIMEOUT`] per write.
pub fn tcp_bulk(ns: &str, to: SocketAddr, bytes: u64) -> Result<Duration> {
    netns::in_netns(ns, || -> Result<Duration> {
        let mut s = TcpStream::connect_timeout(&to, IO_TIMEOUT).with_context(|| format!("connect to {to}"))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        let started = Instant::now();
        let mut sent = 0u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while sent < bytes {
            let n = usize::try_from((bytes - sent).min(chunk.len() as u64)).unwrap_or(chunk.len());
            for (k, b) in chunk[..n].iter_mut().enumerate() {
                *b = bulk_byte(sent + k as u64);
            }
            s.write_all(&chunk[..n]).with_context(|| format!("write at byte {sent} of {bytes}"))?;
            sent += n as u64;
        }
        s.shutdown(Shutdown::Write)?;
        // Wait for the sink to close its side: everything was read.
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        let _ = s.read(&mut [0u8; 16]);
        Ok(started.elapsed())
    })?
}
