//! What the node and ipamd must look like while pods run and after they are gone.

use std::net::Ipv4Addr;
use std::time::Duration;

use vpc_cni_integration::node::{TestNode, NODE_IP};
use vpc_cni_testkit::process::wait_for;

use crate::cri::{Kubelet, Pod};

/// The CNI interface name containerd passes.
pub const IFNAME: &str = "eth0";

/// Bound for a server in a freshly started container to start answering.
const SERVE_LIMIT: Duration = Duration::from_secs(20);

/// ipamd holds exactly the address the CRI reports, for the sandbox id
/// (containerd passes the sandbox id as CNI_CONTAINERID).
pub fn assert_ipamd_holds(node: &TestNode, pod: &Pod) {
    let held = node
        .ipamd
        .assigned_ip(&pod.sandbox_id, IFNAME)
        .unwrap_or_else(|e| panic!("CheckNetwork for {}: {e}", pod.name));
    let held: Option<Ipv4Addr> = held.and_then(|ip| ip.split('/').next()?.parse().ok());
    assert_eq!(
        held,
        Some(pod.ip),
        "ipamd's address for {} (sandbox {}) differs from the CRI status",
        pod.name,
        pod.sandbox_id
    );
}

/// Host veths (`vpc…`) in the node namespace.
pub fn host_veths(node: &TestNode) -> Vec<String> {
    let text = node.netns.try_ip(&["-o", "link", "show"]).unwrap();
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .filter(|name| name.starts_with("vpc"))
        .collect()
}

/// Host routes (`/32`) to pod addresses in the node namespace's main table.
pub fn pod_routes(node: &TestNode) -> Vec<String> {
    let cidr = node.options().pod_cidr.clone();
    let (net, len) = cidr.split_once('/').unwrap();
    let net: u32 = net.parse::<Ipv4Addr>().unwrap().into();
    let len: u32 = len.parse().unwrap();
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    let text = node.netns.try_ip(&["-4", "route", "show"]).unwrap();
    text.lines()
        .filter(|line| {
            let dest = line.split_whitespace().next().unwrap_or_default();
            dest.parse::<Ipv4Addr>()
                .is_ok_and(|ip| u32::from(ip) & mask == net)
                || line.contains(" dev vpc")
        })
        .map(ToString::to_string)
        .collect()
}

/// Nothing of any pod is left: no assignment, veth, rule 512 or /32 route.
pub fn assert_node_clean(node: &TestNode, pods: &[Pod]) {
    for pod in pods {
        assert_eq!(
            node.ipamd.assigned_ip(&pod.sandbox_id, IFNAME).unwrap(),
            None,
            "ipamd still holds an address for {}",
            pod.name
        );
    }
    let status = node.ipamd.status().unwrap();
    assert_eq!(status.assigned_addresses, 0, "ipamd status: {status:?}");
    assert_eq!(node.rules_at(512).unwrap(), Vec::<String>::new());
    assert_eq!(host_veths(node), Vec::<String>::new());
    assert_eq!(pod_routes(node), Vec::<String>::new());
}

/// Runs `cmd` in `container` and panics with its output unless it exits 0.
pub fn exec_ok(kubelet: &Kubelet, container: &str, cmd: &[&str]) -> String {
    let out = kubelet
        .exec(container, cmd, 60)
        .unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {container}: {e}"));
    assert!(
        out.success(),
        "{cmd:?} in {container} exited {}: {} {}",
        out.exit_code,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Fetches `url` from inside `container` once the server answers.
pub fn fetch_from_pod(kubelet: &Kubelet, container: &str, url: &str) -> String {
    // busybox `wget -T` crashes in a container: ExecSync's timeout bounds it.
    wait_for(SERVE_LIMIT, || {
        let out = kubelet
            .exec(container, &["wget", "-q", "-O", "-", url], 10)
            .ok()?;
        out.success().then_some(out.stdout)
    })
    .unwrap_or_else(|| {
        let last = kubelet.exec(container, &["wget", "-q", "-O", "-", url], 10);
        panic!("{url} never answered from {container}: {last:?}")
    })
}

/// Fetches `http://NODE_IP:<port>/` from the node namespace itself (a
/// hostPort reached through portmap's OUTPUT DNAT).
pub fn fetch_host_port(node: &TestNode, port: u16) -> String {
    let url = format!("http://{NODE_IP}:{port}/");
    let get = || -> std::io::Result<std::process::Output> {
        node.netns
            .command("timeout")
            .args(["10", "busybox", "wget", "-q", "-O", "-", &url])
            .output()
    };
    wait_for(SERVE_LIMIT, || {
        let out = get().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .unwrap_or_else(|| {
        let nat = node
            .netns
            .command("iptables-save")
            .args(["-t", "nat"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        panic!(
            "{url} never answered from the node: {:?}\nnat table: {nat:?}",
            get()
        )
    })
}
