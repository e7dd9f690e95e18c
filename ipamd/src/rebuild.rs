//! What the kernel says pods hold: every pod the plugin wired has a /32 route in the main
//! table to its host veth. At start this is read beside the checkpoint, so an address a live
//! pod uses is held even when the checkpoint is gone, damaged or older than the pod (an
//! operator deleting a corrupt file, an empty state dir after a node image change).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use vpc_cni::netlink;
use vpc_cni_proto::HOST_VETH_PREFIX;

use crate::error::IpamdError;
use crate::kernel;

/// The main table's id (`RT_TABLE_MAIN`).
const MAIN_TABLE: u32 = 254;

/// Pod addresses the calling thread's namespace routes to one of our host veths, with the
/// veth's name.
///
/// A dump resumes by position and the kernel's interrupted-dump flag is not passed on, so a
/// dump taken while links or routes change may skip one: two rounds of dumps are merged.
pub async fn pods_in_kernel() -> Result<BTreeMap<Ipv4Addr, String>, IpamdError> {
    let handle = kernel::connect()?;
    let mut pods = BTreeMap::new();
    for _ in 0..2 {
        let veths = host_veths().await?;
        let routes = netlink::ipv4_routes(&handle)
            .await
            .map_err(IpamdError::netlink("listing routes to find pods"))?;
        for route in &routes {
            if route.header.destination_prefix_length != 32
                || netlink::route_table(route) != MAIN_TABLE
            {
                continue;
            }
            let (Some(ip), Some(veth)) = (
                netlink::route_dst(route),
                netlink::route_oif(route).and_then(|i| veths.get(&i)),
            ) else {
                continue;
            };
            pods.insert(ip, veth.clone());
        }
    }
    Ok(pods)
}

/// Our host veths by interface index.
async fn host_veths() -> Result<HashMap<u32, String>, IpamdError> {
    let links = netlink::link_summaries()
        .await
        .map_err(IpamdError::netlink("listing links to find host veths"))?;
    Ok(links
        .into_iter()
        .filter(|l| l.name.starts_with(HOST_VETH_PREFIX))
        .map(|l| (l.index, l.name))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use vpc_cni_testkit::netns::Netns;

    use super::*;

    /// Root: finds exactly the /32 main-table routes to host veths, whatever else the
    /// namespace routes.
    #[test]
    fn finds_pods_routed_to_host_veths() {
        let ns = Netns::unique("rebuild");
        let veth = format!("{HOST_VETH_PREFIX}0a1b2c3d");
        let other = format!("{HOST_VETH_PREFIX}99999999");
        ns.ip_batch(
            &[
                format!("link add {veth} type veth peer name pod0"),
                format!("link add {other} type veth peer name pod1"),
                "link add uplink type veth peer name uplinkpeer".to_owned(),
                format!("link set {veth} up"),
                format!("link set {other} up"),
                "link set uplink up".to_owned(),
                format!("route add 10.0.0.11/32 dev {veth} scope link"),
                format!("route add 10.0.0.12/32 dev {other} scope link"),
                // Not pods: a /32 on another link, a wider route on a host veth, a /32 in
                // an ENI's table.
                "route add 10.0.0.13/32 dev uplink scope link".to_owned(),
                format!("route add 10.9.0.0/24 dev {veth} scope link"),
                format!("route add 10.0.0.14/32 dev {veth} scope link table 3"),
            ],
            false,
        )
        .unwrap();

        let pods = ns.run(|| async { pods_in_kernel().await }).unwrap();
        let want: BTreeMap<Ipv4Addr, String> = [
            (Ipv4Addr::new(10, 0, 0, 11), veth),
            (Ipv4Addr::new(10, 0, 0, 12), other),
        ]
        .into_iter()
        .collect();
        assert_eq!(pods, want);
    }
}
