//! Interface counters, read from `ip -s -j link show` inside a namespace, or (`NetDev`, where
//! they are read often) from that namespace's `/proc/net/dev`.
//!
//! (Reading `/sys/class/net` would show the mount namespace's view, not the network
//! namespace's, so the netlink route through `ip` is the simple correct one.)

use std::{collections::BTreeMap, fmt, time::Duration};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{
    netns::{self, ip_in},
    topology::End,
};

/// One interface's kernel packet and byte counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl LinkStats {
    /// Counters of every interface in namespace `ns`, by name.
    pub fn read_all(ns: &str) -> Result<BTreeMap<String, LinkStats>> {
        let out = ip_in(ns, &["-s", "-j", "link", "show"])?;
        parse_links(&out).with_context(|| format!("parse `ip -n {ns} -s -j link show`: {out}"))
    }

    /// Counters of interface `dev` in namespace `ns`.
    pub fn read(ns: &str, dev: &str) -> Result<LinkStats> {
        let out = ip_in(ns, &["-s", "-j", "link", "show", "dev", dev])?;
        let all = parse_links(&out)
            .with_context(|| format!("parse `ip -n {ns} -s -j link show dev {dev}`: {out}"))?;
        all.get(dev)
            .copied()
            .with_context(|| format!("no {dev} in {ns}"))
    }

    /// `self - before`, saturating (counters never go backwards on a live interface).
    #[must_use]
    pub fn since(&self, before: &LinkStats) -> LinkStats {
        LinkStats {
            rx_packets: self.rx_packets.saturating_sub(before.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(before.rx_bytes),
            tx_packets: self.tx_packets.saturating_sub(before.tx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(before.tx_bytes),
        }
    }
}

/// A file of one namespace's `/proc/net` (`dev`, `tcp`, ...): opened by a thread inside it (the
/// file keeps the namespace it was opened in) and read again and again, each read a fresh
/// listing from the kernel. A read takes microseconds, where `ip` is a process: 1.7 ms on an
/// idle machine, about 16 ms while a core carries traffic flat out, which is when the bench
/// reads counters, ten times per probe.
#[derive(Debug)]
pub struct ProcNet {
    what: String,
    file: std::fs::File,
}

impl ProcNet {
    pub fn open(ns: &str, name: &str) -> Result<ProcNet> {
        let path = format!("/proc/thread-self/net/{name}");
        let file = netns::in_netns(ns, || std::fs::File::open(&path))?.with_context(|| format!("open /proc/net/{name} in {ns}"))?;
        Ok(ProcNet { what: format!("/proc/net/{name} of {ns}"), file })
    }

    pub fn read(&self) -> Result<String> {
        use std::os::unix::fs::FileExt as _;
        let mut text = Vec::with_capacity(4096);
        let mut buf = [0u8; 4096];
        // A read from the start runs the kernel's listing again.
        loop {
            let n = self.file.read_at(&mut buf, text.len() as u64).with_context(|| format!("read {}", self.what))?;
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

/// A namespace's interface counters from its `/proc/net/dev` (`ProcNet`).
#[derive(Debug)]
pub struct NetDev(ProcNet);

impl NetDev {
    pub fn open(ns: &str) -> Result<NetDev> {
        ProcNet::open(ns, "dev").map(NetDev)
    }

    /// Counters of interface `dev` now (the same `dev_get_stats` that `ip -s link` shows).
    pub fn read(&self, dev: &str) -> Result<LinkStats> {
        parse_net_dev(&self.0.read()?, dev).with_context(|| format!("{dev} in {}", self.0.what))
    }
}

/// The line of `dev` in `/proc/net/dev`: `name: rx_bytes rx_packets (6 more) tx_bytes tx_packets ...`.
fn parse_net_dev(text: &str, dev: &str) -> Result<LinkStats> {
    let fields = text
        .lines()
        .skip(2)
        .find_map(|l| l.split_once(':').filter(|(name, _)| name.trim() == dev).map(|(_, rest)| rest))
        .context("no such interface")?
        .split_whitespace()
        .map(str::parse::<u64>)
        .collect::<Result<Vec<_>, _>>()
        .context("a counter that is not a number")?;
    if fields.len() < 10 {
        anyhow::bail!("{} counters, not 16", fields.len());
    }
    Ok(LinkStats { rx_bytes: fields[0], rx_packets: fields[1], tx_bytes: fields[8], tx_packets: fields[9] })
}

fn parse_links(json: &str) -> Result<BTreeMap<String, LinkStats>> {
    let v: Value = serde_json::from_str(json)?;
    let mut links = BTreeMap::new();
    for link in v.as_array().context("not a JSON array")? {
        let name = link["ifname"].as_str().context("link without ifname")?;
        let s = &link["stats64"];
        let num = |dir: &str, what: &str| {
            s[dir][what]
                .as_u64()
                .with_context(|| format!("{name}: no stats64.{dir}.{what}"))
        };
        links.insert(
            name.to_owned(),
            LinkStats {
                rx_packets: num("rx", "packets")?,
                rx_bytes: num("rx", "bytes")?,
                tx_packets: num("tx", "packets")?,
                tx_bytes: num("tx", "bytes")?,
            },
        );
    }
    Ok(links)
}

/// A snapshot of every endpoint-side interface of a topology.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub links: BTreeMap<End, LinkStats>,
}

impl Counters {
    /// Counters of `end`; zero if the topology has no such interface.
    pub fn get(&self, end: End) -> LinkStats {
        self.links.get(&end).copied().unwrap_or_default()
    }

    /// Per-interface `self - before`.
    #[must_use]
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            links: self
                .links
                .iter()
                .map(|(&end, now)| (end, now.since(&before.get(end))))
                .collect(),
        }
    }

    /// Service-function interfaces whose counters moved at all.
    pub fn moved_sf_interfaces(&self) -> Vec<End> {
        self.links
            .iter()
            .filter(|(end, s)| {
                matches!(end, End::SfIn(_) | End::SfOut(_)) && **s != LinkStats::default()
            })
            .map(|(&end, _)| end)
            .collect()
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>10} {:>10} {:>10} {:>10}",
            "interface", "rx pkts", "rx bytes", "tx pkts", "tx bytes"
        )?;
        for (end, s) in &self.links {
            writeln!(
                f,
                "{:<12} {:>10} {:>10} {:>10} {:>10}",
                end.to_string(),
                s.rx_packets,
                s.rx_bytes,
                s.tx_packets,
                s.tx_bytes
            )?;
        }
        Ok(())
    }
}

/// Reads `read` until two readings `interval` apart agree (in-flight packets have landed), at
/// most `limit`; returns the last reading.
pub fn settled<T: PartialEq>(
    limit: Duration,
    interval: Duration,
    mut read: impl FnMut() -> Result<T>,
) -> Result<T> {
    let start = std::time::Instant::now();
    let mut last = read()?;
    loop {
        std::thread::sleep(interval);
        let now = read()?;
        if now == last || start.elapsed() >= limit {
            return Ok(now);
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
                    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
                    eth0: 1234567    8901    0    2    0     0          0         0   765432    1098    0    0    0     0       0          0\n";
        let s = parse_net_dev(text, "eth0").unwrap();
        assert_eq!(s, LinkStats { rx_bytes: 1_234_567, rx_packets: 8901, tx_bytes: 765_432, tx_packets: 1098 });
        assert!(parse_net_dev(text, "eth1").is_err());
        assert!(parse_net_dev(text, "eth").is_err());
    }

    #[test]
    fn parses_ip_json() {
        let json = r#"[{"ifindex":2,"ifname":"eth0","stats64":{"rx":{"bytes":10,"packets":1,
            "errors":0},"tx":{"bytes":30,"packets":3,"errors":0}}}]"#;
        let links = parse_links(json).unwrap();
        assert_eq!(
            links["eth0"],
            LinkStats {
                rx_packets: 1,
                rx_bytes: 10,
                tx_packets: 3,
                tx_bytes: 30
            }
        );
    }
}
