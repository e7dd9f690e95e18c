//! Every environment variable of the AWS VPC CNI, set on the real ipamd: each is applied
//! (an effect a test can see), mapped (a start-up line naming it) or refused (ipamd exits
//! naming it). The list is ipamd's own table (`ipamd::config::AWS_KNOBS`), so a variable
//! added to it is covered here without touching this file.
//!
//! The refusal tests need no root (ipamd stops before it touches the network); the others
//! run ipamd in namespaces and say so in their names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use ipamd::config::{Treatment, Values, AWS_KNOBS};
use ipamd::overlay::peers::UNDERLAY_ANNOTATION;
use vpc_cni_cloud::sim::{EniFilter, Faults};
use vpc_cni_integration::fabric::ec2_url;
use vpc_cni_integration::node::{NodeOptions, TestNode};
use vpc_cni_integration::overlay_cluster::{pod_cidr, OverlayCluster};
use vpc_cni_integration::vpc_cluster::VpcCluster;
use vpc_cni_testkit::bins;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// Harness bound for convergence (never asserted as a duration).
const EVENTUAL: Duration = Duration::from_secs(60);

/// Runs ipamd with `env` (plus a socket and state dir of its own) until it exits; only for
/// settings that stop it before it touches the network.
fn exit_of(env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bins::ipamd())
        .env_clear()
        .env("VPC_CNI_MODE", "overlay")
        .env("POD_CIDR", "10.1.0.0/24")
        .env("IPAMD_SOCKET", dir.path().join("s.sock"))
        .env("IPAMD_STATE_DIR", dir.path().join("state"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A value the table refuses for `values`, if there is one.
fn refused_value(values: Values) -> Option<&'static str> {
    match values {
        Values::Any => None,
        Values::AnyBool => Some("maybe"),
        Values::Bool(true) => Some("false"),
        Values::Bool(false) => Some("true"),
        Values::OneOf(_) => Some("something-else"),
        Values::Nothing => Some("/var/run/aws-node/ipam.json"),
    }
}

/// A value the table accepts for `values`, if there is one.
fn accepted_value(values: Values) -> Option<&'static str> {
    match values {
        Values::Any => Some("set-by-the-aws-manifest"),
        Values::AnyBool => Some("false"),
        Values::Bool(true) => Some("true"),
        Values::Bool(false) => Some("false"),
        Values::OneOf(list) => list.first().copied(),
        Values::Nothing => None,
    }
}

#[test]
fn each_refused_value_stops_ipamd_naming_the_variable() {
    let mut checked = 0;
    for knob in AWS_KNOBS {
        let values = match knob.treatment {
            Treatment::Implemented { .. } => continue,
            Treatment::Equivalent { values, .. } | Treatment::Refused { values, .. } => values,
        };
        let Some(value) = refused_value(values) else {
            continue;
        };
        let (ok, stderr) = exit_of(&[(knob.name, value)]);
        assert!(!ok, "ipamd started with {}={value}", knob.name);
        assert!(
            stderr.contains(knob.name) && stderr.contains(value),
            "{}={value}: {stderr}",
            knob.name
        );
        checked += 1;
    }
    assert!(checked > 20, "only {checked} refusals checked");
}

/// The implemented ones are read by a setting: a bad value stops ipamd naming it. (That they
/// take effect is shown by the tests below and by the tests of each feature.)
#[test]
fn each_implemented_variable_is_read_a_bad_value_stops_ipamd_naming_it() {
    let bad: BTreeMap<&str, &str> = [
        ("WARM_ENI_TARGET", "one"),
        ("WARM_IP_TARGET", "-1"),
        ("MINIMUM_IP_TARGET", "lots"),
        ("WARM_PREFIX_TARGET", "1.5"),
        ("ENABLE_PREFIX_DELEGATION", "maybe"),
        ("MAX_ENI", "many"),
        ("IP_COOLDOWN_PERIOD", "soon"),
        ("AWS_VPC_ENI_MTU", "20000"),
        ("POD_MTU", "100"),
        ("ADDITIONAL_ENI_TAGS", "[1]"),
        ("DISABLE_LEAKED_ENI_CLEANUP", "maybe"),
        ("ENABLE_SUBNET_DISCOVERY", "maybe"),
        ("AWS_VPC_K8S_CNI_EXTERNALSNAT", "maybe"),
        ("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "10.0.0.1/8"),
        ("AWS_EC2_ENDPOINT", "ftp://ec2.example"),
        ("HTTP_TIMEOUT", "0"),
        ("MY_NODE_NAME", " "),
        ("CLUSTER_ENDPOINT", "not a url"),
        ("AWS_VPC_K8S_CNI_LOGLEVEL", "LOUD"),
        ("AWS_VPC_K8S_CNI_LOG_FILE", "relative/ipamd.log"),
        ("AWS_VPC_K8S_PLUGIN_LOG_FILE", "relative/plugin.log"),
        ("AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "LOUD"),
        ("DISABLE_METRICS", "maybe"),
        ("DISABLE_INTROSPECTION", "maybe"),
        ("INTROSPECTION_BIND_ADDRESS", "nowhere"),
    ]
    .into_iter()
    .collect();
    // Any string is a cluster name (its effect, the ENI tag, is shown in the VPC test).
    let no_bad_value = ["CLUSTER_NAME"];
    for knob in AWS_KNOBS {
        if !matches!(knob.treatment, Treatment::Implemented { .. })
            || no_bad_value.contains(&knob.name)
        {
            continue;
        }
        let value = bad
            .get(knob.name)
            .unwrap_or_else(|| panic!("no bad value for {} here", knob.name));
        let (ok, stderr) = exit_of(&[(knob.name, value)]);
        assert!(!ok, "ipamd started with {}={value}", knob.name);
        assert!(
            stderr.contains(knob.name),
            "{}={value}: {stderr}",
            knob.name
        );
    }
}

/// The one JSON object per line of a JSON log.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

/// An overlay node whose ipamd runs with the AWS logging variables and every accepted AWS
/// variable set (as the AWS manifest sets them): ipamd logs JSON at debug into the file,
/// says once for each accepted variable what it does instead, logs each ADD and DEL once,
/// and the host veth stays `vpc…` though the prefix says `eni`. The plugin, told by the
/// network configuration, writes its own log. Needs root.
#[test]
fn netlink_logging_variables_apply_and_each_accepted_variable_is_logged_by_name() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let ipamd_log = dir.path().join("aws-routed-eni/ipamd.log");
    let plugin_log = dir.path().join("aws-routed-eni/plugin.log");
    let mut options = NodeOptions::new("10.61.0.0/24")
        .with("AWS_VPC_K8S_CNI_LOGLEVEL", "DEBUG")
        .with("LOG_FORMAT", "json")
        .with("AWS_VPC_K8S_CNI_LOG_FILE", ipamd_log.to_str().unwrap())
        // Each resync writes a debug line.
        .with("DATAPATH_RESYNC_INTERVAL", "1");
    options.env.remove("IPAMD_LOG");
    let mut accepted = Vec::new();
    for knob in AWS_KNOBS {
        let values = match knob.treatment {
            Treatment::Implemented { .. } => continue,
            Treatment::Equivalent { values, .. } | Treatment::Refused { values, .. } => values,
        };
        if let Some(value) = accepted_value(values) {
            options = options.with(knob.name, value);
            accepted.push(knob.name);
        }
    }
    assert!(accepted.contains(&"AWS_VPC_K8S_CNI_VETHPREFIX"));
    let options = options.with("AWS_VPC_K8S_CNI_VETHPREFIX", "eni");
    let node = TestNode::start("vkl", options).unwrap();

    let mut conf = node.conf("1.0.0");
    conf["pluginLogFile"] = plugin_log.to_str().unwrap().into();
    conf["pluginLogLevel"] = "INFO".into();
    let mut pod = node.new_pod("logged").unwrap();
    let out = pod.add_in(&node.netns, &conf).unwrap();
    assert!(out.success(), "ADD failed: {} {}", out.stdout, out.stderr);
    let ip = pod.ip.unwrap().to_string();
    let veth =
        vpc_cni::dataplane::host_veth_name(Some("default"), Some(&pod.name), &pod.container_id);
    assert!(veth.starts_with("vpc"), "{veth}");
    node.netns.try_ip(&["link", "show", &veth]).unwrap();
    let out = pod.del_in(&node.netns, conf.clone()).unwrap();
    assert!(out.success(), "DEL failed: {} {}", out.stdout, out.stderr);

    let lines = wait_for(EVENTUAL, || {
        let text = std::fs::read_to_string(&ipamd_log).ok()?;
        let lines = json_lines(&text);
        let del = lines.iter().any(|l| message(l).starts_with("DEL "));
        let debug = lines.iter().any(|l| l["level"] == "DEBUG");
        (del && debug).then_some(lines)
    })
    .unwrap_or_else(|| {
        panic!(
            "no DEL line, or no debug line though AWS_VPC_K8S_CNI_LOGLEVEL=DEBUG, in {}:\n{}",
            ipamd_log.display(),
            std::fs::read_to_string(&ipamd_log).unwrap_or_default()
        )
    });
    let first = message(&lines[0]);
    assert!(
        first.contains("AWS_VPC_K8S_CNI_LOGLEVEL") && first.contains("AWS_VPC_K8S_CNI_LOG_FILE"),
        "the first line does not say how ipamd logs: {first}"
    );
    for name in &accepted {
        assert!(
            lines
                .iter()
                .any(|l| l["fields"]["variable"] == *name && message(l).contains(name)),
            "no start-up line names {name}"
        );
    }
    for command in ["ADD", "DEL"] {
        let once: Vec<&Value> = lines
            .iter()
            .filter(|l| l["fields"]["command"] == command)
            .collect();
        assert_eq!(once.len(), 1, "{command} logged {} times", once.len());
        let fields = &once[0]["fields"];
        assert_eq!(once[0]["level"], "INFO");
        assert_eq!(fields["pod"], format!("default/{}", pod.name).as_str());
        assert_eq!(fields["container"], pod.container_id.as_str());
        assert_eq!(fields["ip"], ip.as_str());
        assert!(fields["ms"].as_f64().is_some(), "{fields}");
    }

    let text = std::fs::read_to_string(&plugin_log).unwrap();
    let add = text
        .lines()
        .find(|l| l.contains("command=ADD"))
        .unwrap_or_else(|| panic!("no ADD line in the plugin log:\n{text}"));
    for field in [
        format!("container={}", pod.container_id),
        format!("pod=default/{}", pod.name),
        format!("ip={ip}/32"),
    ] {
        assert!(add.contains(&field), "{field} missing: {add}");
    }
    assert!(text.lines().any(|l| l.contains("command=DEL")), "{text}");
}

/// A plugin log that cannot be written costs the log, never the ADD. Needs root.
#[test]
fn netlink_an_unwritable_plugin_log_does_not_fail_the_add() {
    require_root();
    let node = TestNode::start("vku", NodeOptions::new("10.62.0.0/24")).unwrap();
    let mut conf = node.conf("1.0.0");
    conf["pluginLogFile"] = "/proc/vpc-cni-nowhere/plugin.log".into();
    let mut pod = node.new_pod("unlogged").unwrap();
    let out = pod.add_in(&node.netns, &conf).unwrap();
    assert!(out.success(), "ADD failed: {} {}", out.stdout, out.stderr);
    assert!(pod.ip.is_some());
    let out = pod.del_in(&node.netns, conf).unwrap();
    assert!(out.success(), "DEL failed: {} {}", out.stdout, out.stderr);
}

/// A VPC node whose SDK endpoint variable points nowhere: `AWS_EC2_ENDPOINT` is what ipamd
/// reaches EC2 through. `HTTP_TIMEOUT=1` abandons attempts the EC2 API answers after 3 s
/// (the default, 10 s, would wait for them). The pool and ENI variables under the AWS names
/// shape what EC2 holds. Needs root.
#[test]
fn netlink_vpc_node_applies_the_aws_ec2_and_pool_variables() {
    require_root();
    let cluster = VpcCluster::new(
        "vknob",
        &[("a", "t3.medium")],
        &[
            ("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:9"),
            ("AWS_EC2_ENDPOINT", &ec2_url()),
            ("HTTP_TIMEOUT", "1"),
            // t3.medium: 3 ENIs of 6 addresses (5 for pods each); 12 would need three.
            ("MINIMUM_IP_TARGET", "12"),
            ("WARM_IP_TARGET", "1"),
            ("MAX_ENI", "2"),
            ("CLUSTER_NAME", "knobs"),
            ("ADDITIONAL_ENI_TAGS", r#"{"team":"net"}"#),
            ("POD_MTU", "1400"),
            // The cloud crate logs each retry at debug.
            ("IPAMD_LOG", "info,vpc_cni_cloud=debug"),
            // An EC2 call every few seconds, whatever the pool does.
            ("LEAKED_ENI_CLEANUP_INTERVAL", "2s"),
        ],
    )
    .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let node = cluster.node("a").unwrap();
    let instance = node.instance.id.clone();
    let attached = || {
        cluster
            .sim()
            .describe_network_interfaces(&EniFilter::default(), None, None)
            .unwrap()
            .items
            .into_iter()
            .filter(|e| {
                e.attachment
                    .as_ref()
                    .is_some_and(|a| a.instance_id == instance)
            })
            .collect::<Vec<_>>()
    };
    // MAX_ENI caps the growth MINIMUM_IP_TARGET asks for: two ENIs, 10 addresses.
    let enis = wait_for(EVENTUAL, || {
        let enis = attached();
        let secondaries: usize = enis
            .iter()
            .map(|e| e.private_ips.iter().filter(|ip| !ip.primary).count())
            .sum();
        (enis.len() == 2 && secondaries == 10).then_some(enis)
    })
    .unwrap_or_else(|| {
        panic!(
            "the pool never reached 2 ENIs and 10 addresses\n{}",
            cluster.all_diagnostics()
        )
    });
    let created = enis
        .iter()
        .find(|e| e.attachment.as_ref().is_some_and(|a| a.device_index > 0))
        .unwrap();
    assert_eq!(
        created
            .tags
            .get("cluster.k8s.amazonaws.com/name")
            .map(String::as_str),
        Some("knobs")
    );
    assert_eq!(created.tags.get("team").map(String::as_str), Some("net"));
    assert!(
        node.ipamd.log_text().contains("AWS_EC2_ENDPOINT"),
        "no start-up line names AWS_EC2_ENDPOINT"
    );

    let pod = cluster.pod("a", "mtu");
    let mtu = pod.netns.try_ip(&["-o", "link", "show", "eth0"]).unwrap();
    assert!(mtu.contains("mtu 1400"), "{mtu}");

    // Every EC2 answer now takes 3 s: HTTP_TIMEOUT abandons each attempt after 1 s.
    cluster.sim().set_faults(Faults {
        latency_ms: 3000,
        ..Faults::default()
    });
    let timed_out = || {
        node.ipamd
            .log_text()
            .lines()
            .any(|l| l.contains("retrying EC2 call") && l.to_ascii_lowercase().contains("timeout"))
    };
    // The leaked-ENI cleanup calls EC2 every 2 s.
    let seen = wait_for(EVENTUAL, || timed_out().then_some(()));
    cluster.sim().set_faults(Faults::default());
    assert!(
        seen.is_some(),
        "no EC2 attempt timed out under HTTP_TIMEOUT=1 and 3 s answers\n{}",
        cluster.all_diagnostics()
    );
}

/// `CLUSTER_ENDPOINT` replaces the API server the kubeconfig names: ipamd's kubeconfig points
/// at an address where nothing listens, and ipamd still annotates its Node through the
/// endpoint. Needs root.
#[test]
fn netlink_cluster_endpoint_is_the_api_server_ipamd_uses() {
    require_root();
    let mut cluster = OverlayCluster::with_kube("vkce", 0, 1500).unwrap();
    let kube_url = cluster.kube().unwrap().url();
    let good = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead-kubeconfig");
    // TEST-NET-1: nothing answers there.
    std::fs::write(&dead, good.replace(&kube_url, "http://192.0.2.9:6443")).unwrap();
    cluster.set_node_env("KUBECONFIG", dead.to_str().unwrap());
    cluster.set_node_env("CLUSTER_ENDPOINT", &kube_url);
    let name = cluster.register_next_node(Some(&pod_cidr(1))).unwrap();
    cluster
        .start_kube_node()
        .unwrap_or_else(|e| panic!("ipamd did not start through CLUSTER_ENDPOINT: {e}"));
    let underlay = cluster.node(&name).unwrap().underlay_ip.to_string();
    let api = cluster.kube().unwrap().api();
    wait_for(EVENTUAL, || {
        (api.annotation(&name, UNDERLAY_ANNOTATION)? == underlay).then_some(())
    })
    .unwrap_or_else(|| panic!("{name} was never annotated\n{}", cluster.all_diagnostics()));
}
