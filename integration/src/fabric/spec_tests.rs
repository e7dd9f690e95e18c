#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use vpc_cni_cloud::sim::{AssignIps, CreateEni, SimVpc};

use super::*;

struct World {
    sim: SimVpc,
    subnet: String,
    a: String,
    b: String,
}

fn world() -> World {
    let sim = SimVpc::with_seed(7);
    let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
    let subnet = sim
        .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
        .unwrap();
    let a = sim.run_instance(&subnet.id, "t3.medium", "a").unwrap();
    let b = sim.run_instance(&subnet.id, "t3.medium", "b").unwrap();
    World {
        sim,
        subnet: subnet.id,
        a: a.id,
        b: b.id,
    }
}

fn net(s: &str) -> Ipv4Cidr {
    parse_net(s).unwrap()
}

#[test]
fn each_running_instance_is_a_node_with_its_primary_eni_at_eth0() {
    let w = world();
    let spec = FabricSpec::from_view(&w.sim.fabric_view()).unwrap();
    assert_eq!(spec.vpc_cidrs, [net("10.0.0.0/16")].into());
    assert_eq!(spec.nodes.len(), 2);
    let a = &spec.nodes[&w.a];
    assert_eq!(a.name, "a");
    let eth0 = &a.ports[&0];
    assert_eq!(eth0.primary_ip, a.primary_ip);
    assert_eq!(eth0.subnet, net("10.0.0.0/24"));
    assert_eq!(
        vpc_cni_cloud::subnet_router(&eth0.subnet),
        Ipv4Addr::new(10, 0, 0, 1)
    );
    assert_eq!(eth0.routes, [Ipv4Cidr::host(a.primary_ip)].into());
    assert!(eth0.link.len() <= 15, "{} too long for a link", eth0.link);
    assert_ne!(eth0.link, spec.nodes[&w.b].ports[&0].link);
}

#[test]
fn secondary_eni_addresses_and_prefixes_route_to_their_port() {
    let w = world();
    let eni = w
        .sim
        .create_network_interface(CreateEni {
            subnet_id: w.subnet.clone(),
            ..Default::default()
        })
        .unwrap();
    w.sim.attach_network_interface(&eni.id, &w.b, 1).unwrap();
    let assigned = w
        .sim
        .assign_private_ip_addresses(
            &eni.id,
            AssignIps {
                count: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let prefixes = w
        .sim
        .assign_private_ip_addresses(
            &eni.id,
            AssignIps {
                prefix_count: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let spec = FabricSpec::from_view(&w.sim.fabric_view()).unwrap();
    let eth1 = &spec.nodes[&w.b].ports[&1];
    assert_eq!(eth1.eni_id, eni.id);
    assert_eq!(eth1.mac, eni.mac);
    let expected: BTreeSet<Ipv4Cidr> = [
        Ipv4Cidr::host(eni.primary_ip().unwrap()),
        Ipv4Cidr::host(assigned.addresses[0]),
        net(&prefixes.prefixes[0]),
    ]
    .into();
    assert_eq!(eth1.routes, expected);
    assert!(
        !spec.internet_sources().contains(&assigned.addresses[0]),
        "a secondary address must not reach the internet"
    );
    assert_eq!(
        spec.internet_sources(),
        spec.nodes.values().map(|n| n.primary_ip).collect()
    );
}

#[test]
fn terminated_instances_and_detached_enis_leave_the_spec() {
    let w = world();
    let eni = w
        .sim
        .create_network_interface(CreateEni {
            subnet_id: w.subnet.clone(),
            ..Default::default()
        })
        .unwrap();
    let attachment = w.sim.attach_network_interface(&eni.id, &w.b, 1).unwrap();
    w.sim
        .detach_network_interface(&attachment.id, false)
        .unwrap();
    w.sim.terminate_instance(&w.a).unwrap();
    let spec = FabricSpec::from_view(&w.sim.fabric_view()).unwrap();
    assert!(!spec.nodes.contains_key(&w.a));
    assert_eq!(
        spec.nodes[&w.b].ports.keys().copied().collect::<Vec<_>>(),
        vec![0]
    );
}

#[test]
fn names_that_would_share_a_namespace_are_refused() {
    let w = world();
    w.sim.run_instance(&w.subnet, "t3.medium", "a").unwrap();
    let err = FabricSpec::from_view(&w.sim.fabric_view()).unwrap_err();
    assert!(err.to_string().contains("\"a\""), "{err}");
}

#[test]
fn instance_names_are_made_safe_for_namespace_names() {
    assert_eq!(node_name("web/1 x", "i-1"), "web-1-x");
    assert_eq!(node_name("", "i-0abc"), "i-0abc");
}

#[test]
fn link_names_fit_the_kernel_limit_and_keep_the_ids_tail() {
    let name = port_link_name("eni-0123456789abcdef0");
    assert_eq!(name, "f3456789abcdef0");
    assert!(name.len() <= 15);
}

#[test]
fn bad_cidrs_are_named_in_the_error() {
    let err = parse_net("10.0.0.1/24").unwrap_err();
    assert!(err.to_string().contains("10.0.0.1/24"), "{err}");
}
