//! ipamd's resident memory with 250 pods, split as the kernel accounts it (anonymous: heap
//! and stacks; file-backed: the binary's pages that were touched), in each set-up a user
//! runs: overlay mode with a /24 and with a /16 pod CIDR (the pool's size must not show),
//! and VPC mode on vpc-sim, with the default datapath and with the fast path
//! (`ENABLE_POD_FAST_PATH`, whose tables then hold every pod); the Kubernetes client, metrics
//! and introspection are on in all of them. Also the binaries' sizes. Nothing is asserted.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::report::say;
use serde_json::json;
use vpc_cni_integration::fake_kube::{node_object, FakeKube};
use vpc_cni_integration::node::{NodeOptions, TestNode, NODE_IP};
use vpc_cni_integration::vpc_cluster::{VpcCluster, VpcPod};
use vpc_cni_testkit::bins;
use vpc_cni_testkit::process::wait_for;

pub const PODS: usize = 250;
/// Holds 737 pods on secondary addresses: 250 fit without prefix delegation.
const VPC_INSTANCE_TYPE: &str = "m5.24xlarge";
/// CNI's "try again later", which a runtime answers by retrying.
const TRY_AGAIN_LATER: u64 = 11;
/// Retries of one ADD while the pool grows (a harness bound).
const ADD_ATTEMPTS: u32 = 20;
/// Bound on the fast path taking in the last pod (a harness bound).
const FAST_PATH_LIMIT: Duration = Duration::from_secs(30);

/// The kernel's view of one process's memory, KiB.
#[derive(Debug, Clone, Copy)]
pub struct Resident {
    pub total: u64,
    pub anon: u64,
    pub file: u64,
    pub threads: u64,
}

impl Resident {
    /// From `/proc/<pid>/status`.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Self {
            total: field("VmRSS:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
            threads: field("Threads:")?,
        })
    }

    fn line(&self, setup: &str) -> String {
        format!(
            "  {setup:<44} {:>6.1} MiB  (anonymous {:>5.1}, file-backed {:>5.1}; {} threads)",
            mib(self.total),
            mib(self.anon),
            mib(self.file),
            self.threads
        )
    }
}

fn mib(kib: u64) -> f64 {
    // KiB figures of one process stay far below f64's exact range.
    #[allow(clippy::cast_precision_loss)]
    let kib = kib as f64;
    kib / 1024.0
}

pub fn run() -> anyhow::Result<()> {
    say!("\nipamd resident memory with {PODS} pods (target: at most 15 MiB in every set-up):");
    for (setup, cidr) in [
        (
            "overlay, pod CIDR /24, Kubernetes client on",
            "10.128.0.0/24",
        ),
        (
            "overlay, pod CIDR /16, Kubernetes client on",
            "10.128.0.0/16",
        ),
    ] {
        say!("{}", overlay(cidr)?.line(setup));
    }
    say!(
        "{}",
        vpc(false)?.line(&format!("VPC ({VPC_INSTANCE_TYPE}, Kubernetes client on)"))
    );
    say!("{}", vpc(true)?.line("VPC, the same with the fast path on"));
    binary_sizes()
}

/// An overlay node with `cidr` and [`PODS`] pods, whose ipamd reads its Node and watches
/// the others (its peers) through the Kubernetes client.
fn overlay(cidr: &str) -> anyhow::Result<Resident> {
    let mut node = TestNode::start("bmem", NodeOptions::new(cidr)).context("starting the node")?;
    // A node watching peers needs the underlay its VXLAN device rides on: an uplink with the
    // default route (a veth whose peer stays in the node: no peer is ever sent to, and this
    // kernel has no dummy links).
    for args in [
        &[
            "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p",
        ][..],
        &["link", "set", "uplink0p", "up"],
        &["addr", "add", "198.51.100.1/24", "dev", "uplink0"],
        &["link", "set", "uplink0", "up"],
        &["route", "add", "default", "via", "198.51.100.254"],
    ] {
        node.netns.try_ip(args)?;
    }
    let kube = FakeKube::start(&node.netns, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    kube.api()
        .create_node(node_object("mem", NODE_IP, Some(cidr)))?;
    let kubeconfig = node.dir().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig)?;
    node.ipamd
        .set_env("KUBECONFIG", &kubeconfig.display().to_string());
    node.ipamd.set_env("MY_NODE_NAME", "mem");
    node.ipamd.restart(&node.netns)?;
    let mut pods = Vec::with_capacity(PODS);
    for i in 0..PODS {
        let mut pod = node.new_pod(&format!("mem-{i}"))?;
        let out = node.add(&mut pod)?;
        if !out.success() {
            bail!("ADD mem-{i} on {cidr} failed: {}", out.stdout);
        }
        pods.push(pod);
    }
    let resident = Resident::of(node.ipamd.pid().context("ipamd is not running")?)?;
    for pod in &pods {
        let _ = node.del(pod);
    }
    Ok(resident)
}

/// A VPC node whose ipamd reads its Node through the Kubernetes client, with [`PODS`] pods;
/// with `fast_path`, measured once the fast path's tables hold all of them.
fn vpc(fast_path: bool) -> anyhow::Result<Resident> {
    // The pool is made ready for every pod up front, as a node expecting them would be.
    let target = (PODS + 10).to_string();
    let mut env = vec![("MINIMUM_IP_TARGET", target.as_str())];
    if fast_path {
        env.push(("ENABLE_POD_FAST_PATH", "true"));
    }
    // A /22: a /24 subnet holds fewer addresses than 250 pods and six ENIs need.
    let mut cluster =
        VpcCluster::with_subnet("bmv", "10.0.0.0/22", &[("mem", VPC_INSTANCE_TYPE)], &env)
            .context("starting the VPC cluster")?;
    let node = cluster.node_mut("mem")?;
    let kube = FakeKube::start(node.netns(), SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    let mut object = node_object("mem", node.primary_ip(), None);
    object["status"]["capacity"] = json!({ "cpu": "96", "memory": "393216Mi", "pods": "737" });
    kube.api().create_node(object)?;
    let kubeconfig = node.dir().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig)?;
    node.ipamd
        .set_env("KUBECONFIG", &kubeconfig.display().to_string());
    node.ipamd.set_env("MY_NODE_NAME", "mem");
    node.ipamd.restart(node.netns())?;
    let mut pods: Vec<VpcPod> = Vec::with_capacity(PODS);
    for i in 0..PODS {
        pods.push(add_retrying(&cluster, &format!("vmem-{i}"))?);
    }
    let node = cluster.node("mem")?;
    if fast_path {
        let last = pods.last().context("no pods")?.ip()?.to_string();
        let carried = wait_for(FAST_PATH_LIMIT, || {
            let listed = node
                .netns()
                .nft(&["list", "table", "netdev", "vpc-cni-fast"])
                .ok()?;
            listed.contains(&last).then_some(())
        });
        if carried.is_none() {
            bail!("the fast path does not carry pod {last} after {FAST_PATH_LIMIT:?}");
        }
    }
    let resident = Resident::of(node.ipamd.pid().context("ipamd is not running")?)?;
    for pod in &pods {
        let _ = cluster.del(pod);
    }
    drop(pods);
    Ok(resident)
}

/// A pod ADDed on the VPC node, retried as a runtime retries while ipamd says "try again
/// later" (the pool still growing).
fn add_retrying(cluster: &VpcCluster, name: &str) -> anyhow::Result<VpcPod> {
    let mut pod = cluster.new_pod("mem", name)?;
    for _ in 0..ADD_ATTEMPTS {
        let out = cluster.add(&mut pod)?;
        if out.success() {
            return Ok(pod);
        }
        if out.error_code() != Some(TRY_AGAIN_LATER) {
            bail!("ADD {name} failed: {}", out.stdout);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("ADD {name}: still no address after {ADD_ATTEMPTS} tries")
}

/// File size and text size of both binaries (the text is what file-backed pages come from).
fn binary_sizes() -> anyhow::Result<()> {
    say!("Binaries (this build profile):");
    for path in [bins::ipamd(), bins::plugin()] {
        say!(
            "  {:<10} {:>6.1} MiB on disk, {:>6.1} MiB of text",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            mib(std::fs::metadata(&path)?.len() / 1024),
            mib(text_bytes(&path)? / 1024)
        );
    }
    Ok(())
}

/// The text segment's size, as binutils' `size` reports it.
fn text_bytes(path: &Path) -> anyhow::Result<u64> {
    let out = Command::new("size")
        .arg(path)
        .output()
        .context("running size")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("size printed no text size for {}: {text}", path.display()))
}
