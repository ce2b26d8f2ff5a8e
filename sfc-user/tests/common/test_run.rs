//! The kernel's side of `BPF_PROG_TEST_RUN` as the harnesses use it (the fixtures and the micro
//! benchmark): the verdict values of both program types and the context a run is given.

/// tc verdicts (`TC_ACT_*`).
pub const PASS: u32 = 0;
pub const DROP: u32 = 2;
pub const REDIRECT: u32 = 7;

/// XDP verdicts (`XDP_*`).
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;

/// The context for one run of `mode`'s program on a packet of `len` bytes arriving on `ifindex`
/// (the one `sfc trace --probe` gives the live program).
pub use sfc::datapath::traceflow::test_run_context as context;
