//! Namespace integration suite for sfc: the DESIGN.md section-6 topology in network namespaces,
//! in-process traffic helpers, interface counters and a runner for the `sfc` CLI.
//!
//! Service functions can also be real qemu VMs on tap devices ([`vm`]).
//!
//! Everything a test creates lives in namespaces named `sfc-<id>-*` with a per-topology random
//! id, is removed by RAII guards (also on panic), and uses only 198.18.0.0/24 (RFC 2544) and,
//! in IPv6 topologies, `fd00:5fc::/64`.
//!
//! It is also the one home of the namespace, link and bpffs plumbing for sfc-user's
//! `BPF_PROG_TEST_RUN` tests (a namespace the test thread lives in, a pin directory of its own,
//! names a later run recognises as left behind) and for the benchmark in `xtask`.

pub mod aware_sf;
pub mod blog;
pub mod bpffs;
pub mod bulk;
pub mod chain;
pub mod counters;
pub mod dashboard;
pub mod failover;
pub mod hopfloor;
pub mod hosts;
pub mod http;
pub mod bpfstack;
pub mod interrupt;
pub mod link;
pub mod netns;
pub mod observe;
pub mod perf;
pub mod ping;
pub mod pid_name;
pub mod process;
pub mod prometheus;
pub mod prometheus_server;
pub mod rawbpf;
pub mod rng;
pub mod scenario;
pub mod send;
pub mod sfc;
pub mod stream;
pub mod sysctl;
pub mod tap;
pub mod topology;
pub mod traffic;
pub mod vm;

pub use chain::ChainFile;

/// Runs each named scenario once per attach mode, with the same traffic and assertions:
/// `tc::name` calls `name("tc")`, `xdp::name` calls `name("xdp")`.
#[macro_export]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {
        mod tc {
            $(#[test] fn $name() { super::$name("tc") })*
        }
        mod xdp {
            $(#[test] fn $name() { super::$name("xdp") })*
        }
    };
}
pub use counters::{Counters, LinkStats, NetDev, ProcNet};
pub use sfc::{Sfc, Stats};
pub use topology::{Topology, TopologyConfig};
