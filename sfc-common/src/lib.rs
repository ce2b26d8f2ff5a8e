//! Types shared by the sfc kernel programs (`sfc-ebpf`) and the loader (`sfc-user`).
//!
//! Every map key and value is `#[repr(C)]` with explicit padding and a size assertion, so both
//! sides agree on the bytes. A layout change gets a new map name (see `maps`), never a silent
//! reinterpretation of pinned state.
#![no_std]

pub mod counters;
pub mod drop;
pub mod encap;
pub mod hash;
pub mod limits;
pub mod maps;
pub mod overlay;
pub mod probe;
pub mod proto;
pub mod trace;

pub use drop::DropReason;
