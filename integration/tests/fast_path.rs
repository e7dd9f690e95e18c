//! `ENABLE_POD_FAST_PATH` on the fabric: two nodes running the real ipamd and plugin, one
//! pod on each. A TCP stream between the pods takes the fast path (its counters move) and
//! arrives whole both ways; a stream through a Service address, DNATed on the client's
//! node as kube-proxy does, keeps the slow path there, so its replies are translated back
//! and it works (a fast path that delivered them untranslated resets it). Each node's
//! metrics count its pod on the fast path and no failed update. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use vpc_cni_integration::fabric::in_namespace;
use vpc_cni_integration::prometheus::samples;
use vpc_cni_integration::vpc_cluster::{reachable, VpcCluster, VpcNode, VpcPod};
use vpc_cni_integration::vpcsim::client::request;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// A Service's cluster address, outside the VPC as EKS places them.
const SERVICE_IP: &str = "10.100.0.10";
const SERVICE_PORT: u16 = 80;
/// Enough to fill the flow set and run many windows on the fast path.
const STREAM_BYTES: usize = 32 << 20;
const CONVERGE: Duration = Duration::from_secs(30);
const STALL: Duration = Duration::from_secs(20);
/// `METRICS_ADDR`'s default port.
const METRICS_PORT: u16 = 61678;

/// The host veth of the node's only pod.
fn pod_veth(node: &Netns) -> String {
    node.ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
        .find(|name| name.starts_with("vpc"))
        .expect("the node has a pod veth")
}

/// Packets the counter in `chain` of the node's netdev table has seen.
fn fast_packets(node: &Netns, chain: &str) -> u64 {
    let listed = node
        .nft(&["list", "chain", "netdev", "vpc-cni-fast", chain])
        .unwrap_or_default();
    listed
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The node's `vpc_cni_fast_path_*` samples, scraped in its namespace.
fn fast_path_metrics(node: &VpcNode) -> Vec<(String, f64)> {
    let target = SocketAddr::from((node.primary_ip(), METRICS_PORT));
    let reply = node
        .netns()
        .in_thread(move || {
            request(target, "GET", "/metrics", &[], b"")
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .unwrap();
    samples(&reply.body)
        .into_iter()
        .filter(|(series, _)| series.starts_with("vpc_cni_fast_path_"))
        .collect()
}

/// The server in `server_ns` listening on `listen`; the client in `client_ns` connects to
/// `dial`. The server sends `STREAM_BYTES` to the client, the client sends as many back;
/// returns the bytes each side received.
fn streams_both_ways(
    server_ns: &Netns,
    listen: Ipv4Addr,
    port: u16,
    client_ns: &Netns,
    dial: SocketAddr,
) -> (usize, usize) {
    let listener = in_namespace(server_ns, move || TcpListener::bind((listen, port))).unwrap();
    let client = in_namespace(client_ns, move || {
        TcpStream::connect_timeout(&dial, Duration::from_secs(5))
    })
    .unwrap_or_else(|e| panic!("connecting to {dial}: {e}"));
    let (server, _) = listener.accept().unwrap();
    let exchange = |mut stream: TcpStream| {
        stream.set_read_timeout(Some(STALL)).unwrap();
        stream.set_write_timeout(Some(STALL)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let sending = std::thread::spawn(move || {
            let chunk = vec![0x5a_u8; 64 << 10];
            let mut sent = 0;
            while sent < STREAM_BYTES {
                writer.write_all(&chunk).unwrap();
                sent += chunk.len();
            }
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut received = 0;
        let mut buf = vec![0_u8; 64 << 10];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => received += n,
                Err(e) => panic!("reading after {received} bytes: {e}"),
            }
        }
        sending.join().unwrap();
        received
    };
    let server_side = std::thread::spawn(move || exchange(server));
    let client_received = exchange(client);
    (server_side.join().unwrap(), client_received)
}

fn wait_until(what: &str, cluster: &VpcCluster, mut done: impl FnMut() -> bool) {
    assert!(
        wait_for(CONVERGE, || done().then_some(())).is_some(),
        "{what} after {CONVERGE:?}\n{}",
        cluster.all_diagnostics()
    );
}

#[test]
fn fast_path_carries_pod_streams_and_leaves_nat_to_the_slow_path() {
    require_root();
    let cluster = VpcCluster::new(
        "vfp",
        &[("a", "t3.medium"), ("b", "t3.medium")],
        &[("ENABLE_POD_FAST_PATH", "true")],
    )
    .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let pa: VpcPod = cluster.pod("a", "fast-a");
    let pb: VpcPod = cluster.pod("b", "fast-b");
    let (a, b) = (cluster.node("a").unwrap(), cluster.node("b").unwrap());
    let ip_b = pb.ip().unwrap();
    let (veth_a, veth_b) = (pod_veth(a.netns()), pod_veth(b.netns()));
    wait_until("pod a cannot reach pod b", &cluster, || {
        reachable(&pa.netns, ip_b)
    });
    for (node, veth) in [(a.netns(), &veth_a), (b.netns(), &veth_b)] {
        wait_until("the fast path has no chain for the pod", &cluster, || {
            node.nft(&[
                "list",
                "chain",
                "netdev",
                "vpc-cni-fast",
                &format!("pod-{veth}-in"),
            ])
            .is_ok()
        });
        assert_eq!(
            node.sysctl("net.netfilter.nf_conntrack_tcp_be_liberal"),
            "1",
            "conntrack must not judge fast-pathed flows by window"
        );
    }
    for node in [a, b] {
        let figures = fast_path_metrics(node);
        let value = |name: &str| {
            figures
                .iter()
                .find(|(series, _)| series == name)
                .map(|(_, v)| *v)
        };
        assert_eq!(value("vpc_cni_fast_path_pods"), Some(1.0), "{figures:?}");
        assert_eq!(
            value("vpc_cni_fast_path_waiting_pods"),
            Some(0.0),
            "{figures:?}"
        );
        assert_eq!(
            value("vpc_cni_fast_path_errors_total"),
            Some(0.0),
            "{figures:?}"
        );
        assert!(
            value("vpc_cni_fast_path_updates_total").unwrap_or(0.0) >= 1.0,
            "{figures:?}"
        );
    }

    // kube-proxy's part on node a: the Service address DNATs to pod b.
    a.netns()
        .nft_load(&format!(
            "table ip test-kube-proxy {{\n chain prerouting {{\n type nat hook prerouting \
             priority dstnat; policy accept;\n ip daddr {SERVICE_IP} tcp dport {SERVICE_PORT} \
             dnat to {ip_b}:{SERVICE_PORT}\n }}\n}}\n"
        ))
        .unwrap();
    let service: SocketAddr = format!("{SERVICE_IP}:{SERVICE_PORT}").parse().unwrap();
    let (server_got, client_got) =
        streams_both_ways(&pb.netns, ip_b, SERVICE_PORT, &pa.netns, service);
    assert_eq!(
        (server_got, client_got),
        (STREAM_BYTES, STREAM_BYTES),
        "through the Service address"
    );
    assert_eq!(
        fast_packets(a.netns(), &format!("deliver-{veth_a}")),
        0,
        "replies of a DNATed connection skipped conntrack's translation on node a"
    );
    assert_eq!(
        fast_packets(a.netns(), &format!("pod-{veth_a}-in")),
        0,
        "a DNATed connection left node a on the fast path"
    );

    let direct = SocketAddr::from((ip_b, SERVICE_PORT + 1));
    let (server_got, client_got) =
        streams_both_ways(&pb.netns, ip_b, SERVICE_PORT + 1, &pa.netns, direct);
    assert_eq!(
        (server_got, client_got),
        (STREAM_BYTES, STREAM_BYTES),
        "pod to pod"
    );
    for (node, chain) in [
        (a.netns(), format!("pod-{veth_a}-in")),
        (a.netns(), format!("deliver-{veth_a}")),
        (b.netns(), format!("pod-{veth_b}-in")),
        (b.netns(), format!("deliver-{veth_b}")),
    ] {
        assert!(
            fast_packets(node, &chain) > 0,
            "nothing took the fast path through {chain} of {}\n{}",
            node.name(),
            node.nft(&["list", "ruleset"]).unwrap_or_default()
        );
    }
}
