//! The EC2 side of each pool step: top up, create and attach, release,
//! detach and delete; and the bounded wait for IMDS to catch up.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use vpc_cni_cloud::{Assign, CloudError, EniId, EniQuery, ImdsEni, NewEni, SubnetId};
use vpc_cni_proto::net::Ipv4Cidr;

use super::controller::{PoolController, Step, QUARANTINE_MS};
use super::rfc3339;
use super::snapshot::{prefix_addresses, EniMeta, NodeSnapshot};
use super::subnets;
use super::tags::{CLUSTER_TAG, CREATED_AT_TAG, DESCRIPTION_PREFIX, INSTANCE_ID_TAG};
use crate::error::IpamdError;

/// Tries of DeleteNetworkInterface after a detach before the ENI is left
/// to the leaked-ENI cleanup.
const DELETE_TRIES: u32 = 3;

impl PoolController {
    fn prefix_mode(&self) -> bool {
        self.config.pool.prefix_mode(&self.limits)
    }

    pub(crate) async fn top_up(&self, eni: &EniId, count: u32) -> Result<(), IpamdError> {
        let what = if self.prefix_mode() {
            Assign::Prefixes(count)
        } else {
            Assign::Addresses(count)
        };
        let got = self
            .ec2
            .assign(eni, what)
            .await
            .map_err(IpamdError::cloud(format!("adding {what:?} to ENI {eni}")))?;
        self.reclaim(
            got.addresses
                .iter()
                .copied()
                .chain(got.prefixes.iter().filter_map(prefix_addresses).flatten()),
        );
        self.wait_visible(eni, "what was assigned", |e| {
            got.addresses.iter().all(|a| e.addresses.contains(a))
                && got.prefixes.iter().all(|p| e.prefixes.contains(p))
        })
        .await
    }

    fn new_eni_tags(&self) -> BTreeMap<String, String> {
        // Ours last: ADDITIONAL_ENI_TAGS cannot overwrite what cleanup relies on.
        let mut tags = self.config.additional_eni_tags.clone();
        if !self.config.cluster_name.is_empty() {
            tags.insert(CLUSTER_TAG.to_string(), self.config.cluster_name.clone());
        }
        tags.insert(INSTANCE_ID_TAG.to_string(), self.node.instance_id.clone());
        tags.insert(CREATED_AT_TAG.to_string(), rfc3339::format(self.now()));
        tags
    }

    /// Creates an ENI (in the primary ENI's subnet, or with subnet discovery in the best
    /// candidate that is not full) with the primary ENI's security groups, attaches it at the
    /// lowest free device index and waits for IMDS.
    pub(crate) async fn add_eni(&self, snap: &NodeSnapshot, count: u32) -> Result<(), IpamdError> {
        let primary = snap.primary().ok_or(IpamdError::NoPrimaryEni {
            mac: self.node.primary_mac,
        })?;
        let used: HashSet<u32> = snap.imds.iter().map(|e| e.device_number).collect();
        let max = self.config.pool.max_enis(&self.limits);
        let Some(device) = (1..max).find(|d| !used.contains(d)) else {
            return Ok(()); // the math never asks for this; nothing to do
        };
        let (secondary_count, prefix_count) = if self.prefix_mode() {
            (0, count)
        } else {
            (count, 0)
        };
        let mut created = None;
        let mut last_error = None;
        for subnet_id in self.subnet_candidates(primary).await {
            let request = NewEni {
                subnet_id: subnet_id.clone(),
                description: format!("{DESCRIPTION_PREFIX}{}", self.node.instance_id),
                security_groups: primary.security_groups.clone(),
                tags: self.new_eni_tags(),
                secondary_count,
                prefix_count,
            };
            match self.ec2.create_eni(request).await {
                Ok(eni) => {
                    created = Some(eni);
                    break;
                }
                // A full subnet is skipped, not retried: the next candidate is tried now.
                Err(e @ CloudError::SubnetFull { .. }) if self.config.subnet_discovery => {
                    let until = self
                        .now()
                        .saturating_add(self.config.pacing.subnet_full_pause_ms);
                    tracing::warn!(subnet = %subnet_id, until, "subnet full: skipped until its pause ends");
                    self.caches().full_subnets.mark(&subnet_id, until);
                    last_error = Some((subnet_id, e));
                }
                Err(e) => {
                    return Err(IpamdError::cloud(format!(
                        "creating an ENI in subnet {subnet_id}"
                    ))(e))
                }
            }
        }
        let eni = match (created, last_error) {
            (Some(eni), _) => eni,
            (None, Some((subnet_id, e))) => {
                return Err(IpamdError::cloud(format!(
                    "creating an ENI: every candidate subnet is full (the last tried: {subnet_id})"
                ))(e))
            }
            (None, None) => {
                return Err(IpamdError::cloud("creating an ENI".to_owned())(
                    CloudError::SubnetFull {
                        action: "CreateNetworkInterface".to_owned(),
                        code: "InsufficientFreeAddressesInSubnet".to_owned(),
                        message: "every candidate subnet is paused after EC2 called it full"
                            .to_owned(),
                    },
                ))
            }
        };
        let attachment = match self
            .ec2
            .attach_eni(&eni.id, &self.node.instance_id, device)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                // Unattached, it would only wait for the leaked-ENI cleanup.
                if let Err(del) = self.ec2.delete_eni(&eni.id).await {
                    tracing::warn!(eni = %eni.id, error = %del,
                        "could not delete an ENI that failed to attach; leaked-ENI cleanup will");
                }
                return Err(IpamdError::cloud(format!(
                    "attaching ENI {} at device {device}",
                    eni.id
                ))(e));
            }
        };
        self.caches().meta.insert(
            eni.id.clone(),
            EniMeta {
                no_manage: false,
                attachment_id: Some(attachment),
                created_ms: Some(self.now()),
            },
        );
        self.reclaim(
            eni.addresses
                .iter()
                .copied()
                .chain(eni.prefixes.iter().filter_map(prefix_addresses).flatten()),
        );
        tracing::info!(eni = %eni.id, device, count, "ENI attached");
        let want = eni.addresses.len();
        let want_prefixes = eni.prefixes.len();
        self.wait_visible(&eni.id, "the new ENI", |e| {
            e.addresses.len() >= want && e.prefixes.len() >= want_prefixes
        })
        .await
    }

    /// Where a new ENI may go, best first: the primary ENI's subnet alone, or with subnet
    /// discovery the candidates of [`subnets::candidates`]. A failed DescribeSubnets (an IAM
    /// policy without it, say) falls back to the primary subnet, with a warning.
    async fn subnet_candidates(&self, primary: &ImdsEni) -> Vec<SubnetId> {
        if !self.config.subnet_discovery {
            return vec![primary.subnet_id.clone()];
        }
        let listed = match self
            .ec2
            .describe_subnets(&primary.vpc_id, &self.node.availability_zone)
            .await
        {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%error, subnet = %primary.subnet_id,
                    "subnet discovery: DescribeSubnets failed; the new ENI goes to the primary subnet");
                Vec::new()
            }
        };
        let now = self.now();
        subnets::candidates(
            &primary.subnet_id,
            &listed,
            &self.caches().full_subnets,
            now,
        )
    }

    /// Lifts the released-address quarantine from addresses EC2 has just
    /// handed us again: they are ours, and while hidden the pool math would
    /// keep asking for more, up to PrivateIpAddressLimitExceeded.
    fn reclaim(&self, ips: impl Iterator<Item = Ipv4Addr>) {
        let mut c = self.caches();
        for ip in ips {
            c.released.remove(&ip);
        }
    }

    /// Takes `ips` out of the pool, unless a pod holds or just released one
    /// (the snapshot may be a moment old). False when the step must wait.
    async fn withdraw(&self, ips: &HashSet<Ipv4Addr>) -> Result<bool, IpamdError> {
        let now = self.now();
        let list: Vec<Ipv4Addr> = ips.iter().copied().collect();
        if !self.store.withdraw_if_free(&list, now).await? {
            return Ok(false);
        }
        let until = now.saturating_add(QUARANTINE_MS);
        let mut c = self.caches();
        for ip in ips {
            c.released.insert(*ip, until);
        }
        Ok(true)
    }

    pub(crate) async fn release(
        &self,
        eni: &EniId,
        addresses: &[Ipv4Addr],
        prefixes: &[Ipv4Cidr],
    ) -> Result<(), IpamdError> {
        let mut ips: HashSet<Ipv4Addr> = addresses.iter().copied().collect();
        ips.extend(prefixes.iter().filter_map(prefix_addresses).flatten());
        if !self.withdraw(&ips).await? {
            return Ok(());
        }
        self.ec2
            .unassign(eni, addresses, prefixes)
            .await
            .map_err(IpamdError::cloud(format!(
                "releasing {} addresses and {} prefixes from ENI {eni}",
                addresses.len(),
                prefixes.len()
            )))?;
        tracing::info!(
            %eni,
            addresses = addresses.len(),
            prefixes = prefixes.len(),
            "released"
        );
        Ok(())
    }

    pub(crate) async fn free_eni(
        &self,
        snap: &NodeSnapshot,
        eni: &EniId,
    ) -> Result<Step, IpamdError> {
        let Some(view) = snap.view(eni) else {
            return Ok(Step::Done);
        };
        // The view shows only what IMDS shows; an ENI carrying an address a pod holds
        // outside the pool stays until that assignment is settled.
        if self.eni_holds_outside_pool(eni).await? {
            tracing::info!(%eni, "not freeing an ENI that carries a held address missing from the pool");
            return Ok(Step::Declined);
        }
        let ips: HashSet<Ipv4Addr> = view
            .secondary
            .iter()
            .chain(view.prefixes.iter().flat_map(|p| p.slots.iter()))
            .map(|s| s.ip)
            .collect();
        if !self.withdraw(&ips).await? {
            return Ok(Step::Done);
        }
        let attachment = self.attachment_of(eni).await?;
        self.ec2
            .detach_eni(&attachment)
            .await
            .map_err(IpamdError::cloud(format!(
                "detaching ENI {eni} ({attachment})"
            )))?;
        {
            let until = self.now().saturating_add(QUARANTINE_MS);
            let mut c = self.caches();
            c.meta.remove(eni);
            c.detached.insert(eni.clone(), until);
        }
        tracing::info!(%eni, "ENI detached");
        self.delete_detached(eni).await;
        Ok(Step::Done)
    }

    async fn attachment_of(&self, eni: &EniId) -> Result<String, IpamdError> {
        if let Some(a) = self
            .caches()
            .meta
            .get(eni)
            .and_then(|m| m.attachment_id.clone())
        {
            return Ok(a);
        }
        let described = self
            .ec2
            .describe_enis(EniQuery::Ids(vec![eni.clone()]))
            .await
            .map_err(IpamdError::cloud(format!("describing ENI {eni}")))?;
        described
            .into_iter()
            .find_map(|e| e.attachment_id)
            .ok_or_else(|| IpamdError::Cloud {
                context: format!("finding the attachment of ENI {eni}"),
                source: CloudError::from_code(
                    "DescribeNetworkInterfaces",
                    "InvalidAttachmentID.NotFound",
                    "the ENI is not attached",
                ),
            })
    }

    /// Deletes a just-detached ENI; EC2 may still call it in use for a
    /// moment. What never goes is left to the leaked-ENI cleanup (it is
    /// tagged and `available`).
    async fn delete_detached(&self, eni: &EniId) {
        let mut pause = self.config.visibility_backoff;
        for attempt in 1..=DELETE_TRIES {
            match self.ec2.delete_eni(eni).await {
                Ok(()) => {
                    tracing::info!(%eni, "ENI deleted");
                    return;
                }
                Err(e) if attempt == DELETE_TRIES => {
                    tracing::warn!(%eni, error = %e,
                        "could not delete a detached ENI; leaked-ENI cleanup will");
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Polls IMDS with doubling pauses until `ok` holds for `eni`, for at
    /// most `visibility_timeout`.
    async fn wait_visible(
        &self,
        eni: &EniId,
        what: &str,
        ok: impl Fn(&ImdsEni) -> bool,
    ) -> Result<(), IpamdError> {
        let started = tokio::time::Instant::now();
        let mut pause = self.config.visibility_backoff;
        loop {
            let enis = self
                .imds
                .enis()
                .await
                .map_err(IpamdError::cloud("listing ENIs from IMDS"))?;
            if enis.iter().any(|e| &e.eni_id == eni && ok(e)) {
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= self.config.visibility_timeout {
                return Err(IpamdError::NotVisible {
                    eni_id: eni.clone(),
                    what: what.to_string(),
                    waited_ms: vpc_cni_proto::time::millis(waited),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}
