//! The `interfaces` section: an attach mode per interface, and the MAC behind it.

use sfc::{config, model};

use super::{BASE, only};

fn with_interfaces(entries: &str) -> String {
    format!("{BASE}interfaces:\n{entries}")
}

#[test]
fn interface_modes_are_read() {
    let cfg = config::parse("t.yaml", &with_interfaces("  - {name: sf1-out, mode: xdp}\n  - {name: src, mode: TC}\n")).expect("parses");
    let m = model::validate(&cfg).expect("valid");
    assert_eq!(m.mode_of("sf1-out", model::AttachMode::Tc), model::AttachMode::Xdp);
    assert_eq!(m.mode_of("src", model::AttachMode::Xdp), model::AttachMode::Tc);
    assert_eq!(m.mode_of("sf1-in", model::AttachMode::Xdp), model::AttachMode::Xdp, "not listed: the default");
}

#[test]
fn interface_not_used_by_the_file() {
    only(&with_interfaces("  - {name: sf1-ot, mode: xdp}\n"), "interfaces", "sf1-ot", "name", 10, "'sf1-ot' is not an interface of any port pair or flow classifier (did you mean 'sf1-out'?)");
    only(&with_interfaces("  - {name: eth7, mode: xdp}\n"), "interfaces", "eth7", "name", 10, "'eth7' is not an interface of any port pair or flow classifier");
}

#[test]
fn interface_mode_missing_or_unknown() {
    only(&with_interfaces("  - {name: src}\n"), "interfaces", "src", "mode", 10, "required field is missing (tc or xdp; or `mac`, the MAC behind the interface)");
    only(&with_interfaces("  - {name: src, mode: skb}\n"), "interfaces", "src", "mode", 10, "unknown mode 'skb' (tc or xdp)");
}

#[test]
fn interface_listed_twice_or_with_unknown_field() {
    only(&with_interfaces("  - {name: src, mode: xdp}\n  - {name: src, mode: tc}\n"), "interfaces", "src", "name", 11, "duplicate name (first defined on line 10)");
    only(&with_interfaces("  - {name: src, mdoe: xdp, mode: tc}\n"), "interfaces", "src", "mdoe", 10, "unknown field (did you mean 'mode'?)");
}

#[test]
fn interface_macs_are_read_with_or_without_a_mode() {
    let cfg = config::parse("t.yaml", &with_interfaces("  - {name: src, mac: 52:54:00:00:00:0A}\n  - {name: sf1-out, mode: xdp, mac: 52-54-00-00-00-0b}\n")).expect("parses");
    let m = model::validate(&cfg).expect("valid");
    assert_eq!(m.interface_macs.get("src"), Some(&[0x52, 0x54, 0, 0, 0, 0x0a]));
    assert_eq!(m.interface_macs.get("sf1-out"), Some(&[0x52, 0x54, 0, 0, 0, 0x0b]));
    assert_eq!(m.mode_of("src", model::AttachMode::Xdp), model::AttachMode::Xdp, "a mac alone sets no mode");
    assert_eq!(m.mode_of("sf1-out", model::AttachMode::Tc), model::AttachMode::Xdp);
}

#[test]
fn interface_mac_that_is_not_a_unicast_mac() {
    only(&with_interfaces("  - {name: src, mac: ff:ff:ff:ff:ff:ff}\n"), "interfaces", "src", "mac", 10, "'ff:ff:ff:ff:ff:ff' is not a unicast MAC address like 52:54:00:12:34:56");
    only(&with_interfaces("  - {name: src, mac: 52:54:00:00:00}\n"), "interfaces", "src", "mac", 10, "'52:54:00:00:00' is not a unicast MAC address like 52:54:00:12:34:56");
}

/// networking-sfc names ports by their neutron id; nova plugs the port's VM into `tap` and the
/// id's first 11 characters. The model holds the tap name and remembers the id for messages.
#[test]
fn neutron_port_ids_name_their_taps() {
    let id_in = "897df85a-26c3-4491-888e-8cc58f19cea1";
    let id_out = "3A8E2C11-0D5B-4C55-9D39-0A3B3C2D1E0F";
    let file = BASE.replace("ingress: sf1-in", &format!("ingress: {id_in}")).replace("egress: sf1-out", &format!("egress: {id_out}"));
    assert_ne!(file, BASE, "the base file changed: the test no longer replaces anything");
    let file = format!("{file}interfaces:\n  - {{name: {id_in}, mac: 52:54:00:00:00:01}}\n");
    let m = model::validate(&config::parse("t.yaml", &file).expect("parses")).expect("valid");
    let pp = &m.port_pairs[0];
    assert_eq!((pp.ingress.as_str(), pp.egress.as_str()), ("tap897df85a-26", "tap3a8e2c11-0d"));
    assert_eq!(m.interface_macs.get("tap897df85a-26"), Some(&[0x52, 0x54, 0, 0, 0, 1]), "interfaces: by port id too");
    assert_eq!(m.describe_iface("tap897df85a-26"), format!("'tap897df85a-26' (neutron port {id_in})"));
    assert_eq!(m.describe_iface("sf2-in"), "'sf2-in'");
    assert_eq!(model::neutron_tap("not-a-uuid"), None);
    assert_eq!(model::neutron_tap("897df85a-26c3-4491-888e-8cc58f19cea"), None, "one digit short");
}
