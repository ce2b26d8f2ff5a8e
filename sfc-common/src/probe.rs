//! Health probes through a service function (`health_check:` on a group). The loader sends a UDP
//! datagram (ports `limits::PROBE_PORT`) into a member's ingress; the function forwards it like
//! chain traffic; the datapath recognises it when it comes back at the member's egress, records
//! its sequence number in `SFC_PROBES` and consumes it (never delivered, never counted as
//! traffic). Its payload:
//!
//! ```text
//!  0      8         12             20
//!  | magic | port pair | sequence   |
//!  "SFCPROBE"  u32 BE      u64 BE
//! ```

/// The first payload bytes of a probe.
pub const MAGIC: [u8; 8] = *b"SFCPROBE";
/// Payload bytes of a probe.
pub const PAYLOAD_LEN: usize = 20;

/// The payload of probe `seq` for port pair `port_pair`.
pub fn payload(port_pair: u32, seq: u64) -> [u8; PAYLOAD_LEN] {
    let mut p = [0u8; PAYLOAD_LEN];
    p[..8].copy_from_slice(&MAGIC);
    p[8..12].copy_from_slice(&port_pair.to_be_bytes());
    p[12..20].copy_from_slice(&seq.to_be_bytes());
    p
}
