//! Rendering, strict validation, and what the DaemonSet, its settings and its permissions
//! hold in each mode.

use std::collections::{BTreeMap, BTreeSet};

use clap::{Args, CommandFactory};
use ipamd::config::{OverlaySettings, Settings, VpcSettings};
use serde_json::{json, Value};

use crate::tools::{
    assert_ipamd_accepts, object, only, render, render_yaml, repo, venv_bin, yaml_objects,
};
use crate::tools::{KUBERNETES_VERSION, OVERLAYS};

/// kubernetes-validate's strict mode on a YAML stream; its report, or a panic with it.
pub(crate) fn validate_strict(yaml: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION, file.to_str().unwrap()])
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(report)
    } else {
        Err(report)
    }
}

#[test]
fn every_overlay_renders_and_every_object_passes_strict_validation() {
    for overlay in OVERLAYS {
        let yaml = render_yaml(overlay);
        let objects = yaml_objects(&yaml);
        assert!(!objects.is_empty(), "{overlay} renders nothing");
        let report = validate_strict(&yaml).unwrap_or_else(|report| {
            panic!("{overlay}: kubernetes-validate --strict refused it:\n{report}")
        });
        // Every object was checked against a schema (none skipped as unknown).
        let passed = report
            .lines()
            .filter(|l| l.contains("passed for resource"))
            .count();
        assert_eq!(passed, objects.len(), "{overlay}:\n{report}");

        // The check is strict: the same stream with one misspelt field is refused.
        let mut broken = objects.clone();
        let daemonset = broken
            .iter_mut()
            .find(|o| o["kind"] == "DaemonSet")
            .unwrap();
        daemonset["spec"]["template"]["spec"]["hostNetwrok"] = json!(true);
        let broken_yaml: String = broken
            .iter()
            .map(|o| format!("---\n{}\n", serde_json::to_string(o).unwrap()))
            .collect();
        let refused = validate_strict(&broken_yaml).expect_err("a misspelt field passed");
        assert!(refused.contains("hostNetwrok"), "{refused}");
    }
}

/// The DaemonSet's pod spec and its containers by name.
fn pod_spec(objects: &[Value]) -> &Value {
    &object(objects, "DaemonSet", "vpc-cni")["spec"]["template"]["spec"]
}

fn container<'a>(spec: &'a Value, list: &str, name: &str) -> &'a Value {
    spec[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {list} entry {name}"))
}

/// The host path behind the volume mounted at `mount_path` in `container`.
fn host_path_at<'a>(spec: &'a Value, container: &Value, mount_path: &str) -> &'a str {
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == mount_path)
        .unwrap_or_else(|| panic!("nothing is mounted at {mount_path}"));
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    volume["hostPath"]["path"].as_str().unwrap()
}

#[test]
fn the_daemonset_runs_ipamd_on_every_node_with_net_admin_only() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let daemonset = object(&objects, "DaemonSet", "vpc-cni");
        assert_eq!(daemonset["metadata"]["namespace"], "kube-system");
        assert_eq!(
            daemonset["spec"]["updateStrategy"],
            json!({ "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": "10%" } }),
            "{overlay}"
        );
        let spec = pod_spec(&objects);
        assert_eq!(spec["hostNetwork"], true);
        assert_eq!(spec["priorityClassName"], "system-node-critical");
        assert_eq!(spec["serviceAccountName"], "vpc-cni");
        assert!(
            spec["tolerations"]
                .as_array()
                .unwrap()
                .contains(&json!({ "operator": "Exists" })),
            "{overlay}: every taint is tolerated: {}",
            spec["tolerations"]
        );

        for (list, c) in ["initContainers", "containers"].iter().flat_map(|list| {
            spec[*list]
                .as_array()
                .unwrap()
                .iter()
                .map(move |c| (*list, c))
        }) {
            let security = &c["securityContext"];
            assert_ne!(security["privileged"], true, "{list} {}", c["name"]);
            assert_eq!(security["allowPrivilegeEscalation"], false);
            assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
        }
        let init = container(spec, "initContainers", "install-cni");
        assert_eq!(init["securityContext"]["capabilities"]["add"], Value::Null);
        let command: Vec<&str> = init["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(command[1..3], ["install-cni", "--to"], "{command:?}");
        assert_eq!(host_path_at(spec, init, command[3]), "/opt/cni/bin");

        let ipamd = container(spec, "containers", "ipamd");
        assert_eq!(
            ipamd["securityContext"]["capabilities"]["add"],
            json!(["NET_ADMIN"])
        );
        assert_eq!(
            ipamd["resources"]["requests"],
            json!({ "cpu": "25m", "memory": "32Mi" })
        );
        let node_name = ipamd["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "MY_NODE_NAME")
            .expect("MY_NODE_NAME");
        assert_eq!(
            node_name["valueFrom"],
            json!({ "fieldRef": { "fieldPath": "spec.nodeName" } })
        );
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let exec = &ipamd[probe]["exec"]["command"];
            assert_eq!(exec[0], ipamd["command"][0], "{probe} runs ipamd");
            assert_eq!(exec[1], "health", "{probe}: {exec}");
        }
        // The declared metrics port is the one METRICS_ADDR binds.
        let config = only(&objects, "ConfigMap");
        let metrics_addr = config["data"]["METRICS_ADDR"].as_str().unwrap();
        let port: u64 = metrics_addr.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(
            ipamd["ports"],
            json!([{ "name": "metrics", "containerPort": port, "protocol": "TCP" }]),
            "{overlay}"
        );
    }
}

/// The env variables of a settings group.
fn envs(command: clap::Command) -> BTreeSet<String> {
    command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// Set by Kubernetes itself (the API's address, the downward API), never by the ConfigMap.
const FROM_KUBERNETES: [&str; 3] = ["KUBERNETES_SERVICE_HOST", "KUBECONFIG", "MY_NODE_NAME"];

/// The settings the DaemonSet gives another value than ipamd's default: the mode of the
/// overlay, and the node's directories as mounted in the container.
const DAEMONSET_VALUES: [&str; 3] = ["VPC_CNI_MODE", "CNI_CONF_DIR", "SYSCTL_NET_DIR"];

/// Settings an env file lists as unset by default ("#   NAME  (what unset means)").
fn listed_unset(env_file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join(env_file)).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("#   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_ipamd_setting_of_the_mode_is_in_the_configmap_with_its_default() {
    let all = envs(Settings::command());
    let vpc = envs(VpcSettings::augment_args(clap::Command::new("vpc")));
    let mut overlay = envs(OverlaySettings::augment_args(clap::Command::new("overlay")));
    // At the top of `Settings` (it is checked in every mode), but only overlay mode reads it.
    overlay.insert("POD_CIDR".to_owned());
    let both: BTreeSet<String> = all
        .iter()
        .filter(|e| !vpc.contains(*e) && !overlay.contains(*e))
        .cloned()
        .collect();
    let defaults: BTreeMap<String, String> = Settings::command()
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            let default = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            Some((env, default))
        })
        .collect();

    for (name, mode) in [("vpc", &vpc), ("overlay", &overlay)] {
        let objects = render(name);
        let data = &only(&objects, "ConfigMap")["data"];
        let data: BTreeMap<String, String> = serde_json::from_value(data.clone()).unwrap();
        let unset: BTreeSet<String> = listed_unset("deploy/base/ipamd.env")
            .into_iter()
            .chain(listed_unset(&format!("deploy/overlays/{name}/{name}.env")))
            .collect();
        for knob in both.iter().chain(mode.iter()) {
            if FROM_KUBERNETES.contains(&knob.as_str()) {
                continue;
            }
            assert!(
                data.contains_key(knob) || unset.contains(knob),
                "{name}: {knob} is neither in the ConfigMap nor listed as unset by default"
            );
        }
        for (key, value) in &data {
            assert!(
                all.contains(key),
                "{name}: the ConfigMap sets {key}, which ipamd does not read"
            );
            assert!(
                !unset.contains(key),
                "{name}: {key} is set and listed unset"
            );
            if !DAEMONSET_VALUES.contains(&key.as_str()) {
                assert_eq!(
                    Some(value),
                    defaults.get(key),
                    "{name}: {key} is not ipamd's default"
                );
            }
        }
        assert_eq!(data["VPC_CNI_MODE"], name);

        // The DaemonSet's own values point at the node's directories it mounts.
        let spec = pod_spec(&objects);
        let ipamd = container(spec, "containers", "ipamd");
        assert_eq!(
            host_path_at(spec, ipamd, &data["CNI_CONF_DIR"]),
            "/etc/cni/net.d"
        );
        assert_eq!(
            host_path_at(spec, ipamd, &data["SYSCTL_NET_DIR"]),
            "/proc/sys/net"
        );
        // The plugin on the node dials the socket at the path ipamd binds in its container.
        let socket_dir = std::path::Path::new(&data["IPAMD_SOCKET"])
            .parent()
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(host_path_at(spec, ipamd, socket_dir), socket_dir);
        assert_eq!(
            host_path_at(spec, ipamd, &data["IPAMD_STATE_DIR"]),
            socket_dir
        );
        let env_from = &ipamd["envFrom"][0]["configMapRef"]["name"];
        assert_eq!(env_from, &only(&objects, "ConfigMap")["metadata"]["name"]);
    }
}

/// `(api groups, resources, verbs)` of a role's rules, sorted.
fn rules(role: &Value) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        let mut s: Vec<String> = serde_json::from_value(v.clone()).unwrap();
        s.sort();
        s
    };
    let mut out: Vec<_> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                strings(&r["apiGroups"]),
                strings(&r["resources"]),
                strings(&r["verbs"]),
            )
        })
        .collect();
    out.sort();
    out
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn each_mode_gets_only_the_verbs_it_uses() {
    // Overlay: the Kubernetes peer source lists and watches Nodes, gets and patches its own.
    let objects = render("overlay");
    assert_eq!(
        rules(object(&objects, "ClusterRole", "vpc-cni")),
        [(
            strings(&[""]),
            strings(&["nodes"]),
            strings(&["get", "list", "patch", "watch"])
        )]
    );
    assert!(!objects.iter().any(|o| o["kind"] == "Role"));

    // VPC: its own Node read, Events on it (in `default`, as kubelet's).
    let objects = render("vpc");
    assert_eq!(
        rules(object(&objects, "ClusterRole", "vpc-cni")),
        [(strings(&[""]), strings(&["nodes"]), strings(&["get"]))]
    );
    let events = object(&objects, "Role", "vpc-cni-node-events");
    assert_eq!(events["metadata"]["namespace"], "default");
    assert_eq!(
        rules(events),
        [(
            strings(&["", "events.k8s.io"]),
            strings(&["events"]),
            strings(&["create", "patch"])
        )]
    );

    for overlay in OVERLAYS {
        let objects = render(overlay);
        for binding in objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding")
        {
            assert_eq!(
                binding["subjects"],
                json!([{ "kind": "ServiceAccount", "name": "vpc-cni", "namespace": "kube-system" }]),
                "{overlay}: {}",
                binding["metadata"]["name"]
            );
        }
        let account = object(&objects, "ServiceAccount", "vpc-cni");
        assert_eq!(account["metadata"]["namespace"], "kube-system");
    }
}

#[test]
fn the_real_ipamd_accepts_every_value_of_each_modes_configmap() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let data: BTreeMap<String, String> =
            serde_json::from_value(only(&objects, "ConfigMap")["data"].clone()).unwrap();
        assert_ipamd_accepts(overlay, &data);
    }
}
