//! An HTTP GET from inside a namespace (the daemon's metrics socket lives in the hub's loopback).

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
    let text = String::from_utf8(raw).context("reply is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no end of head in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    Ok(HttpReply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}
