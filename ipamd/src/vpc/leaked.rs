//! Leaked-ENI cleanup: ENIs we created that ended up `available` (a delete
//! that failed after the detach, a node that died mid-step) are deleted
//! once older than LEAKED_ENI_MIN_AGE. Attached, untagged and `no_manage`
//! ENIs are never touched.

use std::collections::BTreeMap;

use vpc_cni_cloud::{EniId, EniInfo, EniQuery};
use vpc_cni_proto::time::millis;

use super::controller::PoolController;
use super::rfc3339;
use super::tags::{self, CLUSTER_TAG, CREATED_AT_TAG, DESCRIPTION_PREFIX, INSTANCE_ID_TAG};
use crate::error::IpamdError;

/// What one cleanup run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakedReport {
    pub deleted: Vec<EniId>,
    /// Ours, but younger than the minimum age.
    pub too_young: Vec<EniId>,
    /// Had no readable creation time: tagged now, judged next run.
    pub tagged: Vec<EniId>,
    /// Deletion failed; retried next run.
    pub failed: Vec<EniId>,
}

impl PoolController {
    fn is_ours(&self, e: &EniInfo) -> bool {
        let cluster_ok = self.config.cluster_name.is_empty()
            || e.tags.get(CLUSTER_TAG) == Some(&self.config.cluster_name);
        e.status == "available"
            && e.attachment_id.is_none()
            && e.tags.contains_key(INSTANCE_ID_TAG)
            && e.description.starts_with(DESCRIPTION_PREFIX)
            && !tags::is_no_manage(&e.tags)
            && cluster_ok
    }

    /// One cleanup run (the caller schedules it, jittered, every
    /// LEAKED_ENI_CLEANUP_INTERVAL unless DISABLE_LEAKED_ENI_CLEANUP).
    pub async fn cleanup_leaked_enis(&self) -> Result<LeakedReport, IpamdError> {
        let found = self
            .ec2
            .describe_enis(EniQuery::AvailableTagged(INSTANCE_ID_TAG.to_string()))
            .await
            .map_err(IpamdError::cloud(
                "listing available ENIs tagged by vpc-cni",
            ))?;
        let now = self.now();
        let min_age = millis(self.config.leaked_eni_min_age);
        let mut report = LeakedReport::default();
        for e in found.into_iter().filter(|e| self.is_ours(e)) {
            let Some(created) = tags::created_ms(&e.tags) else {
                let tags = BTreeMap::from([(CREATED_AT_TAG.to_string(), rfc3339::format(now))]);
                match self
                    .ec2
                    .create_tags(std::slice::from_ref(&e.id), &tags)
                    .await
                {
                    Ok(()) => report.tagged.push(e.id),
                    Err(err) => {
                        tracing::warn!(eni = %e.id, error = %err, "could not tag a leaked ENI");
                        report.failed.push(e.id);
                    }
                }
                continue;
            };
            if now.saturating_sub(created) < min_age {
                report.too_young.push(e.id);
                continue;
            }
            match self.ec2.delete_eni(&e.id).await {
                Ok(()) => {
                    tracing::info!(eni = %e.id, "leaked ENI deleted");
                    report.deleted.push(e.id);
                }
                Err(err) => {
                    tracing::warn!(eni = %e.id, error = %err, "could not delete a leaked ENI");
                    report.failed.push(e.id);
                }
            }
        }
        Ok(report)
    }
}
