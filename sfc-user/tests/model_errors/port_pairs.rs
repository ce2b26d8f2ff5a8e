//! Port pairs: their interfaces and weights.

use super::{only, problems};

#[test]
fn ingress_missing() {
    only(
        "\nport_pairs:\n  - {name: pp1, egress: b}\n",
        "port_pairs",
        "pp1",
        "ingress",
        2,
        "required field is missing (the interface through which traffic is sent into the service function)",
    );
}

#[test]
fn egress_missing() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a}\n",
        "port_pairs",
        "pp1",
        "egress",
        2,
        "required field is missing (the interface on which the service function sends traffic back; may equal ingress)",
    );
}

#[test]
fn wrong_type_is_reported_once_not_also_as_missing() {
    let p = problems("\nport_pairs:\n  - {name: pp1, ingress: {}, egress: b}\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].4, "expected a string, found a mapping");
}

#[test]
fn interface_name_invalid() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: sf1/in, egress: b}\n",
        "port_pairs",
        "pp1",
        "ingress",
        2,
        "'sf1/in' is not a valid interface name (1-15 bytes, no '/', ':' or spaces)",
    );
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a-very-long-interface, egress: b}\n",
        "port_pairs",
        "pp1",
        "ingress",
        2,
        "'a-very-long-interface' is not a valid interface name (1-15 bytes, no '/', ':' or spaces)",
    );
}

#[test]
fn weight_out_of_range() {
    only("\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, weight: 0}\n", "port_pairs", "pp1", "weight", 2, "weight 0 is out of range 1..=1000");
    only("\nport_pairs:\n  - {name: pp1, ingress: a, egress: b, weight: -3}\n", "port_pairs", "pp1", "weight", 2, "weight -3 is out of range 1..=1000");
}

#[test]
fn interface_already_used_by_another_port_pair() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\n  - {name: pp2, ingress: c, egress: a}\n",
        "port_pairs",
        "pp2",
        "egress",
        3,
        "interface 'a' is already the ingress of port pair 'pp1'",
    );
}

#[test]
fn ingress_may_equal_egress() {
    assert_eq!(problems("\nport_pairs:\n  - {name: pp1, ingress: a, egress: a}\n"), vec![]);
}

#[test]
fn macs_must_be_unicast_addresses() {
    for (mac, ok) in [("52:54:00:13:00:01", true), ("52-54-00-13-00-02", true), ("01:00:5e:00:00:01", false), ("00:00:00:00:00:00", false), ("52:54:00:13:00", false), ("52:54:00:13:00:zz", false), ("52:54:00:13:00:+1", false), ("525400130001", false)] {
        let y = format!("\nport_pairs:\n  - {{name: pp1, ingress: a, egress: b, egress_mac: \"{mac}\"}}\n");
        if ok {
            assert_eq!(problems(&y), vec![], "{mac}");
        } else {
            only(&y, "port_pairs", "pp1", "egress_mac", 2, &format!("'{mac}' is not a unicast MAC address like 52:54:00:12:34:56"));
        }
    }
}
