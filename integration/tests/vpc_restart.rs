//! ipamd restarted under running pods (issue 5, acceptance 5): two
//! t3.medium nodes in VPC mode, pods on node a on its primary and a
//! secondary ENI, pings from a pod on node b running through a kill -9
//! restart and a SIGTERM restart of node a's ipamd. Each ping loses at most
//! one packet, ipamd still reports every pod's address, node a's rules,
//! routes and nftables are what they were, and new pods get fresh
//! addresses. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use vpc_cni_integration::ipamd_proc::IpamdProcess;
use vpc_cni_integration::ping::{KillOnDrop, Ping};
use vpc_cni_integration::vpc_cluster::{reachable, VpcCluster, VpcNode, VpcPod};
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

/// t3.medium: 3 ENIs x 6 IPv4, 5 pod addresses per ENI. Pods 6 and 7 land
/// on the first secondary ENI; WARM_ENI_TARGET=1 then attaches the third.
const PODS_ON_A: usize = 7;
const ADDRESSES_PER_ENI: u32 = 5;
/// Harness bound for eventual conditions (never asserted as a duration).
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Pings sent before the restart and after ipamd answers again, so the
/// restart sits well inside the ping run (counts packets, not time).
const PING_BEFORE: Duration = Duration::from_secs(1);
const PING_AFTER: Duration = Duration::from_secs(2);

fn ip(pod: &VpcPod) -> Ipv4Addr {
    pod.ip().unwrap()
}

/// What a restart must leave alone on the node: its IPv4 rules (512 and 1536
/// for pods), every IPv4 route table, and the nftables ruleset, each
/// ignoring order. IPv6 is left out: the kernel adds an ENI link's
/// link-local address whenever its duplicate address detection ends, which
/// may fall between two snapshots and is none of ipamd's doing.
#[derive(Debug, PartialEq, Eq)]
struct NodeState {
    rules: Vec<String>,
    routes: Vec<String>,
    nft: Vec<String>,
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort_unstable();
    lines
}

fn node_state(node: &VpcNode) -> NodeState {
    let ns = node.netns();
    let nft = ns
        .command("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(nft.status.success(), "nft list ruleset failed");
    NodeState {
        rules: sorted_lines(&ns.try_ip(&["-4", "rule"]).unwrap()),
        routes: sorted_lines(&ns.try_ip(&["-4", "route", "show", "table", "all"]).unwrap()),
        nft: sorted_lines(&String::from_utf8_lossy(&nft.stdout)),
    }
}

/// Waits until node a's pool is idle: a whole ENI's worth of addresses free
/// (WARM_ENI_TARGET=1), every ENI the model attached to it has its route
/// table, and nothing changes over a few polls.
fn settled_state(cluster: &VpcCluster, node: &VpcNode, ipamd: &IpamdProcess) -> NodeState {
    let mut last: Option<NodeState> = None;
    let mut same = 0;
    let found = wait_for(SETTLE_LIMIT, || {
        std::thread::sleep(Duration::from_millis(400));
        let status = ipamd.status().ok()?;
        let warm = status
            .total_addresses
            .saturating_sub(status.assigned_addresses);
        let state = node_state(node);
        let tables_ready = cluster
            .sim()
            .fabric_view()
            .enis
            .iter()
            .filter_map(|e| e.attachment.as_ref())
            .filter(|a| a.instance_id == node.instance.id && a.device_index > 0)
            .all(|a| {
                let table = format!("table {}", a.device_index + 1);
                state
                    .routes
                    .iter()
                    .any(|r| r.starts_with("default") && r.contains(&table))
            });
        let ready = warm >= ADDRESSES_PER_ENI && tables_ready;
        same = if ready && last.as_ref() == Some(&state) {
            same + 1
        } else {
            0
        };
        last = Some(state);
        (same >= 2).then(|| last.take()).flatten()
    });
    found.unwrap_or_else(|| {
        panic!(
            "node {} did not settle (warm ENI, ENI tables)\n{}",
            node.name,
            cluster.all_diagnostics()
        )
    })
}

/// ipamd's environment as the cluster started it, read from the running
/// process: the harness keeps its own copy private.
fn environment_of(pid: u32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .filter(|(k, _)| !matches!(k.as_str(), "PATH" | "IPAMD_SOCKET" | "IPAMD_STATE_DIR"))
        .collect()
}

/// Whether `pid` has exited (a zombie of the harness's child, or gone).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

/// `ip monitor` of a node's IPv4 rules and routes, so a restart that takes
/// a rule or route away and puts it back (which the before/after snapshots
/// cannot see) is caught.
struct Monitor(KillOnDrop);

impl Monitor {
    fn start(node: &VpcNode) -> Self {
        let child = std::process::Command::new("ip")
            .args(["-n", node.netns().name(), "-4", "monitor", "rule", "route"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting ip monitor on {}: {e}", node.name));
        Self(KillOnDrop(Some(child)))
    }

    /// Stops the monitor and returns the deletions it saw.
    fn deletions(mut self) -> Vec<String> {
        let out = self.0.stop(Signal::SIGTERM);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("Deleted"))
            .map(str::to_string)
            .collect()
    }
}

/// Pings from `from` to each target run through `restart`; each loses at
/// most one packet, and node a loses no rule or route meanwhile, not even
/// for a moment.
fn pings_through(
    cluster: &VpcCluster,
    what: &str,
    from: &VpcPod,
    targets: &[&VpcPod],
    restart: impl FnOnce(),
) {
    let monitor = Monitor::start(cluster.node("a").unwrap());
    let pings: Vec<Ping> = targets
        .iter()
        .map(|t| {
            Ping::start(
                &format!("{what}: {} to {} ({})", from.name, t.name, ip(t)),
                &from.netns,
                ip(t),
            )
        })
        .collect();
    std::thread::sleep(PING_BEFORE);
    restart();
    std::thread::sleep(PING_AFTER);
    let deleted = monitor.deletions();
    assert!(
        deleted.is_empty(),
        "{what}: rules or routes of node a were deleted: {deleted:#?}\n{}",
        cluster.all_diagnostics()
    );
    for outcome in pings.into_iter().map(Ping::stop) {
        eprintln!(
            "{}: {} transmitted, {} received, {} lost",
            outcome.what, outcome.transmitted, outcome.received, outcome.lost
        );
        assert!(
            outcome.received >= 5 && outcome.lost <= 1,
            "{}: {} packets transmitted, {} received, {} lost\n{}\n{}",
            outcome.what,
            outcome.transmitted,
            outcome.received,
            outcome.lost,
            outcome.output,
            cluster.all_diagnostics()
        );
    }
}

fn assert_addresses_kept(cluster: &VpcCluster, ipamd: &IpamdProcess, pods: &[VpcPod], when: &str) {
    for pod in pods {
        let held = ipamd
            .assigned_ip(&pod.container_id, "eth0")
            .unwrap_or_else(|e| panic!("{when}: CheckNetwork for {}: {e}", pod.name));
        assert_eq!(
            held,
            Some(ip(pod).to_string()),
            "{when}: ipamd holds another address for {} than ADD gave it\n{}",
            pod.name,
            cluster.all_diagnostics()
        );
    }
}

fn assert_same_state(cluster: &VpcCluster, before: &NodeState, after: &NodeState, when: &str) {
    for (what, b, a) in [
        ("ip -4 rule", &before.rules, &after.rules),
        ("ip -4 route show table all", &before.routes, &after.routes),
        ("nft list ruleset", &before.nft, &after.nft),
    ] {
        let gone: Vec<&String> = b.iter().filter(|l| !a.contains(l)).collect();
        let new: Vec<&String> = a.iter().filter(|l| !b.contains(l)).collect();
        assert!(
            gone.is_empty() && new.is_empty(),
            "{when}: `{what}` on node a changed; gone {gone:#?}, new {new:#?}\n{}",
            cluster.all_diagnostics()
        );
    }
}

#[test]
fn ipamd_restarts_keep_pods_connected_and_addressed() {
    require_root();
    let cluster = VpcCluster::new("vrst", &[("a", "t3.medium"), ("b", "t3.medium")], &[])
        .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let a_pods: Vec<VpcPod> = (0..PODS_ON_A)
        .map(|i| cluster.pod("a", &format!("a{i}")))
        .collect();
    let b1 = cluster.pod("b", "b0");
    let a = cluster.node("a").unwrap();

    let device = |pod: &VpcPod| cluster.device_index_of(ip(pod)).unwrap();
    let primary = a_pods.iter().find(|p| device(p) == 0).unwrap();
    let secondary = a_pods.iter().find(|p| device(p) > 0).unwrap_or_else(|| {
        panic!(
            "no pod of node a on a secondary ENI\n{}",
            cluster.all_diagnostics()
        )
    });
    eprintln!(
        "primary-ENI pod {} ({}), secondary-ENI pod {} ({}, eth{})",
        primary.name,
        ip(primary),
        secondary.name,
        ip(secondary),
        device(secondary)
    );
    let targets = [primary, secondary];
    for target in targets {
        assert!(
            reachable(&b1.netns, ip(target)),
            "before any restart, {} gets no answer from {}\n{}",
            b1.name,
            target.name,
            cluster.all_diagnostics()
        );
    }

    let before = settled_state(&cluster, a, &a.ipamd);
    for pod in &a_pods {
        let to = format!("from all to {} lookup main", ip(pod));
        assert!(
            before
                .rules
                .iter()
                .any(|r| r.starts_with("512:") && r.ends_with(&to)),
            "no rule 512 for {} ({}): {:#?}",
            pod.name,
            ip(pod),
            before.rules
        );
    }
    let from = format!("1536: from {} lookup", ip(secondary));
    assert!(
        before.rules.iter().any(|r| r.starts_with(&from)),
        "no rule 1536 for the secondary-ENI pod: {:#?}",
        before.rules
    );
    assert_addresses_kept(&cluster, &a.ipamd, &a_pods, "before the restarts");

    // kill -9. The cluster's handle to ipamd cannot be borrowed mutably, so
    // the test kills it by pid and starts its own in the same directory
    // (same socket, state and log), with the environment the cluster gave it.
    let old_pid = a.ipamd.pid().unwrap();
    let env = environment_of(old_pid);
    let mut ipamd: Option<IpamdProcess> = None;
    pings_through(&cluster, "kill -9 restart", &b1, &targets, || {
        kill(
            Pid::from_raw(i32::try_from(old_pid).unwrap()),
            Signal::SIGKILL,
        )
        .unwrap();
        wait_for(SETTLE_LIMIT, || exited(old_pid).then_some(()))
            .unwrap_or_else(|| panic!("ipamd (pid {old_pid}) survived SIGKILL"));
        ipamd = Some(
            IpamdProcess::start(a.netns(), a.dir(), env.clone())
                .unwrap_or_else(|e| panic!("restarting ipamd after kill -9: {e}")),
        );
    });
    let ipamd = ipamd.unwrap();
    assert_addresses_kept(&cluster, &ipamd, &a_pods, "after kill -9");
    let after_kill = settled_state(&cluster, a, &ipamd);
    assert_same_state(&cluster, &before, &after_kill, "after kill -9");

    pings_through(&cluster, "SIGTERM restart", &b1, &targets, || {
        let clean = ipamd
            .terminate()
            .unwrap_or_else(|e| panic!("SIGTERM to ipamd: {e}"));
        assert!(
            clean,
            "ipamd exited non-zero on SIGTERM\n{}",
            ipamd.log_text()
        );
        ipamd
            .restart(a.netns())
            .unwrap_or_else(|e| panic!("restarting ipamd after SIGTERM: {e}"));
    });
    assert_addresses_kept(&cluster, &ipamd, &a_pods, "after SIGTERM");
    let after_term = settled_state(&cluster, a, &ipamd);
    assert_same_state(&cluster, &before, &after_term, "after SIGTERM");

    // New pods get addresses no existing pod holds, and are reachable.
    let mut taken: Vec<Ipv4Addr> = a_pods.iter().map(ip).collect();
    taken.push(ip(&b1));
    let new_pods: Vec<VpcPod> = (0..2)
        .map(|i| cluster.pod("a", &format!("new{i}")))
        .collect();
    for pod in &new_pods {
        assert!(
            !taken.contains(&ip(pod)),
            "new pod {} got {}, which an existing pod holds\n{}",
            pod.name,
            ip(pod),
            cluster.all_diagnostics()
        );
        taken.push(ip(pod));
        assert_eq!(
            ipamd.assigned_ip(&pod.container_id, "eth0").unwrap(),
            Some(ip(pod).to_string()),
            "ipamd does not hold {}'s address",
            pod.name
        );
        assert!(
            reachable(&b1.netns, ip(pod)),
            "{} gets no answer from new pod {} ({})\n{}",
            b1.name,
            pod.name,
            ip(pod),
            cluster.all_diagnostics()
        );
    }
    assert_addresses_kept(&cluster, &ipamd, &a_pods, "after new pods");
    drop(new_pods);
    // Our ipamd uses the node's directory: it goes before the cluster.
    drop(ipamd);
}
