//! Overlay nodes whose ipamd follows the Kubernetes API instead of a peers
//! file: a fake API server in the outside host (reachable from every node
//! over the underlay), a kubeconfig for it, and one Node object per node,
//! registered before its ipamd starts as a kubelet and the controller
//! manager's node IPAM would. ipamd gets no `POD_CIDR`: it must take the
//! Node's `spec.podCIDR`.

use std::io;
use std::net::SocketAddrV4;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde_json::Value;

use super::{next_number, node_name, pod_cidr, underlay_ip, OverlayCluster, OUTSIDE_IP};
use crate::fake_kube::{node_object, FakeKube, KubeApi};

/// The kubeconfig's name in the cluster's directory.
const KUBECONFIG: &str = "kubeconfig";
/// Requests shown in diagnostics.
const REQUEST_TAIL: usize = 40;

/// A Kubernetes node whose ipamd is starting (and may be waiting for its
/// Node's pod CIDR), as a test sees it meanwhile.
#[derive(Debug, Clone)]
pub struct Starting {
    pub name: String,
    /// Where ipamd listens once it serves.
    pub socket: PathBuf,
    pub api: KubeApi,
}

impl Starting {
    /// Whether ipamd accepts connections on its socket yet.
    #[must_use]
    pub fn serving(&self) -> bool {
        UnixStream::connect(&self.socket).is_ok()
    }
}

impl OverlayCluster {
    /// The underlay, the fake Kubernetes API in the outside host, and
    /// `count` nodes following it: each node's Node (with its pod CIDR) is
    /// registered, then its ipamd started. Returns once every ipamd answers
    /// STATUS.
    pub fn with_kube(prefix: &str, count: u8, mtu: u32) -> io::Result<Self> {
        Self::with_kube_env(prefix, count, mtu, &[])
    }

    /// [`OverlayCluster::with_kube`] with extra ipamd environment on every
    /// node (overriding the harness's).
    pub fn with_kube_env(
        prefix: &str,
        count: u8,
        mtu: u32,
        env: &[(&str, &str)],
    ) -> io::Result<Self> {
        let mut cluster = Self::empty(prefix, mtu, env)?;
        let kube = FakeKube::start(cluster.outside(), SocketAddrV4::new(OUTSIDE_IP, 0))?;
        kube.write_kubeconfig(&cluster.kubeconfig())?;
        cluster.kube = Some(kube);
        for _ in 0..count {
            let number = next_number(cluster.nodes.len())?;
            cluster.register_node(number, Some(&pod_cidr(number)))?;
            cluster.start_kube_node()?;
        }
        Ok(cluster)
    }

    /// The fake API; an error for a cluster built on a peers file.
    pub fn kube(&self) -> io::Result<&FakeKube> {
        self.kube.as_ref().ok_or_else(|| {
            io::Error::other("this overlay cluster has no Kubernetes API (use with_kube)")
        })
    }

    /// The kubeconfig every Kubernetes node's ipamd uses.
    #[must_use]
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join(KUBECONFIG)
    }

    /// Registers the Node of the next node to start (`node-<n+1>`, its
    /// underlay address as InternalIP) with `pod_cidr` (`None`: not assigned
    /// yet), without starting anything. Returns its name.
    pub fn register_next_node(&self, pod_cidr: Option<&str>) -> io::Result<String> {
        let number = next_number(self.nodes.len())?;
        self.register_node(number, pod_cidr)?;
        Ok(node_name(number))
    }

    fn register_node(&self, number: u8, pod_cidr: Option<&str>) -> io::Result<Value> {
        let node = node_object(&node_name(number), underlay_ip(number), pod_cidr);
        self.kube()?.api().create_node(node)
    }

    /// Registers the next node's Node with the harness's pod CIDR for it and
    /// starts its ipamd. Returns its name.
    pub fn add_kube_node(&mut self) -> io::Result<String> {
        let number = next_number(self.nodes.len())?;
        self.register_node(number, Some(&pod_cidr(number)))?;
        self.start_kube_node()
    }

    /// Starts ipamd on the next node, whose Node must be registered, with
    /// the Kubernetes source. Returns its name once it answers STATUS.
    pub fn start_kube_node(&mut self) -> io::Result<String> {
        self.start_kube_node_while(|_| ()).map(|(name, ())| name)
    }

    /// [`OverlayCluster::start_kube_node`], running `meanwhile` on another
    /// thread while ipamd starts, e.g. to see it wait for the Node's pod
    /// CIDR and then assign one. The start fails if ipamd does not serve
    /// within the harness's start bound.
    pub fn start_kube_node_while<R: Send>(
        &mut self,
        meanwhile: impl FnOnce(&Starting) -> R + Send,
    ) -> io::Result<(String, R)> {
        let number = next_number(self.nodes.len())?;
        let name = node_name(number);
        let api = self.kube()?.api().clone();
        if api.node(&name).is_none() {
            return Err(io::Error::other(format!(
                "{name} has no Node in the API; register it first"
            )));
        }
        let mut prepared = self.prepare_node(number)?;
        prepared
            .env
            .insert("KUBECONFIG".into(), self.kubeconfig().display().to_string());
        prepared.env.extend(self.extra_env.iter().cloned());
        let starting = Starting {
            name: name.clone(),
            // Where IpamdProcess puts it; checked below.
            socket: prepared.dir.path().join("ipamd.sock"),
            api: api.clone(),
        };
        let (ipamd, result) = std::thread::scope(|scope| {
            let side = scope.spawn(|| meanwhile(&starting));
            let ipamd = prepared.start_ipamd();
            let result = side.join().map_err(|_| {
                io::Error::other(format!("the test's side of starting {name} panicked"))
            });
            (ipamd, result)
        });
        let ipamd = ipamd?;
        let result = result?;
        if ipamd.socket() != starting.socket.as_path() {
            return Err(io::Error::other(format!(
                "ipamd on {name} listens on {}, not {}",
                ipamd.socket().display(),
                starting.socket.display()
            )));
        }
        // What ipamd was given to work with: the Node's pod CIDR now.
        let cidr = api
            .node(&name)
            .and_then(|n| n.pointer("/spec/podCIDR")?.as_str().map(str::to_string))
            .unwrap_or_default();
        self.nodes.push(prepared.into_node(ipamd, cidr));
        Ok((name, result))
    }
}

/// The API's Nodes (what the overlay uses of them) and its last requests.
pub(super) fn kube_diagnostics(kube: &FakeKube) -> String {
    let api = kube.api();
    let mut text = format!(
        "\n=== Kubernetes API {} (resourceVersion {}, {} open watches) ===\n",
        kube.url(),
        api.version(),
        api.open_watches()
    );
    for node in api.nodes() {
        let field = |path: &str| node.pointer(path).cloned().unwrap_or(Value::Null);
        text.push_str(&format!(
            "{} rv={} podCIDR={} annotations={}\n",
            field("/metadata/name"),
            field("/metadata/resourceVersion"),
            field("/spec/podCIDR"),
            field("/metadata/annotations")
        ));
    }
    text.push_str("--- last requests ---\n");
    for line in api.request_log(REQUEST_TAIL) {
        text.push_str(&line);
        text.push('\n');
    }
    text
}
