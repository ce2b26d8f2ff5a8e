//! Why the datapath dropped a packet. Grow-only: values are never reused or renumbered, a retired
//! reason keeps its number and its name gets a `Retired` prefix.

/// A named drop reason; the value is the index into `SFC_DROPS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DropReason {
    /// A flow points at a chain that is no longer installed and cannot be reclassified.
    NoChain = 1,
    /// The group of the next hop has no usable member (fail-closed).
    NoMember = 2,
    /// The port pair picked for a hop is not installed.
    NoPortPair = 3,
    /// `bpf_redirect`/`bpf_redirect_peer` refused the target interface.
    RedirectFailed = 4,
    /// The flow table refused a new entry.
    FlowTableFull = 5,
    /// Retired: the TTL-based loop guard, which dropped a sender's legitimate TTL changes (the
    /// name stays reserved, and is still reported, always 0). See `Loop`.
    RetiredHopLimit = 6,
    /// Rewriting the Ethernet header failed.
    RewriteFailed = 7,
    /// The per-CPU scratch map was missing (cannot happen once loaded; counted, not assumed).
    NoScratch = 8,
    /// XDP mode: an SCTP packet whose sender left its `CRC32c` to offload (a zero checksum field):
    /// XDP cannot hand that note on, and the receiver would drop the packet. Turn the offload off
    /// on the sender (`ethtool -K DEV tx-checksum-sctp off`) or use tc mode for the interface.
    ChecksumOffload = 9,
    /// XDP mode: the frame is larger than the MTU of the interface it would be sent to.
    TooBig = 10,
    /// Loop guard: a packet came back into its flow's entry port after leaving the chain (the
    /// same packet, by fingerprint, no younger by TTL): something routed it round (steer.rs).
    Loop = 11,
    /// The MAC address of the service function or destination behind the target interface is not
    /// known (a VM behind a tap that sfc has not heard from, and no MAC in the file): the frame
    /// would go to a wrong address.
    NoMac = 12,
    /// A tap group's member (a passive service function) sent a packet back: a tap gets copies
    /// and never puts anything into the chain, so whatever comes out of it is dropped.
    TapReturn = 13,
    /// A copy for a tap group's member could not be made (the clone was refused, or the
    /// interface runs XDP, which cannot copy a frame): the copy is lost, the packet went on.
    TapCopyFailed = 14,
    /// An SFC-aware function sent back a header that does not fit: another chain (SPI or
    /// label), an SI of 0, an SI it did not lower or that names no hop of the chain, or a header
    /// where none was expected.
    EncapMismatch = 15,
    /// The MPLS or NSH header could not be pushed or removed (no room, a helper refused).
    EncapFailed = 16,
    /// A frame that arrived over the overlay (from another host) is addressed to no local
    /// port (no SF interface or destination port here has that MAC), or came without a tunnel
    /// key: it is not this host's chain traffic.
    OverlayUnknown = 17,
    /// The packet is larger than the overlay device's MTU (the inner packet plus 50 bytes of
    /// VXLAN over IPv4, 70 over IPv6, must fit the underlay): it would be dropped uncounted
    /// on the way. Give the underlay room (jumbo frames) or the instances a lower MTU.
    OverlayTooBig = 18,
}

impl DropReason {
    /// Every reason, in numeric order, for decoding the counters.
    pub const ALL: [DropReason; 18] = [
        DropReason::NoChain,
        DropReason::NoMember,
        DropReason::NoPortPair,
        DropReason::RedirectFailed,
        DropReason::FlowTableFull,
        DropReason::RetiredHopLimit,
        DropReason::RewriteFailed,
        DropReason::NoScratch,
        DropReason::ChecksumOffload,
        DropReason::TooBig,
        DropReason::Loop,
        DropReason::NoMac,
        DropReason::TapReturn,
        DropReason::TapCopyFailed,
        DropReason::EncapMismatch,
        DropReason::EncapFailed,
        DropReason::OverlayUnknown,
        DropReason::OverlayTooBig,
    ];

    /// The stable name used by `sfc stats`, JSON output and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NoChain => "no_chain",
            DropReason::NoMember => "no_member",
            DropReason::NoPortPair => "no_port_pair",
            DropReason::RedirectFailed => "redirect_failed",
            DropReason::FlowTableFull => "flow_table_full",
            DropReason::RetiredHopLimit => "hop_limit",
            DropReason::RewriteFailed => "rewrite_failed",
            DropReason::NoScratch => "no_scratch",
            DropReason::ChecksumOffload => "checksum_offload",
            DropReason::TooBig => "too_big",
            DropReason::Loop => "loop",
            DropReason::NoMac => "no_mac",
            DropReason::TapReturn => "tap_return",
            DropReason::TapCopyFailed => "tap_copy_failed",
            DropReason::EncapMismatch => "encap_mismatch",
            DropReason::EncapFailed => "encap_failed",
            DropReason::OverlayUnknown => "overlay_unknown",
            DropReason::OverlayTooBig => "overlay_too_big",
        }
    }
}
