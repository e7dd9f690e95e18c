//! Overlay mode start-up: the pool from the node's pod CIDR and, when a peer source is
//! configured, the VXLAN overlay to the other nodes with the loop that follows them.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use super::{cooldown_ms, NodeSetup, MODE_OVERLAY};
use crate::config::{Ipv4Cidr, PeerSourceChoice, Settings};
use crate::datapath::{LocalDatapath, NodeDatapath};
use crate::error::IpamdError;
use crate::overlay::peers::{FilePeers, PeerSource};
use crate::overlay::vxlan::OverlaySpec;
use crate::overlay::{run_peer_loop, underlay, OverlayDatapath};
use crate::pool::{PodCidrPool, PoolSource};
use crate::rpc::{now_ms, NodeFacts};
use crate::store::{Checkpoint, CheckpointData, Datastore, Store};

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

pub(super) async fn setup(
    settings: &Settings,
    checkpoint: Arc<dyn Checkpoint>,
    loaded: Option<CheckpointData>,
    stop: watch::Receiver<bool>,
) -> Result<NodeSetup, IpamdError> {
    settings.require_pod_cidr()?;
    let choice = settings.overlay.peer_source();
    let name = node_name(settings)?;
    let pod_cidr = match settings.pod_cidr {
        Some(cidr) => cidr,
        None => {
            return Err(IpamdError::Config {
                variable: "POD_CIDR",
                reason: "reading it from the Node object is not available in this build".into(),
            })
        }
    };

    let source = PodCidrPool::new(pod_cidr);
    let mut datastore = Datastore::new(source.name(), cooldown_ms(settings));
    datastore.set_mode(MODE_OVERLAY);
    datastore.set_pool(source.addresses().await?);
    if let Some(data) = loaded {
        let report = datastore.restore(data, now_ms());
        info!(?report, "restored checkpoint");
    }

    let mut background = Vec::new();
    let mtu = match choice {
        PeerSourceChoice::Standalone => {
            warn!(
                "no PEERS_FILE and no Kubernetes API: running without the VXLAN overlay; \
                 pods reach this node and each other only"
            );
            LocalDatapath.setup().await?;
            settings.effective_pod_mtu()
        }
        PeerSourceChoice::File(_) | PeerSourceChoice::Kubernetes => {
            let (datapath, peers) = start_overlay(settings, &name, pod_cidr, &choice).await?;
            let mtu = pod_mtu(settings, &datapath)?;
            background.push(tokio::spawn(run_peer_loop(datapath, peers, stop)));
            mtu
        }
    };

    let store = Arc::new(Store::new(datastore, checkpoint));
    store.persist().await?;
    Ok(NodeSetup {
        store,
        facts: NodeFacts {
            mode: vpc_cni_proto::Mode::Overlay,
            mtu,
            vpc_cidrs: Vec::new(),
            pool_wait_timeout: settings.pool_wait_timeout,
            waker: None,
        },
        pool_name: source.name(),
        background,
    })
}

/// The device, forwarding and SNAT, and the peer source to follow. The peers' entries are
/// left as they are until the source's first set arrives, so a restart does not cut pods off.
async fn start_overlay(
    settings: &Settings,
    name: &str,
    pod_cidr: Ipv4Cidr,
    choice: &PeerSourceChoice,
) -> Result<(Arc<OverlayDatapath>, Box<dyn PeerSource>), IpamdError> {
    let ov = &settings.overlay;
    let underlay = underlay::discover(ov.vxlan_underlay_iface.as_deref()).await?;
    let spec = OverlaySpec {
        vni: ov.vxlan_vni,
        port: ov.vxlan_port,
        underlay_iface: underlay.iface.clone(),
        underlay_ip: underlay.ip,
        underlay_mtu: underlay.mtu,
        own_pod_cidr: pod_cidr,
        direct_routing: ov.vxlan_direct_routing,
        underlay_subnet: Some(underlay.subnet),
    };
    let (datapath, change) = OverlayDatapath::new(spec, ov.cluster_cidr).await?;
    datapath.setup().await?;
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
                .with_poll_interval(ov.peers_file_poll_interval),
        ),
        PeerSourceChoice::Kubernetes | PeerSourceChoice::Standalone => {
            return Err(IpamdError::Config {
                variable: "PEERS_FILE",
                reason: "the Kubernetes peer source is not available in this build".into(),
            })
        }
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
