#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use vpc_cni_cloud::{Attempt, CallObserver};
use vpc_cni_proto::Mode;

use super::*;
use crate::introspect::{PoolReport, VpcPool};
use crate::vpc::ReconcileCounts;
use crate::vpc_datapath::fast_path::FastPathFigures;

fn pool(vpc: bool) -> PoolReport {
    PoolReport {
        mode: if vpc { "vpc" } else { "overlay" }.into(),
        pool: "p".into(),
        total: 10,
        assigned: 7,
        cooling: 1,
        available: 2,
        outside_pool: 0,
        vpc: vpc.then(|| VpcPool {
            instance_id: "i-1".into(),
            instance_type: "t3.medium".into(),
            enis: 2,
            unmanaged_enis: 0,
            unwired_enis: 0,
            max_enis: 3,
            addresses_per_eni: 5,
            ip_max: 15,
            prefix_mode: false,
            prefixes: 0,
            free_prefixes: 0,
            max_pods: 17,
            observed_at_ms: 1,
        }),
    }
}

fn vpc_figures() -> Figures {
    Figures {
        pool: pool(true),
        reconciled: Some(ReconcileCounts {
            enis_added: 1,
            enis_removed: 0,
            addresses_added: 5,
            addresses_removed: 2,
        }),
        peers: None,
        overlay_failures: None,
        fast_path: None,
    }
}

/// Every sample line as `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn sample(text: &str, series: &str) -> f64 {
    *samples(text)
        .get(series)
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[test]
fn aws_series_keep_their_names_types_and_labels() {
    let m = Metrics::new(Mode::Vpc);
    let r = m.requests();
    for _ in 0..3 {
        r.add_requested();
    }
    r.del_requested();
    r.del_requested();
    r.released(DEL_REASON_GC, 4);
    r.no_address();
    let text = m.render(&vpc_figures());
    for (name, kind) in [
        ("awscni_add_ip_req_count", "counter"),
        ("awscni_del_ip_req_count", "counter"),
        ("awscni_no_available_ip_addresses", "counter"),
        ("awscni_total_ip_addresses", "gauge"),
        ("awscni_assigned_ip_addresses", "gauge"),
        ("awscni_eni_allocated", "gauge"),
        ("awscni_eni_max", "gauge"),
        ("awscni_ip_max", "gauge"),
        ("awscni_total_ipv4_prefixes", "gauge"),
        ("awscni_reconcile_count", "counter"),
        ("awscni_build_info", "gauge"),
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {name} {kind}\n")),
            "{name} is not a {kind}:\n{text}"
        );
    }
    assert_eq!(sample(&text, "awscni_add_ip_req_count"), 3.0);
    assert_eq!(
        sample(&text, r#"awscni_del_ip_req_count{reason="PodDeleted"}"#),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            r#"awscni_del_ip_req_count{reason="GarbageCollected"}"#
        ),
        4.0
    );
    assert_eq!(sample(&text, "awscni_no_available_ip_addresses"), 1.0);
    assert_eq!(sample(&text, "awscni_total_ip_addresses"), 10.0);
    assert_eq!(sample(&text, "awscni_assigned_ip_addresses"), 7.0);
    assert_eq!(sample(&text, "vpc_cni_pool_available_addresses"), 2.0);
    assert_eq!(sample(&text, "vpc_cni_pool_cooling_addresses"), 1.0);
    assert_eq!(sample(&text, "awscni_eni_allocated"), 2.0);
    assert_eq!(sample(&text, "awscni_eni_max"), 3.0);
    assert_eq!(sample(&text, "awscni_ip_max"), 15.0);
    assert_eq!(sample(&text, "vpc_cni_max_pods"), 17.0);
    assert_eq!(
        sample(&text, r#"awscni_reconcile_count{fn="eniReconcileAdd"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"awscni_reconcile_count{fn="eniDataStorePoolReconcileAdd"}"#
        ),
        5.0
    );
    assert_eq!(
        sample(
            &text,
            r#"awscni_reconcile_count{fn="eniIPPoolReconcileDel"}"#
        ),
        2.0
    );
    let build = samples(&text)
        .into_keys()
        .find(|k| k.starts_with("awscni_build_info{"))
        .unwrap();
    assert!(
        build.contains(&format!(r#"version="{}""#, env!("CARGO_PKG_VERSION")))
            && build.contains("revision=")
            && build.contains("goversion="),
        "{build}"
    );
}

#[test]
fn the_exposition_is_prometheus_text_format_0_0_4() {
    let m = Metrics::new(Mode::Vpc);
    m.requests().add_requested();
    m.ec2().unwrap().attempt(
        "DescribeInstanceTypes",
        Attempt::Succeeded,
        Duration::from_millis(3),
    );
    let text = m.render(&vpc_figures());
    let mut families = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            // `unknown`, `info` and the like stop Prometheus's text parser.
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.push((name.to_owned(), kind.to_owned()));
        }
    }
    for series in samples(&text).keys() {
        let name = series.split('{').next().unwrap();
        let belongs = families.iter().any(|(family, kind)| match kind.as_str() {
            "histogram" => ["_sum", "_count", "_bucket"]
                .iter()
                .any(|suffix| name == format!("{family}{suffix}")),
            _ => name == family,
        });
        assert!(belongs, "{series} belongs to no declared family:\n{text}");
    }
    assert!(!text.contains("# EOF"), "an OpenMetrics end marker");
}

#[test]
fn ec2_attempts_count_requests_errors_codes_and_latency() {
    let m = Metrics::new(Mode::Vpc);
    let ec2 = m.ec2().unwrap();
    let action = "AssignPrivateIpAddresses";
    ec2.attempt(
        action,
        Attempt::Refused {
            status: 503,
            code: Some("RequestLimitExceeded"),
        },
        Duration::from_millis(20),
    );
    ec2.attempt(action, Attempt::Succeeded, Duration::from_millis(30));
    ec2.attempt(
        "DeleteNetworkInterface",
        Attempt::NoAnswer { status: None },
        Duration::from_secs(10),
    );
    ec2.token_wait(action, Duration::from_millis(150));
    let text = m.render(&vpc_figures());
    let s = |series: &str| sample(&text, series);
    assert_eq!(
        s(r#"awscni_ec2api_req_count{fn="AssignPrivateIpAddresses"}"#),
        2.0
    );
    assert_eq!(
        s(r#"awscni_ec2api_error_count{fn="AssignPrivateIpAddresses"}"#),
        1.0
    );
    assert_eq!(
        s(r#"awscni_ec2api_error_count{fn="DeleteNetworkInterface"}"#),
        1.0
    );
    assert_eq!(
        s(
            r#"awscni_aws_api_error_count{api="AssignPrivateIpAddresses",error="RequestLimitExceeded"}"#
        ),
        1.0
    );
    assert!(
        !text.contains(r#"awscni_aws_api_error_count{api="DeleteNetworkInterface""#),
        "an attempt without an EC2 error code has no code to count"
    );
    assert_eq!(
        s(
            r#"awscni_aws_api_latency_ms_count{api="AssignPrivateIpAddresses",error="true",status="503"}"#
        ),
        1.0
    );
    assert_eq!(
        s(
            r#"awscni_aws_api_latency_ms_sum{api="AssignPrivateIpAddresses",error="false",status="200"}"#
        ),
        30.0
    );
    assert_eq!(
        s(
            r#"awscni_aws_api_latency_ms_count{api="DeleteNetworkInterface",error="true",status=""}"#
        ),
        1.0
    );
    assert_eq!(s("vpc_cni_ec2_token_wait_seconds_count"), 1.0);
}

#[test]
fn overlay_nodes_have_no_eni_or_ec2_series_but_their_peers() {
    let m = Metrics::new(Mode::Overlay);
    assert!(m.ec2().is_none());
    let text = m.render(&Figures {
        pool: pool(false),
        reconciled: None,
        peers: Some(4),
        overlay_failures: Some(2),
        fast_path: None,
    });
    for absent in [
        "awscni_eni_",
        "awscni_ip_max",
        "awscni_ec2api",
        "awscni_reconcile",
    ] {
        assert!(
            !text.contains(absent),
            "{absent} in an overlay node's metrics"
        );
    }
    assert_eq!(sample(&text, "vpc_cni_overlay_peers"), 4.0);
    assert_eq!(sample(&text, "vpc_cni_overlay_reconcile_errors_total"), 2.0);
    assert_eq!(sample(&text, "awscni_assigned_ip_addresses"), 7.0);
}

#[test]
fn totals_read_from_elsewhere_never_go_back() {
    let m = Metrics::new(Mode::Overlay);
    let figures = |failures| Figures {
        pool: pool(false),
        reconciled: None,
        peers: Some(0),
        overlay_failures: Some(failures),
        fast_path: None,
    };
    let _ = m.render(&figures(5));
    let text = m.render(&figures(3));
    assert_eq!(sample(&text, "vpc_cni_overlay_reconcile_errors_total"), 5.0);
}

#[test]
fn a_hybrid_vpc_node_has_the_eni_series_and_the_overlay_s() {
    let m = Metrics::new(Mode::Vpc)
        .with_overlay_series()
        .with_overlay_series();
    let figures = Figures {
        pool: pool(true),
        reconciled: Some(ReconcileCounts::default()),
        peers: Some(2),
        overlay_failures: Some(1),
        fast_path: None,
    };
    let text = m.render(&figures);
    assert_eq!(sample(&text, "vpc_cni_overlay_peers"), 2.0);
    assert_eq!(sample(&text, "vpc_cni_overlay_reconcile_errors_total"), 1.0);
    assert!(text.contains("awscni_eni_allocated"), "{text}");
    assert_eq!(
        text.matches("# TYPE vpc_cni_overlay_peers").count(),
        1,
        "registered once"
    );
}

#[test]
fn checkpoint_writes_and_add_waits_and_request_times_are_observed() {
    let m = Metrics::new(Mode::Vpc);
    let observe = m.checkpoint_observer();
    observe(WriteReport {
        took: Duration::from_millis(4),
        changes: 12,
        ok: true,
    });
    observe(WriteReport {
        took: Duration::from_millis(1),
        changes: 1,
        ok: false,
    });
    let r = m.requests();
    r.waited(Duration::from_millis(700));
    drop(r.timer(Command::Add));
    m.leaked_enis_deleted(2);
    let text = m.render(&vpc_figures());
    assert_eq!(sample(&text, "vpc_cni_checkpoint_write_seconds_count"), 2.0);
    assert_eq!(sample(&text, "vpc_cni_checkpoint_group_size_sum"), 13.0);
    assert_eq!(
        sample(&text, r#"vpc_cni_checkpoint_group_size_bucket{le="8.0"}"#),
        1.0
    );
    assert_eq!(sample(&text, "vpc_cni_checkpoint_write_errors_total"), 1.0);
    assert_eq!(sample(&text, "vpc_cni_add_wait_seconds_count"), 1.0);
    assert_eq!(
        sample(
            &text,
            r#"vpc_cni_request_duration_seconds_count{command="ADD"}"#
        ),
        1.0
    );
    assert_eq!(sample(&text, "vpc_cni_leaked_enis_deleted_total"), 2.0);
}

#[test]
fn fast_path_series_show_its_latest_sync_and_totals_and_zero_when_off() {
    let m = Metrics::new(Mode::Vpc);
    let off = m.render(&vpc_figures());
    for series in [
        "vpc_cni_fast_path_pods",
        "vpc_cni_fast_path_waiting_pods",
        "vpc_cni_fast_path_updates_total",
        "vpc_cni_fast_path_errors_total",
    ] {
        assert_eq!(sample(&off, series), 0.0, "{series} with the fast path off");
    }
    let on = m.render(&Figures {
        fast_path: Some(FastPathFigures {
            pods: 12,
            waiting: 1,
            updates: 30,
            errors: 2,
        }),
        ..vpc_figures()
    });
    assert_eq!(sample(&on, "vpc_cni_fast_path_pods"), 12.0);
    assert_eq!(sample(&on, "vpc_cni_fast_path_waiting_pods"), 1.0);
    assert_eq!(sample(&on, "vpc_cni_fast_path_updates_total"), 30.0);
    assert_eq!(sample(&on, "vpc_cni_fast_path_errors_total"), 2.0);
    assert!(
        on.contains("\n# TYPE vpc_cni_fast_path_updates_total counter\n"),
        "{on}"
    );
}
