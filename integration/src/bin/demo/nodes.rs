//! The demo's view of the nodes: each VPC node's ENIs as EC2 sees them, then every node's
//! place in the overlay (mode, VTEP, the pod ranges it is reached at, its VXLAN device).

use std::collections::BTreeMap;

use vpc_cni_integration::hybrid_cluster::{HybridCluster, HybridPod, NodeKind};
use vpc_cni_integration::overlay_cluster::OverlaySnapshot;
use vpc_cni_proto::Mode;

/// Each VPC node's ENIs, with the pod addresses or prefixes they hold and the pods on each.
pub fn print_enis(cluster: &HybridCluster, pods: &[HybridPod]) -> anyhow::Result<()> {
    let vpc = cluster.vpc();
    let mut by_eni: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods.iter().filter(|p| p.kind == NodeKind::Vpc) {
        let ip = pod.ip()?;
        if let Some(eni) = vpc.eni_of(ip) {
            by_eni
                .entry(eni.id)
                .or_default()
                .push(format!("{} {ip}", pod.name));
        }
    }
    let view = vpc.sim().fabric_view();
    for node in vpc.nodes() {
        println!(
            "VPC node {} ({}, {}, primary {})",
            node.name,
            node.instance.id,
            node.instance.instance_type,
            node.primary_ip()
        );
        let mut enis: Vec<_> = view
            .enis
            .iter()
            .filter(|e| {
                e.attachment
                    .as_ref()
                    .is_some_and(|a| a.instance_id == node.instance.id)
            })
            .collect();
        enis.sort_by_key(|e| e.attachment.as_ref().map_or(0, |a| a.device_index));
        for eni in enis {
            let device = eni.attachment.as_ref().map_or(0, |a| a.device_index);
            let held = if eni.prefixes.is_empty() {
                format!("{} pod addresses", eni.private_ips.len().saturating_sub(1))
            } else {
                format!("prefixes {}", eni.prefixes.join(" "))
            };
            let on = by_eni
                .get(&eni.id)
                .map(|p| p.join(", "))
                .unwrap_or_default();
            println!(
                "  eth{device} {} {:<15} {held}; pods: {}",
                eni.id,
                eni.private_ips
                    .first()
                    .map_or_else(String::new, |p| p.address.to_string()),
                if on.is_empty() { "-" } else { &on }
            );
        }
    }
    println!();
    Ok(())
}

/// Every node: the mode its ipamd chose, its VTEP, its VXLAN device as the kernel holds it,
/// and what the other kind of node reaches through it: a VPC node's pool ranges as it
/// announced them, an on-prem node's pod CIDR.
pub fn print_overlay(cluster: &HybridCluster) -> anyhow::Result<()> {
    println!(
        "{:<9} {:<8} {:<12} {:<24} reached through the overlay at",
        "node", "mode", "VTEP", "vxlan.vpc"
    );
    let vpc_nodes = cluster.vpc().nodes().iter().map(|n| {
        let ranges = cluster.announced_ranges(&n.name).replace(',', " ");
        (n.name.as_str(), n.primary_ip(), &n.ipamd, ranges)
    });
    let onprem_nodes = cluster
        .onprem()
        .iter()
        .map(|n| (n.name.as_str(), n.underlay_ip, &n.ipamd, n.pod_cidr.clone()));
    for (name, vtep, ipamd, reached) in vpc_nodes.chain(onprem_nodes) {
        let mode = match ipamd.status() {
            Ok(status) if status.mode() == Mode::Vpc => "vpc".to_string(),
            Ok(status) if status.mode() == Mode::Overlay => "overlay".to_string(),
            Ok(status) => format!("{:?}", status.mode()),
            Err(e) => format!("? ({e})"),
        };
        let device = OverlaySnapshot::read(cluster.node_netns(name)?)?
            .device
            .map_or_else(
                || "(missing)".to_string(),
                |d| {
                    let show = |v: Option<String>| v.unwrap_or_else(|| "?".into());
                    format!(
                        "vni {} port {} mtu {}",
                        show(d.vni.map(|v| v.to_string())),
                        show(d.port.map(|v| v.to_string())),
                        show(d.mtu.map(|v| v.to_string()))
                    )
                },
            );
        println!(
            "{name:<9} {mode:<8} {:<12} {device:<24} {reached}",
            vtep.to_string()
        );
    }
    for node in cluster.onprem() {
        let routes = node
            .netns()
            .try_ip(&["route", "show", "dev", "vxlan.vpc"])
            .unwrap_or_default();
        let held: Vec<&str> = routes.lines().filter(|l| l.contains(" mtu ")).collect();
        let mtus: std::collections::BTreeSet<&str> = held
            .iter()
            .filter_map(|l| l.split(" mtu ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect();
        println!(
            "{}: {} routes to VPC pod ranges held to mtu {} (announced by the VPC nodes): pods \
             size their packets for the link",
            node.name,
            held.len(),
            mtus.into_iter().collect::<Vec<_>>().join("/")
        );
    }
    println!();
    Ok(())
}
