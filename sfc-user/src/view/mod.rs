//! The read side: decoded views of the installed datapath, with the applied chain file's names,
//! read from the pinned maps. The CLI prints them, the metrics exporter renders them; neither
//! reads maps itself for them. (The map-level decoders, `sfc map dump` and `sfc flows`, are in
//! `datapath::inspect`.)

pub mod stats;
