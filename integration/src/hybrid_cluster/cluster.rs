//! One hybrid cluster as an operator runs it: VPC-mode nodes (real EC2 API and IMDS on the
//! fabric) and on-prem nodes on the site's LAN, every ipamd on `VPC_CNI_MODE=auto`, all
//! following one Kubernetes API (the stand-in, served from the fabric's internet where both
//! sites reach it, as a managed control plane's public endpoint). The VPC nodes run with
//! `ENABLE_HYBRID_OVERLAY` and `HYBRID_PATH_MTU` set to the site link's MTU and announce
//! their pod ranges on their Nodes; the on-prem nodes take their pod CIDRs from theirs.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::{attach_site, onprem_ip, onprem_pod_cidr, OnpremNode};
use crate::fabric::INTERNET_ADDR;
use crate::fake_kube::{node_object, FakeKube};
use crate::node::ClusterPod;
use crate::vpc_cluster::VpcCluster;
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;

/// The Node annotation a VPC node announces its pod ranges in.
const RANGES_ANNOTATION: &str = "vpc-cni.io/vpc-pod-ranges";
/// Harness bound for the overlay to carry every pod (never asserted as a duration).
const CONVERGE_LIMIT: Duration = Duration::from_secs(45);

/// A VPC node to build.
pub struct VpcNodeSpec<'a> {
    pub name: &'a str,
    pub instance_type: &'a str,
    /// Extra environment of its ipamd (e.g. `ENABLE_PREFIX_DELEGATION`).
    pub env: &'a [(&'a str, &'a str)],
}

/// What to build.
pub struct HybridSpec<'a> {
    pub vpc_nodes: &'a [VpcNodeSpec<'a>],
    /// How many on-prem nodes: `onprem-1` ...
    pub onprem_nodes: u8,
    /// MTU of the link between the sites (the LAN's is 1500).
    pub link_mtu: u32,
    /// Extra environment of every on-prem node's ipamd.
    pub onprem_env: &'a [(&'a str, &'a str)],
}

/// Which side of the cluster a node or pod is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Vpc,
    Onprem,
}

/// A pod and the kind of node it runs on.
pub struct HybridPod {
    pub kind: NodeKind,
    pub pod: ClusterPod,
}

impl std::ops::Deref for HybridPod {
    type Target = ClusterPod;
    fn deref(&self) -> &ClusterPod {
        &self.pod
    }
}

/// The whole cluster; dropping it stops every ipamd, then the API, then the fabric. Pods are
/// the caller's and go first (declare them after the cluster).
pub struct HybridCluster {
    // Field order is drop order.
    onprem: Vec<OnpremNode>,
    kube: FakeKube,
    vpc: VpcCluster,
    /// Holds the kubeconfig.
    _dir: tempfile::TempDir,
}

impl HybridCluster {
    /// Builds the VPC and its nodes, the site with `spec.link_mtu`, the API with every Node
    /// registered (on-prem ones with their pod CIDRs), and starts ipamd everywhere; returns
    /// once each answers STATUS.
    pub fn start(prefix: &str, spec: &HybridSpec) -> io::Result<Self> {
        let types: Vec<(&str, &str)> = spec
            .vpc_nodes
            .iter()
            .map(|n| (n.name, n.instance_type))
            .collect();
        let (mut vpc, instances) = VpcCluster::without_ipamd(prefix, &types)?;
        attach_site(vpc.fabric(), spec.link_mtu)?;
        let kube = FakeKube::start(vpc.fabric().internet(), SocketAddrV4::new(INTERNET_ADDR, 0))?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig)?;
        let kubeconfig = kubeconfig.display().to_string();
        for instance in &instances {
            kube.api()
                .create_node(node_object(&instance.name, instance.private_ip, None))?;
        }
        for number in 1..=spec.onprem_nodes {
            kube.api().create_node(node_object(
                &format!("onprem-{number}"),
                onprem_ip(number),
                Some(&onprem_pod_cidr(number)),
            ))?;
        }
        let path_mtu = spec.link_mtu.to_string();
        for (instance, node) in instances.into_iter().zip(spec.vpc_nodes) {
            let mut env = vec![
                ("VPC_CNI_MODE", "auto"),
                ("ENABLE_HYBRID_OVERLAY", "true"),
                ("HYBRID_PATH_MTU", path_mtu.as_str()),
                ("MY_NODE_NAME", node.name),
                ("KUBECONFIG", kubeconfig.as_str()),
            ];
            env.extend(node.env.iter().copied());
            vpc.start_ipamd(instance, &env)?;
        }
        let mut onprem_env = vec![
            ("VPC_CNI_MODE", "auto".to_string()),
            ("KUBECONFIG", kubeconfig),
        ];
        onprem_env.extend(spec.onprem_env.iter().map(|(k, v)| (*k, (*v).to_string())));
        let onprem = (1..=spec.onprem_nodes)
            .map(|number| OnpremNode::start(vpc.fabric(), number, &onprem_env))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            onprem,
            kube,
            vpc,
            _dir: dir,
        })
    }

    #[must_use]
    pub fn vpc(&self) -> &VpcCluster {
        &self.vpc
    }

    #[must_use]
    pub fn onprem(&self) -> &[OnpremNode] {
        &self.onprem
    }

    #[must_use]
    pub fn kube(&self) -> &FakeKube {
        &self.kube
    }

    fn onprem_node(&self, name: &str) -> Option<&OnpremNode> {
        self.onprem.iter().find(|n| n.name == name)
    }

    /// The node's namespace.
    pub fn node_netns(&self, name: &str) -> io::Result<&Netns> {
        match self.onprem_node(name) {
            Some(node) => Ok(node.netns()),
            None => Ok(self.vpc.node(name)?.netns()),
        }
    }

    /// The node's own address: a VPC node's primary, an on-prem node's LAN address.
    pub fn node_ip(&self, name: &str) -> io::Result<Ipv4Addr> {
        match self.onprem_node(name) {
            Some(node) => Ok(node.underlay_ip),
            None => Ok(self.vpc.node(name)?.primary_ip()),
        }
    }

    /// A pod ADDed on `node` through the real plugin.
    pub fn pod(&self, node: &str, name: &str) -> io::Result<HybridPod> {
        match self.onprem_node(node) {
            Some(onprem) => Ok(HybridPod {
                kind: NodeKind::Onprem,
                pod: onprem.pod(name)?,
            }),
            None => Ok(HybridPod {
                kind: NodeKind::Vpc,
                pod: self.vpc.try_pod(node, name)?,
            }),
        }
    }

    /// Waits until every node routes into the overlay every pod that lives on a node of
    /// the other kind, or on another on-prem node (VPC nodes reach each other's pods through
    /// the VPC); an error lists what is still missing.
    pub fn converge(&self, pods: &[HybridPod]) -> io::Result<()> {
        let missing = || self.unrouted(pods);
        if wait_for(CONVERGE_LIMIT, || missing().is_empty().then_some(())).is_some() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "the overlay did not carry every pod within {CONVERGE_LIMIT:?}: {}",
            missing().join("; ")
        )))
    }

    /// `"<node>: no route to <pod> <ip>"` for each pod some node cannot send into the overlay.
    fn unrouted(&self, pods: &[HybridPod]) -> Vec<String> {
        let nodes = self
            .vpc
            .nodes()
            .iter()
            .map(|n| (n.name.as_str(), NodeKind::Vpc))
            .chain(
                self.onprem
                    .iter()
                    .map(|n| (n.name.as_str(), NodeKind::Onprem)),
            );
        let mut missing = Vec::new();
        for (node, kind) in nodes {
            let routes = self
                .node_netns(node)
                .ok()
                .and_then(overlay_route_cidrs)
                .unwrap_or_default();
            let needed = pods.iter().filter(|p| {
                p.node != node && (kind == NodeKind::Onprem || p.kind == NodeKind::Onprem)
            });
            for pod in needed {
                let Some(ip) = pod.ip else { continue };
                if !routes.iter().any(|cidr| cidr.contains(ip)) {
                    missing.push(format!("{node}: no route to {} {ip}", pod.name));
                }
            }
        }
        missing
    }

    /// The ranges a VPC node announced on its Node (empty before the first announcement).
    #[must_use]
    pub fn announced_ranges(&self, node: &str) -> String {
        self.kube
            .api()
            .annotation(node, RANGES_ANNOTATION)
            .unwrap_or_default()
    }

    /// Every node's diagnostics, for a failure message.
    #[must_use]
    pub fn diagnostics(&self) -> String {
        let mut text = self.vpc.all_diagnostics();
        for node in &self.onprem {
            text.push('\n');
            text.push_str(&node.diagnostics());
        }
        text
    }
}

/// What a node routes into the overlay: the destinations of its routes on `vxlan.vpc`;
/// `None` while it has no such device.
#[must_use]
pub fn overlay_route_cidrs(ns: &Netns) -> Option<Vec<Ipv4Cidr>> {
    let text = ns.try_ip(&["route", "show", "dev", "vxlan.vpc"]).ok()?;
    Some(overlay_routes(&text))
}

/// The destinations of `ip route show dev vxlan.vpc` (a bare address is a /32).
fn overlay_routes(text: &str) -> Vec<Ipv4Cidr> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|dest| {
            dest.parse::<Ipv4Cidr>()
                .ok()
                .or_else(|| format!("{dest}/32").parse().ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_routes_reads_prefixes_and_bare_addresses() {
        let text = "10.244.2.0/24 via 10.244.2.0 onlink\n10.0.0.37 via 172.20.0.1 onlink \n\n";
        let routes = overlay_routes(text);
        assert_eq!(routes.len(), 2, "{routes:?}");
        assert!(routes[0].contains(Ipv4Addr::new(10, 244, 2, 9)));
        assert!(routes[1].contains(Ipv4Addr::new(10, 0, 0, 37)));
        assert!(!routes[1].contains(Ipv4Addr::new(10, 0, 0, 38)));
    }
}
