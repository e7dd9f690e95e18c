//! VPC mode under churn (issue 5, acceptance 3): 500 ADD/DEL cycles through
//! the real plugin on one m5.large running the real ipamd against vpc-sim,
//! a few pods alive at once, each cycle in a fresh pod namespace (a DEL
//! leaves the veth to die with the namespace, as with a real runtime).
//! Afterwards the pool is back at target, no address was held by two live
//! pods, EC2 holds exactly what ipamd counts, and the EC2 calls are printed
//! per action. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use vpc_cni_cloud::sim::{Eni, EniFilter, SimVpc};
use vpc_cni_integration::vpc_cluster::VpcCluster;
use vpc_cni_testkit::process::wait_for;
use vpc_cni_testkit::require_root;

const NODE: &str = "churn";
/// m5.large: 3 ENIs x 10 IPv4, so 9 pod addresses per ENI.
const INSTANCE_TYPE: &str = "m5.large";
/// A crisp target: with WARM_IP_TARGET=3 and no pods the pool is exactly 3
/// secondary addresses on the primary ENI (DESIGN.md pool math: grow while
/// available < 3, free idle non-primary ENIs first, release the surplus).
const WARM_IP_TARGET: u32 = 3;
const CYCLES: usize = 500;
/// Pods alive at once: each worker runs its share of the cycles in turn.
const WORKERS: usize = 4;
/// Harness bound for the pool to settle (cooldown, then release and ENI
/// deletion; a generous bound, not a timing assertion).
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// Live pods by address: an ADD must never hand out an address in here.
#[derive(Default)]
struct Ledger {
    live: HashMap<Ipv4Addr, String>,
    peak: usize,
    seen: BTreeSet<Ipv4Addr>,
}

fn model_enis(sim: &SimVpc) -> Vec<Eni> {
    sim.describe_network_interfaces(&EniFilter::default(), None, None)
        .expect("describing the model's ENIs")
        .items
}

/// Secondary addresses per ENI id, for messages.
fn summary(enis: &[Eni]) -> String {
    enis.iter()
        .map(|e| {
            let owner = e.attachment.as_ref().map_or("-".to_string(), |a| {
                format!("{}#{}", a.instance_id, a.device_index)
            });
            let ips: Vec<String> = e
                .private_ips
                .iter()
                .map(|p| p.address.to_string())
                .collect();
            format!(
                "{} {} {owner} [{}] tags {:?}",
                e.id,
                e.status,
                ips.join(","),
                e.tags
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One worker's cycles: new namespace, ADD, check, DEL, namespace gone.
fn run_cycles(
    cluster: &VpcCluster,
    instance_id: &str,
    worker: usize,
    next: &AtomicUsize,
    stop: &AtomicBool,
    ledger: &Mutex<Ledger>,
) -> Result<usize, String> {
    let mut done = 0;
    while !stop.load(Ordering::SeqCst) {
        let cycle = next.fetch_add(1, Ordering::SeqCst);
        if cycle >= CYCLES {
            break;
        }
        let name = format!("w{worker}c{cycle}");
        let mut pod = cluster
            .new_pod(NODE, &name)
            .map_err(|e| format!("creating pod {name}: {e}"))?;
        let out = cluster
            .add(&mut pod)
            .map_err(|e| format!("running ADD for {name}: {e}"))?;
        if !out.success() {
            return Err(format!(
                "ADD {name} (cycle {cycle}) failed: {} {}",
                out.stdout, out.stderr
            ));
        }
        let ip = pod.ip().map_err(|e| e.to_string())?;
        {
            let mut l = ledger.lock().unwrap();
            if let Some(holder) = l.live.insert(ip, name.clone()) {
                return Err(format!(
                    "{ip} was given to {name} while {holder} still held it"
                ));
            }
            l.peak = l.peak.max(l.live.len());
            l.seen.insert(ip);
        }
        let owner = cluster
            .eni_of(ip)
            .and_then(|e| e.attachment)
            .map(|a| a.instance_id);
        if owner.as_deref() != Some(instance_id) {
            return Err(format!(
                "{name} got {ip}, which no ENI attached to {instance_id} holds in the model \
                 (owner {owner:?})"
            ));
        }
        let out = cluster
            .del(&pod)
            .map_err(|e| format!("running DEL for {name}: {e}"))?;
        if !out.success() {
            return Err(format!(
                "DEL {name} (cycle {cycle}) failed: {} {}",
                out.stdout, out.stderr
            ));
        }
        ledger.lock().unwrap().live.remove(&ip);
        drop(pod);
        done += 1;
    }
    Ok(done)
}

/// The settled state: ipamd idle at target and the model holding exactly
/// that, on the primary ENI, with no other ENI anywhere.
fn settled(cluster: &VpcCluster, instance_id: &str) -> Result<(), String> {
    let node = cluster.node(NODE).map_err(|e| e.to_string())?;
    let s = node.ipamd.status()?;
    let counts = (s.total_addresses, s.assigned_addresses, s.cooling_addresses);
    if counts != (WARM_IP_TARGET, 0, 0) {
        return Err(format!(
            "ipamd STATUS total/assigned/cooling {counts:?}, want ({WARM_IP_TARGET}, 0, 0)"
        ));
    }
    let enis = model_enis(cluster.sim());
    let ours: Vec<&Eni> = enis
        .iter()
        .filter(|e| {
            e.attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == instance_id)
        })
        .collect();
    if enis.len() != 1 || ours.len() != 1 {
        return Err(format!(
            "want the primary ENI alone in the model, found:\n{}",
            summary(&enis)
        ));
    }
    let secondary = ours[0].private_ips.iter().filter(|p| !p.primary).count();
    if secondary != s.total_addresses as usize {
        return Err(format!(
            "EC2 holds {secondary} secondary addresses for the node, ipamd counts {}:\n{}",
            s.total_addresses,
            summary(&enis)
        ));
    }
    Ok(())
}

#[test]
fn five_hundred_add_del_cycles_leave_the_pool_at_target_without_leaks() {
    require_root();
    let target = WARM_IP_TARGET.to_string();
    let cluster = VpcCluster::new(
        "vchurn",
        &[(NODE, INSTANCE_TYPE)],
        &[("WARM_IP_TARGET", &target), ("IP_COOLDOWN_PERIOD", "1")],
    )
    .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let instance_id = cluster.node(NODE).unwrap().instance.id.clone();
    let before = cluster.sim().request_counts();

    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let ledger = Mutex::new(Ledger::default());
    let results: Vec<Result<usize, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (cluster, instance_id) = (&cluster, instance_id.as_str());
                let (next, stop, ledger) = (&next, &stop, &ledger);
                scope.spawn(move || {
                    let r = run_cycles(cluster, instance_id, w, next, stop, ledger);
                    if r.is_err() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "churn failed: {errors:#?}\n{}",
        cluster.all_diagnostics()
    );
    let cycles: usize = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    assert_eq!(cycles, CYCLES, "every cycle ran");
    let (peak, distinct) = {
        let l = ledger.lock().unwrap();
        assert!(l.live.is_empty(), "pods left alive: {:?}", l.live);
        (l.peak, l.seen.len())
    };
    eprintln!("{CYCLES} cycles, up to {peak} pods alive at once, {distinct} distinct addresses");

    let mut last = String::new();
    let ok = wait_for(SETTLE_LIMIT, || match settled(&cluster, &instance_id) {
        Ok(()) => Some(()),
        Err(e) => {
            last = e;
            None
        }
    });
    assert!(
        ok.is_some(),
        "the pool did not settle at target after the churn: {last}\n{}",
        cluster.all_diagnostics()
    );

    let log = cluster.node(NODE).unwrap().ipamd.log_text();
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    eprintln!("ipamd warnings and errors: {}", complaints.len());
    for line in complaints.iter().take(20) {
        eprintln!("  {line}");
    }
    // Either line means a pod's address was taken from under it.
    for lost in ["its assignment was lost", "its assignment was dropped"] {
        assert!(
            !log.contains(lost),
            "ipamd dropped a live assignment ({lost:?}):\n{}",
            cluster.all_diagnostics()
        );
    }

    let after = cluster.sim().request_counts();
    let delta: BTreeMap<&String, u64> = after
        .iter()
        .map(|(action, n)| (action, n - before.get(action).copied().unwrap_or(0)))
        .collect();
    eprintln!("EC2 requests per action (whole run, start-up included):");
    for (action, n) in &after {
        eprintln!(
            "  {action:<36} {n:>6}   (during churn and settling: {})",
            delta[action]
        );
    }
    eprintln!("  {:<36} {:>6}", "total", after.values().sum::<u64>());
}

/// Scale down then straight back up: EC2 may hand the node the very
/// addresses it just released (vpc-sim always gives the lowest free ones),
/// and ipamd must take them as its own again rather than wait out its
/// distrust of IMDS for released addresses.
#[test]
fn scale_up_right_after_scale_down_gets_addresses() {
    require_root();
    let target = WARM_IP_TARGET.to_string();
    let cluster = VpcCluster::new(
        "vburst",
        &[(NODE, INSTANCE_TYPE)],
        &[("WARM_IP_TARGET", &target), ("IP_COOLDOWN_PERIOD", "1")],
    )
    .unwrap_or_else(|e| panic!("starting the VPC cluster: {e}"));
    let instance_id = cluster.node(NODE).unwrap().instance.id.clone();
    for round in 0..2 {
        // Enough pods to need a second ENI: the primary holds 9.
        let pods: Vec<_> = (0..12)
            .map(|i| cluster.pod(NODE, &format!("r{round}p{i}")))
            .collect();
        let mut ips: Vec<Ipv4Addr> = pods.iter().map(|p| p.ip().unwrap()).collect();
        ips.sort_unstable();
        ips.dedup();
        assert_eq!(ips.len(), pods.len(), "two pods share an address");
        for pod in &pods {
            let out = cluster.del(pod).unwrap();
            assert!(
                out.success(),
                "DEL {}: {} {}",
                pod.name,
                out.stdout,
                out.stderr
            );
        }
        drop(pods);
        let mut last = String::new();
        let ok = wait_for(SETTLE_LIMIT, || match settled(&cluster, &instance_id) {
            Ok(()) => Some(()),
            Err(e) => {
                last = e;
                None
            }
        });
        assert!(
            ok.is_some(),
            "round {round}: the pool did not settle at target: {last}\n{}",
            cluster.all_diagnostics()
        );
    }
}
