//! The sysctl sets the test networks write (with [`crate::netns::sysctls`]) so that an
//! interface counts only the traffic a test sends: no ICMP redirects, IPv6 off or quiet, and
//! routers that forward whatever comes in on whichever interface.

use anyhow::Result;

use crate::netns;

/// No ICMP redirects sent or accepted (`all` and `default`, before any interface exists).
pub const NO_REDIRECTS: &[(&str, &str)] = &[
    ("net.ipv4.conf.all.accept_redirects", "0"),
    ("net.ipv4.conf.default.accept_redirects", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
];

/// IPv6 off (`all` and `default`): no link-local addresses, no router solicitations, no MLD.
pub const IPV6_OFF: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
];

/// IPv6 on but quiet (`all` and `default`): no link-local addresses (hence no router
/// solicitation and no DAD of them), no DAD, no router advertisements or redirects accepted,
/// and MLD's unsolicited reports (sent when an interface comes up) squeezed into a few
/// milliseconds.
pub const IPV6_QUIET: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "0"),
    ("net.ipv6.conf.default.disable_ipv6", "0"),
    ("net.ipv6.conf.default.addr_gen_mode", "1"),
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.all.dad_transmits", "0"),
    ("net.ipv6.conf.default.dad_transmits", "0"),
    ("net.ipv6.conf.all.router_solicitations", "0"),
    ("net.ipv6.conf.default.router_solicitations", "0"),
    ("net.ipv6.conf.all.accept_ra", "0"),
    ("net.ipv6.conf.default.accept_ra", "0"),
    ("net.ipv6.conf.all.accept_redirects", "0"),
    ("net.ipv6.conf.default.accept_redirects", "0"),
    ("net.ipv6.conf.all.mldv2_unsolicited_report_interval", "10"),
    ("net.ipv6.conf.default.mldv2_unsolicited_report_interval", "10"),
    ("net.ipv6.conf.all.mldv1_unsolicited_report_interval", "10"),
    ("net.ipv6.conf.default.mldv1_unsolicited_report_interval", "10"),
];

/// No reverse-path filter (`all` and `default`): a router in a chain receives on one
/// interface what it routes out of another.
pub const NO_RP_FILTER: &[(&str, &str)] = &[
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
];

/// IPv4 forwarding on or off.
pub fn ip_forward(on: bool) -> (&'static str, &'static str) {
    ("net.ipv4.ip_forward", if on { "1" } else { "0" })
}

/// No reverse-path filter and no redirects on interface `dev` of namespace `ns` itself.
pub fn open_interface(ns: &str, dev: &str) -> Result<()> {
    let keys = open_interface_settings(dev);
    let settings: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    netns::sysctls(ns, &settings)
}

/// What [`open_interface`] writes, for a VM's interface `dev` (set by its init).
pub fn open_interface_settings(dev: &str) -> Vec<(String, &'static str)> {
    ["rp_filter", "accept_redirects", "send_redirects"].map(|k| (format!("net.ipv4.conf.{dev}.{k}"), "0")).to_vec()
}
