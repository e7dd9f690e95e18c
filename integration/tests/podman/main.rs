//! Real caller: podman (Debian's 4.3) on its CNI backend, inside a test
//! node's namespace, runs containers whose networking is the real `vpc-cni`
//! plugin talking to the node's ipamd. podman generates 0.4.0 configs and
//! calls VERSION (with CNI_NETNS=dummy) before every ADD and DEL.
//! Needs root (network namespaces, podman, runc).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cleanup;
mod runtime;

use std::path::PathBuf;
use std::time::Duration;

use vpc_cni_integration::node::{NodeOptions, TestNode, NODE_IP};
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

use runtime::{Container, Podman};

const POD_CIDR: &str = "10.91.0.0/24";
const HTTPD: &[&str] = &["httpd", "-f", "-p", "80", "-h", "/www"];
/// The page busybox httpd serves from the test image's /www.
const INDEX_TEXT: &str = "hello from a vpc-cni pod";
/// Harness bound for eventual conditions (httpd listening, ipamd released).
const EVENTUAL: Duration = Duration::from_secs(30);

/// Links in the node namespace named like the plugin's host veths.
fn host_veths(node: &TestNode) -> Vec<String> {
    let text = node.netns.try_ip(&["-o", "link", "show"]).unwrap();
    text.lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .filter(|name| name.starts_with("vpc"))
        .collect()
}

fn assert_ipamd_holds(node: &TestNode, container: &Container) {
    let pod_cidr = &node.options().pod_cidr;
    let cidr: vpc_cni_proto::net::Ipv4Cidr = pod_cidr.parse().unwrap();
    assert!(
        cidr.contains(container.ip),
        "{} got {} outside {pod_cidr}",
        container.name,
        container.ip
    );
    assert_eq!(
        node.ipamd.assigned_ip(&container.id, "eth0").unwrap(),
        Some(container.ip.to_string()),
        "ipamd does not hold podman's address for {} ({})",
        container.name,
        container.id
    );
    let rules = node.rules_at(512).unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r.contains(&format!("to {} ", container.ip))),
        "no 512 rule for {}: {rules:?}",
        container.ip
    );
}

/// libcni's record of the ADD podman made for `container` (podman keeps no
/// CNI result of its own; DEL removes the record).
fn cni_cache_path(container: &Container) -> PathBuf {
    PathBuf::from(format!("/var/lib/cni/results/vpc-{}-eth0", container.id))
}

/// The ADD result libcni cached must be the 0.4.0 shape podman asked for.
fn assert_result_is_0_4_0(container: &Container) {
    let path = cni_cache_path(container);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let cache: serde_json::Value = serde_json::from_str(&text).unwrap();
    let result = &cache["result"];
    assert_eq!(result["cniVersion"], "0.4.0", "cached result: {result}");
    assert_eq!(
        result["ips"][0]["address"],
        format!("{}/32", container.ip),
        "cached result: {result}"
    );
    // 0.4.0 results carry "version" per address; 1.0.0 dropped it.
    assert_eq!(result["ips"][0]["version"], "4", "cached result: {result}");
}

/// Drops the guard and checks its own work: nothing of podman's outlives it.
fn drop_and_assert_clean(podman: Podman) {
    let dir = podman.dir().to_path_buf();
    drop(podman);
    assert_eq!(cleanup::mounts_under(&dir), Vec::<PathBuf>::new());
    assert!(
        !dir.exists(),
        "podman's temp dir {} survived",
        dir.display()
    );
    assert_eq!(cleanup::processes_mentioning(&dir), Vec::<i32>::new());
}

/// Fetches the index page of `server` from inside `client`, retrying while
/// httpd is still starting. busybox wget runs without -T: it segfaults with
/// it inside a container.
fn fetch(podman: &Podman, client: &Container, server: &str) -> Option<String> {
    let url = format!("http://{server}/index.html");
    wait_for(EVENTUAL, || {
        let out = podman
            .exec(&client.name, &["wget", "-q", "-O", "-", &url])
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
}

#[test]
fn netlink_podman_cni_0_4_0_container_gets_address_reaches_another_and_is_removed_cleanly() {
    require_root();
    // Declared before podman so it drops after it: podman's DELs on teardown
    // still find ipamd.
    let node = TestNode::start("vpm", NodeOptions::new(POD_CIDR)).unwrap();
    let mut podman = Podman::start(&node, "vpc", "0.4.0", &[]).unwrap();

    let a = podman.run("a", &[], &[]).unwrap();
    let b = podman.run("b", &[], HTTPD).unwrap();
    assert_ne!(a.ip, b.ip, "two containers got one address");
    assert_eq!(node.ipamd.status().unwrap().assigned_addresses, 2);
    for container in [&a, &b] {
        assert_ipamd_holds(&node, container);
        assert_result_is_0_4_0(container);
    }
    assert_eq!(host_veths(&node).len(), 2, "{:?}", host_veths(&node));

    for (from, to) in [(&a, &b), (&b, &a)] {
        let out = podman
            .exec(
                &from.name,
                &["ping", "-c", "1", "-W", "2", &to.ip.to_string()],
            )
            .unwrap();
        assert!(
            out.status.success(),
            "{} cannot ping {} ({}): {}",
            from.name,
            to.name,
            to.ip,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = podman
        .exec(
            &a.name,
            &["ping", "-c", "1", "-W", "2", &NODE_IP.to_string()],
        )
        .unwrap();
    assert!(out.status.success(), "a cannot ping the node {NODE_IP}");
    let page = fetch(&podman, &a, &b.ip.to_string());
    assert!(
        page.as_deref().is_some_and(|p| p.contains(INDEX_TEXT)),
        "a could not fetch b's page over TCP: {page:?}"
    );

    podman
        .checked(&["rm", "--force", "--time", "0", "a", "b"])
        .unwrap();
    let released = wait_for(EVENTUAL, || {
        (node.ipamd.status().unwrap().assigned_addresses == 0).then_some(())
    });
    assert!(
        released.is_some(),
        "ipamd still holds addresses after podman rm: {:?}",
        node.ipamd.status()
    );
    for container in [&a, &b] {
        assert_eq!(
            node.ipamd.assigned_ip(&container.id, "eth0").unwrap(),
            None,
            "ipamd kept {}'s attachment",
            container.name
        );
        assert!(
            !cni_cache_path(container).exists(),
            "no DEL reached libcni for {}",
            container.name
        );
        assert!(
            !container.sandbox_key.exists(),
            "podman left {}'s netns {}",
            container.name,
            container.sandbox_key.display()
        );
    }
    assert!(
        node.rules_at(512).unwrap().is_empty(),
        "podman rm left 512 rules: {:?}",
        node.rules_at(512)
    );
    assert!(
        host_veths(&node).is_empty(),
        "podman rm left host veths: {:?}",
        host_veths(&node)
    );
    assert_eq!(podman.checked(&["ps", "--all", "--quiet"]).unwrap(), "");

    drop_and_assert_clean(podman);
}

/// The host port every port-mapping test publishes on the node's address.
const HOST_PORT: u16 = 18080;

/// busybox wget (busybox-static is a test dependency; GNU wget is not) from
/// the node namespace to the node's own address and port. Without -T: this
/// busybox segfaults with it, and a refused connection fails at once anyway.
fn fetch_host_port_once(node: &TestNode) -> Option<String> {
    let url = format!("http://{NODE_IP}:{HOST_PORT}/index.html");
    let out = node
        .netns
        .command("/bin/busybox")
        .args(["wget", "-q", "-O", "-", &url])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The node's nat and filter rules (iptables-save inside its namespace).
fn node_iptables(node: &TestNode) -> String {
    let out = node.netns.command("iptables-save").output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// podman hands portmap `runtimeConfig.portMappings` with lowercase keys and
/// chains it after our plugin, which must pass portmap a 0.4.0 prevResult
/// it can find the container address in.
#[test]
fn netlink_podman_publish_through_chained_portmap_reaches_the_container_and_unpublishes() {
    require_root();
    let node = TestNode::start("vpm", NodeOptions::new("10.92.0.0/24")).unwrap();
    let portmap = serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}});
    let mut podman = Podman::start(&node, "vpc", "0.4.0", &[portmap]).unwrap();

    let publish = format!("{HOST_PORT}:80");
    let web = podman.run("web", &["-p", &publish], HTTPD).unwrap();
    let client = podman.run("client", &[], &[]).unwrap();
    assert_ipamd_holds(&node, &web);
    assert_result_is_0_4_0(&web);

    let from_node = wait_for(EVENTUAL, || fetch_host_port_once(&node));
    assert!(
        from_node.as_deref().is_some_and(|p| p.contains(INDEX_TEXT)),
        "the node could not reach web through {NODE_IP}:{HOST_PORT}: {from_node:?}"
    );
    let from_pod = fetch(&podman, &client, &format!("{NODE_IP}:{HOST_PORT}"));
    assert!(
        from_pod.as_deref().is_some_and(|p| p.contains(INDEX_TEXT)),
        "client could not reach web through {NODE_IP}:{HOST_PORT}: {from_pod:?}"
    );
    let nat = node_iptables(&node);
    assert!(
        nat.contains(&format!("{}:80", web.ip)),
        "no DNAT to {}:80 in the node: {nat}",
        web.ip
    );

    podman
        .checked(&["rm", "--force", "--time", "0", "web", "client"])
        .unwrap();
    let released = wait_for(EVENTUAL, || {
        (node.ipamd.status().unwrap().assigned_addresses == 0).then_some(())
    });
    assert!(released.is_some(), "{:?}", node.ipamd.status());
    let nat = node_iptables(&node);
    assert!(
        !nat.contains(&web.ip.to_string()),
        "portmap's DEL left rules for {}: {nat}",
        web.ip
    );
    assert!(
        fetch_host_port_once(&node).is_none(),
        "port still published after rm"
    );
    assert!(node.rules_at(512).unwrap().is_empty());
    assert!(host_veths(&node).is_empty(), "{:?}", host_veths(&node));
    drop_and_assert_clean(podman);
}
