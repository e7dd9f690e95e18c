//! deploy/overlays/hybrid: the VPC half (VPC mode with ENABLE_HYBRID_OVERLAY) and the on-prem
//! half (overlay mode) as two DaemonSets on complementary nodes, under one service account
//! with the permissions both need, each with its own settings, which the real ipamd accepts.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::manifests::validate_strict;
use crate::tools::{assert_ipamd_accepts, object, render, render_yaml, yaml_objects};

/// The label EKS puts on its hybrid (on-prem) nodes.
const ONPREM_LABEL: &str = "eks.amazonaws.com/compute-type";

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The ConfigMap a DaemonSet's ipamd takes its settings from.
fn settings_of(objects: &[Value], daemonset: &Value) -> BTreeMap<String, String> {
    let spec = &daemonset["spec"]["template"]["spec"];
    let ipamd = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ipamd")
        .unwrap();
    let name = ipamd["envFrom"][0]["configMapRef"]["name"]
        .as_str()
        .unwrap();
    serde_json::from_value(object(objects, "ConfigMap", name)["data"].clone()).unwrap()
}

/// The one match expression of a DaemonSet's required node affinity.
fn node_affinity(daemonset: &Value) -> &Value {
    let terms = &daemonset["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    assert_eq!(terms.as_array().map(Vec::len), Some(1), "{terms}");
    let expressions = &terms[0]["matchExpressions"];
    assert_eq!(
        expressions.as_array().map(Vec::len),
        Some(1),
        "{expressions}"
    );
    &expressions[0]
}

#[test]
fn the_hybrid_overlay_runs_each_half_on_its_own_nodes_under_one_account() {
    let yaml = render_yaml("hybrid");
    let objects = yaml_objects(&yaml);
    let report = validate_strict(&yaml)
        .unwrap_or_else(|report| panic!("kubernetes-validate --strict refused it:\n{report}"));
    let passed = report.matches("passed for resource").count();
    assert_eq!(passed, objects.len(), "{report}");

    // One account, one role, one admission policy, two DaemonSets.
    for (kind, count) in [
        ("ServiceAccount", 1),
        ("ClusterRole", 1),
        ("ClusterRoleBinding", 1),
        ("ValidatingAdmissionPolicy", 1),
        ("DaemonSet", 2),
        ("ConfigMap", 2),
    ] {
        assert_eq!(of_kind(&objects, kind).len(), count, "{kind}");
    }
    let role = object(&objects, "ClusterRole", "vpc-cni");
    assert_eq!(
        role["rules"],
        json!([{ "apiGroups": [""], "resources": ["nodes"],
                 "verbs": ["get", "list", "watch", "patch"] }])
    );

    let vpc = object(&objects, "DaemonSet", "vpc-cni");
    let onprem = object(&objects, "DaemonSet", "vpc-cni-onprem");
    for daemonset in [vpc, onprem] {
        assert_eq!(
            daemonset["spec"]["template"]["spec"]["serviceAccountName"],
            "vpc-cni"
        );
        // Each selects its own pods only.
        let selector = &daemonset["spec"]["selector"]["matchLabels"];
        let labels = &daemonset["spec"]["template"]["metadata"]["labels"];
        for (key, value) in selector.as_object().unwrap() {
            assert_eq!(&labels[key], value, "{}", daemonset["metadata"]["name"]);
        }
    }
    let (vpc_pods, onprem_pods) = (
        &vpc["spec"]["template"]["metadata"]["labels"],
        &onprem["spec"]["template"]["metadata"]["labels"],
    );
    let selects = |daemonset: &Value, labels: &Value| {
        daemonset["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(key, value)| &labels[key] == value)
    };
    assert!(!selects(vpc, onprem_pods) && !selects(onprem, vpc_pods));
    // The VPC half keeps deploy/overlays/vpc's selector (a DaemonSet's cannot change).
    let plain_vpc = render("vpc");
    assert_eq!(
        vpc["spec"]["selector"],
        object(&plain_vpc, "DaemonSet", "vpc-cni")["spec"]["selector"]
    );

    // Complementary nodes: the on-prem label picks one half or the other, never both.
    assert_eq!(
        node_affinity(vpc),
        &json!({ "key": ONPREM_LABEL, "operator": "NotIn", "values": ["hybrid"] })
    );
    assert_eq!(
        node_affinity(onprem),
        &json!({ "key": ONPREM_LABEL, "operator": "In", "values": ["hybrid"] })
    );

    let vpc_settings = settings_of(&objects, vpc);
    assert_eq!(vpc_settings["VPC_CNI_MODE"], "vpc");
    assert_eq!(vpc_settings["ENABLE_HYBRID_OVERLAY"], "true");
    assert_eq!(vpc_settings["HYBRID_PATH_MTU"], "1500");
    let onprem_settings = settings_of(&objects, onprem);
    assert_eq!(onprem_settings["VPC_CNI_MODE"], "overlay");
    assert!(
        !onprem_settings.contains_key("PEERS_FILE"),
        "the API is the peer source"
    );
    // Apart from the mode's own knobs, both halves run with the same settings as the plain
    // overlays.
    for (settings, plain) in [(&vpc_settings, "vpc"), (&onprem_settings, "overlay")] {
        let plain: BTreeMap<String, String> =
            serde_json::from_value(of_kind(&render(plain), "ConfigMap")[0]["data"].clone())
                .unwrap();
        let changed: Vec<&String> = plain
            .keys()
            .filter(|k| plain.get(*k) != settings.get(*k))
            .collect();
        let expected: Vec<&str> = if settings["VPC_CNI_MODE"] == "vpc" {
            vec!["ENABLE_HYBRID_OVERLAY"]
        } else {
            vec![]
        };
        assert_eq!(changed, expected);
    }
}

#[test]
fn the_real_ipamd_accepts_both_halves_settings() {
    let objects = render("hybrid");
    for daemonset in of_kind(&objects, "DaemonSet") {
        let name = daemonset["metadata"]["name"].as_str().unwrap_or_default();
        assert_ipamd_accepts(name, &settings_of(&objects, daemonset));
    }
}
