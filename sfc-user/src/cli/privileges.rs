//! Which capabilities a command needs, checked before it does anything, so the commonest
//! mistake (not root) gets an error that names the fix instead of a verifier log or `EPERM`
//! halfway through. Measured with `setpriv --bounding-set` on this kernel (6.18):
//!
//! - loading and attaching (apply, run, trace): `CAP_BPF`, `CAP_NET_ADMIN` (tc/XDP links,
//!   netlink) and `CAP_PERFMON` (the verifier refuses the programs without it); `down`:
//!   `CAP_BPF` and `CAP_NET_ADMIN`;
//! - reading the pinned maps (status, stats, flows, map, explain/export of the installed state):
//!   `CAP_BPF`;
//! - `--netns` (setns) and mounting bpffs when it is missing: `CAP_SYS_ADMIN`;
//! - `sfc run`'s health probes (a packet socket): `CAP_NET_RAW`, without which it runs with the
//!   probes off (it says so).
//!
//! `deploy/systemd/sfc.service` grants exactly these.

pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_NET_RAW: u32 = 13;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

fn name(cap: u32) -> &'static str {
    match cap {
        CAP_NET_ADMIN => "CAP_NET_ADMIN",
        CAP_NET_RAW => "CAP_NET_RAW",
        CAP_SYS_ADMIN => "CAP_SYS_ADMIN",
        CAP_PERFMON => "CAP_PERFMON",
        CAP_BPF => "CAP_BPF",
        _ => "a capability",
    }
}

/// The effective capability set of this process (`CapEff` in /proc/self/status).
fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// What a command does to the datapath: load programs, detach and unpin, or read pins.
#[derive(Clone, Copy)]
pub enum Access {
    Load,
    Remove,
    Read,
}

/// What a command with `access` needs; `netns`: it enters `--netns`.
pub fn needed(access: Access, netns: bool) -> Vec<u32> {
    let mut caps = match access {
        Access::Load => vec![CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON],
        Access::Remove => vec![CAP_BPF, CAP_NET_ADMIN],
        Access::Read => vec![CAP_BPF],
    };
    if netns {
        caps.push(CAP_SYS_ADMIN);
    }
    caps
}

/// The error for `command` when the process lacks any of `caps` (`None` when it has them all,
/// or when the set cannot be read: then the kernel's own error stands).
pub fn missing(command: &str, caps: &[u32]) -> Option<String> {
    let eff = effective()?;
    // CAP_SYS_ADMIN also grants what CAP_BPF and CAP_PERFMON do (kernels before 5.8 had only it).
    let has = |c: u32| eff & (1 << c) != 0 || (matches!(c, CAP_BPF | CAP_PERFMON) && eff & (1 << CAP_SYS_ADMIN) != 0);
    let lacking: Vec<&str> = caps.iter().copied().filter(|&c| !has(c)).map(name).collect();
    if lacking.is_empty() {
        return None;
    }
    let all: Vec<&str> = caps.iter().copied().map(name).collect();
    Some(format!(
        "`sfc {command}` needs {} and this process lacks {}: run it as root (`sudo sfc {command} ...`), or as the sfc.service unit, which grants them",
        all.join(", "),
        lacking.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_needs_more_than_reading() {
        assert_eq!(needed(Access::Read, false), [CAP_BPF]);
        assert_eq!(needed(Access::Remove, false), [CAP_BPF, CAP_NET_ADMIN]);
        assert_eq!(needed(Access::Load, true), [CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN]);
        assert_eq!(name(CAP_PERFMON), "CAP_PERFMON");
    }
}
