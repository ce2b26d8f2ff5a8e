//! A chain exported from networking-sfc's API runs: `sfc import neutron` of the API bodies (with
//! ids, descriptions, networking-sfc's default `correlation: mpls`), `sfc apply` of what it
//! wrote, and real UDP through both groups, proven by the service functions' own counters;
//! `sfc export neutron` of the applied datapath gives back the ids.
//!
//! Needs the `sfc` binary (`SFC_BIN`, else `target/debug/sfc`) and root; run with
//! `--test-threads=1`.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use serde_json::json;
use sfc_tests::{
    Sfc, TopologyConfig,
    scenario::Fixture,
    send::datagrams_from,
    stream::STREAM_PORT,
    topology::{DEST_IP, End},
};

fn id(n: u8) -> String {
    format!("{n:08x}-0000-4000-8000-00000000000{}", n % 10)
}

#[test]
fn an_imported_networking_sfc_chain_carries_traffic() {
    let fx = Fixture::new(TopologyConfig::new(&[1, 2, 3]));
    let topo = &fx.topo;
    let sfc = Sfc::for_topology(topo);
    let pp = |n: u8| {
        json!({"id": id(n), "name": format!("PP{n}"), "description": format!("vm{n}"), "tenant_id": "t",
               "ingress": topo.hub_dev(End::SfIn(n)), "egress": topo.hub_dev(End::SfOut(n)),
               "service_function_parameters": {"correlation": null, "weight": 1}})
    };
    let api = json!({
        "port_pairs": [pp(1), pp(2), pp(3)],
        "port_pair_groups": [
            {"id": id(11), "name": "PG1", "port_pairs": [id(1), id(2)], "tap_enabled": false,
             "port_pair_group_parameters": {"lb_fields": [], "ppg_n_tuple_mapping": {"ingress_n_tuple": {}, "egress_n_tuple": {}}}},
            {"id": id(12), "name": "PG2", "port_pairs": [id(3)], "tap_enabled": false,
             "port_pair_group_parameters": {"lb_fields": [], "ppg_n_tuple_mapping": {"ingress_n_tuple": {}, "egress_n_tuple": {}}}}
        ],
        "flow_classifiers": [
            {"id": id(21), "name": "FC_udp", "ethertype": "IPv4", "protocol": "UDP",
             "destination_port_range_min": STREAM_PORT, "destination_port_range_max": STREAM_PORT,
             "source_ip_prefix": null, "destination_ip_prefix": null,
             "logical_source_port": topo.hub_dev(End::Source), "logical_destination_port": null, "l7_parameters": {}}
        ],
        "port_chains": [
            {"id": id(31), "name": "PC1", "chain_id": 7, "port_pair_groups": [id(11), id(12)], "flow_classifiers": [id(21)],
             "chain_parameters": {"correlation": "mpls", "symmetric": false}}
        ]
    });
    let input = fx.dir.path().join("neutron.json");
    std::fs::write(&input, api.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let out = fx.dir.path().join("chains.yaml");
    sfc.run(&["import", "neutron", &input.to_string_lossy(), "-o", &out.to_string_lossy()]);
    sfc.apply(&out);

    let dest = SocketAddr::new(IpAddr::V4(DEST_IP), STREAM_PORT);
    let ((), w) = fx.window(&sfc, "UDP through the imported chain", || {
        for sport in 42_001..42_011 {
            datagrams_from(&topo.source(), sport, dest, &[64; 3], Duration::from_millis(2)).unwrap_or_else(|e| panic!("{e:#}"));
        }
    });
    let pg1 = w.link(End::SfIn(1)).rx_packets + w.link(End::SfIn(2)).rx_packets;
    assert_eq!((pg1, w.link(End::SfIn(3)).rx_packets), (30, 30), "{}", w.report());
    assert_eq!(w.packets("PC1", 1, "PP3"), 30, "{}", w.report());
    w.assert_no_drops();

    let exported: serde_json::Value = serde_json::from_str(&sfc.run(&["export", "neutron"])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exported["port_chains"][0]["id"], id(31));
    assert_eq!(exported["port_chains"][0]["chain_id"], 7);
    assert_eq!(exported["port_pair_groups"][0]["port_pairs"], json!([id(1), id(2)]));
    assert_eq!(exported["port_pairs"][2]["description"], "vm3");
}
