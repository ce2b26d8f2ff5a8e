//! An HTTP GET from inside a namespace (the daemon's metrics socket lives in the hub's loopback,
//! and so does the Prometheus that scrapes it).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::netns::{self};

/// An HTTP response: status code, head and body.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// `GET path` from a thread inside namespace `ns` to `addr` (e.g. the daemon's metrics socket,
/// which is the hub's 127.0.0.1).
pub fn http_get_in(ns: &str, addr: SocketAddr, path: &str) -> Result<HttpReply> {
    let raw = netns::in_netns(ns, || -> Result<Vec<u8>> {
        let timeout = Duration::from_secs(3);
        let mut s = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("connect to {addr} in {ns}"))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).context("read the reply")?;
        Ok(out)
    })??;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("no end of head in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8(raw[..end].to_vec()).context("head is not UTF-8")?;
    let chunked = head.lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body).with_context(|| format!("chunked body after {head:?}"))?
    } else {
        body.to_vec()
    };
    let body = String::from_utf8(body).context("body is not UTF-8")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    Ok(HttpReply { status, head, body })
}

/// The payload of a chunked body (HTTP/1.1 servers such as Prometheus send one when they do not
/// know the length up front): `<hex size>[;ext]\r\n<bytes>\r\n`... up to a chunk of size 0.
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line not ended")?;
        let line = std::str::from_utf8(&raw[..eol]).context("chunk size line")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(hex, 16).with_context(|| format!("chunk size {line:?}"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = raw
            .get(..size)
            .with_context(|| format!("chunk of {size} bytes cut short"))?;
        out.extend_from_slice(chunk);
        raw = raw.get(size + 2..).context("no end after a chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::dechunk;

    #[test]
    fn dechunks_a_body() {
        let raw = b"4\r\nWiki\r\n7;x=y\r\npedia i\r\n0\r\n\r\n";
        assert_eq!(dechunk(raw).unwrap(), b"Wikipedia i");
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
