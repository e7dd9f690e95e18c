//! The node datapath of VPC mode (DESIGN.md "Node wiring, VPC mode"): ENI links up with their
//! MTU, a route table per secondary ENI, the connmark rule at 1024, our nftables table for
//! connmark and SNAT, and rp_filter on the primary ENI.
//!
//! [`wiring`] computes the desired state without touching the kernel; [`apply_node_wiring`]
//! makes the calling thread's netns match it, idempotently; [`VpcDatapath`] keeps the current
//! ENI set for ipamd and re-applies it at start and whenever the pool controller changes it.

pub(crate) mod kernel;
mod netlink;
pub mod ruleset;
pub mod wiring;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use vpc_cni_cloud::ImdsEni;
use vpc_cni_proto::Mode;

pub use ruleset::{SnatRuleset, NFT_TABLE};
pub use wiring::{NodeWiring, ObservedLink, PrimaryEni, SecondaryEni, VpcNodeSpec};

use crate::datapath::NodeDatapath;
use crate::error::IpamdError;

/// Makes the node's links, ENI tables, rules, nftables table and sysctls match `spec`, in
/// the calling thread's netns, and returns what it applied. Safe to repeat: a second run
/// changes nothing, and a run after a restart restores whatever is missing.
pub async fn apply_node_wiring(spec: &VpcNodeSpec) -> Result<NodeWiring, IpamdError> {
    let handle = netlink::connect()?;
    let links = netlink::observe_links(&handle).await?;
    let wiring = NodeWiring::plan(spec, &links)?;
    // Forwarding first and the table last: until the table is in place, pods just cannot
    // reach the internet yet, which is what they see before ipamd is up anyway.
    kernel::apply_sysctls(&wiring.sysctls)?;
    // Gateway routes need their link up.
    netlink::sync_links(&handle, &wiring.links).await?;
    netlink::sync_routes(&handle, &wiring).await?;
    netlink::sync_rules(&handle, &wiring).await?;
    kernel::run_nft(&wiring.ruleset.replace_batch(), "replacing").await?;
    Ok(wiring)
}

/// Removes our nftables table from the calling thread's netns (absent is success).
pub async fn remove_nft_table() -> Result<(), IpamdError> {
    kernel::run_nft(&ruleset::delete_batch(), "deleting").await
}

/// VPC mode's [`NodeDatapath`]: holds the node's ENIs and applies their wiring.
pub struct VpcDatapath {
    // Held across an apply, so two changes of the ENI set cannot interleave their writes.
    spec: tokio::sync::Mutex<VpcNodeSpec>,
}

impl VpcDatapath {
    #[must_use]
    pub fn new(spec: VpcNodeSpec) -> Self {
        Self {
            spec: tokio::sync::Mutex::new(spec),
        }
    }

    /// Replaces the secondary ENIs (after the pool controller attached or freed one) and
    /// applies the result: a new ENI gets its table, a removed one loses its table and the
    /// pod rules that pointed at it. On failure the new set is kept, so the next
    /// [`NodeDatapath::setup`] or update retries it.
    pub async fn set_secondaries(
        &self,
        secondaries: Vec<SecondaryEni>,
    ) -> Result<NodeWiring, IpamdError> {
        let mut spec = self.spec.lock().await;
        spec.secondaries = secondaries;
        apply_node_wiring(&spec).await
    }

    /// The spec the next apply uses.
    pub async fn spec(&self) -> VpcNodeSpec {
        self.spec.lock().await.clone()
    }
}

impl NodeDatapath for VpcDatapath {
    fn mode(&self) -> Mode {
        Mode::Vpc
    }

    fn setup(&self) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async move {
            let spec = self.spec.lock().await;
            apply_node_wiring(&spec).await.map(drop)
        })
    }

    fn enis_changed<'a>(
        &'a self,
        enis: &'a [ImdsEni],
    ) -> BoxFuture<'a, Result<BTreeSet<u32>, IpamdError>> {
        Box::pin(async move {
            let handle = netlink::connect()?;
            let present: BTreeSet<[u8; 6]> = netlink::observe_links(&handle)
                .await?
                .into_iter()
                .map(|l| l.mac)
                .collect();
            let mut secondaries = Vec::new();
            for eni in enis.iter().filter(|e| e.device_number > 0) {
                let (Some(mac), Ok(subnet)) = (parse_mac(&eni.mac), eni.subnet_cidr.parse()) else {
                    tracing::warn!(eni = %eni.eni_id, mac = %eni.mac, cidr = %eni.subnet_cidr,
                        "IMDS gave an ENI MAC or subnet we cannot read; leaving it unwired");
                    continue;
                };
                if present.contains(&mac) {
                    secondaries.push(SecondaryEni {
                        mac,
                        device_number: eni.device_number,
                        subnet,
                    });
                }
            }
            secondaries.sort_by_key(|s| s.device_number);
            let mut wired: BTreeSet<u32> = secondaries.iter().map(|s| s.device_number).collect();
            wired.insert(0);
            let mut spec = self.spec.lock().await;
            // Applying costs netlink dumps and an nft run: only on a change.
            if spec.secondaries != secondaries {
                spec.secondaries = secondaries;
                apply_node_wiring(&spec).await?;
            }
            Ok(wired)
        })
    }
}

/// "0e:12:..." as IMDS and EC2 write MACs.
#[must_use]
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}
