//! The pod guard: what a pod may send into its node, in both modes. A pod cannot send with
//! another pod's or the node's source address, cannot reach the instance metadata service
//! while `BLOCK_POD_IMDS` holds, and cannot feed the node's neighbour table with ARP. On EC2
//! the VPC checks sources only between ENIs, so without this a pod impersonates the pods that
//! share its node (and the node itself) towards everything, the VPC included.
//!
//! Two tables of our own, separate from the mode's SNAT table (`ip vpc-cni`), because the
//! guard must stand from ipamd's first moment in both modes, while overlay mode writes its
//! SNAT table only once it knows its peers:
//!
//! - `ip vpc-cni-guard`, hooked in prerouting at raw priority (before conntrack, so a spoofed
//!   flood costs no connection state): for packets from a pod veth (`iifname "vpc*"`),
//!   `fib saddr . iif oif missing drop`, a reverse-path check that asks the routing table
//!   whether the source routes back out of the veth it came in on. Each pod's `/32` route
//!   points at its own veth (with the 512 rule `to <ip> lookup main` ahead of every `from`
//!   rule), so this holds exactly the pod's own address and needs no per-pod state: nothing
//!   is added to the ADD path, and a pod is covered the moment its route exists. The node's
//!   addresses are local routes, which the check never accepts. Then, with `BLOCK_POD_IMDS`,
//!   `ip daddr 169.254.169.254 drop`: here it catches the metadata service whether it would
//!   be routed out (EC2) or answered by the node itself; the node's own requests never come
//!   in through a pod veth.
//! - `arp vpc-cni-guard`, hooked at ARP input: the plugin makes each host veth NOARP, and
//!   the kernel drops ARP on such a link before any hook, so these rules see only veths of
//!   pods wired by an older plugin (or whose ARP was turned back on). For those, a pod's
//!   ARP requests are dropped (its one neighbour, the gateway, is a permanent entry, so it
//!   never needs to ask; a request is what makes the node learn the asker's claimed address)
//!   and so is any frame whose sender address is the gateway. Replies still pass: the node
//!   resolves such a pod by ARP, and it only takes a reply for an entry it is resolving on
//!   that veth, which is the pod's own address. `fib` cannot look at ARP, and a per-pod set
//!   would put an nft transaction on every ADD: the flag is the per-pod part, set in the
//!   message that creates the veth.
//!
//! Both tables are replaced in one transaction at every apply, like the SNAT table, so the
//! datapath upkeep repairs any change to them (see [`GuardedDatapath`]).

mod datapath;
mod ruleset;

#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

pub use datapath::GuardedDatapath;

use crate::error::IpamdError;
use crate::kernel::nft;

/// Name of both guard tables (families `ip` and `arp`).
pub const GUARD_TABLE: &str = "vpc-cni-guard";

/// The instance metadata service, as EC2 (and OpenStack) place it.
pub const IMDS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// What the guard enforces beyond anti-spoofing, which is always on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodGuard {
    /// `BLOCK_POD_IMDS`: pods cannot reach [`IMDS_ADDR`].
    pub block_imds: bool,
}

impl PodGuard {
    #[must_use]
    pub fn new(block_imds: bool) -> Self {
        Self { block_imds }
    }

    /// Makes both tables exactly what this guard says, in one transaction, in the calling
    /// thread's namespace.
    pub async fn apply(&self) -> Result<(), IpamdError> {
        let tables = format!("ip and arp {GUARD_TABLE}");
        nft::run_on(&self.replace_batch(), "replacing", &tables).await
    }

    /// The guard tables that are missing or hold other than the rules they should, named for
    /// STATUS; empty when both are intact. Only reads.
    pub async fn damage(&self) -> Result<Vec<String>, IpamdError> {
        let mut damage = Vec::new();
        for (family, want) in self.rule_counts() {
            match nft::rule_count(family, GUARD_TABLE).await? {
                None => damage.push(format!("nftables table {family} {GUARD_TABLE} is missing")),
                Some(have) if have != want => damage.push(format!(
                    "nftables table {family} {GUARD_TABLE} holds {have} rules instead of {want}"
                )),
                Some(_) => {}
            }
        }
        Ok(damage)
    }
}
