//! Where a `BPF_PROG_TEST_RUN` harness runs (the fixtures and the micro benchmark): a private
//! network namespace the calling thread lives in, with veth pairs so that `skb->ifindex` names
//! real devices, and a bpffs pin directory. Both are `sfc_tests` guards (removed on drop, also
//! when a test panics); this only names them, `sfcfix-<pid>-<n>` and
//! `/sys/fs/bpf/sfc-fixtures-<pid>-<n>`, so that what a killed run left is found and removed by
//! the next ([`sweep_stale`]).

use sfc::datapath;
use sfc_tests::{
    bpffs::{self, PinDir},
    link::{self, Veth},
    netns::{self, Inside},
    pid_name,
};

const NETNS_PREFIX: &str = "sfcfix";
const PIN_PREFIX: &str = "sfc-fixtures";

/// Removes namespaces and pin directories of earlier runs that were killed before cleaning up
/// (once per process).
pub fn sweep_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        netns::sweep_stale(NETNS_PREFIX);
        bpffs::sweep_stale(PIN_PREFIX);
    });
}

/// A fresh namespace with one veth pair per `(a, b)`, entered by the calling thread until drop.
pub fn namespace(pairs: &[(&str, &str)]) -> Inside {
    let inside = Inside::create(&pid_name::unique(NETNS_PREFIX)).unwrap_or_else(|e| panic!("{e:#}"));
    for (a, b) in pairs {
        link::veth(Veth::new(inside.name(), a), Veth::new(inside.name(), b)).unwrap_or_else(|e| panic!("{e:#}"));
    }
    inside
}

/// A fresh pin directory (bpffs mounted first, as the loader would).
pub fn pin_dir() -> PinDir {
    datapath::ensure_bpffs().expect("mounting bpffs");
    PinDir::create(PIN_PREFIX).unwrap_or_else(|e| panic!("{e:#}"))
}

/// ifindex of `ifname` in the calling thread's namespace (the one [`namespace`] entered).
pub fn ifindex(ifname: &str) -> u32 {
    link::ifindex(ifname).unwrap_or_else(|e| panic!("{e:#}"))
}
