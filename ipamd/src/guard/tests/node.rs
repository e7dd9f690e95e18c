//! A node for the kernel tests: a namespace whose eth0 leads to an upstream namespace that
//! holds the metadata address, and pods wired by the plugin's own code.

use std::net::Ipv4Addr;

use vpc_cni::dataplane::{host_veth_name, wire_pod, PodWiring};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::udp::Inbox;

use crate::guard::{PodGuard, IMDS_ADDR};

pub(super) const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
pub(super) const UPSTREAM_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

pub(super) struct Pod {
    pub ns: Netns,
    pub ip: Ipv4Addr,
    pub host_veth: String,
}

pub(super) struct Node {
    pub ns: Netns,
    pub upstream: Netns,
}

impl Node {
    /// node eth0 (10.0.0.10/24, default via 10.0.0.1) <-> upstream up0 (10.0.0.1, and the
    /// metadata address on lo). Neither namespace filters reverse paths and the node takes
    /// packets with its own source address from a link: the kernel alone stops no spoofed
    /// packet here, so whatever stops one is the guard.
    pub fn new() -> Self {
        let ns = Netns::unique("grd-node");
        let upstream = Netns::unique("grd-up");
        for n in [&ns, &upstream] {
            n.write_sysctls(&[
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
            ])
            .unwrap();
        }
        ns.write_sysctls(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.accept_local", "1"),
        ])
        .unwrap();
        ns.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "up0",
            "netns",
            upstream.name(),
        ]);
        ns.ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&["route", "add", "default", "via", &UPSTREAM_IP.to_string()]);
        upstream.ip(&["addr", "add", &format!("{UPSTREAM_IP}/24"), "dev", "up0"]);
        upstream.ip(&["addr", "add", &format!("{IMDS_ADDR}/32"), "dev", "lo"]);
        upstream.ip(&["link", "set", "up0", "up"]);
        Self { ns, upstream }
    }

    /// A pod wired as the plugin wires it, its address on the primary ENI's table (main).
    pub fn pod(&self, ip: [u8; 4]) -> Pod {
        let ns = Netns::unique("grd-pod");
        let ip = Ipv4Addr::from(ip);
        let wiring = PodWiring {
            netns_path: ns.path(),
            ifname: "eth0".into(),
            host_veth: host_veth_name(Some("guard"), Some(ns.name()), "unused"),
            ip,
            route_table: 0,
            mtu: 1500,
        };
        let host_veth = wiring.host_veth.clone();
        self.ns
            .run(move || async move { wire_pod(&wiring).await })
            .unwrap();
        Pod { ns, ip, host_veth }
    }

    pub fn apply(&self, guard: PodGuard) {
        self.ns
            .run(move || async move { guard.apply().await })
            .unwrap();
    }

    pub fn inbox(&self, ip: Ipv4Addr) -> Inbox {
        self.ns.udp_inbox(ip).unwrap()
    }
}
