//! A minimal Kubernetes API server for Nodes, so the real ipamd can run its
//! Kubernetes peer source end to end where there is no cluster: list, watch
//! (streamed), get and merge-patch of `/api/v1/nodes`, over plain HTTP with
//! a bearer token, from Node objects held in memory under one global
//! resourceVersion. Tests add, change and delete Nodes through [`KubeApi`]
//! and read back what ipamd wrote.
//!
//! Hygiene: the server runs on a thread of its own inside the namespace it
//! was given (its socket lives there); dropping [`FakeKube`] ends every
//! watch, stops the server and joins the thread.

mod api;
mod server;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::path::Path;
use std::thread::JoinHandle;

use serde_json::{json, Value};
use tokio::sync::watch;

pub use api::{merge_patch, Call, KubeApi, WatchEvent};

use vpc_cni_testkit::netns::Netns;

/// The token the server expects and the kubeconfig carries.
pub const TOKEN: &str = "fake-kube-token-for-ipamd";

/// The running server; stops on drop.
pub struct FakeKube {
    api: KubeApi,
    addr: SocketAddrV4,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeKube {
    /// Starts serving on `addr` (port 0: any free port) inside `netns`;
    /// returns once the socket listens.
    pub fn start(netns: &Netns, addr: SocketAddrV4) -> io::Result<Self> {
        Self::start_with(netns, addr, KubeApi::new())
    }

    /// [`FakeKube::start`] over an existing state (e.g. Nodes created
    /// before the server).
    pub fn start_with(netns: &Netns, addr: SocketAddrV4, api: KubeApi) -> io::Result<Self> {
        let (stop, shutdown) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<SocketAddrV4>>();
        let path = netns.path();
        let state = api.clone();
        let thread = std::thread::Builder::new()
            .name("fake-kube-api".into())
            .spawn(move || {
                let started = (|| {
                    let file = std::fs::File::open(&path)?;
                    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |e| io::Error::other(format!("setns into {}: {e}", path.display())),
                    )?;
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let listener = runtime
                        .block_on(tokio::net::TcpListener::bind(SocketAddr::V4(addr)))
                        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
                    let bound = match listener.local_addr()? {
                        SocketAddr::V4(a) => a,
                        SocketAddr::V6(a) => {
                            return Err(io::Error::other(format!("bound to IPv6 {a}")))
                        }
                    };
                    Ok((runtime, listener, bound))
                })();
                match started {
                    Ok((runtime, listener, bound)) => {
                        let _ = ready_tx.send(Ok(bound));
                        let server = server::Server {
                            api: state,
                            token: TOKEN.to_string(),
                            shutdown,
                        };
                        runtime.block_on(server::serve(listener, server));
                        // Dropping the runtime drops every connection task.
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let mut guard = Self {
            api,
            addr,
            stop,
            thread: Some(thread),
        };
        let bound = ready_rx
            .recv()
            .map_err(|_| io::Error::other("the fake API server thread died at start"))??;
        guard.addr = bound;
        Ok(guard)
    }

    /// The state the server serves; clone it to hand to another thread.
    #[must_use]
    pub fn api(&self) -> &KubeApi {
        &self.api
    }

    /// Where the server listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// `http://<addr>`, the kubeconfig's server.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server (one cluster, one token user,
    /// one context, current) to `path`, for a client's `KUBECONFIG`.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fake\n\
             \x20 cluster:\n\
             \x20   server: {}\n\
             users:\n\
             - name: ipamd\n\
             \x20 user:\n\
             \x20   token: {TOKEN}\n\
             contexts:\n\
             - name: ipamd@fake\n\
             \x20 context:\n\
             \x20   cluster: fake\n\
             \x20   user: ipamd\n\
             current-context: ipamd@fake\n",
            self.url()
        );
        std::fs::write(path, text)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A Node as a kubelet registers it and the API server returns it, before
/// any ipamd touches it: `internal_ip` is its InternalIP, `pod_cidr` (set by
/// the controller manager's node IPAM) may not be assigned yet.
#[must_use]
pub fn node_object(name: &str, internal_ip: Ipv4Addr, pod_cidr: Option<&str>) -> Value {
    let spec = match pod_cidr {
        Some(cidr) => json!({ "podCIDR": cidr, "podCIDRs": [cidr] }),
        None => json!({}),
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "addresses": [
                { "type": "InternalIP", "address": internal_ip.to_string() },
                { "type": "Hostname", "address": name },
            ],
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": "2026-11-26T10:00:00Z",
                "lastTransitionTime": "2026-11-20T08:01:00Z",
            }],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "v1.33.0",
                "containerRuntimeVersion": "containerd://2.0.0",
            },
        },
    })
}
