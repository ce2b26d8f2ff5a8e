//! SFC-aware members' headers: what `SFC_ENCAP` holds per port pair (`PP_F_ENCAP`), and the
//! two headers' ethertypes. Re-exported by `maps`.
#![expect(clippy::pub_underscore_fields, reason = "explicit repr(C) padding, see STYLE.md")]

/// `EncapEntry::kind`: MPLS, one label `(chain_id << 8) | SI` (networking-sfc's encoding).
pub const ENCAP_MPLS: u8 = 1;
/// `EncapEntry::kind`: NSH (RFC 8300) over Ethernet, SPI = `chain_id`, SI.
pub const ENCAP_NSH: u8 = 2;
/// Ethertypes of the two headers.
pub const ETH_P_MPLS_UC: u16 = 0x8847;
pub const ETH_P_NSH: u16 = 0x894f;

/// `SFC_ENCAP`: port pair id -> the header an SFC-aware member gets (`PP_F_ENCAP`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncapEntry {
    /// `ENCAP_MPLS` or `ENCAP_NSH`.
    pub kind: u8,
    /// NSH MD type: 1 (16 bytes of context, `context`) or 2 (no metadata TLVs).
    pub md_type: u8,
    pub _pad: [u8; 2],
    /// NSH MD type 1's fixed context, as sent (network order).
    pub context: [u8; 16],
}
const _: () = assert!(size_of::<EncapEntry>() == 20);
