//! The node datapath of VPC mode (DESIGN.md "Node wiring, VPC mode"): ENI links up with their
//! MTU, a route table per secondary ENI, the connmark rule at 1024, our nftables table for
//! connmark and SNAT, rp_filter on the primary ENI, and the pods' source rules.
//!
//! [`wiring`] computes the desired state without touching the kernel; [`apply_node_wiring`]
//! makes the calling thread's netns match it, idempotently; [`VpcDatapath`] keeps the current
//! ENI set for ipamd and re-applies it at start, when the pool controller changes the ENIs,
//! and to repair.

pub mod fast_path;
mod netlink;
pub mod pod_rules;
pub mod ruleset;
pub mod wiring;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use futures::future::BoxFuture;
use vpc_cni_cloud::ImdsEni;
use vpc_cni_proto::net::normalize;
use vpc_cni_proto::{Mode, MAIN_TABLE, RULE_PRIORITY_CONNMARK};

pub use pod_rules::PodRuleTargets;
pub use ruleset::{OverlayPods, SnatRuleset, CONNMARK};
pub use wiring::{owned_tables, NodeWiring, ObservedLink, PrimaryEni, SecondaryEni, VpcNodeSpec};

use crate::datapath::{forwarding_damage, NodeDatapath};
use crate::error::IpamdError;
use crate::kernel::{self, nft};
use crate::store::Store;

/// Makes the node's links, ENI tables, rules, nftables table and sysctls match `spec`, in
/// the calling thread's netns, and returns what it applied. Safe to repeat: a second run
/// changes nothing, and a run after a restart restores whatever is missing.
pub async fn apply_node_wiring(spec: &VpcNodeSpec) -> Result<NodeWiring, IpamdError> {
    let handle = kernel::connect()?;
    let rule_changes = kernel::subscribe_rule_changes()?;
    let links = netlink::observe_links().await?;
    let wiring = NodeWiring::plan(spec, &links)?;
    // Forwarding first and the table last: until the table is in place, pods just cannot
    // reach the internet yet, which is what they see before ipamd is up anyway.
    kernel::apply_sysctls(&wiring.sysctls)?;
    // Gateway routes need their link up.
    netlink::sync_links(&handle, &wiring.links).await?;
    netlink::sync_routes(&handle, &wiring).await?;
    netlink::sync_rules(&handle, &rule_changes, &wiring).await?;
    nft::run(&wiring.ruleset.replace_batch(), "replacing").await?;
    Ok(wiring)
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

    /// The spec the next apply uses.
    pub async fn spec(&self) -> VpcNodeSpec {
        self.spec.lock().await.clone()
    }

    /// The node's ENIs changed (or may have): wires what is new, unwires what is gone, and
    /// answers the device numbers whose addresses may now be handed to pods. An ENI whose
    /// link has not appeared yet is left out, so no pod gets an address its node cannot route
    /// yet. On a failed apply the new set is kept, so the next apply retries it.
    pub async fn enis_changed(&self, enis: &[ImdsEni]) -> Result<BTreeSet<u32>, IpamdError> {
        let expected: Vec<_> = enis
            .iter()
            .filter(|e| e.device_number > 0)
            .map(|e| e.mac)
            .collect();
        let present: BTreeSet<_> = netlink::observe_links_confirmed(&expected)
            .await?
            .into_iter()
            .map(|l| l.mac)
            .collect();
        let mut secondaries: Vec<SecondaryEni> = enis
            .iter()
            .filter(|e| e.device_number > 0 && present.contains(&e.mac))
            .map(|e| SecondaryEni {
                mac: e.mac,
                device_number: e.device_number,
                subnet: e.subnet_cidr,
            })
            .collect();
        secondaries.sort_by_key(|s| s.device_number);
        let mut wired: BTreeSet<u32> = secondaries.iter().map(|s| s.device_number).collect();
        wired.insert(0);
        let mut spec = self.spec.lock().await;
        // The VPC's CIDR blocks as IMDS shows them now: a block associated or disassociated
        // while ipamd runs changes what is exempt from SNAT at this reconcile. An empty list
        // (IMDS answered without it) keeps the last one.
        let vpc_cidrs = enis
            .iter()
            .find(|e| e.device_number == 0)
            .map(|e| normalize(e.vpc_cidrs.iter().copied()))
            .filter(|cidrs| !cidrs.is_empty())
            .unwrap_or_else(|| spec.vpc_cidrs.clone());
        // Applying costs netlink dumps and an nft run: only on a change.
        if spec.secondaries != secondaries || spec.vpc_cidrs != vpc_cidrs {
            if spec.vpc_cidrs != vpc_cidrs {
                tracing::info!(
                    from = ?spec.vpc_cidrs, to = ?vpc_cidrs,
                    "the VPC's CIDR blocks changed: SNAT exemptions follow"
                );
            }
            spec.secondaries = secondaries;
            spec.vpc_cidrs = vpc_cidrs;
            apply_node_wiring(&spec).await?;
        }
        Ok(wired)
    }

    /// A hybrid cluster's overlay nodes changed: their pod CIDRs go into the table (no SNAT,
    /// routed by the main table). Applies only on a change; on a failed apply the new set is
    /// kept, so the next apply retries it.
    pub async fn overlay_pods_changed(&self, overlay: OverlayPods) -> Result<(), IpamdError> {
        let mut spec = self.spec.lock().await;
        if spec.overlay.as_ref() != Some(&overlay) {
            spec.overlay = Some(overlay);
            apply_node_wiring(&spec).await?;
        }
        Ok(())
    }

    /// Makes the pods' source rules (1536) match the store's assignments: see
    /// [`pod_rules`]. `attached` holds the device numbers of every ENI the node's listing
    /// shows, wired or not; rules of assignments on an attached ENI whose link is away are
    /// left alone until it returns.
    pub async fn sync_pod_rules(
        &self,
        store: &Store,
        attached: &BTreeSet<u32>,
    ) -> Result<(), IpamdError> {
        // Held so an ENI change cannot rewire the tables under this sync.
        let spec = self.spec.lock().await;
        let wired: BTreeSet<u32> = spec.secondaries.iter().map(|s| s.device_number).collect();
        let handle = kernel::connect()?;
        let changes = kernel::subscribe_rule_changes()?;
        pod_rules::sync(&handle, &changes, &owned_tables(spec.max_enis), || {
            PodRuleTargets::read(store, &wired, attached)
        })
        .await
    }
}

impl NodeDatapath for VpcDatapath {
    fn mode(&self) -> Mode {
        Mode::Vpc
    }

    fn apply(&self) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async move {
            let spec = self.spec.lock().await;
            apply_node_wiring(&spec).await.map(drop)
        })
    }

    /// Forwarding, the connmark rule and our nftables table: without them pods on secondary
    /// ENIs lose the internet and replies to the primary ENI go astray.
    fn damage(&self) -> BoxFuture<'_, Result<Vec<String>, IpamdError>> {
        Box::pin(async move {
            let mut damage: Vec<String> = forwarding_damage()?.into_iter().collect();
            let handle = kernel::connect()?;
            let rule_changes = kernel::subscribe_rule_changes()?;
            let rules = vpc_cni::netlink::ipv4_rules(&handle, &rule_changes)
                .await
                .map_err(IpamdError::netlink("listing IPv4 rules"))?;
            let connmark = rules.iter().any(|r| {
                vpc_cni::netlink::rule_priority(r) == Some(RULE_PRIORITY_CONNMARK)
                    && vpc_cni::netlink::rule_fwmark(r) == Some(CONNMARK)
                    && vpc_cni::netlink::rule_table(r) == MAIN_TABLE
            });
            if !connmark {
                damage.push(format!(
                    "policy rule {RULE_PRIORITY_CONNMARK} (fwmark {CONNMARK:#x} lookup main) is missing"
                ));
            }
            if !nft::table_exists().await? {
                damage.push(format!("nftables table ip {} is missing", nft::NFT_TABLE));
            }
            Ok(damage)
        })
    }
}
