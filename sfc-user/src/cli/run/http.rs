//! The metrics endpoint, served by hyper (HTTP/1.1) on the daemon's tokio runtime: `GET` or
//! `HEAD /metrics` (a query string is ignored) answers the exposition, anything else is 404.

use std::{convert::Infallible, future::Future, io, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Bytes, header, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::{
    datapath::{Location, netlink},
    metrics::{self, Snapshot},
    view::inspect,
};

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// Answers one request; `scrape` renders the metrics.
async fn handle<F, Fut>(req: &Request<hyper::body::Incoming>, scrape: &F) -> Response<Full<Bytes>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let metrics_get = matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path() == "/metrics";
    if !metrics_get {
        return reply(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found; metrics are at /metrics\n".to_owned());
    }
    match scrape().await {
        Ok(text) => reply(StatusCode::OK, metrics::CONTENT_TYPE, text),
        Err(e) => {
            log::warn!("metrics: {e}");
            reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", format!("{e}\n"))
        }
    }
}

/// Serves the requests of one connection (keep-alive included) until the client closes it.
pub(super) async fn serve_connection<F, Fut>(stream: TcpStream, scrape: F) -> io::Result<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, String>> + Send,
{
    let scrape = Arc::new(scrape);
    let service = service_fn(move |req| {
        let scrape = scrape.clone();
        async move { Ok::<_, Infallible>(handle(&req, &*scrape).await) }
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await
        .map_err(io::Error::other)
}

/// What one scrape shows, read from the pinned maps.
fn snapshot(loc: &Location) -> anyhow::Result<Snapshot> {
    let stats = crate::view::stats::collect(loc)?;
    let applied = inspect::load_state(loc)?;
    // An interface on another host (multi-host) is not here to look at: its host published it
    // up or down, and a down one is in `applied.down`.
    let remote = |name: &str| applied.facts.get(name).is_some_and(|f| f.remote.is_some());
    let up = |name: &str| remote(name) || netlink::link_by_name(name).is_ok_and(|l| l.oper_up);
    // Serving: both links up, and not taken out of its group (a link was down or missing at
    // the last apply, its health probes went unanswered, or a MAC behind it is not known yet).
    let port_pairs_up = applied
        .model
        .port_pairs
        .iter()
        .map(|p| (p.name.clone(), up(&p.ingress) && up(&p.egress) && !applied.down.contains(&p.name) && !applied.no_mac.contains_key(&p.name)))
        .collect();
    Ok(Snapshot { stats, port_pairs_up })
}

pub(super) async fn scrape(loc: Arc<Location>) -> Result<String, String> {
    match tokio::task::spawn_blocking(move || snapshot(&loc).map(|s| metrics::render(&s))).await {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(e) => Err(format!("reading the counters: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read as _, Write as _},
        net::TcpStream,
    };

    use super::serve_connection;

    /// Sends `request` (which asks to close) with a plain blocking socket, returns the reply.
    fn fetch(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(request.as_bytes()).expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn serves_metrics_404_and_503_over_tcp() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = tokio::spawn(async move {
                for i in 0..4 {
                    let (s, _) = listener.accept().await.expect("accept");
                    serve_connection(s, move || async move {
                        if i == 3 { Err("nothing is installed".to_owned()) } else { Ok("sfc_chains 1\n# EOF\n".to_owned()) }
                    })
                    .await
                    .expect("serve");
                }
            });
            let replies = tokio::task::spawn_blocking(move || {
                [
                    fetch(addr, "GET /metrics?name[]=x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
                    fetch(addr, "GET /metricsx HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
                    fetch(addr, "POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                    fetch(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
                ]
            })
            .await
            .expect("client");
            server.await.expect("server");
            let [ok, missing, post, failed] = replies;
            assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
            let lower = ok.to_ascii_lowercase();
            assert!(lower.contains("content-type: application/openmetrics-text; version=1.0.0"), "{ok}");
            assert!(lower.contains("content-length: 19\r\n"), "{ok}");
            assert!(ok.ends_with("\r\n\r\nsfc_chains 1\n# EOF\n"), "{ok}");
            assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"), "{missing}");
            assert!(post.starts_with("HTTP/1.1 404 Not Found\r\n"), "{post}");
            assert!(failed.starts_with("HTTP/1.1 503 ") && failed.ends_with("nothing is installed\n"), "{failed}");
        });
    }
}
