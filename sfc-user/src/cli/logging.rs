//! Where log lines go and how they look. Three formats, chosen once at start:
//!
//! - under systemd (`JOURNAL_STREAM` names our stderr): `<6>message` on stderr, the sd-daemon(3)
//!   level prefix the journal turns into the entry's priority, and no timestamp of our own (the
//!   journal records one);
//! - `sfc run --json`: one JSON object per line on stdout, `{"ts":1764752000.125,"level":"info",
//!   "msg":"..."}` (`ts`: seconds since the Unix epoch), for scripts;
//! - else `env_logger`'s own format on stderr, for a terminal.
//!
//! The level is `info` for the daemon and `warn` for one-shot commands; `RUST_LOG` overrides it.

use std::{io::Write as _, os::fd::AsFd as _};

use log::Level;

pub fn init(daemon: bool, json: bool) {
    let default = if daemon { "info" } else { "warn" };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if json {
        b.target(env_logger::Target::Stdout).format(|f, r| {
            let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            let line = serde_json::json!({
                "ts": (ts * 1000.0).round() / 1000.0,
                "level": r.level().as_str().to_ascii_lowercase(),
                "msg": r.args().to_string(),
            });
            writeln!(f, "{line}")
        });
    } else if under_journal() {
        // Every line of a message carries the priority (the journal makes each line an entry).
        b.format(|f, r| {
            let p = priority(r.level());
            for line in r.args().to_string().lines() {
                writeln!(f, "<{p}>{line}")?;
            }
            Ok(())
        });
    }
    b.init();
}

/// Prints the error a command ends with: `error: ...` on stderr; under the journal every line
/// at priority err, so `journalctl -p err` shows why the daemon stopped.
pub fn error(message: &str) {
    let prefix = if under_journal() { "<3>" } else { "" };
    for (i, line) in message.lines().enumerate() {
        eprintln!("{prefix}{}{line}", if i == 0 { "error: " } else { "" });
    }
}

/// sd-daemon(3) priorities: err, warning, info, debug.
const fn priority(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM=<dev>:<inode>` of the
/// socket it connects stderr to (a redirected stderr keeps the variable, not the inode).
fn under_journal() -> bool {
    std::env::var("JOURNAL_STREAM").is_ok_and(|v| names_stderr(&v))
}

fn names_stderr(v: &str) -> bool {
    let Some((dev, ino)) = v.split_once(':') else { return false };
    let Ok(st) = rustix::fs::fstat(std::io::stderr().as_fd()) else { return false };
    dev.parse::<u64>().is_ok_and(|d| d == st.st_dev) && ino.parse::<u64>().is_ok_and(|i| i == st.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_sd_daemon_levels() {
        assert_eq!([Level::Error, Level::Warn, Level::Info, Level::Debug].map(priority), [3, 4, 6, 7]);
    }

    #[test]
    fn journal_stream_must_name_our_stderr() {
        let st = rustix::fs::fstat(std::io::stderr().as_fd()).expect("fstat stderr");
        assert!(names_stderr(&format!("{}:{}", st.st_dev, st.st_ino)));
        assert!(!names_stderr(&format!("{}:{}", st.st_dev, st.st_ino + 1)));
        assert!(!names_stderr("garbage"));
    }
}
