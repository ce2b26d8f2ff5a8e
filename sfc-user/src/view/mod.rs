//! The read side: decoded views of the installed datapath, with the applied chain file's names,
//! read from the pinned maps. The CLI prints them, the metrics exporter renders them; neither
//! reads maps itself for them. `inspect`: the state, status, flows, classifier tables and map
//! dumps; `stats`: counters by chain, hop, member and interface, and the flow table's accounting.

pub mod inspect;
pub mod stats;
pub mod trace;
