//! VPC mode with `ENABLE_HYBRID_OVERLAY`: the node joins the VXLAN overlay of a hybrid
//! cluster's on-prem nodes. Its VTEP is the primary ENI's address; it programs entries for
//! the overlay nodes only (VPC-mode nodes reach each other through the VPC) and hands their
//! pod CIDRs to the VPC datapath's table. With the Kubernetes API it announces its own pod
//! ranges on its Node, so the overlay nodes route them to it.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use vpc_cni_proto::net::Ipv4Cidr;

use super::supervise::{task, Lifetime, Supervisor};
use crate::config::{PeerSourceChoice, Settings};
use crate::error::IpamdError;
use crate::overlay::peers::{announce_vpc_node, FilePeers, KubePeers, PeerSource};
use crate::overlay::vxlan::OverlaySpec;
use crate::overlay::{run_peer_loop, underlay, OverlayDatapath};
use crate::store::Store;
use crate::vpc_datapath::VpcDatapath;

/// How often the pool is looked at for a change of the announced ranges; also the wait
/// before an announcement that failed is tried again.
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(2);

/// Sets up the overlay and starts following the peers (and, with a Kubernetes client,
/// announcing the pod ranges). `kube` is the own Node's client and name when ipamd has one.
pub(super) async fn start(
    supervisor: &Supervisor,
    settings: &Settings,
    vpc: Arc<VpcDatapath>,
    store: Arc<Store>,
    kube: Option<(kube::Client, String)>,
) -> Result<Arc<OverlayDatapath>, IpamdError> {
    let ov = &settings.overlay;
    let underlay = underlay::discover(ov.vxlan_underlay_iface.as_deref()).await?;
    let path_mtu = settings.vpc.hybrid_path_mtu.min(underlay.mtu);
    let spec = OverlaySpec {
        vni: ov.vxlan_vni,
        port: ov.vxlan_port,
        underlay_iface: underlay.iface.clone(),
        underlay_ip: underlay.ip,
        underlay_mtu: path_mtu,
        own_pod_cidr: None,
        direct_routing: false,
        underlay_subnet: None,
    };
    spec.validate()?;
    let (datapath, change) = OverlayDatapath::new_hybrid(spec, vpc).await?;
    info!(
        underlay = %underlay.iface,
        vtep = %underlay.ip,
        path_mtu,
        device_mtu = datapath.pod_mtu(),
        ?change,
        "hybrid overlay: VXLAN device ready (ENABLE_HYBRID_OVERLAY)"
    );
    let name = match (&kube, &ov.node_name) {
        (Some((_, name)), _) | (None, Some(name)) => name.clone(),
        (None, None) => {
            return Err(IpamdError::Config {
                variable: "MY_NODE_NAME",
                reason: "ENABLE_HYBRID_OVERLAY needs this node's name, to find its own entry \
                         among the peers"
                    .to_owned(),
            })
        }
    };
    let peers: Box<dyn PeerSource> = match (ov.peer_source(), &kube) {
        (PeerSourceChoice::File(path), _) => Box::new(
            FilePeers::new(path, name.as_str())
                .with_own_underlay(underlay.ip)
                .with_poll_interval(ov.peers_file_poll_interval),
        ),
        (PeerSourceChoice::Kubernetes, Some((client, _))) => Box::new(KubePeers::new(
            client.clone(),
            name.as_str(),
            Some(underlay.ip),
        )),
        (PeerSourceChoice::Kubernetes | PeerSourceChoice::Standalone, _) => {
            return Err(IpamdError::Config {
                variable: "ENABLE_HYBRID_OVERLAY",
                reason: "the overlay nodes come from PEERS_FILE or the Kubernetes API \
                         (MY_NODE_NAME and an in-cluster or KUBECONFIG configuration); \
                         neither is available"
                    .to_owned(),
            })
        }
    };
    supervisor.spawn(
        task::PEER_LOOP,
        Lifetime::UntilStop,
        run_peer_loop(Arc::clone(&datapath), peers, supervisor.stop_signal()),
    );
    if let Some((client, name)) = kube {
        supervisor.spawn(
            task::POD_RANGES,
            Lifetime::UntilStop,
            announce_ranges(
                client,
                Announcement {
                    name,
                    underlay: underlay.ip,
                    device_mtu: datapath.pod_mtu(),
                },
                store,
                supervisor.stop_signal(),
            ),
        );
    }
    Ok(datapath)
}

/// What this node announces besides its ranges; fixed while ipamd runs.
struct Announcement {
    name: String,
    underlay: Ipv4Addr,
    device_mtu: u32,
}

/// Keeps the own Node's underlay address, pod ranges and device MTU current: announces at
/// start and whenever the pool's ranges change; a failed announcement is tried again.
async fn announce_ranges(
    client: kube::Client,
    own: Announcement,
    store: Arc<Store>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), IpamdError> {
    let Announcement {
        name,
        underlay,
        device_mtu,
    } = own;
    let mut announced: Option<Vec<Ipv4Cidr>> = None;
    loop {
        let ranges = store.read(|ds| ds.pool_cidrs());
        if announced.as_ref() != Some(&ranges) {
            match announce_vpc_node(&client, &name, underlay, &ranges, device_mtu).await {
                Ok(()) => {
                    info!(node = %name, ranges = ranges.len(), "pod ranges announced on the Node");
                    announced = Some(ranges);
                }
                Err(error) => warn!(%error, retry_in = ?ANNOUNCE_INTERVAL, "announcing pod ranges"),
            }
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return Ok(()),
            () = tokio::time::sleep(ANNOUNCE_INTERVAL) => {}
        }
    }
}
