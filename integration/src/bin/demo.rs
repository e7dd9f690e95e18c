//! `make demo`: one hybrid cluster on a simulated VPC (vpc-sim: EC2 API, IMDS and a
//! network-namespace fabric) and an on-prem site joined to it by a VPN-like link. Two VPC
//! nodes (one on secondary IPs, one on /28 prefixes) and two on-prem nodes run the real
//! ipamd on `VPC_CNI_MODE=auto`, each picking its own mode, and learn each other from the
//! Kubernetes API; pods are ADDed through the real plugin. Then the nodes, their ENIs and
//! overlay devices, and the connectivity matrix: a TCP connection over every path, each
//! judged by the source address its listener saw.

// In a directory of their own: a file beside demo.rs would be a binary of its own.
#[path = "demo/nodes.rs"]
mod nodes;
#[path = "demo/table.rs"]
mod table;

use anyhow::{bail, Context};
use vpc_cni_integration::fabric::{INTERNET_ADDR, SITE_NAT_ADDR};
use vpc_cni_integration::hybrid_cluster::{
    check_matrix, HybridCluster, HybridPod, HybridSpec, VpcNodeSpec, SITE_LAN,
};
use vpc_cni_integration::vpc_cluster::VPC_CIDR;

/// What a VPN leaves of a 1500-byte path after its own headers.
const LINK_MTU: u32 = 1400;
/// (node, pod). t3.medium: 5 pod addresses per ENI, so the sixth pod on `a` spills onto
/// a secondary ENI; `b` hands out addresses from /28 prefixes.
const PODS: &[(&str, &str)] = &[
    ("a", "web-1"),
    ("a", "web-2"),
    ("a", "web-3"),
    ("a", "api-1"),
    ("a", "api-2"),
    ("a", "api-3"),
    ("b", "db-1"),
    ("b", "db-2"),
    ("onprem-1", "ci-1"),
    ("onprem-1", "ci-2"),
    ("onprem-2", "bld-1"),
    ("onprem-2", "bld-2"),
];

fn main() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo creates network namespaces: run it as root (make demo)");
    }
    println!(
        "vpc-cni demo: one hybrid cluster. A simulated VPC {VPC_CIDR} with two t3.medium nodes \
         (a: secondary IPs, b: /28 prefixes)\nand an on-prem site {SITE_LAN} with two nodes, \
         joined by a VPN-like link of MTU {LINK_MTU}. Every ipamd runs VPC_CNI_MODE=auto;\n\
         membership comes from the Kubernetes API (the VPC nodes announce their pod ranges on \
         their Nodes).\n"
    );
    let spec = HybridSpec {
        vpc_nodes: &[
            VpcNodeSpec {
                name: "a",
                instance_type: "t3.medium",
                env: &[],
            },
            VpcNodeSpec {
                name: "b",
                instance_type: "t3.medium",
                env: &[("ENABLE_PREFIX_DELEGATION", "true")],
            },
        ],
        onprem_nodes: 2,
        link_mtu: LINK_MTU,
        onprem_env: &[],
    };
    let cluster = HybridCluster::start("demo", &spec)
        .context("starting vpc-sim, the fabric, the site, the API and ipamd on every node")?;
    let pods = PODS
        .iter()
        .map(|(node, name)| cluster.pod(node, name))
        .collect::<std::io::Result<Vec<HybridPod>>>()?;
    let (alb, alb_ip) = cluster
        .vpc()
        .attach_host("alb")
        .context("attaching the ALB host")?;
    if let Err(e) = cluster.converge(&pods) {
        println!("({e})\n");
    }

    nodes::print_enis(&cluster, &pods)?;
    nodes::print_overlay(&cluster)?;
    println!(
        "alb: plain VPC host at {alb_ip}; internet: {INTERNET_ADDR}; the site's NAT: \
         {SITE_NAT_ADDR}\n"
    );
    let matrix = check_matrix(&cluster, &pods, &alb, alb_ip)?;
    table::print(&matrix, &pods);
    let (ok, total) = matrix.counts();
    drop(pods);
    drop(alb);
    drop(cluster);
    println!("\nconnectivity: {ok}/{total} ok");
    println!("torn down: ipamd stopped on every node, every namespace removed");
    if ok != total {
        bail!("{} of {total} checks failed", total - ok);
    }
    Ok(())
}
