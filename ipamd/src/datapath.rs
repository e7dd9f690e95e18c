//! Node datapaths: what ipamd sets up on the node itself, beside the per-pod
//! wiring the plugin does. VPC (ENI tables, SNAT) and VXLAN datapaths plug in
//! here in later work; a node with only a local pod CIDR needs forwarding on.

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use vpc_cni_cloud::ImdsEni;
use vpc_cni_proto::Mode;

use crate::error::IpamdError;

/// Node-wide network setup for one mode.
pub trait NodeDatapath: Send + Sync {
    /// The mode reported to the plugin.
    fn mode(&self) -> Mode;

    /// Makes the node's kernel state match what this datapath needs.
    /// Idempotent: ipamd runs it at every start.
    fn setup(&self) -> BoxFuture<'_, Result<(), IpamdError>>;

    /// The node's ENIs changed (or may have): wire what is new, unwire what
    /// is gone, and answer the device numbers whose addresses may now be
    /// handed to pods. An ENI whose link has not appeared yet is left out,
    /// so no pod gets an address its node cannot route yet.
    fn enis_changed<'a>(
        &'a self,
        enis: &'a [ImdsEni],
    ) -> BoxFuture<'a, Result<BTreeSet<u32>, IpamdError>> {
        Box::pin(async move { Ok(enis.iter().map(|e| e.device_number).collect()) })
    }
}

/// Pods reachable within the node only: routing between pod veths and the
/// node needs IPv4 forwarding in the node's namespace, nothing else.
pub struct LocalDatapath;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

impl NodeDatapath for LocalDatapath {
    fn mode(&self) -> Mode {
        Mode::Overlay
    }

    fn setup(&self) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async {
            let current = tokio::fs::read_to_string(IP_FORWARD)
                .await
                .map_err(|source| IpamdError::Io {
                    context: format!("reading {IP_FORWARD}"),
                    source,
                })?;
            if current.trim() != "1" {
                tokio::fs::write(IP_FORWARD, "1")
                    .await
                    .map_err(|source| IpamdError::Io {
                        context: format!("enabling forwarding in {IP_FORWARD}"),
                        source,
                    })?;
            }
            Ok(())
        })
    }
}
