//! Addresses pods hold that the pool does not show.
//!
//! The pool is one observation of the node (IMDS is eventually consistent, an ENI's link can
//! be briefly absent), so the datastore keeps such assignments rather than freeing their
//! addresses for the next pod. Two things follow here: EC2, not IMDS, decides whether an
//! address really left the node (and only then is the pod reported), and no ENI that holds
//! one of them is ever given back.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use vpc_cni_cloud::{EniId, EniInfo, EniQuery};

use super::controller::{OutsideWatch, PoolController, QUARANTINE_MS};
use crate::error::IpamdError;

/// Every address an ENI carries, its delegated prefixes expanded.
fn addresses_of(eni: &EniInfo) -> impl Iterator<Item = Ipv4Addr> + '_ {
    eni.addresses
        .iter()
        .copied()
        .chain(eni.prefixes.iter().flat_map(|p| p.addresses()))
}

impl PoolController {
    /// Tracks held addresses outside the pool; once one has been missing for longer than
    /// IMDS may lag, asks EC2 (one call for all that are due) whether it is still on one of
    /// the node's ENIs. If it is not, the pod's address is gone from under it: that is
    /// reported once, and the assignment stays until DEL or the veth sweep, so the address
    /// cannot go to a second pod if it comes back. If EC2 still shows it, the node's own
    /// view lags (or the ENI's link is missing) and the watch starts over.
    pub(crate) async fn confirm_outside_pool(&self) {
        let now = self.now();
        let outside: Vec<Ipv4Addr> = self
            .store
            .read(|ds| ds.outside_pool().map(|a| a.ip).collect());
        let due: Vec<Ipv4Addr> = {
            let mut c = self.caches();
            c.outside_pool.retain(|ip, _| outside.contains(ip));
            for ip in &outside {
                c.outside_pool.entry(*ip).or_insert(OutsideWatch {
                    since_ms: now,
                    reported: false,
                });
            }
            c.outside_pool
                .iter()
                .filter(|(_, w)| !w.reported && now.saturating_sub(w.since_ms) >= QUARANTINE_MS)
                .map(|(ip, _)| *ip)
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let enis = match self
            .ec2
            .describe_enis(EniQuery::AttachedTo(self.node.instance_id.clone()))
            .await
        {
            Ok(enis) => enis,
            Err(e) => {
                tracing::warn!(error = %e, "asking EC2 about addresses missing from the pool failed; asking again next pass");
                return;
            }
        };
        let on_node: HashSet<Ipv4Addr> = enis.iter().flat_map(addresses_of).collect();
        let holders = self.store.assignments();
        let mut c = self.caches();
        for ip in due {
            let Some(watch) = c.outside_pool.get_mut(&ip) else {
                continue;
            };
            if on_node.contains(&ip) {
                watch.since_ms = now;
                continue;
            }
            watch.reported = true;
            if let Some(a) = holders.iter().find(|a| a.ip == ip) {
                tracing::warn!(
                    %ip, container = %a.key.container_id, pod = %a.pod.pod_name,
                    namespace = %a.pod.pod_namespace,
                    "EC2 confirms the pod's address left the node's ENIs; the pod has no working address until it is recreated (the assignment is kept until DEL)"
                );
            }
        }
    }

    /// Whether `eni` carries an address a pod holds outside the pool. With no such
    /// assignment the pool math's view of the ENI is complete and no EC2 call is made.
    pub(crate) async fn eni_holds_outside_pool(&self, eni: &EniId) -> Result<bool, IpamdError> {
        let held: HashSet<Ipv4Addr> = self
            .store
            .read(|ds| ds.outside_pool().map(|a| a.ip).collect());
        if held.is_empty() {
            return Ok(false);
        }
        let described = self
            .ec2
            .describe_enis(EniQuery::Ids(vec![eni.clone()]))
            .await
            .map_err(IpamdError::cloud(format!("describing ENI {eni}")))?;
        let carries = described
            .iter()
            .flat_map(addresses_of)
            .any(|ip| held.contains(&ip));
        Ok(carries)
    }
}
