//! A datapath left observable after this process ends (the demo's `--observe`): `sfc run`
//! serving metrics on the hub's loopback, and a real Prometheus scraping it there, both detached
//! processes recorded in pid files in a directory of their own, from which [`stop`] finds and
//! stops them again (checking that each pid still is the program it was).

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    Sfc,
    http::http_get_in,
    process::ChildGuard,
    prometheus_server::{PrometheusApi, PrometheusServer},
};

/// `sfc run --metrics`, on the hub's loopback (sfc's default port).
pub const METRICS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9469);
/// Prometheus' web UI and API, on the hub's loopback (its default port).
pub const PROMETHEUS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);

const SFC_RUN_PID: &str = "sfc-run.pid";
const SFC_RUN_LOG: &str = "sfc-run.log";
const PROMETHEUS_PID: &str = "prometheus.pid";
const PROMETHEUS_DIR: &str = "prometheus";

/// What [`start`] left running.
#[derive(Debug, Clone)]
pub struct Observed {
    pub sfc_run_pid: u32,
    pub prometheus_pid: u32,
    pub prometheus: PrometheusApi,
    /// `sfc run`'s log.
    pub log: std::path::PathBuf,
}

/// Starts `sfc run -f chain --metrics METRICS` in `sfc`'s namespace (it takes over the applied
/// datapath without disturbing it) and a Prometheus scraping it, both detached, their files in
/// `dir`; returns once metrics are served and Prometheus is ready. On an error nothing stays.
pub fn start(sfc: &Sfc<'_>, chain: &Path, dir: &Path) -> Result<Observed> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let log = dir.join(SFC_RUN_LOG);
    let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let metrics = METRICS.to_string();
    let mut cmd = sfc.command(&["run", "-f", &chain.to_string_lossy(), "--metrics", &metrics]);
    cmd.env("RUST_LOG", "info").stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
    // Its own process group: the caller's Ctrl-C does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut daemon = ChildGuard::spawn(cmd)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Alive first: another process serving the port must not pass for this daemon.
    while daemon.try_wait()?.is_some() || !http_get_in(sfc.netns(), METRICS, "/metrics").is_ok_and(|r| r.status == 200) {
        if daemon.try_wait()?.is_some() || Instant::now() >= deadline {
            bail!("`sfc run` did not serve metrics on {METRICS}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The guard kills the daemon if Prometheus fails to start.
    // Its pid file before it is let go: `stop` must always be able to find it.
    std::fs::write(dir.join(SFC_RUN_PID), format!("{}\n", daemon.pid()))?;
    let prometheus_pid = match PrometheusServer::start_detached(sfc.netns(), PROMETHEUS, &[METRICS], &dir.join(PROMETHEUS_DIR)) {
        Ok(pid) => pid,
        Err(e) => {
            // The guard kills the daemon: its pid must not name another process later.
            let _ = std::fs::remove_file(dir.join(SFC_RUN_PID));
            return Err(e);
        }
    };
    if let Err(e) = std::fs::write(dir.join(PROMETHEUS_PID), format!("{prometheus_pid}\n")) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is the Prometheus just started.
        unsafe { libc::kill(i32::try_from(prometheus_pid).unwrap_or(0), libc::SIGTERM) };
        return Err(e.into());
    }
    let sfc_run_pid = daemon.detach();
    Ok(Observed { sfc_run_pid, prometheus_pid, prometheus: PrometheusApi { ns: sfc.netns().to_owned(), addr: PROMETHEUS }, log })
}

/// Stops what [`start`] left in `dir` (`sfc run` with SIGTERM, which leaves the datapath as it
/// is; Prometheus); returns what it stopped, e.g. `["sfc run (process 123)"]`. A pid file whose
/// process is gone or is another program now is removed without a signal.
pub fn stop(dir: &Path) -> Result<Vec<String>> {
    let mut stopped = Vec::new();
    for (file, comm, what) in [(SFC_RUN_PID, "sfc", "sfc run"), (PROMETHEUS_PID, "prometheus", "Prometheus")] {
        let path = dir.join(file);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let pid: i32 = text.trim().parse().with_context(|| format!("{}: not a pid: {text:?}", path.display()))?;
        let is_it = || {
            // Reaped if it is this process's child (a test's); a no-op otherwise.
            // SAFETY: waitpid(2) with a null status pointer has no memory-safety preconditions.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        };
        if is_it() {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is the program we
            // started (checked by name just before).
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while is_it() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if is_it() {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let deadline = Instant::now() + Duration::from_secs(2);
                while is_it() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            stopped.push(format!("{what} (process {pid})"));
        }
        std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    }
    Ok(stopped)
}
