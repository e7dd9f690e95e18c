//! Where the overlay learns which other nodes exist: the peer-source seam, the
//! peer set it yields and the pure diff the VXLAN datapath applies.
//!
//! Sources are level-triggered: each [`PeerSource::next`] returns the whole
//! current set, not an event. The datapath diffs it against what it last
//! programmed, so a missed or coalesced change can never leave it out of step,
//! and a restart is just "diff against an empty set" after reconciling.
//!
//! Two sources implement it:
//! - [`FilePeers`]: the `PEERS_FILE` JSON, polled; an invalid edit is rejected
//!   whole and the last good set kept.
//! - [`KubePeers`]: a kube-rs `watcher` over `Node` objects. A Node becomes a
//!   [`Peer`] named by `metadata.name`, with `pod_cidr` from `spec.podCIDR`
//!   and `underlay` from the annotation `vpc-cni.io/underlay-ip`, which each
//!   ipamd patches onto its own Node; a Node missing either is not a peer yet.
//!   The annotation must name one of the Node's own addresses (InternalIP or
//!   ExternalIP in `status.addresses`, which its kubelet reports): a Node
//!   annotated with an address it does not have is logged and not routed to.
//!   The Node list is not one edit by one author, so a Node with an unusable
//!   or clashing value is left out (and reported) rather than the whole set
//!   rejected.

mod file;
#[cfg(test)]
mod file_prop_tests;
#[cfg(test)]
mod file_tests;
mod kube;
mod kube_nodes;
#[cfg(test)]
mod kube_tests;
#[cfg(test)]
mod kube_watch_tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use futures::future::BoxFuture;

use crate::error::IpamdError;
use crate::overlay::pool::LARGEST_POD_CIDR_PREFIX;
use vpc_cni_proto::net::{normalize, Ipv4Cidr};

pub use self::kube::{
    annotate_own_node, announce_vpc_node, client_from_environment, own_pod_cidr, KubePeers,
    OVERLAY_MTU_ANNOTATION, UNDERLAY_ANNOTATION, VPC_POD_RANGES_ANNOTATION,
};
pub use file::{parse_peers_file, FilePeers, DEFAULT_POLL_INTERVAL};

/// Another node of the overlay. The VTEP MAC is derived from `underlay`, so
/// these fields describe a peer completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node's name (Kubernetes Node name or the peers file's `name`).
    pub name: String,
    /// The node's underlay address: the VXLAN remote for its pods.
    pub underlay: Ipv4Addr,
    /// What the overlay routes to the node: an overlay node's pod CIDR, or the address
    /// ranges a VPC-mode node's ENIs hold for pods (none while its pool is empty). Sorted,
    /// none covering another.
    pub pod_cidrs: Vec<Ipv4Cidr>,
    pub kind: PeerKind,
    /// The largest packet the peer's VXLAN device carries, when it says (a VPC node of a
    /// hybrid cluster announces its device's MTU, sized for the link between the sites):
    /// routes to it are held to it where it is smaller than this node's device.
    pub mtu: Option<u32>,
}

/// Which datapath the peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerKind {
    /// Overlay mode: one pod CIDR of its own.
    Overlay,
    /// VPC mode in a hybrid cluster: its pods hold VPC addresses, which VPC-mode nodes reach
    /// through the VPC and overlay nodes through its VTEP.
    Vpc,
}

impl PeerKind {
    /// As reports and logs show it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Overlay => "overlay",
            Self::Vpc => "vpc",
        }
    }
}

impl Peer {
    /// An overlay-mode node.
    #[must_use]
    pub fn overlay(name: impl Into<String>, underlay: Ipv4Addr, pod_cidr: Ipv4Cidr) -> Self {
        Self {
            name: name.into(),
            underlay,
            pod_cidrs: vec![pod_cidr],
            kind: PeerKind::Overlay,
            mtu: None,
        }
    }

    /// A VPC-mode node whose ENIs hold `ranges` for pods.
    #[must_use]
    pub fn vpc(
        name: impl Into<String>,
        underlay: Ipv4Addr,
        ranges: impl IntoIterator<Item = Ipv4Cidr>,
    ) -> Self {
        Self {
            name: name.into(),
            underlay,
            pod_cidrs: normalize(ranges),
            kind: PeerKind::Vpc,
            mtu: None,
        }
    }

    /// The same peer with the MTU it announced.
    #[must_use]
    pub fn with_mtu(mut self, mtu: Option<u32>) -> Self {
        self.mtu = mtu;
        self
    }

    /// The next hop of the routes to its pod CIDRs on the VXLAN device, which a permanent
    /// neighbour entry maps to its VTEP MAC: an overlay node's pod CIDR's first address (as
    /// flannel has it), a VPC-mode node's underlay address, which stays while its ranges
    /// change.
    #[must_use]
    pub fn gateway(&self) -> Ipv4Addr {
        match (self.kind, self.pod_cidrs.first()) {
            (PeerKind::Overlay, Some(cidr)) => cidr.network,
            (PeerKind::Overlay, None) | (PeerKind::Vpc, _) => self.underlay,
        }
    }

    /// Its pod CIDRs as text, for logs and reports.
    #[must_use]
    pub fn pod_cidrs_text(&self) -> String {
        let texts: Vec<String> = self.pod_cidrs.iter().map(ToString::to_string).collect();
        texts.join(",")
    }
}

/// The MTUs a peer may announce: from IPv4's minimum datagram every host must take to the
/// largest VPC frame.
pub const PEER_MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=9001;

/// The other nodes, keyed by name (a `BTreeMap` so diffs and logs come out
/// in a stable order).
pub type PeerSet = BTreeMap<String, Peer>;

/// A source of the overlay's peers.
///
/// Only `Send` is required: `next` takes `&mut self`, so a source is never
/// shared, and a watch stream (as kube's is) need not be `Sync`.
pub trait PeerSource: Send {
    /// Waits until the peer set differs from the one last returned, then
    /// returns the whole new set. The first call returns the initial set
    /// without waiting, as soon as the source has one.
    ///
    /// An error reports a change the source could not use (an invalid file,
    /// an API failure); the caller logs it and keeps what it programmed. The
    /// source stays usable: call `next` again to keep watching.
    fn next(&mut self) -> BoxFuture<'_, Result<PeerSet, IpamdError>>;
}

/// Checks a whole list of peers (the node's own entry included, so nobody
/// else may claim its pod CIDR or address). Names the offending entries.
///
/// Rejected: empty or duplicate names; an underlay address that cannot be a
/// VXLAN remote, or one used twice (both peers would share one VTEP MAC and
/// FDB entry, so removing one would cut off the other); an overlay peer
/// without exactly one pod CIDR; duplicate or overlapping pod CIDRs, within
/// a peer or across peers (the routes would shadow each other); a pod CIDR
/// larger than any node's may be (a 0.0.0.0/1 would take over half the
/// default route); a pod CIDR holding an underlay address of the list (the
/// VXLAN packets to that node would be routed into the overlay itself).
pub fn validate(peers: &[Peer]) -> Result<(), String> {
    let mut names = BTreeMap::new();
    let mut underlays = BTreeMap::new();
    for p in peers {
        if p.name.trim().is_empty() {
            return Err(format!(
                "a peer with pod CIDRs {} has an empty name",
                p.pod_cidrs_text()
            ));
        }
        if let Some(first) = names.insert(p.name.as_str(), p) {
            return Err(format!(
                "name {:?} appears twice (pod CIDRs {} and {})",
                p.name,
                first.pod_cidrs_text(),
                p.pod_cidrs_text()
            ));
        }
        let ip = p.underlay;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return Err(format!(
                "peer {:?}: underlay address {ip} is not a unicast address another node can have",
                p.name
            ));
        }
        if let Some(first) = underlays.insert(ip, p) {
            return Err(format!(
                "underlay address {ip} is used by both {:?} and {:?}",
                first.name, p.name
            ));
        }
        if let Some(mtu) = p.mtu.filter(|mtu| !PEER_MTU_RANGE.contains(mtu)) {
            return Err(format!(
                "peer {:?}: MTU {mtu} is outside {}..={}",
                p.name,
                PEER_MTU_RANGE.start(),
                PEER_MTU_RANGE.end()
            ));
        }
        if p.kind == PeerKind::Overlay && p.pod_cidrs.len() != 1 {
            return Err(format!(
                "peer {:?}: an overlay node has one pod CIDR, not {}",
                p.name,
                p.pod_cidrs.len()
            ));
        }
        if let Some(cidr) = p
            .pod_cidrs
            .iter()
            .find(|c| c.prefix_len < LARGEST_POD_CIDR_PREFIX)
        {
            return Err(format!(
                "peer {:?}: pod CIDR {cidr} is larger than a node's pod CIDR may be \
                 (at most /{LARGEST_POD_CIDR_PREFIX})",
                p.name
            ));
        }
    }
    let mut blocks: Vec<(Ipv4Cidr, &Peer)> = peers
        .iter()
        .flat_map(|p| p.pod_cidrs.iter().map(move |c| (*c, p)))
        .collect();
    for (cidr, p) in &blocks {
        let held = underlays
            .range(cidr.network..=cidr.last())
            .next()
            .map(|(ip, owner)| (*ip, &owner.name));
        if let Some((ip, owner)) = held {
            return Err(format!(
                "peer {:?}: pod CIDR {cidr} holds the underlay address {ip} of {owner:?}",
                p.name
            ));
        }
    }
    // CIDR blocks either nest or are disjoint, so after sorting by start any
    // overlap shows between neighbours: a block holding a later start also
    // holds every start in between.
    blocks.sort_by_key(|(c, _)| (u32::from(c.network), c.prefix_len));
    for pair in blocks.windows(2) {
        let ((a, a_peer), (b, b_peer)) = (pair[0], pair[1]);
        if a == b {
            return Err(format!(
                "pod CIDR {a} is used by both {:?} and {:?}",
                a_peer.name, b_peer.name
            ));
        }
        if a.contains(b.network) {
            return Err(format!(
                "pod CIDR {a} of {:?} overlaps pod CIDR {b} of {:?}",
                a_peer.name, b_peer.name
            ));
        }
    }
    Ok(())
}

/// Checks a peer against this node, which the list may not show: none of its
/// pod CIDRs may hold this node's underlay address (every VXLAN packet this
/// node sends would be routed into the overlay) nor overlap one of this
/// node's pod CIDRs (it would take this node's pods' traffic). Names the peer.
pub fn check_against_own(
    peer: &Peer,
    own_underlay: Option<Ipv4Addr>,
    own_pod_cidrs: &[Ipv4Cidr],
) -> Result<(), String> {
    for &cidr in &peer.pod_cidrs {
        if let Some(ip) = own_underlay.filter(|ip| cidr.contains(*ip)) {
            return Err(format!(
                "peer {:?}: pod CIDR {cidr} holds this node's underlay address {ip}",
                peer.name
            ));
        }
        if let Some(own) = own_pod_cidrs
            .iter()
            .find(|own| own.contains(cidr.network) || cidr.contains(own.network))
        {
            return Err(format!(
                "peer {:?}: pod CIDR {cidr} overlaps this node's pod CIDR {own}",
                peer.name
            ));
        }
    }
    Ok(())
}

/// The peer set without the node itself, recognised by name or by its
/// underlay address (programming a VXLAN path to ourselves would loop).
#[must_use]
pub fn without_own(
    peers: impl IntoIterator<Item = Peer>,
    own_name: &str,
    own_underlay: Option<Ipv4Addr>,
) -> PeerSet {
    peers
        .into_iter()
        .filter(|p| p.name != own_name && Some(p.underlay) != own_underlay)
        .map(|p| (p.name.clone(), p))
        .collect()
}

/// A peer whose name stayed but whose underlay address or pod CIDR changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerChange {
    pub old: Peer,
    pub new: Peer,
}

/// What the datapath must do to go from one peer set to the next.
///
/// Apply every removal (`removed`, then the `old` side of `changed`) before
/// any addition: an edit may move a pod CIDR or an underlay address from one
/// peer to another, and the kernel refuses a route or FDB entry that still
/// exists under the old owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerDiff {
    /// Peers only in the new set, by name.
    pub added: Vec<Peer>,
    /// Peers only in the old set, by name.
    pub removed: Vec<Peer>,
    /// Peers in both sets whose fields differ.
    pub changed: Vec<PeerChange>,
}

impl PeerDiff {
    /// Whether the two sets were equal.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compares two peer sets by name. Each list comes out sorted by name.
#[must_use]
pub fn diff(old: &PeerSet, new: &PeerSet) -> PeerDiff {
    let mut out = PeerDiff::default();
    for (name, was) in old {
        match new.get(name) {
            None => out.removed.push(was.clone()),
            Some(now) if now != was => out.changed.push(PeerChange {
                old: was.clone(),
                new: now.clone(),
            }),
            Some(_) => {}
        }
    }
    out.added = new
        .iter()
        .filter(|(name, _)| !old.contains_key(*name))
        .map(|(_, peer)| peer.clone())
        .collect();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn peer(name: &str, underlay: &str, cidr: &str) -> Peer {
        Peer::overlay(name, underlay.parse().unwrap(), cidr.parse().unwrap())
    }

    fn set(peers: &[Peer]) -> PeerSet {
        peers.iter().map(|p| (p.name.clone(), p.clone())).collect()
    }

    #[test]
    fn diff_of_equal_sets_is_empty() {
        let a = set(&[
            peer("n1", "192.168.0.1", "10.244.1.0/24"),
            peer("n2", "192.168.0.2", "10.244.2.0/24"),
        ]);
        assert!(diff(&a, &a.clone()).is_empty());
        assert!(diff(&PeerSet::new(), &PeerSet::new()).is_empty());
    }

    #[test]
    fn diff_reports_added_removed_and_changed() {
        let n1 = peer("n1", "192.168.0.1", "10.244.1.0/24");
        let n2 = peer("n2", "192.168.0.2", "10.244.2.0/24");
        let n3 = peer("n3", "192.168.0.3", "10.244.3.0/24");
        let n4 = peer("n4", "192.168.0.4", "10.244.4.0/24");
        let n2_cidr = peer("n2", "192.168.0.2", "10.244.20.0/24");
        let n3_underlay = peer("n3", "192.168.0.33", "10.244.3.0/24");

        let old = set(&[n1.clone(), n2.clone(), n3.clone()]);
        let new = set(&[n2_cidr.clone(), n3_underlay.clone(), n4.clone()]);
        let d = diff(&old, &new);

        assert_eq!(d.added, vec![n4]);
        assert_eq!(d.removed, vec![n1]);
        assert_eq!(
            d.changed,
            vec![
                PeerChange {
                    old: n2,
                    new: n2_cidr
                },
                PeerChange {
                    old: n3,
                    new: n3_underlay
                },
            ]
        );
        assert!(!d.is_empty());
    }

    #[test]
    fn diff_from_empty_adds_everything_and_to_empty_removes_everything() {
        let all = set(&[
            peer("b", "192.168.0.2", "10.244.2.0/24"),
            peer("a", "192.168.0.1", "10.244.1.0/24"),
        ]);
        let up = diff(&PeerSet::new(), &all);
        let names: Vec<_> = up.added.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "sorted by name");
        assert!(up.removed.is_empty() && up.changed.is_empty());

        let down = diff(&all, &PeerSet::new());
        assert_eq!(down.removed.len(), 2);
        assert!(down.added.is_empty() && down.changed.is_empty());
    }

    fn vpc(name: &str, underlay: &str, ranges: &[&str]) -> Peer {
        Peer::vpc(
            name,
            underlay.parse().unwrap(),
            ranges.iter().map(|r| r.parse().unwrap()),
        )
    }

    #[test]
    fn vpc_mode_peers_check_every_range_and_overlay_peers_have_one_cidr() {
        let a = vpc("a", "10.0.0.15", &["10.0.1.37/32", "10.0.1.16/28"]);
        let b = peer("b", "172.20.0.11", "10.244.1.0/24");
        assert!(validate(&[a.clone(), b.clone()]).is_ok());
        assert!(validate(&[vpc("empty", "10.0.0.16", &[])]).is_ok());

        let inside_a = vpc("c", "10.0.0.17", &["10.0.1.20/32"]);
        let err = validate(&[a.clone(), inside_a]).unwrap_err();
        assert!(
            err.contains("10.0.1.16/28") && err.contains("10.0.1.20/32"),
            "{err}"
        );

        let holds_b = vpc("d", "10.0.0.18", &["172.20.0.11/32"]);
        let err = validate(&[b.clone(), holds_b]).unwrap_err();
        assert!(err.contains("underlay address 172.20.0.11"), "{err}");

        let mut two = b.clone();
        two.pod_cidrs.push("10.244.2.0/24".parse().unwrap());
        let err = validate(&[two]).unwrap_err();
        assert!(err.contains("one pod CIDR, not 2"), "{err}");

        let own = ["10.0.1.0/24".parse().unwrap()];
        let err = check_against_own(&a, None, &own).unwrap_err();
        assert!(
            err.contains("overlaps this node's pod CIDR 10.0.1.0/24"),
            "{err}"
        );
    }

    #[test]
    fn a_vpc_mode_peer_is_reached_via_its_underlay_and_an_overlay_peer_via_its_cidr() {
        let a = vpc("a", "10.0.0.15", &["10.0.1.37/32", "10.0.1.16/28"]);
        assert_eq!(a.gateway(), "10.0.0.15".parse::<Ipv4Addr>().unwrap());
        assert_eq!(a.pod_cidrs_text(), "10.0.1.16/28,10.0.1.37/32");
        let b = peer("b", "172.20.0.11", "10.244.1.0/24");
        assert_eq!(b.gateway(), "10.244.1.0".parse::<Ipv4Addr>().unwrap());
        assert_eq!((a.kind.name(), b.kind.name()), ("vpc", "overlay"));
    }
}
