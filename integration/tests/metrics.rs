//! ipamd's metrics and introspection on a vpc-sim node (issue 13, acceptance 3 and the `ipamd
//! inspect` half of 4): after N pods, Prometheus's scrape of `/metrics` from another VPC host
//! shows exactly N assigned addresses, its pool figures are those `ipamd inspect pool --json`
//! (the real binary) prints, and its EC2 request counts are vpc-sim's own counts of that
//! node's requests. The switches close their ports, and introspection answers every GET and
//! nothing else. Needs root (the fabric's namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::process::Output;
use std::time::Duration;

use ipamd::introspect::{PeerRow, PeersReport, PodsReport, PoolReport};
use vpc_cni_integration::overlay_cluster::OverlayCluster;
use vpc_cni_integration::prometheus::samples;
use vpc_cni_integration::vpc_cluster::{VpcCluster, VpcNode, VpcPod};
use vpc_cni_integration::vpcsim::client::{request, HttpReply};
use vpc_cni_testkit::bins;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// t3.medium holds 5 pod addresses per ENI: 7 pods take a second ENI, so the counts include
/// creating, attaching and filling one.
const PODS: usize = 7;

/// The ports of the defaults, `METRICS_ADDR` and `INTROSPECTION_BIND_ADDRESS`.
const METRICS_PORT: u16 = 61678;
const INTROSPECTION: &str = "127.0.0.1:61679";

/// Harness bound for the pool to settle (never asserted as a duration).
const SETTLE: Duration = Duration::from_secs(60);

/// One HTTP request from inside `ns`.
fn http(ns: &Netns, addr: SocketAddr, method: &'static str, path: &'static str) -> HttpReply {
    ns.in_thread(move || {
        request(addr, method, path, &[], b"").map_err(|e| std::io::Error::other(e.to_string()))
    })
    .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

/// `awscni_ec2api_req_count` per action.
fn ec2_requests(samples: &BTreeMap<String, f64>) -> BTreeMap<String, u64> {
    samples
        .iter()
        .filter_map(|(series, value)| {
            let action = series
                .strip_prefix("awscni_ec2api_req_count{fn=\"")?
                .strip_suffix("\"}")?;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some((action.to_owned(), *value as u64))
        })
        .collect()
}

/// `ipamd inspect ARGS` run as an operator would, in the node's namespace.
fn inspect(node: &VpcNode, args: &[&str]) -> Output {
    inspect_in(node.netns(), args)
}

fn inspect_in(ns: &Netns, args: &[&str]) -> Output {
    ns.command(bins::ipamd())
        .arg("inspect")
        .args(args)
        .env_remove("INTROSPECTION_BIND_ADDRESS")
        .output()
        .unwrap()
}

fn inspect_ok(node: &VpcNode, args: &[&str]) -> String {
    inspect_ok_in(node.netns(), args)
}

fn inspect_ok_in(ns: &Netns, args: &[&str]) -> String {
    let out = inspect_in(ns, args);
    assert!(
        out.status.success(),
        "ipamd inspect {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pool_json(node: &VpcNode) -> PoolReport {
    let text = inspect_ok(node, &["pool", "--json"]);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The figures a scrape must show for `pool`, by series.
fn expected_series(pool: &PoolReport) -> BTreeMap<&'static str, u64> {
    let vpc = pool.vpc.as_ref().expect("a VPC node's pool names its ENIs");
    BTreeMap::from([
        ("awscni_total_ip_addresses", pool.total),
        ("awscni_assigned_ip_addresses", pool.assigned),
        ("vpc_cni_pool_available_addresses", pool.available),
        ("vpc_cni_pool_cooling_addresses", pool.cooling),
        ("vpc_cni_pool_outside_addresses", pool.outside_pool),
        ("awscni_eni_allocated", u64::from(vpc.enis)),
        ("awscni_eni_max", u64::from(vpc.max_enis)),
        ("awscni_ip_max", u64::from(vpc.ip_max)),
        ("awscni_total_ipv4_prefixes", u64::from(vpc.prefixes)),
        ("vpc_cni_max_pods", u64::from(vpc.max_pods)),
    ])
}

fn scraped_series(
    samples: &BTreeMap<String, f64>,
    names: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    names
        .keys()
        .map(|name| (*name, samples.get(*name).map_or(u64::MAX, |v| *v as u64)))
        .collect()
}

/// The pool as JSON without the time of the controller's latest look (which moves on its own).
fn settled_pool(node: &VpcNode) -> PoolReport {
    let mut pool = pool_json(node);
    if let Some(vpc) = pool.vpc.as_mut() {
        vpc.observed_at_ms = 0;
    }
    pool
}

#[test]
fn metrics_match_the_pods_the_pool_and_vpc_sims_own_counts() {
    require_root();
    let cluster = VpcCluster::new("obsv", &[("a", "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let pods: Vec<VpcPod> = (0..PODS)
        .map(|i| cluster.pod("a", &format!("m{i}")))
        .collect();
    let node = cluster.node("a").unwrap();
    // Prometheus scrapes the node's address from elsewhere in the VPC.
    let (prometheus, _) = cluster.attach_host("prom").unwrap();
    let target = SocketAddr::from((node.primary_ip(), METRICS_PORT));
    let scrape = || {
        let reply = http(&prometheus, target, "GET", "/metrics");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        samples(&reply.body)
    };

    // Exactly N assigned addresses, whenever it is scraped.
    let first = scrape();
    assert_eq!(
        first.get("awscni_assigned_ip_addresses"),
        Some(&(PODS as f64)),
        "{first:#?}"
    );
    assert_eq!(first.get("awscni_add_ip_req_count"), Some(&(PODS as f64)));

    // The pool figures are what `ipamd inspect pool --json` prints, once the pool is still
    // (the controller may be topping up the warm pool after the last ADD).
    let mut last = None;
    let agreed = wait_for(SETTLE, || {
        let before = settled_pool(node);
        let scraped = scrape();
        let after = settled_pool(node);
        let expected = expected_series(&after);
        let seen = scraped_series(&scraped, &expected);
        let same = before == after && seen == expected;
        last = Some((after.clone(), expected, seen));
        same.then_some(after)
    });
    let Some(pool) = agreed else {
        let (pool, expected, seen) = last.unwrap();
        panic!(
            "the scrape never agreed with ipamd inspect pool --json:\ninspect {pool:#?}\n\
             expected {expected:#?}\nscraped {seen:#?}\n{}",
            cluster.all_diagnostics()
        );
    };
    assert_eq!(pool.assigned, PODS as u64);
    assert!(
        pool.vpc.as_ref().is_some_and(|v| v.enis >= 2),
        "7 pods fit on one t3.medium ENI? {pool:#?}"
    );

    // Every EC2 request ipamd counted is one vpc-sim received from this node, and back.
    let instance = node.instance.id.clone();
    let mut last = None;
    let matched = wait_for(SETTLE, || {
        let sim = cluster.sim().request_counts_of(&instance);
        let ours = ec2_requests(&scrape());
        let same = sim == ours;
        last = Some((sim, ours.clone()));
        same.then_some(ours)
    });
    let Some(counts) = matched else {
        let (sim, ours) = last.unwrap();
        panic!(
            "ipamd's awscni_ec2api_req_count never matched vpc-sim's counts for {instance}:\n\
             vpc-sim {sim:#?}\nipamd {ours:#?}\n{}",
            cluster.all_diagnostics()
        );
    };
    for action in [
        "DescribeInstanceTypes",
        "DescribeNetworkInterfaces",
        "CreateNetworkInterface",
        "AttachNetworkInterface",
        "AssignPrivateIpAddresses",
    ] {
        assert!(counts.contains_key(action), "no {action} in {counts:#?}");
    }

    // The readable side of `ipamd inspect`, on the same node.
    let listed: PodsReport = serde_json::from_str(&inspect_ok(node, &["pods", "--json"])).unwrap();
    assert_eq!(listed.pods.len(), PODS);
    let table = inspect_ok(node, &["pods"]);
    for pod in &pods {
        let ip = pod.ip().unwrap().to_string();
        assert!(
            table
                .lines()
                .any(|l| l.contains(&ip) && l.contains(&pod.name)),
            "{} ({ip}) missing from:\n{table}",
            pod.name
        );
    }
    // Every ENI EC2 has attached to the node is in the table, once ipamd has seen it: the
    // warm-ENI target may still be attaching one after the last ADD.
    let mut last = None;
    let listed_all = wait_for(SETTLE, || {
        let enis = inspect_ok(node, &["enis"]);
        let missing: Vec<String> = cluster
            .sim()
            .fabric_view()
            .enis
            .into_iter()
            .filter(|e| e.attachment.as_ref().map(|a| &a.instance_id) == Some(&instance))
            .map(|e| e.id)
            .filter(|id| !enis.contains(id.as_str()))
            .collect();
        let done = missing.is_empty();
        last = Some((missing, enis));
        done.then_some(())
    });
    if listed_all.is_none() {
        let (missing, enis) = last.unwrap();
        panic!("{missing:?} never appeared in:\n{enis}");
    }
    let table = inspect_ok(node, &["pool"]);
    assert!(
        table.contains(&format!("ASSIGNED           {PODS}\n")),
        "{table}"
    );
}

/// Whether something listens at `addr` as seen from `ns` (refused = closed).
fn listening(ns: &Netns, addr: SocketAddr) -> bool {
    ns.in_thread(move || Ok(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok()))
        .unwrap()
}

#[test]
fn switched_off_endpoints_stay_closed_and_introspection_serves_only_gets() {
    require_root();
    let mut cluster = VpcCluster::new(
        "obsw",
        &[("a", "t3.medium")],
        &[("DISABLE_METRICS", "true")],
    )
    .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let _pod = cluster.pod("a", "w0");
    let introspection: SocketAddr = INTROSPECTION.parse().unwrap();
    {
        let node = cluster.node("a").unwrap();
        let metrics = SocketAddr::from((node.primary_ip(), METRICS_PORT));
        assert!(
            !listening(node.netns(), metrics),
            "DISABLE_METRICS=true, yet {metrics} answers"
        );
        assert!(listening(node.netns(), introspection));

        // Every path answers a GET with JSON, whoever asks.
        let before = http(node.netns(), introspection, "GET", "/v1/pods").body;
        for (path, _) in ipamd::introspect::PATHS {
            let reply = http(node.netns(), introspection, "GET", path);
            assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
            assert_eq!(reply.header("content-type"), Some("application/json"));
            serde_json::from_str::<serde_json::Value>(&reply.body)
                .unwrap_or_else(|e| panic!("GET {path}: {e}: {}", reply.body));
        }
        let index: serde_json::Value =
            serde_json::from_str(&http(node.netns(), introspection, "GET", "/").body).unwrap();
        assert!(
            index["AvailableCommands"]
                .as_array()
                .is_some_and(|paths| paths.iter().any(|p| p == "/v1/enis")),
            "{index}"
        );
        // Nothing else is served, and nothing changed.
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            for path in ["/v1/pods", "/v1/pool", "/v1/config"] {
                let reply = http(node.netns(), introspection, method, path);
                assert_eq!(reply.status, 405, "{method} {path}: {}", reply.body);
            }
        }
        assert_eq!(
            http(node.netns(), introspection, "GET", "/v1/pods").body,
            before
        );
        assert_eq!(
            http(node.netns(), introspection, "GET", "/v1/nothing").status,
            404
        );
    }

    // The other way round after a restart.
    let node = cluster.node_mut("a").unwrap();
    node.ipamd.set_env("DISABLE_METRICS", "false");
    node.ipamd.set_env("DISABLE_INTROSPECTION", "true");
    node.ipamd
        .restart(node.netns())
        .unwrap_or_else(|e| panic!("restarting ipamd: {e}"));
    let node = cluster.node("a").unwrap();
    let metrics = SocketAddr::from((node.primary_ip(), METRICS_PORT));
    assert!(listening(node.netns(), metrics));
    assert!(
        !listening(node.netns(), introspection),
        "DISABLE_INTROSPECTION=true, yet {introspection} answers"
    );
    let out = inspect(node, &["pool"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(INTROSPECTION) && stderr.contains("DISABLE_INTROSPECTION"),
        "{stderr}"
    );
}

#[test]
fn an_overlay_node_shows_its_peers_and_no_eni_series() {
    require_root();
    let cluster = OverlayCluster::new("obso", 2, 1500)
        .unwrap_or_else(|e| panic!("starting the overlay cluster: {e}"));
    let (a, b) = (&cluster.nodes()[0], &cluster.nodes()[1]);
    let expected = vec![PeerRow {
        name: b.name.clone(),
        kind: "overlay".into(),
        underlay_ip: b.underlay_ip.to_string(),
        pod_cidr: b.pod_cidr.clone(),
        vtep_mac: b.vtep_mac(),
    }];
    let metrics = SocketAddr::from(([127, 0, 0, 1], METRICS_PORT));
    let mut last = None;
    let shown = wait_for(SETTLE, || {
        let peers: PeersReport =
            serde_json::from_str(&inspect_ok_in(a.netns(), &["peers", "--json"])).ok()?;
        let scraped = samples(&http(a.netns(), metrics, "GET", "/metrics").body);
        let ok = peers.applied
            && peers.peers == expected
            && scraped.get("vpc_cni_overlay_peers") == Some(&1.0);
        last = Some((peers, scraped.clone()));
        ok.then_some(scraped)
    });
    let Some(scraped) = shown else {
        panic!(
            "{} never showed {} as its one peer: {last:#?}\n{}",
            a.name,
            b.name,
            cluster.all_diagnostics()
        );
    };
    assert!(
        scraped.keys().all(|k| !k.starts_with("awscni_eni")
            && !k.starts_with("awscni_ec2api")
            && !k.starts_with("awscni_ip_max")),
        "ENI or EC2 series on an overlay node: {scraped:#?}"
    );
    assert_eq!(
        scraped.get("vpc_cni_overlay_reconcile_errors_total"),
        Some(&0.0)
    );
    let table = inspect_ok_in(a.netns(), &["peers"]);
    assert!(
        table.contains(&b.name) && table.contains(&b.pod_cidr) && table.contains(&b.vtep_mac()),
        "{table}"
    );
}
