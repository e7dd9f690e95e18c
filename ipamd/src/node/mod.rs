//! ipamd's own Node in VPC mode: kubelet's max-pods (`status.capacity.pods`), which the
//! pool must never plan past, and the Events ipamd posts on it ([`events`]). Overlay mode reads its Node through
//! [`crate::overlay::peers`]; both build their client with
//! [`crate::overlay::peers::client_from_environment`].

pub mod events;

use k8s_openapi::api::core::v1::Node;
use kube::{Api, Client};

use crate::error::IpamdError;

/// The most pods the node may run, and where that figure comes from (for the message a
/// pod over it gets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCap {
    pub limit: u32,
    /// e.g. "MAX_PODS", "Node n1's status.capacity.pods".
    pub source: String,
}

impl PodCap {
    /// What an ADD over the cap is told.
    #[must_use]
    pub fn refusal(&self, assigned: usize) -> String {
        format!(
            "this node is at its pod cap: {assigned} pods hold addresses and the cap is {} \
             ({}); try again later",
            self.limit, self.source
        )
    }
}

/// `status.capacity.pods` of `node`: `None` when the kubelet has not reported it; an error
/// when it is not a whole positive number (a Quantity such as "110").
pub fn capacity_pods(node: &Node) -> Result<Option<u32>, String> {
    let Some(q) = node
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("pods"))
    else {
        return Ok(None);
    };
    match q.0.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "status.capacity.pods {:?} is not a positive whole number",
            q.0
        )),
    }
}

/// Reads Node `name` and its [`capacity_pods`].
pub async fn node_capacity_pods(client: &Client, name: &str) -> Result<Option<u32>, IpamdError> {
    let api: Api<Node> = Api::all(client.clone());
    let node = api.get(name).await.map_err(|e| IpamdError::Kubernetes {
        action: format!("getting Node {name}"),
        reason: e.to_string(),
    })?;
    capacity_pods(&node).map_err(|reason| IpamdError::Kubernetes {
        action: format!("reading Node {name}"),
        reason,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn node(capacity: serde_json::Value) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "n1" },
            "status": { "capacity": capacity },
        }))
        .unwrap()
    }

    #[test]
    fn capacity_pods_reads_kubelets_max_pods() {
        assert_eq!(
            capacity_pods(&node(serde_json::json!({ "pods": "8", "cpu": "2" }))),
            Ok(Some(8))
        );
        assert_eq!(
            capacity_pods(&node(serde_json::json!({ "cpu": "2" }))),
            Ok(None)
        );
        let bare: Node = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(capacity_pods(&bare), Ok(None));
        for bad in ["0", "1k", "-3", "x"] {
            let err = capacity_pods(&node(serde_json::json!({ "pods": bad }))).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn the_refusal_names_the_cap_and_its_source() {
        let cap = PodCap {
            limit: 8,
            source: "Node n1's status.capacity.pods".into(),
        };
        let msg = cap.refusal(8);
        assert!(msg.contains("cap is 8"), "{msg}");
        assert!(msg.contains("status.capacity.pods"), "{msg}");
        assert!(msg.contains("try again later"), "{msg}");
    }
}
