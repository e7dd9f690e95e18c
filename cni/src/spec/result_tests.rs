#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// What the plugin produces for one pod: host veth, pod eth0, a /32 and a
/// default route through the link-local gateway.
fn ours() -> AddResult {
    AddResult {
        interfaces: vec![
            Interface {
                name: "eni1a2b3c4d5e6".into(),
                mac: "AA:BB:CC:00:11:22".into(),
                sandbox: None,
                mtu: Some(9001),
            },
            Interface {
                name: "eth0".into(),
                mac: "0e:4f:9a:00:01:ff".into(),
                sandbox: Some("/var/run/netns/cni-1234".into()),
                mtu: Some(9001),
            },
        ],
        ips: vec![IpConfig {
            address: Ipv4Addr::new(10, 0, 0, 5),
            prefix_len: 32,
            gateway: Some(Ipv4Addr::new(169, 254, 1, 1)),
            interface: Some(1),
        }],
        routes: vec![Route {
            dst: Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            gw: Some(Ipv4Addr::new(169, 254, 1, 1)),
        }],
    }
}

fn expected_interfaces(with_mtu: bool) -> Value {
    let mut host = json!({"name": "eni1a2b3c4d5e6", "mac": "aa:bb:cc:00:11:22"});
    let mut pod = json!({
        "name": "eth0",
        "mac": "0e:4f:9a:00:01:ff",
        "sandbox": "/var/run/netns/cni-1234",
    });
    if with_mtu {
        host["mtu"] = json!(9001);
        pod["mtu"] = json!(9001);
    }
    json!([host, pod])
}

#[test]
fn pre_1_0_results_have_ip_version_and_no_mtu() {
    for v in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
        assert_eq!(
            render(&ours(), v, None),
            json!({
                "cniVersion": v.as_str(),
                "interfaces": expected_interfaces(false),
                "ips": [{
                    "version": "4",
                    "address": "10.0.0.5/32",
                    "gateway": "169.254.1.1",
                    "interface": 1,
                }],
                "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
                "dns": {},
            }),
            "{v}"
        );
    }
}

#[test]
fn v1_0_0_result_has_no_ip_version_and_no_mtu() {
    assert_eq!(
        render(&ours(), CniVersion::V1_0_0, None),
        json!({
            "cniVersion": "1.0.0",
            "interfaces": expected_interfaces(false),
            "ips": [{"address": "10.0.0.5/32", "gateway": "169.254.1.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
            "dns": {},
        })
    );
}

#[test]
fn v1_1_0_result_has_interface_mtu() {
    assert_eq!(
        render(&ours(), CniVersion::V1_1_0, None),
        json!({
            "cniVersion": "1.1.0",
            "interfaces": expected_interfaces(true),
            "ips": [{"address": "10.0.0.5/32", "gateway": "169.254.1.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
            "dns": {},
        })
    );
}

#[test]
fn optional_fields_are_omitted_when_none() {
    let result = AddResult {
        interfaces: vec![Interface {
            name: "eth0".into(),
            mac: "02:00:00:00:00:01".into(),
            sandbox: None,
            mtu: None,
        }],
        ips: vec![IpConfig {
            address: Ipv4Addr::new(192, 168, 1, 2),
            prefix_len: 24,
            gateway: None,
            interface: None,
        }],
        routes: vec![Route {
            dst: Ipv4Addr::new(10, 0, 0, 0),
            prefix_len: 8,
            gw: None,
        }],
    };
    let out = render(&result, CniVersion::V1_1_0, None);
    assert_eq!(
        out["interfaces"],
        json!([{"name": "eth0", "mac": "02:00:00:00:00:01"}])
    );
    assert_eq!(out["ips"], json!([{"address": "192.168.1.2/24"}]));
    assert_eq!(out["routes"], json!([{"dst": "10.0.0.0/8"}]));
}

#[test]
fn empty_result_still_has_every_key() {
    let out = render(&AddResult::default(), CniVersion::V0_4_0, None);
    assert_eq!(
        out,
        json!({"cniVersion": "0.4.0", "interfaces": [], "ips": [], "routes": [], "dns": {}})
    );
}

/// A 0.4.0 result as a bridge-style plugin would print it, with IPv4 and IPv6.
fn bridge_prev_result() -> Value {
    json!({
        "cniVersion": "0.4.0",
        "interfaces": [
            {"name": "cni0", "mac": "7a:9c:01:02:03:04"},
            {"name": "veth1234", "mac": "aa:1b:2c:3d:4e:5f"},
            {"name": "net1", "mac": "0a:58:0a:f4:00:07", "sandbox": "/var/run/netns/cni-1234"},
        ],
        "ips": [
            {"version": "4", "interface": 2, "address": "10.244.0.7/24", "gateway": "10.244.0.1"},
            {"version": "6", "interface": 2, "address": "fd00::7/64", "gateway": "fd00::1"},
        ],
        "routes": [{"dst": "10.96.0.0/12"}],
        "dns": {"nameservers": ["10.96.0.10"], "search": ["default.svc.cluster.local"]},
    })
}

#[test]
fn chaining_keeps_prev_first_and_shifts_our_indices() {
    let prev = bridge_prev_result();
    let out = render(&ours(), CniVersion::V0_4_0, Some(&prev));
    assert_eq!(out["cniVersion"], "0.4.0");

    let interfaces = out["interfaces"].as_array().unwrap();
    assert_eq!(interfaces.len(), 5);
    assert_eq!(
        &interfaces[..3],
        prev["interfaces"].as_array().unwrap().as_slice()
    );
    assert_eq!(interfaces[4]["name"], "eth0");

    let ips = out["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 3);
    assert_eq!(&ips[..2], prev["ips"].as_array().unwrap().as_slice());
    assert_eq!(
        ips[2],
        json!({"version": "4", "address": "10.0.0.5/32", "gateway": "169.254.1.1", "interface": 4})
    );
    assert_eq!(
        ips[2]["interface"]
            .as_u64()
            .map(|i| interfaces[i as usize]["name"].clone()),
        Some(json!("eth0")),
        "our ip must point at our pod interface"
    );

    assert_eq!(
        out["routes"],
        json!([{"dst": "10.96.0.0/12"}, {"dst": "0.0.0.0/0", "gw": "169.254.1.1"}])
    );
    assert_eq!(out["dns"], prev["dns"]);
}

#[test]
fn chaining_strips_prev_ip_version_for_1_x() {
    let prev = bridge_prev_result();
    for v in [CniVersion::V1_0_0, CniVersion::V1_1_0] {
        let out = render(&ours(), v, Some(&prev));
        for ip in out["ips"].as_array().unwrap() {
            assert!(ip.get("version").is_none(), "{v}: {ip}");
        }
        assert_eq!(
            out["ips"][1],
            json!({"interface": 2, "address": "fd00::7/64", "gateway": "fd00::1"})
        );
    }
}

#[test]
fn chaining_adds_prev_ip_version_for_0_x() {
    let mut prev = render(&AddResult::default(), CniVersion::V1_0_0, None);
    prev["ips"] = json!([
        {"address": "fd00::7/64", "interface": 0},
        {"address": "10.1.2.3/16"},
        "not-an-object",
    ]);
    let out = render(&AddResult::default(), CniVersion::V0_3_1, Some(&prev));
    assert_eq!(
        out["ips"],
        json!([
            {"version": "6", "address": "fd00::7/64", "interface": 0},
            {"version": "4", "address": "10.1.2.3/16"},
            "not-an-object",
        ])
    );
}

#[test]
fn chaining_tolerates_a_sparse_prev_result() {
    let prev = json!({"cniVersion": "1.0.0"});
    let out = render(&ours(), CniVersion::V1_0_0, Some(&prev));
    assert_eq!(out, render(&ours(), CniVersion::V1_0_0, None));
    let weird = json!({"interfaces": "x", "dns": []});
    assert_eq!(render(&ours(), CniVersion::V1_0_0, Some(&weird)), out);
}

#[test]
fn first_ipv4_reads_every_version() {
    let addr = Some((Ipv4Addr::new(10, 0, 0, 5), 32));
    for v in CniVersion::ALL {
        assert_eq!(first_ipv4(&render(&ours(), v, None)), addr, "{v}");
    }
    // IPv6 entries and garbage before it are skipped.
    let prev = json!({"ips": [
        {"address": "fd00::7/64"},
        {"address": 5},
        {"gateway": "10.0.0.1"},
        {"address": "10.244.0.7/24"},
    ]});
    assert_eq!(first_ipv4(&prev), Some((Ipv4Addr::new(10, 244, 0, 7), 24)));
    let chained = render(&ours(), CniVersion::V0_4_0, Some(&bridge_prev_result()));
    assert_eq!(
        first_ipv4(&chained),
        Some((Ipv4Addr::new(10, 244, 0, 7), 24))
    );
    assert_eq!(
        first_ipv4(&json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.9/16"}})),
        Some((Ipv4Addr::new(10, 1, 0, 9), 16))
    );
}

#[test]
fn first_ipv4_none_cases() {
    assert_eq!(first_ipv4(&json!({})), None);
    assert_eq!(first_ipv4(&json!({"ips": []})), None);
    assert_eq!(
        first_ipv4(&json!({"ips": [{"address": "fd00::1/64"}]})),
        None
    );
    assert_eq!(first_ipv4(&json!({"ips": "10.0.0.1/32"})), None);
    assert_eq!(first_ipv4(&json!(null)), None);
}
