//! A prefix in the state file as its text, `10.0.0.6/32` or `2001:db8::/64`, not as its 16
//! address bytes one number each: at 100,000 classifiers that was 19 of the state file's 51
//! MB, which every apply writes (behind it, under the datapath's lock) and a new process reads.
//!
//! State files written before keep the other form (`{"ethertype", "addr", "len"}`), and it
//! still reads. The text is read back exactly as written: host bits are kept (a prefix built by
//! sfc itself need not be masked), where `Prefix::parse` refuses them in a chain file.

use std::{fmt, net::IpAddr};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, MapAccess, Visitor, value::MapAccessDeserializer},
};

use super::{Ethertype, Prefix};

/// The form state files had before.
#[derive(Serialize, Deserialize)]
struct Bytes {
    ethertype: Ethertype,
    addr: [u8; 16],
    len: u8,
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // An IPv4 prefix with bytes past its fourth, or a length past its address's (none
        // that sfc builds), would not survive its text: it keeps the byte form.
        if (self.ethertype == Ethertype::IPv4 && self.addr[4..].iter().any(|b| *b != 0)) || self.len > self.ethertype.addr_bits() {
            return Bytes { ethertype: self.ethertype, addr: self.addr, len: self.len }.serialize(s);
        }
        s.collect_str(self)
    }
}

/// `text` as `Display` writes a prefix, host bits and all.
fn from_text(text: &str) -> Result<Prefix, String> {
    let (a, l) = text.split_once('/').ok_or_else(|| format!("'{text}' is not a prefix (ADDRESS/LENGTH)"))?;
    let ip: IpAddr = a.parse().map_err(|_| format!("'{text}': '{a}' is not an IP address"))?;
    let (ethertype, addr) = Prefix::bytes_of(ip);
    let len = l.parse::<u8>().ok().filter(|len| *len <= ethertype.addr_bits()).ok_or_else(|| format!("'{text}': the length must be 0..={}", ethertype.addr_bits()))?;
    Ok(Prefix { ethertype, addr, len })
}

struct PrefixVisitor;

impl<'de> Visitor<'de> for PrefixVisitor {
    type Value = Prefix;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a prefix, as ADDRESS/LENGTH or {ethertype, addr, len}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Prefix, E> {
        from_text(v).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Prefix, A::Error> {
        let b = Bytes::deserialize(MapAccessDeserializer::new(map))?;
        Ok(Prefix { ethertype: b.ethertype, addr: b.addr, len: b.len })
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PrefixVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(ethertype: Ethertype, head: &[u8], len: u8) -> Prefix {
        let mut addr = [0u8; 16];
        addr[..head.len()].copy_from_slice(head);
        Prefix { ethertype, addr, len }
    }

    /// Every prefix reads back as it was written, host bits included; an IPv4 prefix with
    /// bytes past its fourth keeps the byte form; the byte form of older state files reads.
    #[test]
    fn prefixes_round_trip_and_old_files_read() {
        let cases = [
            (prefix(Ethertype::IPv4, &[10, 0, 0, 6], 32), "\"10.0.0.6/32\""),
            (prefix(Ethertype::IPv4, &[], 0), "\"0.0.0.0/0\""),
            (prefix(Ethertype::IPv4, &[10, 1, 2, 3], 8), "\"10.1.2.3/8\""),
            (prefix(Ethertype::IPv6, &[0x20, 0x01, 0x0d, 0xb8], 32), "\"2001:db8::/32\""),
            (prefix(Ethertype::IPv6, &[], 0), "\"::/0\""),
            (prefix(Ethertype::IPv6, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4], 128), "\"::ffff:1.2.3.4/128\""),
        ];
        for (p, text) in cases {
            let json = serde_json::to_string(&p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(json, text);
            assert_eq!(serde_json::from_str::<Prefix>(&json).unwrap_or_else(|e| panic!("{json}: {e}")), p, "{json}");
        }
        for odd in [prefix(Ethertype::IPv4, &[10, 0, 0, 6, 9], 32), prefix(Ethertype::IPv4, &[10], 40)] {
            let json = serde_json::to_string(&odd).unwrap_or_else(|e| panic!("{e}"));
            assert!(json.starts_with('{'), "{json}");
            assert_eq!(serde_json::from_str::<Prefix>(&json).unwrap_or_else(|e| panic!("{e}")), odd);
        }
        let old = r#"{"ethertype":"IPv4","addr":[10,0,0,6,0,0,0,0,0,0,0,0,0,0,0,0],"len":32}"#;
        assert_eq!(serde_json::from_str::<Prefix>(old).unwrap_or_else(|e| panic!("{e}")), prefix(Ethertype::IPv4, &[10, 0, 0, 6], 32));
        for bad in ["\"10.0.0.6\"", "\"10.0.0.6/33\"", "\"::/129\"", "\"x/8\"", "17"] {
            assert!(serde_json::from_str::<Prefix>(bad).is_err(), "{bad} is refused");
        }
    }
}
