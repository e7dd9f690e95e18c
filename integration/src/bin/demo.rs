//! `make demo`: a simulated VPC (vpc-sim: EC2 API, IMDS and a network-
//! namespace fabric) with two nodes running the real ipamd in VPC mode, pods
//! ADDed through the real plugin on both nodes and on secondary ENIs, an
//! ALB-style host and the internet; then the node's ENIs and addresses and a
//! connectivity matrix. Beside them, three on-prem nodes on a plain L2
//! underlay without IMDS, where ipamd picks overlay mode (VXLAN) on its own.

// In a directory of its own: a file beside demo.rs would be a binary of its own.
#[path = "demo/overlay.rs"]
mod overlay;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Context};
use vpc_cni_integration::fabric::INTERNET_ADDR;
use vpc_cni_integration::vpc_cluster::{reachable, VpcCluster, VpcPod};
use vpc_cni_testkit::netns::Netns;

/// t3.medium: 3 ENIs x 6 addresses, 5 for pods per ENI; six pods on node a
/// fill its primary ENI and spill onto a secondary one.
const PODS: &[(&str, &str)] = &[
    ("a", "web-1"),
    ("a", "web-2"),
    ("a", "web-3"),
    ("a", "api-1"),
    ("a", "api-2"),
    ("a", "api-3"),
    ("b", "db-1"),
    ("b", "cache-1"),
];

fn main() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo creates network namespaces: run it as root (make demo)");
    }
    println!("vpc-cni demo: a simulated VPC 10.0.0.0/16, two t3.medium nodes in VPC mode\n");
    let cluster = VpcCluster::new("demo", &[("a", "t3.medium"), ("b", "t3.medium")], &[])
        .context("starting vpc-sim, the fabric and ipamd on both nodes")?;
    let pods = PODS
        .iter()
        .map(|(node, name)| cluster.try_pod(node, name))
        .collect::<std::io::Result<Vec<_>>>()?;
    let (alb, alb_ip) = cluster
        .attach_host("alb")
        .context("attaching the ALB host")?;

    print_enis(&cluster, &pods)?;
    println!("alb: plain VPC host at {alb_ip}; internet: {INTERNET_ADDR} (answers primary addresses only)\n");

    let (vpc_ok, vpc_total) = matrix(&pods, &alb)?;
    drop(pods);
    drop(alb);
    drop(cluster);

    let (overlay_ok, overlay_total) = overlay::run()?;
    let (ok, total) = (vpc_ok + overlay_ok, vpc_total + overlay_total);
    println!(
        "\nconnectivity: {ok}/{total} ok (VPC {vpc_ok}/{vpc_total}, overlay {overlay_ok}/{overlay_total})"
    );
    println!("torn down: pods deleted, ipamd stopped, namespaces removed");
    if ok != total {
        bail!("{} of {total} checks failed", total - ok);
    }
    Ok(())
}

/// Each node's ENIs as EC2 sees them, with the pods on each.
fn print_enis(cluster: &VpcCluster, pods: &[VpcPod]) -> anyhow::Result<()> {
    let mut by_eni: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in pods {
        let ip = pod.ip()?;
        if let Some(eni) = cluster.eni_of(ip) {
            by_eni
                .entry(eni.id)
                .or_default()
                .push(format!("{} {ip}", pod.name));
        }
    }
    let view = cluster.sim().fabric_view();
    for node in cluster.nodes() {
        println!(
            "node {} ({}, {}, primary {})",
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
            let held = eni.private_ips.len().saturating_sub(1);
            let on = by_eni
                .get(&eni.id)
                .map(|p| p.join(", "))
                .unwrap_or_default();
            println!(
                "  eth{device} {} {:<15} {held} pod addresses held; pods: {}",
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

/// Pings from every pod and the ALB to every pod and the internet.
fn matrix(pods: &[VpcPod], alb: &Netns) -> anyhow::Result<(usize, usize)> {
    let mut targets: Vec<(String, Ipv4Addr)> = Vec::new();
    for pod in pods {
        targets.push((pod.name.clone(), pod.ip()?));
    }
    targets.push(("internet".into(), INTERNET_ADDR));
    let mut sources: Vec<(String, &Netns)> =
        pods.iter().map(|p| (p.name.clone(), &p.netns)).collect();
    sources.push(("alb".into(), alb));

    print!("{:<8}", "from\\to");
    for (name, _) in &targets {
        print!(" {:<8}", short(name));
    }
    println!();
    let (mut ok, mut total) = (0, 0);
    for (name, netns) in &sources {
        print!("{:<8}", short(name));
        for (target, ip) in &targets {
            // The ALB is a VPC host with no public address: the internet is
            // not its to reach, as in a VPC without a NAT gateway.
            if target == name || (name == "alb" && target == "internet") {
                print!(" {:<8}", "-");
                continue;
            }
            total += 1;
            let reached = reachable(netns, *ip);
            ok += usize::from(reached);
            print!(" {:<8}", if reached { "ok" } else { "FAIL" });
        }
        println!();
    }
    Ok((ok, total))
}

fn short(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}
