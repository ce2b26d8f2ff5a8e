//! sfc: networking-sfc port chains compiled into BPF maps and steered by tc programs.
//!
//! Layers (shared/DESIGN.md section 2): `config` (serde) -> `model` (validated, pure) ->
//! `compile` (map entries, pure) -> `datapath` (aya: load, attach, pin, write, read) -> `view`
//! (decoded state with names) -> `metrics` and `cli` (render and print).

pub mod cli;
pub mod compile;
pub mod config;
pub mod datapath;
pub mod etcd;
pub mod maglev;
pub mod metrics;
pub mod model;
pub mod view;
