//! Overlay mode start-up: the pool from the node's pod CIDR and, when a peer source is
//! configured, the VXLAN overlay to the other nodes with the loop that follows them.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_proto::time::now_ms;
use vpc_cni_proto::Mode;

use super::supervise::{task, Lifetime};
use super::{adopt_kernel_pods, cooldown_ms, log_restore, NodeSetup, Start};
use crate::config::{missing_pod_cidr, PeerSourceChoice, Settings};
use crate::datapath::{LocalDatapath, NodeDatapath};
use crate::error::IpamdError;
use crate::guard::{GuardedDatapath, PodGuard};
use crate::introspect::ModeSource;
use crate::overlay::peers::{
    annotate_own_node, client_from_environment, own_pod_cidr, FilePeers, KubePeers, PeerSource,
};
use crate::overlay::pool::{check_pod_cidr_size, pod_cidr_pool, pool_name};
use crate::overlay::vxlan::OverlaySpec;
use crate::overlay::{run_peer_loop, underlay, OverlayDatapath};
use crate::rpc::NodeFacts;
use crate::store::{Datastore, Store};

const HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// `MY_NODE_NAME`, or the hostname as a kubelet registers its Node by default.
fn node_name(settings: &Settings) -> Result<String, IpamdError> {
    if let Some(name) = &settings.overlay.node_name {
        return Ok(name.clone());
    }
    std::fs::read_to_string(HOSTNAME)
        .map(|s| s.trim().to_owned())
        .map_err(|source| IpamdError::Io {
            context: format!("reading the hostname from {HOSTNAME} (set MY_NODE_NAME instead)"),
            source,
        })
}

pub(super) async fn setup(start: Start<'_>) -> Result<NodeSetup, IpamdError> {
    let settings = start.settings;
    // First, before anything that can fail or wait (the Node's pod CIDR): running pods stay
    // guarded while ipamd restarts.
    let guard = PodGuard::new(settings.block_pod_imds);
    guard.apply().await?;
    let choice = settings.overlay.peer_source();
    let name = node_name(settings)?;
    let kube = match choice {
        PeerSourceChoice::Kubernetes => {
            Some(client_from_environment(settings.overlay.cluster_endpoint.as_deref()).await?)
        }
        _ => None,
    };
    let pod_cidr = match (settings.pod_cidr, &kube) {
        (Some(cidr), _) => cidr,
        (None, Some(client)) => node_pod_cidr(client, &name).await?,
        (None, None) => return Err(missing_pod_cidr()),
    };

    let mut datastore = Datastore::new(pool_name(pod_cidr), Mode::Overlay, cooldown_ms(settings));
    datastore.set_pool(pod_cidr_pool(pod_cidr));
    if let Some(data) = start.loaded {
        log_restore(&datastore.restore(data, now_ms()));
    }

    let (datapath, mtu, overlay): (Arc<dyn NodeDatapath>, u32, _) = match choice {
        PeerSourceChoice::Standalone => {
            warn!(
                "no PEERS_FILE and no Kubernetes API: running without the VXLAN overlay; \
                 pods reach this node and each other only"
            );
            LocalDatapath.apply().await?;
            (Arc::new(LocalDatapath), settings.effective_pod_mtu(), None)
        }
        PeerSourceChoice::File(_) | PeerSourceChoice::Kubernetes => {
            let (datapath, peers) =
                start_overlay(settings, &name, pod_cidr, &choice, kube.as_ref()).await?;
            let mtu = pod_mtu(settings, &datapath)?;
            let supervisor = start.supervisor;
            if let Some(client) = kube {
                supervisor.spawn(
                    task::NODE_ANNOTATION,
                    Lifetime::UntilDone,
                    annotate_until_done(
                        client,
                        name.clone(),
                        datapath.spec().underlay_ip,
                        supervisor.stop_signal(),
                    ),
                );
            }
            supervisor.spawn(
                task::PEER_LOOP,
                Lifetime::UntilStop,
                run_peer_loop(Arc::clone(&datapath), peers, supervisor.stop_signal()),
            );
            (
                Arc::clone(&datapath) as Arc<dyn NodeDatapath>,
                mtu,
                Some(datapath),
            )
        }
    };

    let store = Arc::new(Store::new(datastore, start.checkpoint));
    adopt_kernel_pods(&store).await?;
    store.persist().await?;
    Ok(NodeSetup {
        store,
        facts: NodeFacts {
            mtu,
            vpc_cidrs: Vec::new(),
            pool_wait_timeout: settings.pool_wait_timeout,
            waker: None,
            pod_cap: None,
        },
        datapath: Arc::new(GuardedDatapath::new(datapath, guard)),
        pool_name: pool_name(pod_cidr),
        source: ModeSource::Overlay(overlay),
    })
}

/// The device, forwarding and SNAT, and the peer source to follow. The peers' entries are
/// left as they are until the source's first set arrives, so a restart does not cut pods off.
async fn start_overlay(
    settings: &Settings,
    name: &str,
    pod_cidr: Ipv4Cidr,
    choice: &PeerSourceChoice,
    kube: Option<&kube::Client>,
) -> Result<(Arc<OverlayDatapath>, Box<dyn PeerSource>), IpamdError> {
    let ov = &settings.overlay;
    let underlay = underlay::discover(ov.vxlan_underlay_iface.as_deref()).await?;
    let spec = OverlaySpec {
        vni: ov.vxlan_vni,
        port: ov.vxlan_port,
        underlay_iface: underlay.iface.clone(),
        underlay_ip: underlay.ip,
        underlay_mtu: underlay.mtu,
        own_pod_cidr: Some(pod_cidr),
        direct_routing: ov.vxlan_direct_routing,
        underlay_subnet: Some(underlay.subnet),
    };
    let (datapath, change) = OverlayDatapath::new(spec, ov.cluster_cidr).await?;
    datapath.apply().await?;
    info!(
        node = name,
        underlay = %underlay.iface,
        address = %underlay.ip,
        underlay_mtu = underlay.mtu,
        device_mtu = datapath.pod_mtu(),
        vni = ov.vxlan_vni,
        port = ov.vxlan_port,
        ?change,
        "VXLAN overlay device ready"
    );
    let peers: Box<dyn PeerSource> = match choice {
        PeerSourceChoice::File(path) => Box::new(
            FilePeers::new(path.clone(), name)
                .with_own_underlay(underlay.ip)
                .with_own_pod_cidr(pod_cidr)
                .with_poll_interval(ov.peers_file_poll_interval),
        ),
        PeerSourceChoice::Kubernetes | PeerSourceChoice::Standalone => match kube {
            Some(client) => Box::new(KubePeers::new(client.clone(), name, Some(underlay.ip))),
            None => {
                return Err(IpamdError::Internal(
                    "the overlay has neither a peers file nor a Kubernetes client".into(),
                ))
            }
        },
    };
    Ok((datapath, peers))
}

/// `POD_MTU`, which must fit inside the overlay, or the overlay's own MTU.
fn pod_mtu(settings: &Settings, datapath: &OverlayDatapath) -> Result<u32, IpamdError> {
    let fits = datapath.pod_mtu();
    match settings.pod_mtu {
        None => Ok(fits),
        Some(mtu) if mtu <= fits => Ok(mtu),
        Some(mtu) => Err(IpamdError::Config {
            variable: "POD_MTU",
            reason: format!(
                "{mtu} does not fit the overlay: {} has MTU {}, less 50 bytes of VXLAN headers \
                 leaves {fits}",
                datapath.spec().underlay_iface,
                datapath.spec().underlay_mtu
            ),
        }),
    }
}

/// How often the own Node is asked again while it has no pod CIDR or the API fails.
const NODE_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

/// The own Node's `spec.podCIDR`, waiting while the controller manager has not assigned one
/// yet (a just-registered Node) or the API does not answer; a value that is not an IPv4 CIDR
/// stops ipamd.
async fn node_pod_cidr(client: &kube::Client, name: &str) -> Result<Ipv4Cidr, IpamdError> {
    loop {
        match own_pod_cidr(client, name).await {
            Ok(Some(cidr)) => {
                check_pod_cidr_size(cidr).map_err(|reason| IpamdError::Config {
                    variable: "POD_CIDR",
                    reason: format!("unset, and Node {name}'s spec.podCIDR {reason}"),
                })?;
                info!(node = name, pod_cidr = %cidr, "pod CIDR from the Node object");
                return Ok(cidr);
            }
            Ok(None) => info!(node = name, "waiting for the Node's spec.podCIDR"),
            Err(e @ IpamdError::Config { .. }) => return Err(e),
            Err(e) => warn!(error = %e, "reading the own Node; retrying"),
        }
        tokio::time::sleep(NODE_RETRY).await;
    }
}

/// Puts this node's underlay address on its Node, which is how the other nodes learn it;
/// retried until it succeeds or ipamd stops.
async fn annotate_until_done(
    client: kube::Client,
    name: String,
    underlay: std::net::Ipv4Addr,
    mut stop: watch::Receiver<bool>,
) -> Result<(), IpamdError> {
    loop {
        match annotate_own_node(&client, &name, underlay).await {
            Ok(()) => {
                info!(node = %name, %underlay, "Node annotated with the underlay address");
                return Ok(());
            }
            Err(e) => warn!(error = %e, retry_in = ?NODE_RETRY, "annotating the own Node"),
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
            () = tokio::time::sleep(NODE_RETRY) => {}
        }
    }
}
