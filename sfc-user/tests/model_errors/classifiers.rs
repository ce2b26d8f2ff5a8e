//! Flow classifiers: ethertype, protocol, prefixes, ports and logical ports.

use sfc::{config, model};

use super::only;

#[test]
fn ethertype_unknown() {
    only("\nflow_classifiers:\n  - {name: f, ethertype: ARP, logical_source_port: s}\n", "flow_classifiers", "f", "ethertype", 2, "unknown ethertype 'arp' (IPv4 or IPv6)");
}

#[test]
fn protocol_number_out_of_range() {
    only("\nflow_classifiers:\n  - {name: f, protocol: 300, logical_source_port: s}\n", "flow_classifiers", "f", "protocol", 2, "protocol number 300 is out of range 0..=255");
}

#[test]
fn protocol_name_unknown() {
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: quic, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "protocol",
        2,
        "unknown protocol 'quic' (tcp, udp, icmp, icmpv6, sctp, udplite or a number 0..=255)",
    );
}

#[test]
fn protocol_by_name_or_number() {
    let y = "\nflow_classifiers:\n  - {name: a, protocol: 6, logical_source_port: s}\n  - {name: b, protocol: '17', logical_source_port: s}\n  - {name: c, protocol: UDP, logical_source_port: s}\n";
    let m = model::validate(&config::parse("t", y).expect("parses")).expect("valid");
    let p: Vec<Option<u8>> = m.flow_classifiers.iter().map(|f| f.protocol).collect();
    assert_eq!(p, [Some(6), Some(17), Some(17)]);
}

#[test]
fn protocol_of_the_other_ip_version() {
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: icmpv6, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "protocol",
        2,
        "protocol icmpv6 does not exist with ethertype IPv4 (use icmp)",
    );
    only(
        "\nflow_classifiers:\n  - {name: f, ethertype: IPv6, protocol: 1, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "protocol",
        2,
        "protocol icmp does not exist with ethertype IPv6 (use icmpv6)",
    );
}

#[test]
fn prefix_not_an_address() {
    only("\nflow_classifiers:\n  - {name: f, source_ip_prefix: web-servers, logical_source_port: s}\n", "flow_classifiers", "f", "source_ip_prefix", 2, "'web-servers' is not an IP prefix");
}

#[test]
fn prefix_length_out_of_range() {
    only(
        "\nflow_classifiers:\n  - {name: f, destination_ip_prefix: 10.0.0.0/33, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "destination_ip_prefix",
        2,
        "'10.0.0.0/33': prefix length must be 0..=32",
    );
}

#[test]
fn prefix_with_host_bits() {
    only(
        "\nflow_classifiers:\n  - {name: f, destination_ip_prefix: 10.0.0.1/24, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "destination_ip_prefix",
        2,
        "'10.0.0.1/24' has host bits set (did you mean 10.0.0.0/24?)",
    );
}

#[test]
fn prefix_of_the_other_ethertype() {
    only(
        "\nflow_classifiers:\n  - {name: f, source_ip_prefix: '2001:db8::/32', logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "source_ip_prefix",
        2,
        "2001:db8::/32 is IPv6 but the classifier's ethertype is IPv4",
    );
}

#[test]
fn ports_without_a_protocol_that_has_them() {
    only(
        "\nflow_classifiers:\n  - {name: f, destination_port_range_max: 80, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "destination_port_range_max",
        2,
        "port ranges need protocol tcp, udp, sctp or udplite; this classifier has no protocol",
    );
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: icmp, source_port_range_min: 1, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "source_port_range_min",
        2,
        "port ranges need protocol tcp, udp, sctp or udplite; this classifier has protocol icmp",
    );
}

#[test]
fn port_out_of_range() {
    only(
        "\nflow_classifiers:\n  - {name: f, protocol: udp, source_port_range_max: 70000, logical_source_port: s}\n",
        "flow_classifiers",
        "f",
        "source_port_range_max",
        2,
        "port 70000 is out of range 0..=65535",
    );
}

#[test]
fn port_range_reversed() {
    only(
        "
flow_classifiers:
  - name: f
    protocol: tcp
    destination_port_range_min: 90
    destination_port_range_max: 80
    logical_source_port: s
",
        "flow_classifiers",
        "f",
        "destination_port_range_min",
        4,
        "destination_port_range_min 90 is above destination_port_range_max 80: the range is empty",
    );
}

#[test]
fn logical_source_port_missing() {
    only("\nflow_classifiers:\n  - {name: f}\n", "flow_classifiers", "f", "logical_source_port", 2, "required field is missing (the interface the traffic arrives on; only the classifiers of a service graph's destination chains may leave it out)");
}

#[test]
fn logical_port_is_a_service_function_interface() {
    only(
        "\nport_pairs:\n  - {name: pp1, ingress: a, egress: b}\nflow_classifiers:\n  - {name: f, logical_source_port: s, logical_destination_port: b}\n",
        "flow_classifiers",
        "f",
        "logical_destination_port",
        4,
        "interface 'b' is the egress of port pair 'pp1', it cannot also be a logical port",
    );
}
