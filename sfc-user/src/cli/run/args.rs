//! `sfc run`'s options.

use std::net::SocketAddr;

use sfc_common::limits::{DEFAULT_FLOW_TABLE_SIZE, DEFAULT_NEW_FLOW_RATE};

use super::etcd;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The chain file (YAML or JSON); re-applied whenever its content changes.
    #[arg(short = 'f', long = "file", value_name = "FILE", required_unless_present = "etcd")]
    pub(super) file: Option<String>,
    #[command(flatten)]
    pub etcd: etcd::EtcdArgs,
    /// Serve Prometheus metrics on ADDR (path /metrics).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9469")]
    pub(super) metrics: SocketAddr,
    /// Seconds between two looks at FILE.
    #[arg(long, value_name = "SECS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) interval: u64,
    /// Milliseconds between two looks at the link state of every port pair's interfaces; a
    /// member whose interface goes down fails over (its flows move to the other members).
    #[arg(long, value_name = "MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(20..=60_000))]
    pub(super) health_interval: u64,
    /// Flow table entries (set when the datapath is first loaded; at most 4194304).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FLOW_TABLE_SIZE,
          value_parser = clap::value_parser!(u32).range(1024..=4_194_304))]
    pub(super) flow_table_size: u32,
    /// Seconds a port pair removed from its group keeps serving the flows it already has (0:
    /// move them at once).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(super) drain_timeout: u64,
    /// Attach mode of every interface the file's `interfaces:` section does not set.
    #[arg(long, value_enum, default_value_t = crate::cli::apply::Mode::Tc)]
    pub(super) mode: crate::cli::apply::Mode,
    /// New flow entries each CPU may create per second (0: no cap); see `sfc apply --help`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NEW_FLOW_RATE)]
    pub(super) new_flow_rate: u32,
    /// Time the service functions with 1 packet in N (chosen by bytes that routing does not
    /// change, so the same packet is recognised when it comes back): per member histograms in
    /// `sfc stats` and the metrics. 0: off.
    #[arg(long, value_name = "N", default_value_t = sfc_common::trace::DEFAULT_LATENCY_EVERY)]
    pub(super) sf_latency_every: u32,
    /// Seconds without a packet after which a flow entry is removed (its next packet, if any,
    /// starts it again, on the same members unless the configuration changed).
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) flow_idle_timeout: u32,
    /// Seconds a closed TCP flow (FIN or RST seen) and a flow no classifier matches any more keep
    /// their entry after their last packet.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) flow_close_grace: u32,
    /// Log lines as JSON objects on stdout, one per line: {"ts","level","msg"} (`ts` in seconds
    /// since the Unix epoch); without it, text on stderr (under systemd: journal priorities).
    #[arg(long)]
    pub json: bool,
}
