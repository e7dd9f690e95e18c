//! deploy/iam-policy.json against the EC2 actions `cloud/` sends (`EC2_ACTIONS`, which a test
//! in `cloud/` keeps equal to the client's requests), both ways; and the tag conditions on
//! what could harm ENIs that are not ours.

use std::collections::BTreeSet;

use ipamd::vpc::{CREATED_AT_TAG, INSTANCE_ID_TAG};
use serde_json::{json, Value};
use vpc_cni_cloud::aws::EC2_ACTIONS;

use crate::tools::repo;

fn policy() -> Value {
    let text = std::fs::read_to_string(repo().join("deploy/iam-policy.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"].as_array().unwrap()
}

/// A statement's actions (a string or a list) without the `ec2:` prefix; any other service
/// or a wildcard fails the test.
fn actions(statement: &Value) -> Vec<String> {
    let listed = match &statement["Action"] {
        Value::String(one) => vec![one.clone()],
        other => serde_json::from_value(other.clone()).unwrap(),
    };
    listed
        .into_iter()
        .map(|a| {
            assert!(!a.contains('*'), "wildcard action {a}");
            a.strip_prefix("ec2:")
                .unwrap_or_else(|| panic!("{a} is not an EC2 action"))
                .to_owned()
        })
        .collect()
}

fn resources(statement: &Value) -> Vec<String> {
    match &statement["Resource"] {
        Value::String(one) => vec![one.clone()],
        other => serde_json::from_value(other.clone()).unwrap(),
    }
}

const ENIS: &str = "arn:aws:ec2:*:*:network-interface/*";

#[test]
fn the_policy_allows_exactly_the_actions_cloud_sends() {
    let policy = policy();
    assert_eq!(policy["Version"], "2012-10-17");
    let allowed: BTreeSet<String> = statements(&policy)
        .iter()
        .inspect(|s| assert_eq!(s["Effect"], "Allow", "{s}"))
        .flat_map(actions)
        .collect();
    let sent: BTreeSet<String> = EC2_ACTIONS.iter().map(|a| (*a).to_owned()).collect();
    let unused: Vec<_> = allowed.difference(&sent).collect();
    let missing: Vec<_> = sent.difference(&allowed).collect();
    assert!(
        unused.is_empty() && missing.is_empty(),
        "allowed but never sent: {unused:?}; sent but not allowed: {missing:?}"
    );
}

/// What a statement's condition requires of the ENI's tags.
fn requires_our_tag(statement: &Value) -> bool {
    statement["Condition"]["Null"][format!("ec2:ResourceTag/{INSTANCE_ID_TAG}")] == "false"
}

#[test]
fn what_harms_an_eni_is_allowed_on_our_tagged_enis_only() {
    let policy = policy();
    // On ENIs: these act only where our creation tag is (the primary ENI is not ours, and
    // these never touch it).
    for action in [
        "DeleteNetworkInterface",
        "DetachNetworkInterface",
        "ModifyNetworkInterfaceAttribute",
        "AttachNetworkInterface",
    ] {
        let on_enis: Vec<&Value> = statements(&policy)
            .iter()
            .filter(|s| actions(s).contains(&action.to_owned()))
            .filter(|s| {
                resources(s)
                    .iter()
                    .any(|r| r == "*" || r.contains("network-interface"))
            })
            .collect();
        assert!(!on_enis.is_empty(), "{action} is not allowed on ENIs");
        for s in on_enis {
            assert_eq!(resources(s), [ENIS], "{action}: {s}");
            assert!(
                requires_our_tag(s),
                "{action} without our tag condition: {s}"
            );
        }
    }
    // Tags: set while creating an ENI, or our creation-time tag on an ENI of ours; never
    // our tag on someone else's ENI (which would make it ours to delete).
    for s in statements(&policy)
        .iter()
        .filter(|s| actions(s).contains(&"CreateTags".to_owned()))
    {
        let while_creating = s["Condition"]
            == json!({ "StringEquals": { "ec2:CreateAction": "CreateNetworkInterface" } });
        let dating_ours = requires_our_tag(s)
            && s["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
                == json!([CREATED_AT_TAG]);
        assert!(while_creating || dating_ours, "CreateTags too broad: {s}");
    }
    // An ENI is created only with our tag on it.
    let creating = statements(&policy)
        .iter()
        .find(|s| {
            actions(s).contains(&"CreateNetworkInterface".to_owned()) && resources(s) == [ENIS]
        })
        .expect("CreateNetworkInterface on ENIs");
    assert_eq!(
        creating["Condition"]["Null"][format!("aws:RequestTag/{INSTANCE_ID_TAG}")],
        "false"
    );
    // Only reads take any resource.
    for s in statements(&policy) {
        if resources(s).contains(&"*".to_owned()) {
            assert!(
                actions(s).iter().all(|a| a.starts_with("Describe")),
                "a write on every resource: {s}"
            );
        }
    }
}
