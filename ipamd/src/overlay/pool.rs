//! Overlay mode's address pool: the node's pod CIDR, fixed for the life of the daemon. (VPC
//! mode's pool is whatever the pool controller reads off the node's ENIs.)

use vpc_cni_proto::net::Ipv4Cidr;

use crate::store::PoolAddress;

/// The shortest prefix a node's pod CIDR may have: a /16, 65,536 addresses. The pool is built
/// in memory, address by address, on the runtime's one thread; a /8 would take millions of
/// entries and stall every request while it is built. A node's pod CIDR is normally a /24.
pub const LARGEST_POD_CIDR_PREFIX: u8 = 16;

/// The longest: a /30 leaves two addresses for pods once the network and broadcast
/// addresses are kept back.
pub const SMALLEST_POD_CIDR_PREFIX: u8 = 30;

/// Whether `cidr` can be a node's pool; the reason names the bound when it cannot.
pub fn check_pod_cidr_size(cidr: Ipv4Cidr) -> Result<(), String> {
    if cidr.prefix_len < LARGEST_POD_CIDR_PREFIX {
        return Err(format!(
            "{cidr} is larger than a node's pod CIDR may be: at most /{LARGEST_POD_CIDR_PREFIX} \
             ({} addresses; a node's is normally a /24)",
            1u64 << (32 - u32::from(LARGEST_POD_CIDR_PREFIX))
        ));
    }
    if cidr.prefix_len > SMALLEST_POD_CIDR_PREFIX {
        return Err(format!(
            "{cidr} leaves no address for pods: at least /{SMALLEST_POD_CIDR_PREFIX}"
        ));
    }
    Ok(())
}

/// How messages name the pool ("pod CIDR 10.1.0.0/24").
#[must_use]
pub fn pool_name(cidr: Ipv4Cidr) -> String {
    format!("pod CIDR {cidr}")
}

/// The usable host addresses of the pod CIDR: the network address is kept back (the overlay
/// device holds it) and so is the broadcast address.
pub fn pod_cidr_pool(cidr: Ipv4Cidr) -> impl Iterator<Item = PoolAddress> {
    let last = cidr.last();
    cidr.addresses()
        .filter(move |ip| *ip != cidr.network && *ip != last)
        .map(|ip| PoolAddress {
            ip,
            route_table: 0,
            device_number: 0,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pod_cidr_skips_network_and_broadcast() {
        let cidr = "10.5.0.0/29".parse().unwrap();
        let ips: Vec<String> = pod_cidr_pool(cidr).map(|a| a.ip.to_string()).collect();
        assert_eq!(
            ips,
            ["10.5.0.1", "10.5.0.2", "10.5.0.3", "10.5.0.4", "10.5.0.5", "10.5.0.6"]
        );
        assert_eq!(pool_name(cidr), "pod CIDR 10.5.0.0/29");
    }
}
