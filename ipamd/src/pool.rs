//! Pool sources: where the addresses ipamd hands out come from. The pod-CIDR
//! source serves overlay (and single) nodes; the ENI source arrives with VPC mode.

use std::net::Ipv4Addr;

use futures::future::BoxFuture;

use crate::config::Ipv4Cidr;
use crate::error::IpamdError;
use crate::store::PoolAddress;

/// Supplies the set of addresses pods may get on this node.
pub trait PoolSource: Send + Sync {
    /// Human-readable name used in messages ("pod CIDR 10.1.0.0/24").
    fn name(&self) -> String;

    /// Every address currently usable for pods, with its route table.
    fn addresses(&self) -> BoxFuture<'_, Result<Vec<PoolAddress>, IpamdError>>;
}

/// Addresses of the node's pod CIDR. The network address is kept back (the
/// overlay device holds it) and so is the broadcast address.
pub struct PodCidrPool {
    cidr: Ipv4Cidr,
}

impl PodCidrPool {
    #[must_use]
    pub fn new(cidr: Ipv4Cidr) -> Self {
        Self { cidr }
    }

    /// The usable host addresses, computed without I/O.
    #[must_use]
    pub fn host_addresses(&self) -> Vec<PoolAddress> {
        let first = u32::from(self.cidr.network);
        let size = u32::try_from(self.cidr.size()).unwrap_or(u32::MAX);
        (1..size.saturating_sub(1))
            .map(|offset| PoolAddress {
                ip: Ipv4Addr::from(first + offset),
                route_table: 0,
                device_number: 0,
            })
            .collect()
    }
}

impl PoolSource for PodCidrPool {
    fn name(&self) -> String {
        format!("pod CIDR {}", self.cidr)
    }

    fn addresses(&self) -> BoxFuture<'_, Result<Vec<PoolAddress>, IpamdError>> {
        Box::pin(async move { Ok(self.host_addresses()) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pod_cidr_skips_network_and_broadcast() {
        let pool = PodCidrPool::new("10.5.0.0/29".parse().unwrap());
        let ips: Vec<String> = pool
            .host_addresses()
            .iter()
            .map(|a| a.ip.to_string())
            .collect();
        assert_eq!(
            ips,
            ["10.5.0.1", "10.5.0.2", "10.5.0.3", "10.5.0.4", "10.5.0.5", "10.5.0.6"]
        );
        assert_eq!(pool.name(), "pod CIDR 10.5.0.0/29");
    }
}
