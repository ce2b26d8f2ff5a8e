//! Names that carry the id of the process that made them, `<prefix>-<pid>-<n>`: unique within
//! this process, and recognisably left behind once that process is gone (a test run killed
//! before its guards could clean up).

use std::{
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
};

/// A fresh `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static INSTANCE: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), INSTANCE.fetch_add(1, Ordering::Relaxed))
}

/// Whether `name` is `<prefix>-<pid>-<n>` of a process that no longer exists.
pub fn is_stale(name: &str, prefix: &str) -> bool {
    let Some(pid) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')).and_then(|r| r.split('-').next()) else {
        return false;
    };
    pid.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_names_are_never_stale() {
        let a = unique("sfcx");
        assert!(a.starts_with(&format!("sfcx-{}-", std::process::id())));
        assert_ne!(a, unique("sfcx"));
        assert!(!is_stale(&a, "sfcx"));
    }

    #[test]
    fn names_of_gone_processes_are_stale() {
        // Above the largest pid Linux hands out (2^22).
        assert!(is_stale("sfcx-4194305-0", "sfcx"));
        assert!(!is_stale("sfcx-4194305-0", "sfcy"));
        assert!(!is_stale("sfcx-notapid-0", "sfcx"));
        assert!(!is_stale("sfcxy-4194305-0", "sfcx"));
    }
}
