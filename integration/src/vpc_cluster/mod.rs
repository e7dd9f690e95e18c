//! A small VPC-mode cluster on the fabric: `cloud::sim` holds the VPC, the
//! fabric wires its instances as namespaces and serves IMDS and the EC2 API
//! in them, and each node runs the real ipamd in VPC mode with pods ADDed
//! through the real plugin. The end-to-end tests of VPC mode build on it.

mod probe;

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use vpc_cni_cloud::sim::{CreateEni, Eni, Instance, SimVpc, Subnet};

use vpc_cni_proto::net::Ipv4Cidr;

use crate::fabric::{ec2_url, imds_url, Fabric, FabricServices, Follower};
use crate::ipamd_proc::IpamdProcess;
use crate::node::{
    add_cluster_pod, every_node, plugin_conf, test_ipamd_env, try_add_cluster_pod, ClusterPod,
};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::plugin::PluginOutput;
use vpc_cni_testkit::pod::TestPod;

pub use probe::{reachable, tcp_peer, tcp_transfer};

pub const VPC_CIDR: &str = "10.0.0.0/16";
pub const SUBNET_CIDR: &str = "10.0.0.0/24";
pub const AVAILABILITY_ZONE: &str = "us-west-2a";
pub const REGION: &str = "us-west-2";

/// How often the fabric catches up with the model: short, so an address
/// EC2 hands out is on the wire well before a pod can use it.
const FOLLOW_PERIOD: Duration = Duration::from_millis(200);

/// One instance of the cluster with its ipamd.
pub struct VpcNode {
    // Field order is drop order: ipamd dies before its state dir goes.
    pub ipamd: IpamdProcess,
    pub name: String,
    pub instance: Instance,
    netns: Arc<Netns>,
    dir: tempfile::TempDir,
}

impl VpcNode {
    /// The instance's namespace (owned by the fabric; this is a handle).
    #[must_use]
    pub fn netns(&self) -> &Arc<Netns> {
        &self.netns
    }

    /// The primary ENI's primary address: the node's address, and the one
    /// the internet sees for SNATed pod traffic.
    #[must_use]
    pub fn primary_ip(&self) -> Ipv4Addr {
        self.instance.private_ip
    }

    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The network configuration a runtime on this node hands the plugin.
    #[must_use]
    pub fn conf(&self, cni_version: &str) -> Value {
        plugin_conf(cni_version, "vpc-e2e", &self.ipamd)
    }
}

/// A pod on one node of the cluster; its namespace goes on drop (the
/// runtime's DEL is the test's business, see [`VpcCluster::del`]).
pub type VpcPod = ClusterPod;

/// The whole cluster. Dropping it stops ipamd on every node, then the
/// servers, then the follower, then deletes every namespace of the fabric.
/// Pods are owned by the caller and should go first (declare them after
/// the cluster).
pub struct VpcCluster {
    // Field order is drop order.
    nodes: Vec<VpcNode>,
    _services: FabricServices,
    follower: Follower,
    fabric: Arc<Fabric>,
    sim: SimVpc,
    subnet: Subnet,
}

impl VpcCluster {
    /// Builds the VPC (10.0.0.0/16, subnet 10.0.0.0/24 in us-west-2a), one
    /// instance per `(name, instance_type)`, the fabric following the model
    /// with IMDS and the EC2 API served in it, and ipamd in VPC mode on
    /// every node with short cooldown/grace/sweep periods plus `ipamd_env`
    /// (which overrides them). Returns once every ipamd answers STATUS.
    pub fn new(
        prefix: &str,
        nodes: &[(&str, &str)],
        ipamd_env: &[(&str, &str)],
    ) -> io::Result<Self> {
        Self::with_subnet(prefix, SUBNET_CIDR, nodes, ipamd_env)
    }

    /// The VPC, its instances and the fabric with IMDS and the EC2 API, as
    /// [`VpcCluster::new`] builds them, but no ipamd: for a test that runs ipamd
    /// another way (in a container, as the DaemonSet does). The instances' namespaces are
    /// `fabric().node(name)`; [`VpcCluster::nodes`] is empty.
    pub fn without_ipamd(
        prefix: &str,
        nodes: &[(&str, &str)],
    ) -> io::Result<(Self, Vec<Instance>)> {
        Self::build(prefix, SUBNET_CIDR, nodes)
    }

    /// [`VpcCluster::without_ipamd`] with the nodes' subnet `subnet_cidr` (inside
    /// [`VPC_CIDR`]): a world to shape (fill the subnet, add tagged ones) before ipamd starts.
    pub fn without_ipamd_in(
        prefix: &str,
        subnet_cidr: &str,
        nodes: &[(&str, &str)],
    ) -> io::Result<(Self, Vec<Instance>)> {
        Self::build(prefix, subnet_cidr, nodes)
    }

    /// [`VpcCluster::new`] with the nodes' subnet `subnet_cidr` (inside [`VPC_CIDR`]) instead
    /// of [`SUBNET_CIDR`]: room for more pods than a /24 holds.
    pub fn with_subnet(
        prefix: &str,
        subnet_cidr: &str,
        nodes: &[(&str, &str)],
        ipamd_env: &[(&str, &str)],
    ) -> io::Result<Self> {
        let (mut cluster, instances) = Self::build(prefix, subnet_cidr, nodes)?;
        for instance in instances {
            let node = cluster.start_node(instance, ipamd_env)?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    fn build(
        prefix: &str,
        subnet_cidr: &str,
        nodes: &[(&str, &str)],
    ) -> io::Result<(Self, Vec<Instance>)> {
        let sim = SimVpc::new();
        let vpc = sim.create_vpc(VPC_CIDR).map_err(sim_err("create_vpc"))?;
        let subnet = sim
            .create_subnet(&vpc.id, subnet_cidr, AVAILABILITY_ZONE)
            .map_err(sim_err("create_subnet"))?;
        let mut instances = Vec::with_capacity(nodes.len());
        for (name, instance_type) in nodes {
            let instance = sim
                .run_instance(&subnet.id, instance_type, name)
                .map_err(sim_err(&format!("run_instance {name} ({instance_type})")))?;
            instances.push(instance);
        }
        let fabric = Arc::new(Fabric::new(prefix)?);
        let follower = fabric.follow(sim.clone(), FOLLOW_PERIOD)?;
        let services = FabricServices::start(&fabric, &sim)?;
        let cluster = Self {
            nodes: Vec::with_capacity(instances.len()),
            _services: services,
            follower,
            fabric,
            sim,
            subnet,
        };
        Ok((cluster, instances))
    }

    /// Starts ipamd (as [`VpcCluster::new`] does, with `ipamd_env` on top) on an instance
    /// that [`VpcCluster::without_ipamd`] left without one, and adds it to the nodes: a node
    /// joining when the caller chooses (a cold start timed from here).
    pub fn start_ipamd(
        &mut self,
        instance: Instance,
        ipamd_env: &[(&str, &str)],
    ) -> io::Result<&VpcNode> {
        let node = self.start_node(instance, ipamd_env)?;
        self.nodes.push(node);
        self.nodes
            .last()
            .ok_or_else(|| io::Error::other("the node just added is gone"))
    }

    fn start_node(&self, instance: Instance, extra: &[(&str, &str)]) -> io::Result<VpcNode> {
        let netns = self.fabric.node(&instance.name).ok_or_else(|| {
            io::Error::other(format!(
                "the fabric has no namespace for instance {} ({}); follower: {:?}",
                instance.name,
                instance.id,
                self.follower.last_error()
            ))
        })?;
        let dir = tempfile::tempdir()?;
        let mut env = base_env();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        let ipamd = IpamdProcess::start(&netns, dir.path(), env).map_err(|e| {
            io::Error::other(format!("starting ipamd on node {}: {e}", instance.name))
        })?;
        Ok(VpcNode {
            ipamd,
            name: instance.name.clone(),
            instance,
            netns,
            dir,
        })
    }

    #[must_use]
    pub fn sim(&self) -> &SimVpc {
        &self.sim
    }

    #[must_use]
    pub fn fabric(&self) -> &Arc<Fabric> {
        &self.fabric
    }

    #[must_use]
    pub fn subnet(&self) -> &Subnet {
        &self.subnet
    }

    #[must_use]
    pub fn nodes(&self) -> &[VpcNode] {
        &self.nodes
    }

    /// The node with this name; an error naming it when there is none.
    pub fn node(&self, name: &str) -> io::Result<&VpcNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| io::Error::other(format!("no node named {name:?} in the cluster")))
    }

    /// The node with this name, to restart its ipamd with other settings
    /// (`node.ipamd.set_env`, then `node.ipamd.restart(node.netns())`); an error naming it
    /// when there is none.
    pub fn node_mut(&mut self, name: &str) -> io::Result<&mut VpcNode> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| io::Error::other(format!("no node named {name:?} in the cluster")))
    }

    /// The latest background reconcile's error, if the fabric fell behind.
    #[must_use]
    pub fn follower_error(&self) -> Option<String> {
        self.follower.last_error()
    }

    /// A fresh pod namespace on `node` (not yet ADDed).
    pub fn new_pod(&self, node: &str, name: &str) -> io::Result<VpcPod> {
        self.node(node)?;
        Ok(VpcPod {
            node: node.to_string(),
            pod: TestPod::create(name, "vvp")?,
        })
    }

    /// CNI ADD through the real plugin in the pod's node; records the
    /// address and result on success.
    pub fn add(&self, pod: &mut VpcPod) -> io::Result<PluginOutput> {
        let node = self.node(&pod.node)?;
        pod.pod.add_in(&node.netns, &node.conf("1.0.0"))
    }

    /// CNI DEL with prevResult, as containerd's first DEL.
    pub fn del(&self, pod: &VpcPod) -> io::Result<PluginOutput> {
        let node = self.node(&pod.node)?;
        pod.del_in(&node.netns, node.conf("1.0.0"))
    }

    /// Creates a pod on `node` and ADDs it; panics with the plugin's output
    /// and the node's diagnostics on failure (test helper).
    #[must_use]
    pub fn pod(&self, node: &str, name: &str) -> VpcPod {
        let target = self.node(node).map(|n| (n.netns.as_ref(), n.conf("1.0.0")));
        add_cluster_pod(node, name, "vvp", target, || self.diagnostics(node))
    }

    /// Creates a pod on `node` and ADDs it; a failed ADD is an error (the demo's way).
    pub fn try_pod(&self, node: &str, name: &str) -> io::Result<VpcPod> {
        let target = self.node(node).map(|n| (n.netns.as_ref(), n.conf("1.0.0")));
        try_add_cluster_pod(node, name, "vvp", target)
    }

    /// The attached ENI (as the fabric sees the model) holding `ip`, as an
    /// address or inside a prefix.
    #[must_use]
    pub fn eni_of(&self, ip: Ipv4Addr) -> Option<Eni> {
        self.sim.fabric_view().enis.into_iter().find(|eni| {
            eni.private_ips.iter().any(|p| p.address == ip)
                || eni
                    .prefixes
                    .iter()
                    .filter_map(|p| p.parse::<Ipv4Cidr>().ok())
                    .any(|net| net.contains(ip))
        })
    }

    /// Device index of the ENI holding `ip` (0 = primary ENI).
    #[must_use]
    pub fn device_index_of(&self, ip: Ipv4Addr) -> Option<u32> {
        self.eni_of(ip)?.attachment.map(|a| a.device_index)
    }

    /// An address the model will never hand to an instance: the primary
    /// address of a new, unattached ENI in the subnet.
    pub fn reserve_address(&self, description: &str) -> io::Result<Ipv4Addr> {
        let eni = self
            .sim
            .create_network_interface(CreateEni {
                subnet_id: self.subnet.id.clone(),
                description: description.to_string(),
                ..CreateEni::default()
            })
            .map_err(sim_err("create_network_interface (reservation)"))?;
        eni.private_ips
            .iter()
            .find(|p| p.primary)
            .map(|p| p.address)
            .ok_or_else(|| io::Error::other(format!("ENI {} has no primary address", eni.id)))
    }

    /// A plain VPC host such as a load balancer, on an address reserved in
    /// the model; returns its namespace and address.
    pub fn attach_host(&self, name: &str) -> io::Result<(Arc<Netns>, Ipv4Addr)> {
        let ip = self.reserve_address(&format!("host {name}"))?;
        let ns = self.fabric.attach_host(name, ip)?;
        Ok((ns, ip))
    }

    /// What to look at when something on `node` fails: ipamd's log, the
    /// node's addresses, rules, routes and nftables, and the follower's
    /// last error.
    #[must_use]
    pub fn diagnostics(&self, node: &str) -> String {
        let Ok(n) = self.node(node) else {
            return format!("no node named {node:?}");
        };
        let show = |args: &[&str]| {
            n.netns
                .try_ip(args)
                .unwrap_or_else(|e| format!("ip {args:?}: {e}\n"))
        };
        let nft = n
            .netns
            .command("nft")
            .args(["list", "ruleset"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("nft list ruleset: {e}"));
        format!(
            "--- node {node} ({}, {}) ---\n--- ipamd log ---\n{}\n--- ip addr ---\n{}\
             --- ip rule ---\n{}--- ip route table all ---\n{}--- nft ---\n{nft}\n\
             --- follower error: {:?}",
            n.instance.id,
            n.primary_ip(),
            n.ipamd.log_text(),
            show(&["-br", "addr"]),
            show(&["rule"]),
            show(&["route", "show", "table", "all"]),
            self.follower_error()
        )
    }

    /// [`VpcCluster::diagnostics`] for every node, plus the model's ENIs.
    #[must_use]
    pub fn all_diagnostics(&self) -> String {
        let mut text = every_node(self.nodes.iter().map(|n| n.name.as_str()), |n| {
            self.diagnostics(n)
        });
        let enis = serde_json::to_string_pretty(&self.sim.fabric_view().enis)
            .unwrap_or_else(|e| format!("(ENIs not serializable: {e})"));
        text.push_str("\n--- attached ENIs in the model ---\n");
        text.push_str(&enis);
        text
    }
}

/// ipamd's environment on a cluster node: VPC mode against the fabric's
/// IMDS and EC2 endpoint, short periods so tests that wait for them finish
/// quickly. `IpamdProcess` clears the rest of the environment (HOME too),
/// so the SDK's default chain finds no shared config and takes its
/// credentials from IMDS's role.
fn base_env() -> BTreeMap<String, String> {
    test_ipamd_env(
        "vpc",
        &[
            ("AWS_ENDPOINT_URL_EC2", ec2_url()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_url()),
            ("AWS_REGION", REGION.to_string()),
            // The pacing rules scaled down like the cooldown: still in force, but tests that
            // wait for a shrink or a freed ENI wait seconds rather than minutes.
            ("POOL_SHRINK_INTERVAL", "1".to_string()),
            ("MIN_ENI_AGE", "2".to_string()),
        ],
    )
}

fn sim_err(what: &str) -> impl Fn(vpc_cni_cloud::sim::SimError) -> io::Error + '_ {
    move |e| io::Error::other(format!("{what}: {e}"))
}
