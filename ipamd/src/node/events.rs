//! Kubernetes Events on ipamd's own Node (VPC mode), for what an operator must fix outside
//! the node: IAM permissions EC2 refused, and a subnet with no room left. The reason names
//! follow the AWS VPC CNI's where it has one (`MissingIAMPermissions`); `SubnetFull` is ours.
//!
//! Rate-limited per reason ([`EVENT_INTERVAL`]): a pass that fails every few seconds must
//! not flood the API server, and one Event per reason per interval says all there is.
//! Events are core/v1 in `default`, as kubelet posts its own Node's (a Node has no
//! namespace); the VPC overlay's RBAC grants `create` there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::{Api, Client};
use vpc_cni_cloud::CloudError;
use vpc_cni_proto::time::{millis, now_ms};

/// Least time between two Events of one reason.
pub const EVENT_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// The Event's `source.component` and `reportingComponent`.
pub const COMPONENT: &str = "vpc-cni-ipamd";

/// EC2 refused an action for the node's IAM role.
pub const MISSING_IAM_PERMISSIONS: &str = "MissingIAMPermissions";
/// EC2 said the subnet has no free address (or, with prefix delegation, no free /28).
pub const SUBNET_FULL: &str = "SubnetFull";

/// EC2's codes for an action the caller's role may not call.
const UNAUTHORIZED_CODES: [&str; 3] = [
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
];

/// The reason and message of the Event a cloud error calls for, if any.
#[must_use]
pub fn event_for(error: &CloudError) -> Option<(&'static str, String)> {
    match error {
        CloudError::Fatal { action, code, .. } if UNAUTHORIZED_CODES.contains(&code.as_str()) => {
            Some((
                MISSING_IAM_PERMISSIONS,
                format!(
                    "EC2 refused ec2:{action} ({code}): the node's IAM role lacks the permission; \
                     attach vpc-cni's IAM policy (deploy/iam-policy.json)"
                ),
            ))
        }
        CloudError::SubnetFull { action, code, .. } => Some((
            SUBNET_FULL,
            format!(
                "EC2 answered ec2:{action} with {code}: the node's subnet has no room for more \
                 pod addresses; pods on this node may wait for an address"
            ),
        )),
        _ => None,
    }
}

/// One Event per reason per interval.
#[derive(Debug)]
pub struct EventGate {
    interval_ms: u64,
    last: HashMap<&'static str, u64>,
}

impl EventGate {
    #[must_use]
    pub fn new(interval: Duration) -> Self {
        EventGate {
            interval_ms: millis(interval),
            last: HashMap::new(),
        }
    }

    /// Whether an Event of `reason` may go out at `now_ms`; if so, counts it as sent.
    pub fn admit(&mut self, reason: &'static str, now_ms: u64) -> bool {
        match self.last.get(reason) {
            Some(&at) if now_ms.saturating_sub(at) < self.interval_ms => false,
            _ => {
                self.last.insert(reason, now_ms);
                true
            }
        }
    }
}

/// Posts Events about the node to its Node.
pub struct NodeEvents {
    client: Client,
    node: String,
    gate: Mutex<EventGate>,
}

impl NodeEvents {
    #[must_use]
    pub fn new(client: Client, node: String) -> Self {
        NodeEvents {
            client,
            node,
            gate: Mutex::new(EventGate::new(EVENT_INTERVAL)),
        }
    }

    /// Posts the Event `error` calls for, unless one of its reason went out within the
    /// interval. The post runs on its own task (a slow API server must not hold up the
    /// pool); the handle lets a caller about to exit wait for it.
    pub fn report(self: &Arc<Self>, error: &CloudError) -> Option<tokio::task::JoinHandle<()>> {
        let (reason, message) = event_for(error)?;
        let admitted = self
            .gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(reason, now_ms());
        if !admitted {
            return None;
        }
        let this = Arc::clone(self);
        Some(tokio::spawn(async move {
            if let Err(e) = this.post(reason, message).await {
                tracing::warn!(error = %e, reason, "posting an Event on the Node failed");
            }
        }))
    }

    async fn post(&self, reason: &str, message: String) -> Result<(), kube::Error> {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", self.node)),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(self.node.clone()),
                // kubelet's own Node events carry the name as the uid too.
                uid: Some(self.node.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message),
            type_: Some("Warning".into()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some(self.node.clone()),
            ..Event::default()
        };
        Api::<Event>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &event)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn unauthorized_and_subnet_full_call_for_events_naming_the_action() {
        for code in UNAUTHORIZED_CODES {
            let e = CloudError::Fatal {
                action: "AssignPrivateIpAddresses".into(),
                code: code.into(),
                message: "You are not authorized".into(),
            };
            let (reason, msg) = event_for(&e).unwrap();
            assert_eq!(reason, MISSING_IAM_PERMISSIONS);
            assert!(msg.contains("ec2:AssignPrivateIpAddresses"), "{msg}");
        }
        let full = CloudError::SubnetFull {
            action: "CreateNetworkInterface".into(),
            code: "InsufficientFreeAddressesInSubnet".into(),
            message: String::new(),
        };
        let (reason, msg) = event_for(&full).unwrap();
        assert_eq!(reason, SUBNET_FULL);
        assert!(msg.contains("InsufficientFreeAddressesInSubnet"), "{msg}");
        let other = CloudError::Fatal {
            action: "CreateNetworkInterface".into(),
            code: "InvalidParameterValue".into(),
            message: String::new(),
        };
        assert!(event_for(&other).is_none());
        let throttled = CloudError::Throttled {
            action: "X".into(),
            message: String::new(),
        };
        assert!(event_for(&throttled).is_none());
    }

    #[test]
    fn one_event_per_reason_per_interval() {
        let mut gate = EventGate::new(Duration::from_secs(600));
        assert!(gate.admit(SUBNET_FULL, 1_000));
        assert!(!gate.admit(SUBNET_FULL, 1_000 + 599_999));
        // Another reason has its own allowance.
        assert!(gate.admit(MISSING_IAM_PERMISSIONS, 2_000));
        assert!(gate.admit(SUBNET_FULL, 1_000 + 600_000));
        assert!(!gate.admit(SUBNET_FULL, 1_000 + 600_001));
    }
}
