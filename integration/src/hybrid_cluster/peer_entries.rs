//! What a node's overlay holds for one peer, as `ip` and `bridge` print it, to check that a
//! node leaving the cluster leaves exactly nothing of itself on the others.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::OnpremNode;
use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::{run_checked, wait_for};

/// Harness bound for a peer's entries to go (never asserted as a duration).
const FORGET_LIMIT: Duration = Duration::from_secs(30);

/// How a node's entries for the VPC node at `ip` read: the next hop of its routes, its
/// neighbour, its FDB entry.
#[must_use]
pub fn vpc_marks(ip: Ipv4Addr) -> [String; 3] {
    [
        format!(" via {ip} "),
        format!("{ip} lladdr"),
        format!(" dst {ip} "),
    ]
}

/// The same for an on-prem node: its pod CIDR's route via the CIDR's first address, that
/// address's neighbour, and the FDB entry to its underlay address.
#[must_use]
pub fn onprem_marks(node: &OnpremNode) -> [String; 3] {
    let gateway = node.pod_cidr.split('/').next().unwrap_or_default();
    [
        format!("{} via {gateway} ", node.pod_cidr),
        format!("{gateway} lladdr"),
        format!(" dst {} ", node.underlay_ip),
    ]
}

/// Waits until `ns` (node `name`) holds none of the `gone` peer's route, neighbour and FDB
/// entry on `vxlan.vpc`; then checks that the `kept` peer's are all still there.
pub fn wait_forgotten(
    ns: &Netns,
    name: &str,
    gone: &[String; 3],
    kept: Option<&[String; 3]>,
) -> io::Result<()> {
    let entries = || {
        Some([
            ns.try_ip(&["route", "show", "dev", "vxlan.vpc"]).ok()?,
            ns.try_ip(&["neigh", "show", "dev", "vxlan.vpc"]).ok()?,
            run_checked(
                ns.command("bridge")
                    .args(["fdb", "show", "dev", "vxlan.vpc"]),
            )
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .ok()?,
        ])
    };
    let forgotten = |e: &[String; 3]| e.iter().zip(gone).all(|(text, mark)| !text.contains(mark));
    let Some(now) = wait_for(FORGET_LIMIT, || entries().filter(|e| forgotten(e))) else {
        return Err(io::Error::other(format!(
            "{name} kept entries of {gone:?}: {:?}",
            entries()
        )));
    };
    for (text, mark) in now.iter().zip(kept.into_iter().flatten()) {
        if !text.contains(mark) {
            return Err(io::Error::other(format!("{name} lost {mark:?}: {text}")));
        }
    }
    Ok(())
}
