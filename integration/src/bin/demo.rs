//! `make demo`: one simulated node running ipamd on a pod CIDR, three pods
//! created through the real plugin binary, their addresses and a ping matrix.

use std::net::Ipv4Addr;

use anyhow::{bail, Context};
use vpc_cni::dataplane::host_veth_name;
use vpc_cni_integration::node::{NodeOptions, TestNode, TestPod, NODE_IP};

const POD_CIDR: &str = "10.244.1.0/24";

fn main() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo creates network namespaces: run it as root (make demo)");
    }
    println!("vpc-cni demo: one node (overlay pool on {POD_CIDR}), three pods\n");
    let node = TestNode::start("demo-node", NodeOptions::new(POD_CIDR))
        .context("starting the node namespace and ipamd")?;
    let mut pods = Vec::new();
    for name in ["web", "api", "db"] {
        let mut pod = node.new_pod(name).context("creating a pod namespace")?;
        let out = node.add(&mut pod).context("running the plugin")?;
        if !out.success() {
            bail!("ADD {name} failed: {}{}", out.stdout, out.stderr);
        }
        pods.push(pod);
    }

    println!(
        "{:<6} {:<12} {:<16} {:<16}",
        "POD", "NAMESPACE", "ADDRESS", "HOST VETH"
    );
    for pod in &pods {
        println!(
            "{:<6} {:<12} {:<16} {:<16}",
            pod.name,
            "default",
            pod.ip.map_or_else(|| "-".into(), |ip| ip.to_string()),
            host_veth_name(Some("default"), Some(&pod.name), &pod.container_id)
        );
    }

    let targets: Vec<(String, Ipv4Addr)> = pods
        .iter()
        .filter_map(|p| p.ip.map(|ip| (p.name.clone(), ip)))
        .chain(std::iter::once(("node".to_string(), NODE_IP)))
        .collect();
    println!("\nping matrix (row pings column):");
    print!("{:<6}", "");
    for (name, _) in &targets {
        print!(" {name:<6}");
    }
    println!();
    let (mut ok, mut total) = (0, 0);
    for pod in &pods {
        print!("{:<6}", pod.name);
        for (name, ip) in &targets {
            if *name == pod.name {
                print!(" {:<6}", "-");
                continue;
            }
            total += 1;
            let reached = pod.netns.ping(*ip);
            ok += usize::from(reached);
            print!(" {:<6}", if reached { "ok" } else { "FAIL" });
        }
        println!();
    }
    println!("\nconnectivity: {ok}/{total} ok");

    teardown(&node, &pods);
    if ok != total {
        bail!("{} of {total} pings failed", total - ok);
    }
    Ok(())
}

fn teardown(node: &TestNode, pods: &[TestPod]) {
    for pod in pods {
        match node.del(pod) {
            Ok(out) if out.success() => {}
            Ok(out) => eprintln!("DEL {} failed: {}", pod.name, out.stdout),
            Err(e) => eprintln!("DEL {} failed: {e}", pod.name),
        }
    }
    println!("torn down: pods deleted, ipamd stopped, namespaces removed");
}
