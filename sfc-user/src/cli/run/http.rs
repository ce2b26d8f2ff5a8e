//! The metrics endpoint: a hand-written HTTP/1.1 responder (one request per connection, `GET
//! /metrics` only), small enough not to need a server crate.

use std::{future::Future, io, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::timeout,
};

use crate::metrics;

/// A request head is small; anything longer is not a scrape.
const MAX_REQUEST: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
}

/// `GET /metrics` (a query string is ignored); anything else is not found.
fn route(head: &str) -> Route {
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    match (parts.next(), parts.next().map(|t| t.split('?').next().unwrap_or(t))) {
        (Some("GET"), Some("/metrics")) => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// Reads a request head (up to the blank line, `MAX_REQUEST` bytes at most).
async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() >= MAX_REQUEST {
            break;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Answers one request on `stream` and closes it; `scrape` renders the metrics.
pub(super) async fn serve_one<F, Fut>(mut stream: TcpStream, scrape: F) -> io::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let head = timeout(IO_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "reading the request"))??;
    let reply = match route(&head) {
        Route::Metrics => match scrape().await {
            Ok(text) => response("200 OK", metrics::CONTENT_TYPE, &text),
            Err(e) => {
                log::warn!("metrics: {e}");
                response("503 Service Unavailable", "text/plain; charset=utf-8", &format!("{e}\n"))
            }
        },
        Route::NotFound => response("404 Not Found", "text/plain; charset=utf-8", "not found; metrics are at /metrics\n"),
    };
    timeout(IO_TIMEOUT, async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "writing the response"))?
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::TcpStream,
    };

    use super::{Route, route, serve_one};

    #[test]
    fn routes() {
        assert_eq!(route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics);
        assert_eq!(route("GET /metrics?name[]=x HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route("GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(""), Route::NotFound);
        assert_eq!(route("\u{0}garbage"), Route::NotFound);
    }

    /// Sends `request` with a plain blocking socket, returns the whole reply.
    fn fetch(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(request.as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn serves_metrics_and_404_over_tcp() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = tokio::spawn(async move {
                for i in 0..3 {
                    let (s, _) = listener.accept().await.expect("accept");
                    serve_one(s, || async move {
                        if i == 2 { Err("nothing is installed".to_owned()) } else { Ok("sfc_chains 1\n".to_owned()) }
                    })
                    .await
                    .expect("serve");
                }
            });
            let replies = tokio::task::spawn_blocking(move || {
                [
                    fetch(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                    fetch(addr, "GET /other HTTP/1.1\r\n\r\n"),
                    fetch(addr, "GET /metrics HTTP/1.1\r\n\r\n"),
                ]
            })
            .await
            .expect("client");
            server.await.expect("server");
            let [ok, missing, failed] = replies;
            assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
            assert!(ok.contains("Content-Type: text/plain; version=0.0.4"), "{ok}");
            assert!(ok.contains("Content-Length: 13\r\n") && ok.contains("Connection: close\r\n"), "{ok}");
            assert!(ok.ends_with("\r\n\r\nsfc_chains 1\n"), "{ok}");
            assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"), "{missing}");
            assert!(failed.starts_with("HTTP/1.1 503 ") && failed.ends_with("nothing is installed\n"), "{failed}");
        });
    }
}
