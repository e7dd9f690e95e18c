//! Issue 12's reproduction of duplicate pod addresses, end to end: two pods
//! on a t3.medium's eth1, the eth1 link moved out of the node's namespace for
//! 40 s (longer than the controller's 30 s tick, so at least one pass sees an
//! attached ENI with no link) and back, then six new pods. Before the fix the
//! pass dropped eth1's assignments and the first new pods got the addresses
//! the eth1 pods still used. Now no new pod may get an address a live pod
//! holds, the eth1 pods keep theirs, and once the link is back ipamd wires it
//! again so a VPC host reaches them. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use vpc_cni_integration::vpc_cluster::{reachable, VpcCluster, VpcPod};
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

const NODE: &str = "gone";
/// t3.medium: 3 ENIs x 6 IPv4, 5 pod addresses per ENI; the primary fills
/// first, so pods 6 and 7 land on eth1.
const FIRST_PODS: usize = 7;
const LATER_PODS: usize = 6;
/// As in the issue: longer than one controller tick.
const LINK_AWAY: Duration = Duration::from_secs(40);
/// Harness bound for ipamd to wire the returned link (a resync or an
/// on-demand look; generous, not a timing assertion).
const REWIRE_LIMIT: Duration = Duration::from_secs(120);

fn ip(pod: &VpcPod) -> Ipv4Addr {
    pod.ip().unwrap()
}

/// Moves the node's `eth1` into a namespace of the test's and back when
/// dropped, even if the test fails in between.
struct ParkedLink<'a> {
    node: &'a Netns,
    parking: Netns,
    back: bool,
}

impl<'a> ParkedLink<'a> {
    fn park(node: &'a Netns, link: &str) -> Self {
        let parking = Netns::unique("vlg-park");
        node.ip(&["link", "set", link, "netns", parking.name()]);
        Self {
            node,
            parking,
            back: false,
        }
    }

    fn bring_back(&mut self, link: &str) {
        self.parking
            .ip(&["link", "set", link, "netns", self.node.name()]);
        self.back = true;
    }
}

impl Drop for ParkedLink<'_> {
    fn drop(&mut self) {
        if !self.back {
            let _ = self
                .parking
                .try_ip(&["link", "set", "eth1", "netns", self.node.name()]);
        }
    }
}

#[test]
fn eth1_gone_for_40s_never_hands_its_pods_addresses_to_new_pods() {
    require_root();
    let cluster = VpcCluster::new("vlg", &[(NODE, "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let node = cluster.node(NODE).unwrap();
    let first: Vec<VpcPod> = (0..FIRST_PODS)
        .map(|i| cluster.pod(NODE, &format!("f{i}")))
        .collect();
    let on_eth1: Vec<&VpcPod> = first
        .iter()
        .filter(|p| cluster.device_index_of(ip(p)) == Some(1))
        .collect();
    assert!(
        on_eth1.len() >= 2,
        "expected at least two pods on eth1, got {:?}\n{}",
        first
            .iter()
            .map(|p| (ip(p), cluster.device_index_of(ip(p))))
            .collect::<Vec<_>>(),
        cluster.all_diagnostics()
    );
    let eth1_before: BTreeMap<String, Ipv4Addr> =
        on_eth1.iter().map(|p| (p.name.clone(), ip(p))).collect();
    eprintln!("pods on eth1: {eth1_before:?}");

    let mut parked = ParkedLink::park(node.netns(), "eth1");
    std::thread::sleep(LINK_AWAY);
    parked.bring_back("eth1");

    let later: Vec<VpcPod> = (0..LATER_PODS)
        .map(|i| cluster.pod(NODE, &format!("l{i}")))
        .collect();
    let mut holders: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
    for pod in first.iter().chain(&later) {
        if let Some(other) = holders.insert(ip(pod), &pod.name) {
            panic!(
                "{} got {}, which {other} still uses\n{}",
                pod.name,
                ip(pod),
                cluster.all_diagnostics()
            );
        }
    }
    for pod in &on_eth1 {
        assert_eq!(
            Some(&ip(pod)),
            eth1_before.get(&pod.name),
            "{}'s address changed",
            pod.name
        );
    }

    let (alb, _) = cluster.attach_host("alb").unwrap();
    for pod in &on_eth1 {
        assert!(
            wait_for(REWIRE_LIMIT, || reachable(&alb, ip(pod)).then_some(())).is_some(),
            "a VPC host never reached {} ({}) on eth1 after the link came back\n{}",
            pod.name,
            ip(pod),
            cluster.all_diagnostics()
        );
    }
}
