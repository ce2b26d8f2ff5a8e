//! A real Prometheus (Debian's `prometheus`, which `cargo xtask setup` installs) inside a test's
//! namespace: listening on a loopback address there, scraping targets there every second, its
//! configuration, data and log in a scratch directory. Killed when dropped, and when the thread
//! that started it dies (`PR_SET_PDEATHSIG`), so a killed test run leaves none behind. Queried
//! through its HTTP API (`/api/v1/...`).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs::File,
    net::SocketAddr,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{http::http_get_in, process::ChildGuard};

/// The server's binary, from PATH.
pub const BIN: &str = "prometheus";
/// How often it scrapes (and so how fresh what it answers is).
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);
/// The job name of the scraped targets (the `job` label).
pub const JOB: &str = "sfc";

/// Fails, naming what is missing, unless a working `prometheus` is on PATH.
pub fn ensure_installed() -> Result<()> {
    let version = Command::new(BIN).arg("--version").stdin(Stdio::null()).output();
    if !version.is_ok_and(|o| o.status.success()) {
        bail!("no working `{BIN}` on PATH: `cargo xtask setup` installs Debian's prometheus package");
    }
    Ok(())
}

/// A running Prometheus; killed when dropped. Its HTTP API through `Deref`.
#[derive(Debug)]
pub struct PrometheusServer {
    child: ChildGuard,
    api: PrometheusApi,
    log: PathBuf,
}

/// The HTTP API of a Prometheus listening on `addr` in namespace `ns` (one this process started,
/// or one a kept demo left running).
#[derive(Debug, Clone)]
pub struct PrometheusApi {
    pub ns: String,
    pub addr: SocketAddr,
}

impl std::ops::Deref for PrometheusServer {
    type Target = PrometheusApi;

    fn deref(&self) -> &PrometheusApi {
        &self.api
    }
}

/// One series of a query's result: its labels (`__name__` included when it has one) and value
/// as Prometheus wrote it (`"NaN"` is a value too).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: String,
}

impl Series {
    pub fn as_f64(&self) -> Option<f64> {
        self.value.parse().ok()
    }
}

impl PrometheusServer {
    /// Starts Prometheus in namespace `ns`, listening on `addr`, scraping `/metrics` of every
    /// `targets` address (as seen from `ns`) every [`SCRAPE_INTERVAL`], with its files under
    /// `dir` (created); returns once it says it is ready. An error names what is missing when
    /// the binary is not installed.
    pub fn start(
        ns: &str,
        addr: SocketAddr,
        targets: &[SocketAddr],
        dir: &Path,
    ) -> Result<PrometheusServer> {
        Self::spawn(ns, addr, targets, dir, false)
    }

    /// As [`PrometheusServer::start`], but it outlives this process (its own process group, no
    /// death signal): the demo's `--observe`. Returns its pid; stop it with SIGTERM.
    pub fn start_detached(
        ns: &str,
        addr: SocketAddr,
        targets: &[SocketAddr],
        dir: &Path,
    ) -> Result<u32> {
        Ok(Self::spawn(ns, addr, targets, dir, true)?.child.detach())
    }

    fn spawn(
        ns: &str,
        addr: SocketAddr,
        targets: &[SocketAddr],
        dir: &Path,
        detached: bool,
    ) -> Result<PrometheusServer> {
        ensure_installed()?;
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, config_text(targets))
            .with_context(|| format!("write {}", config.display()))?;
        let log = dir.join("prometheus.log");
        let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, BIN])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        if detached {
            // Not in this process's group: a Ctrl-C of the caller does not reach it.
            cmd.process_group(0);
        } else {
            // SAFETY: between fork and exec only prctl, which is async-signal-safe, runs. The
            // death signal survives `ip netns exec`'s exec of prometheus (neither is
            // set-user-ID).
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut server = PrometheusServer {
            child: ChildGuard::spawn(cmd)?,
            api: PrometheusApi { ns: ns.to_owned(), addr },
            log,
        };
        server.wait_ready(Duration::from_secs(20))?;
        Ok(server)
    }

    /// Waits until `/-/ready` answers 200; fails when it exits first or after `limit`.
    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if http_get_in(&self.api.ns, self.api.addr, "/-/ready").is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{BIN} exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "{BIN} not ready on {} in {} within {limit:?}:\n{}",
                    self.api.addr,
                    self.api.ns,
                    self.log()
                );
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

}

impl PrometheusApi {
    /// `GET path` of its HTTP API; the `data` member of a successful answer.
    fn api(&self, path: &str) -> Result<serde_json::Value> {
        let reply = http_get_in(&self.ns, self.addr, path)?;
        let json: serde_json::Value = serde_json::from_str(&reply.body)
            .with_context(|| format!("GET {path}: {} {}", reply.status, reply.body))?;
        if reply.status != 200 || json["status"] != "success" {
            bail!("GET {path}: {} {}", reply.status, reply.body);
        }
        Ok(json["data"].clone())
    }

    /// An instant query (`/api/v1/query`) at the present: the series of its result.
    pub fn query(&self, expr: &str) -> Result<Vec<Series>> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(expr)))?;
        let kind = data["resultType"].as_str().unwrap_or_default();
        if kind != "vector" {
            bail!("{expr}: a {kind} result, not an instant vector: {data}");
        }
        let mut out = Vec::new();
        for r in data["result"].as_array().context("no result list")? {
            let labels = r["metric"]
                .as_object()
                .context("a result without labels")?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let value = r["value"][1]
                .as_str()
                .context("a result without a value")?
                .to_owned();
            out.push(Series { labels, value });
        }
        Ok(out)
    }

    /// The values of `label` over the series `selector` selects (`/api/v1/label/.../values`,
    /// what Grafana's `label_values(selector, label)` asks).
    pub fn label_values(&self, selector: &str, label: &str) -> Result<Vec<String>> {
        let data = self.api(&format!(
            "/api/v1/label/{label}/values?match[]={}",
            url_encode(selector)
        ))?;
        Ok(data
            .as_array()
            .context("label values are not a list")?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    /// Polls `query(expr)` until `done` accepts the result (it runs every 200 ms, so a few
    /// scrapes at most); returns that result, or fails after `limit` with the last one.
    pub fn wait_for(
        &self,
        expr: &str,
        limit: Duration,
        done: impl Fn(&[Series]) -> bool,
    ) -> Result<Vec<Series>> {
        let deadline = Instant::now() + limit;
        loop {
            let last = self.query(expr);
            if let Ok(series) = &last
                && done(series)
            {
                return last;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{expr} not as expected within {limit:?}; last answer: {last:?}\n{}",
                    self.targets()
                );
            }
            sleep(Duration::from_millis(200));
        }
    }

    /// What it says of its scrape targets (health, last error), for failure messages.
    pub fn targets(&self) -> String {
        match self.api("/api/v1/targets") {
            Ok(data) => data["activeTargets"].as_array().into_iter().flatten().fold(
                String::from("scrape targets:\n"),
                |mut out, t| {
                    let _ = writeln!(
                        out,
                        "  {} health {} last error {:?}",
                        t["scrapeUrl"], t["health"], t["lastError"]
                    );
                    out
                },
            ),
            Err(e) => format!("scrape targets unknown: {e:#}"),
        }
    }
}

/// The configuration: one job scraping `targets` every second.
fn config_text(targets: &[SocketAddr]) -> String {
    let secs = SCRAPE_INTERVAL.as_secs();
    let list = targets
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "global:\n  scrape_interval: {secs}s\n  scrape_timeout: {secs}s\n\
         scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{list}]\n"
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a query parameter).
fn url_encode(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_query() {
        assert_eq!(
            url_encode(r#"rate(a{b=~".*"}[5s])"#),
            "rate%28a%7Bb%3D~%22.%2A%22%7D%5B5s%5D%29"
        );
    }

    #[test]
    fn config_scrapes_every_target_every_second() {
        let t: SocketAddr = "127.0.0.1:9474".parse().unwrap();
        let text = config_text(&[t]);
        assert!(text.contains("scrape_interval: 1s"), "{text}");
        assert!(text.contains("targets: ['127.0.0.1:9474']"), "{text}");
    }
}
