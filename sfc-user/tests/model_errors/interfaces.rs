//! The `interfaces` section: an attach mode per interface.

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
    only(&with_interfaces("  - {name: src}\n"), "interfaces", "src", "mode", 10, "required field is missing (tc or xdp)");
    only(&with_interfaces("  - {name: src, mode: skb}\n"), "interfaces", "src", "mode", 10, "unknown mode 'skb' (tc or xdp)");
}

#[test]
fn interface_listed_twice_or_with_unknown_field() {
    only(&with_interfaces("  - {name: src, mode: xdp}\n  - {name: src, mode: tc}\n"), "interfaces", "src", "name", 11, "duplicate name (first defined on line 10)");
    only(&with_interfaces("  - {name: src, mdoe: xdp, mode: tc}\n"), "interfaces", "src", "mdoe", 10, "unknown field (did you mean 'mode'?)");
}
