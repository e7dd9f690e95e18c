//! The admission policy of the base, as the API server applies it (its CEL evaluated by
//! cel-python, vap_eval.py): ipamd's service account may change its own Node's annotations
//! of ours, and nothing else on any Node.

use std::net::Ipv4Addr;

use ipamd::overlay::peers::UNDERLAY_ANNOTATION;
use serde_json::{json, Value};
use vpc_cni_integration::fake_kube::{merge_patch, node_object};

use crate::tools::{object, render, repo, run, venv_bin, OVERLAYS};

const POLICY: &str = "vpc-cni-own-node-only";
const IPAMD: &str = "system:serviceaccount:kube-system:vpc-cni";

/// An admission request as the API server builds it for a user's change of a Node.
struct Change {
    name: &'static str,
    user: &'static str,
    /// The node-name claim of the user's token, if it has one.
    bound_to: Option<&'static str>,
    operation: &'static str,
    node: &'static str,
    /// The merge patch applied to the stored Node (UPDATE).
    patch: Value,
}

/// The Node as stored: registered by its kubelet, and (for n1) annotated by its ipamd once.
fn stored(node: &str) -> Value {
    let address = if node == "n1" { 1 } else { 2 };
    let mut object = node_object(
        node,
        Ipv4Addr::new(192, 168, 0, address),
        Some(&format!("10.244.{address}.0/24")),
    );
    object["metadata"]["uid"] = json!(format!("uid-{node}"));
    object["metadata"]["resourceVersion"] = json!("7");
    object
}

fn case(change: &Change) -> Value {
    let mut extra = json!({});
    if let Some(node) = change.bound_to {
        extra["authentication.kubernetes.io/node-name"] = json!([node]);
        extra["authentication.kubernetes.io/pod-name"] = json!(["vpc-cni-x7k2p"]);
    }
    let old = stored(change.node);
    let (object, old_object) = match change.operation {
        "CREATE" => (old.clone(), Value::Null),
        "DELETE" => (Value::Null, old.clone()),
        _ => {
            let mut new = old.clone();
            merge_patch(&mut new, &change.patch);
            (new, old)
        }
    };
    json!({
        "name": change.name,
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": { "group": "", "version": "v1", "kind": "Node" },
            "resource": { "group": "", "version": "v1", "resource": "nodes" },
            "subResource": "",
            "name": change.node,
            "operation": change.operation,
            "userInfo": {
                "username": change.user,
                "uid": "sa-uid",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                           "system:authenticated"],
                "extra": extra,
            },
            "dryRun": false,
        },
        "object": object,
        "oldObject": old_object,
    })
}

/// `(matched, allowed, denials)` for each change, in order.
fn verdicts(policy: &Value, changes: &[Change]) -> Vec<(bool, bool, Vec<String>)> {
    let given = json!({
        "policy": policy,
        "cases": changes.iter().map(case).collect::<Vec<_>>(),
    });
    let script = repo().join("integration/tests/deploy_manifests/vap_eval.py");
    let out = run(
        venv_bin("python"),
        &[script.to_str().unwrap()],
        given.to_string().as_bytes(),
    );
    let answers: Vec<Value> = serde_json::from_str(&out).unwrap();
    answers
        .iter()
        .map(|a| {
            (
                a["matched"].as_bool().unwrap(),
                a["allowed"].as_bool().unwrap(),
                serde_json::from_value(a["denials"].clone()).unwrap(),
            )
        })
        .collect()
}

fn underlay(value: &str) -> Value {
    json!({ "metadata": { "annotations": { UNDERLAY_ANNOTATION: value } } })
}

#[test]
fn ipamd_may_annotate_its_own_node_and_change_nothing_else() {
    let changes = [
        Change {
            name: "own annotation (what ipamd does)",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: underlay("192.168.0.1"),
        },
        Change {
            name: "own annotation, removed",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "metadata": { "annotations": { UNDERLAY_ANNOTATION: null } } }),
        },
        Change {
            name: "another node's annotation",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n2",
            patch: underlay("192.168.0.1"),
        },
        Change {
            name: "a token without the node-name claim",
            user: IPAMD,
            bound_to: None,
            operation: "UPDATE",
            node: "n1",
            patch: underlay("192.168.0.1"),
        },
        Change {
            name: "a taint on its own node",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "spec": { "taints": [
                { "key": "evil", "value": "x", "effect": "NoSchedule" }
            ] } }),
        },
        Change {
            name: "cordoning its own node",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "spec": { "unschedulable": true } }),
        },
        Change {
            name: "its own pod CIDR",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "spec": { "podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"] } }),
        },
        Change {
            name: "a label on its own node",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "metadata": { "labels": { "node-role.kubernetes.io/control-plane": "" } } }),
        },
        Change {
            name: "the kubelet's annotation on its own node",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "metadata": { "annotations": { "node.alpha.kubernetes.io/ttl": "30" } } }),
        },
        Change {
            name: "removing the kubelet's annotation",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "metadata": { "annotations": {
                "volumes.kubernetes.io/controller-managed-attach-detach": null
            } } }),
        },
        Change {
            name: "a finalizer on its own node",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "metadata": { "finalizers": ["example.com/hold"] } }),
        },
        Change {
            name: "deleting its own node",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "DELETE",
            node: "n1",
            patch: Value::Null,
        },
        Change {
            name: "creating a node",
            user: IPAMD,
            bound_to: Some("n1"),
            operation: "CREATE",
            node: "n2",
            patch: Value::Null,
        },
        Change {
            name: "the kubelet labelling its node (not ipamd: the policy does not apply)",
            user: "system:node:n1",
            bound_to: None,
            operation: "UPDATE",
            node: "n1",
            patch: json!({ "metadata": { "labels": { "topology.kubernetes.io/zone": "a" } } }),
        },
        Change {
            name: "another service account in kube-system",
            user: "system:serviceaccount:kube-system:vpc-cni-other",
            bound_to: Some("n1"),
            operation: "UPDATE",
            node: "n2",
            patch: json!({ "spec": { "unschedulable": true } }),
        },
    ];
    // (matched, allowed) for each change above.
    let expected = [
        (true, true),
        (true, true),
        (true, false),
        (true, false),
        (true, false),
        (true, false),
        (true, false),
        (true, false),
        (true, false),
        (true, false),
        (true, false),
        (true, false),
        (true, false),
        (false, true),
        (false, true),
    ];
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let policy = object(&objects, "ValidatingAdmissionPolicy", POLICY);
        let binding = object(&objects, "ValidatingAdmissionPolicyBinding", POLICY);
        assert_eq!(binding["spec"]["policyName"], POLICY);
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
        assert_eq!(policy["spec"]["failurePolicy"], "Fail");

        let got = verdicts(policy, &changes);
        for ((change, (matched, allowed, denials)), want) in changes.iter().zip(&got).zip(expected)
        {
            assert_eq!(
                (*matched, *allowed),
                want,
                "{overlay}: {}: denials {denials:?}",
                change.name
            );
            // Each denial says why in words, never an evaluation error.
            for denial in denials {
                assert!(!denial.starts_with("error"), "{}: {denial}", change.name);
            }
        }
        // The denial of another node's annotation names both nodes.
        let other = &got[2].2;
        assert!(
            other.iter().any(|d| d.contains("n1") && d.contains("n2")),
            "{other:?}"
        );
    }
}
