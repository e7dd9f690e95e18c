//! Peers from the Kubernetes API: every Node with a pod CIDR and our
//! underlay annotation (see the module docs of `peers` for the mapping), and
//! the calls ipamd makes on its own Node.
//!
//! RBAC: `get`, `list`, `watch` and `patch` on `nodes` (cluster scope).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ::kube::api::{Api, Patch, PatchParams};
use ::kube::runtime::watcher::{self, Event};
use ::kube::runtime::WatchStreamExt;
use ::kube::Client;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::Node;

use super::kube_nodes::{facts, ipv4_pod_cidr, NodeFacts, NodeStore};
pub use super::kube_nodes::{
    OVERLAY_MTU_ANNOTATION, UNDERLAY_ANNOTATION, VPC_POD_RANGES_ANNOTATION,
};
use super::{PeerSet, PeerSource};
use crate::error::IpamdError;
use vpc_cni_proto::net::Ipv4Cidr;

/// Names our writes in the Node's `managedFields`.
const FIELD_MANAGER: &str = "vpc-cni";

type NodeEvents = BoxStream<'static, Result<Event<Node>, watcher::Error>>;

/// Peers from a watch on all Node objects.
///
/// The watcher lists the Nodes, then watches from the list's resource
/// version; it resumes a broken watch and re-lists when the API server has
/// forgotten that version. Its errors come out of [`PeerSource::next`] and
/// the next call goes on after kube's default backoff.
///
/// `next` is cancel-safe: everything learnt so far lives in `self`, so a
/// caller may race it against shutdown in a `select!`.
pub struct KubePeers {
    api: Api<Node>,
    own_name: String,
    own_underlay: Option<Ipv4Addr>,
    /// Started on the first `next`, so building a source makes no API call.
    events: Option<NodeEvents>,
    store: NodeStore,
    /// Nodes seen so far in a (re-)list in progress; the store keeps the
    /// previous listing in force until the new one is complete.
    listing: Option<BTreeMap<String, NodeFacts>>,
    /// Whether a listing ever completed: before that there is no set.
    listed: bool,
    returned: Option<PeerSet>,
}

impl fmt::Debug for KubePeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubePeers")
            .field("own_name", &self.own_name)
            .field("own_underlay", &self.own_underlay)
            .field("watching", &self.events.is_some())
            .field("listed", &self.listed)
            .field("returned", &self.returned)
            .finish_non_exhaustive()
    }
}

impl KubePeers {
    /// Watches all Nodes; the Node named `own_name` (and any Node annotated
    /// with `own_underlay`) is this node and is skipped.
    #[must_use]
    pub fn new(
        client: Client,
        own_name: impl Into<String>,
        own_underlay: Option<Ipv4Addr>,
    ) -> Self {
        Self {
            api: Api::all(client),
            own_name: own_name.into(),
            own_underlay,
            events: None,
            store: NodeStore::default(),
            listing: None,
            listed: false,
            returned: None,
        }
    }

    /// Takes one watcher event into the store. Returns whether the peer set
    /// may have changed.
    fn take(&mut self, event: Event<Node>) -> bool {
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                false
            }
            Event::InitApply(node) => {
                if let Some((name, facts)) = facts(&node) {
                    self.listing
                        .get_or_insert_with(BTreeMap::new)
                        .insert(name, facts);
                }
                false
            }
            Event::InitDone => {
                self.store.replace(self.listing.take().unwrap_or_default());
                self.listed = true;
                true
            }
            Event::Apply(node) => self.store.apply(&node) && self.listed,
            Event::Delete(node) => self.store.delete(&node) && self.listed,
        }
    }

    /// The current set, if it differs from the one returned last.
    fn changed_set(&mut self) -> Option<PeerSet> {
        let set = self.store.peers(&self.own_name, self.own_underlay);
        if self.returned.as_ref() == Some(&set) {
            return None;
        }
        self.returned = Some(set.clone());
        Some(set)
    }
}

impl PeerSource for KubePeers {
    fn next(&mut self) -> BoxFuture<'_, Result<PeerSet, IpamdError>> {
        Box::pin(async move {
            loop {
                let api = &self.api;
                let events = self.events.get_or_insert_with(|| {
                    ::kube::runtime::watcher(api.clone(), watcher::Config::default())
                        .default_backoff()
                        .boxed()
                });
                match events.next().await {
                    Some(Ok(event)) => {
                        if self.take(event) {
                            if let Some(set) = self.changed_set() {
                                return Ok(set);
                            }
                        }
                    }
                    Some(Err(e)) => return Err(kube_error("watching Nodes", &e)),
                    None => {
                        // The watcher never ends by itself; should it, the
                        // next call starts a new one (with a fresh list).
                        self.events = None;
                        return Err(IpamdError::Kubernetes {
                            action: "watching Nodes".into(),
                            reason: "the watch stream ended".into(),
                        });
                    }
                }
            }
        })
    }
}

/// Puts `underlay` into this node's [`UNDERLAY_ANNOTATION`], leaving every
/// other field alone. Reads the Node first and writes only when the value
/// differs, so a restart costs one GET.
pub async fn annotate_own_node(
    client: &Client,
    node_name: &str,
    underlay: Ipv4Addr,
) -> Result<(), IpamdError> {
    set_own_annotations(
        client,
        node_name,
        &[(UNDERLAY_ANNOTATION, underlay.to_string())],
    )
    .await
}

/// What a VPC-mode node of a hybrid cluster tells the overlay nodes: its underlay address
/// (the primary ENI's), in [`VPC_POD_RANGES_ANNOTATION`] the ranges its ENIs hold for pods,
/// and in [`OVERLAY_MTU_ANNOTATION`] its VXLAN device's MTU (sized for the link between the
/// sites). One GET, and one merge patch of the values that differ.
pub async fn announce_vpc_node(
    client: &Client,
    node_name: &str,
    underlay: Ipv4Addr,
    ranges: &[Ipv4Cidr],
    device_mtu: u32,
) -> Result<(), IpamdError> {
    let ranges: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    set_own_annotations(
        client,
        node_name,
        &[
            (UNDERLAY_ANNOTATION, underlay.to_string()),
            (VPC_POD_RANGES_ANNOTATION, ranges.join(",")),
            (OVERLAY_MTU_ANNOTATION, device_mtu.to_string()),
        ],
    )
    .await
}

/// Sets annotations of ours on this node's Node, leaving every other field alone; only the
/// ones whose value differs are written.
async fn set_own_annotations(
    client: &Client,
    node_name: &str,
    wanted: &[(&str, String)],
) -> Result<(), IpamdError> {
    let api: Api<Node> = Api::all(client.clone());
    let node = api
        .get(node_name)
        .await
        .map_err(|e| kube_error(format!("getting Node {node_name}"), &e))?;
    let current = node.metadata.annotations.as_ref();
    let mut annotations = serde_json::Map::new();
    for (key, value) in wanted {
        let now = current.and_then(|a| a.get(*key)).map(|v| v.trim());
        if now != Some(value.as_str()) {
            annotations.insert((*key).to_owned(), value.clone().into());
        }
    }
    if annotations.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let patch = serde_json::json!({ "metadata": { "annotations": annotations } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch(node_name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| {
            kube_error(
                format!("annotating Node {node_name} with {}", what.join(" ")),
                &e,
            )
        })?;
    Ok(())
}

/// This node's IPv4 pod CIDR from its Node (`spec.podCIDR`, or the first
/// IPv4 entry of `spec.podCIDRs`); `None` while none is assigned.
pub async fn own_pod_cidr(
    client: &Client,
    node_name: &str,
) -> Result<Option<Ipv4Cidr>, IpamdError> {
    let api: Api<Node> = Api::all(client.clone());
    let node = api
        .get(node_name)
        .await
        .map_err(|e| kube_error(format!("getting Node {node_name}"), &e))?;
    ipv4_pod_cidr(&node).map_err(|reason| IpamdError::Config {
        variable: "POD_CIDR",
        reason: format!("Node {node_name}: {reason}"),
    })
}

/// A client from `KUBECONFIG` (or `~/.kube/config`) when there is one,
/// else from the in-cluster service account (kube's `Config::infer` order);
/// `cluster_endpoint` (`CLUSTER_ENDPOINT`) replaces the server either names.
pub async fn client_from_environment(cluster_endpoint: Option<&str>) -> Result<Client, IpamdError> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| kube_error("loading KUBECONFIG or the in-cluster configuration", &e))?;
    if let Some(endpoint) = cluster_endpoint {
        config.cluster_url = endpoint.parse().map_err(|e| IpamdError::Config {
            variable: "CLUSTER_ENDPOINT",
            reason: format!("{endpoint:?} is not a URL: {e}"),
        })?;
    }
    Client::try_from(config).map_err(|e| kube_error("building the Kubernetes client", &e))
}

fn kube_error(action: impl Into<String>, e: &dyn std::error::Error) -> IpamdError {
    IpamdError::Kubernetes {
        action: action.into(),
        reason: e.to_string(),
    }
}
