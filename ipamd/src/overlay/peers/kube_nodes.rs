//! From Node objects to peers: what the Kubernetes source keeps of each Node,
//! and how it turns all of them into one conflict-free [`PeerSet`].
//!
//! Only the distilled facts of each Node are kept, not the object: a Node's
//! status (images, conditions) is most of its size and none of our business.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Node;

use super::{check_against_own, validate, without_own, Peer, PeerKind, PeerSet};
use vpc_cni_proto::net::{normalize, Ipv4Cidr};

/// The annotation each ipamd puts on its own Node: the underlay address its
/// peers send VXLAN traffic to.
pub const UNDERLAY_ANNOTATION: &str = "vpc-cni.io/underlay-ip";
/// The annotation a VPC-mode node of a hybrid cluster puts on its own Node: the address
/// ranges its ENIs hold for pods, comma-separated (empty while its pool is). Its presence
/// makes the Node a VPC-mode peer, whatever its `spec.podCIDR`.
pub const VPC_POD_RANGES_ANNOTATION: &str = "vpc-cni.io/vpc-pod-ranges";
/// The annotation a node puts on its own Node when the path to it carries less than an
/// overlay node's underlay (a VPC-mode node behind the link between the sites): the MTU of
/// its VXLAN device, which its peers hold their routes to it to.
pub const OVERLAY_MTU_ANNOTATION: &str = "vpc-cni.io/overlay-mtu";

/// What one Node contributes to the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeFacts {
    /// The Node's IPv4 pod CIDR or VPC pod ranges when usable; kept apart from
    /// `status` because the own Node's count even before it is annotated.
    pub pod_cidrs: Vec<Ipv4Cidr>,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    /// A peer, unless it clashes with another Node.
    Peer(Peer),
    /// Not a peer yet (no pod CIDR assigned, or its ipamd has not annotated
    /// it yet); normal while a node joins.
    Incomplete(String),
    /// Carries a value that cannot be used; worth a warning.
    Invalid(String),
}

/// The text of the Node's IPv4 pod CIDR: `spec.podCIDR`, or the first IPv4
/// entry of `spec.podCIDRs` (in an IPv6-first dual-stack cluster `podCIDR`
/// is the IPv6 one).
fn pod_cidr_text(node: &Node) -> Option<&str> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .iter()
        .chain(spec.pod_cidrs.iter().flatten())
        .map(|s| s.trim())
        .find(|s| !s.is_empty() && !s.contains(':'))
}

/// The Node's IPv4 pod CIDR; `Err` names the unusable value.
pub(super) fn ipv4_pod_cidr(node: &Node) -> Result<Option<Ipv4Cidr>, String> {
    match pod_cidr_text(node) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|e| format!("pod CIDR {text:?} is unusable: {e}")),
    }
}

/// Our annotation's raw value on `node`, if present.
pub(super) fn underlay_annotation(node: &Node) -> Option<&str> {
    annotation(node, UNDERLAY_ANNOTATION)
}

fn annotation<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The ranges a VPC-mode Node announces; `None` for an overlay Node, `Err` names the
/// unusable value.
fn vpc_pod_ranges(node: &Node) -> Option<Result<Vec<Ipv4Cidr>, String>> {
    let raw = annotation(node, VPC_POD_RANGES_ANNOTATION)?;
    Some(
        raw.split(',')
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(|text| {
                text.parse().map_err(|e| {
                    format!("annotation {VPC_POD_RANGES_ANNOTATION}: range {text:?}: {e}")
                })
            })
            .collect(),
    )
}

/// The MTU the Node announces, if any; `Err` names the unusable value.
fn overlay_mtu(node: &Node) -> Result<Option<u32>, String> {
    annotation(node, OVERLAY_MTU_ANNOTATION)
        .map(|raw| {
            raw.trim()
                .parse()
                .map_err(|_| format!("annotation {OVERLAY_MTU_ANNOTATION}={raw:?} is not an MTU"))
        })
        .transpose()
}

/// The Node's own IPv4 addresses as its kubelet reports them (`status.addresses` of type
/// InternalIP or ExternalIP). The annotation is written by an ipamd, the addresses by the
/// Node's kubelet: an underlay address must be among them.
fn node_addresses(node: &Node) -> Vec<Ipv4Addr> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.trim().parse().ok())
        .collect()
}

/// The annotation's address, when it is one of the Node's own addresses. Without this check,
/// whoever can annotate a Node could name another node's (or any) address as its underlay and
/// draw that Node's pod traffic there.
fn checked_underlay(node: &Node, raw: &str) -> Result<Ipv4Addr, Status> {
    let underlay = raw.trim().parse::<Ipv4Addr>().map_err(|_| {
        Status::Invalid(format!(
            "annotation {UNDERLAY_ANNOTATION}={raw:?} is not an IPv4 address"
        ))
    })?;
    let own = node_addresses(node);
    if own.is_empty() {
        return Err(Status::Incomplete(
            "no InternalIP or ExternalIP in status.addresses yet".into(),
        ));
    }
    if !own.contains(&underlay) {
        let listed: Vec<String> = own.iter().map(ToString::to_string).collect();
        return Err(Status::Invalid(format!(
            "annotation {UNDERLAY_ANNOTATION}={underlay} names an address the Node does not \
             have (its InternalIP/ExternalIP: {})",
            listed.join(", ")
        )));
    }
    Ok(underlay)
}

/// The Node's name and facts; `None` for a Node without a name (the API
/// server never sends one).
pub(super) fn facts(node: &Node) -> Option<(String, NodeFacts)> {
    let name = node.metadata.name.clone()?;
    let underlay = underlay_annotation(node).map(|raw| checked_underlay(node, raw));
    let (cidrs, kind) = match vpc_pod_ranges(node) {
        Some(ranges) => (ranges.map(Some), PeerKind::Vpc),
        None => (
            ipv4_pod_cidr(node).map(|cidr| cidr.map(|c| vec![c])),
            PeerKind::Overlay,
        ),
    };
    let pod_cidrs = cidrs.as_ref().ok().cloned().flatten().unwrap_or_default();
    let status = match (cidrs, underlay, overlay_mtu(node)) {
        (Err(reason), _, _) | (_, _, Err(reason)) => Status::Invalid(reason),
        (_, Some(Err(status)), _) => status,
        (Ok(None), _, _) => Status::Incomplete("no IPv4 pod CIDR (spec.podCIDR) yet".into()),
        (_, None, _) => Status::Incomplete(format!("no {UNDERLAY_ANNOTATION} annotation yet")),
        (Ok(Some(cidrs)), Some(Ok(underlay)), Ok(mtu)) => {
            let peer = Peer {
                name: name.clone(),
                underlay,
                pod_cidrs: normalize(cidrs),
                kind,
                mtu,
            };
            // One peer alone: only the checks on its own fields can fail.
            match validate(std::slice::from_ref(&peer)) {
                Ok(()) => Status::Peer(peer),
                Err(reason) => Status::Invalid(reason),
            }
        }
    };
    Some((name, NodeFacts { pod_cidrs, status }))
}

/// The facts of every Node, plus what was reported about them, so each
/// problem is logged when it appears rather than at every event.
#[derive(Debug, Default)]
pub(super) struct NodeStore {
    nodes: BTreeMap<String, NodeFacts>,
    /// Peers left out for clashing with another Node at the last build.
    clashes: BTreeMap<String, String>,
}

impl NodeStore {
    /// Records a Node's current state. Returns whether its facts changed
    /// (a heartbeat or label edit does not change them).
    pub fn apply(&mut self, node: &Node) -> bool {
        let Some((name, new)) = facts(node) else {
            return false;
        };
        if self.nodes.get(&name) == Some(&new) {
            return false;
        }
        report(&name, &new);
        self.nodes.insert(name, new);
        true
    }

    /// Forgets a deleted Node. Returns whether it was known.
    pub fn delete(&mut self, node: &Node) -> bool {
        node.metadata
            .name
            .as_ref()
            .is_some_and(|name| self.nodes.remove(name).is_some())
    }

    /// Replaces everything with a fresh listing (the watcher's initial list
    /// or a re-list): Nodes missing from it are gone.
    pub fn replace(&mut self, listed: BTreeMap<String, NodeFacts>) {
        for (name, facts) in &listed {
            if self.nodes.get(name) != Some(facts) {
                report(name, facts);
            }
        }
        self.nodes = listed;
    }

    /// The peers: every complete Node except this one, with clashes resolved.
    ///
    /// Clashes (the same underlay address, overlapping pod CIDRs) are
    /// resolved in name order, the smaller name winning, so the outcome does
    /// not depend on the order events arrived in and every node of the
    /// cluster makes the same choice. This node's own pod CIDR is taken
    /// first: a Node claiming it would steal our pods' traffic.
    pub fn peers(&mut self, own_name: &str, own_underlay: Option<Ipv4Addr>) -> PeerSet {
        let candidates = self.nodes.values().filter_map(|f| match &f.status {
            Status::Peer(p) => Some(p.clone()),
            Status::Incomplete(_) | Status::Invalid(_) => None,
        });
        let mut taken = Taken::default();
        for own in self
            .nodes
            .get(own_name)
            .map(|f| f.pod_cidrs.as_slice())
            .unwrap_or_default()
        {
            taken
                .cidrs
                .insert(u32::from(own.network), (*own, own_name.to_string()));
        }
        let mut clashes = BTreeMap::new();
        let mut set = PeerSet::new();
        // `without_own` yields a name-ordered map, which is the winning order.
        for (name, peer) in without_own(candidates, own_name, own_underlay) {
            // The own pod CIDR is in `taken` already (when the own Node has one).
            let refused = check_against_own(&peer, own_underlay, &[]).err();
            match refused.or_else(|| taken.clash(&peer)) {
                Some(reason) => {
                    clashes.insert(name, reason);
                }
                None => {
                    taken.take(&peer);
                    set.insert(name, peer);
                }
            }
        }
        for (name, reason) in &clashes {
            if self.clashes.get(name) != Some(reason) {
                tracing::warn!(node = %name, "Node left out of the overlay: {reason}");
            }
        }
        self.clashes = clashes;
        set
    }
}

/// Logs why a Node is not a peer, when its facts change.
fn report(name: &str, facts: &NodeFacts) {
    match &facts.status {
        Status::Peer(_) => {}
        Status::Incomplete(why) => tracing::debug!(node = %name, "Node is not a peer yet: {why}"),
        Status::Invalid(why) => {
            tracing::warn!(node = %name, "Node left out of the overlay: {why}");
        }
    }
}

/// Pod CIDRs (by first address) and underlay addresses already given out.
#[derive(Default)]
struct Taken {
    cidrs: BTreeMap<u32, (Ipv4Cidr, String)>,
    underlays: BTreeMap<Ipv4Addr, String>,
}

impl Taken {
    /// Why `peer` cannot join the ones taken, if it cannot.
    fn clash(&self, peer: &Peer) -> Option<String> {
        if let Some(owner) = self.underlays.get(&peer.underlay) {
            return Some(format!(
                "underlay address {} is already used by Node {owner:?}",
                peer.underlay
            ));
        }
        peer.pod_cidrs
            .iter()
            .find_map(|&cidr| self.cidr_clash(cidr))
    }

    fn cidr_clash(&self, cidr: Ipv4Cidr) -> Option<String> {
        let start = u32::from(cidr.network);
        // CIDR blocks nest or are disjoint and the taken ones are disjoint,
        // so only two can overlap a new one: the last taken block starting
        // at or before it (if it holds its start) and the first one starting
        // after it (if the new block holds that one's start).
        let before = self.cidrs.range(..=start).next_back();
        let after = self.cidrs.range(start..).next();
        let hit = before
            .filter(|(_, (c, _))| c.contains(cidr.network))
            .or_else(|| after.filter(|(_, (c, _))| cidr.contains(c.network)));
        hit.map(|(_, (other, owner))| {
            format!("pod CIDR {cidr} overlaps pod CIDR {other} of Node {owner:?}")
        })
    }

    fn take(&mut self, peer: &Peer) {
        self.underlays.insert(peer.underlay, peer.name.clone());
        for cidr in &peer.pod_cidrs {
            self.cidrs
                .insert(u32::from(cidr.network), (*cidr, peer.name.clone()));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::kube_tests::{node, peer, ready, set};
    use super::*;

    #[test]
    fn nodes_whose_pod_cidr_is_too_large_or_holds_an_underlay_address_are_left_out() {
        let mut store = NodeStore::default();
        let nodes = [
            ready("n1", 1, "192.168.0.1", "10.244.1.0/24"),
            ready("n2", 2, "192.168.0.2", "10.244.2.0/24"),
            // Holds this node's underlay address.
            ready("n3", 3, "172.16.0.3", "192.168.0.0/24"),
            // Larger than any node's pod CIDR may be.
            ready("n4", 4, "192.168.0.4", "10.0.0.0/8"),
            ready("n5", 5, "192.168.0.5", "0.0.0.0/1"),
            // Holds its own underlay address.
            node(
                "n6",
                6,
                "10.244.6.1",
                Some("10.244.6.0/24"),
                Some("10.244.6.1"),
            ),
        ];
        for n in nodes {
            store.apply(&serde_json::from_value(n).unwrap());
        }
        let own_underlay = Some("192.168.0.1".parse().unwrap());
        assert_eq!(
            store.peers("n1", own_underlay),
            set(&[peer("n2", "192.168.0.2", "10.244.2.0/24")])
        );
    }

    fn status_of(node: &serde_json::Value) -> Status {
        facts(&serde_json::from_value(node.clone()).unwrap())
            .unwrap()
            .1
            .status
    }

    #[test]
    fn an_annotation_naming_an_address_the_node_does_not_have_is_not_a_peer() {
        // n2's kubelet reports 192.168.0.2; the annotation claims n3's address.
        let stolen = node(
            "n2",
            2,
            "192.168.0.2",
            Some("10.244.2.0/24"),
            Some("192.168.0.3"),
        );
        match status_of(&stolen) {
            Status::Invalid(why) => {
                assert!(
                    why.contains("192.168.0.3") && why.contains("192.168.0.2"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut store = NodeStore::default();
        for n in [
            ready("n1", 1, "192.168.0.1", "10.244.1.0/24"),
            ready("n3", 3, "192.168.0.3", "10.244.3.0/24"),
            stolen,
        ] {
            store.apply(&serde_json::from_value(n).unwrap());
        }
        let own_underlay = Some("192.168.0.1".parse().unwrap());
        assert_eq!(
            store.peers("n1", own_underlay),
            set(&[peer("n3", "192.168.0.3", "10.244.3.0/24")]),
            "n3 keeps its traffic; n2 is left out"
        );
    }

    #[test]
    fn an_external_ip_counts_and_a_node_without_addresses_waits() {
        let mut external = ready("n2", 2, "192.168.0.2", "10.244.2.0/24");
        external["status"]["addresses"] = serde_json::json!([
            { "type": "InternalIP", "address": "192.168.0.2" },
            { "type": "ExternalIP", "address": "203.0.113.2" },
            { "type": "Hostname", "address": "n2" },
        ]);
        external["metadata"]["annotations"][UNDERLAY_ANNOTATION] = "203.0.113.2".into();
        assert_eq!(
            status_of(&external),
            Status::Peer(peer("n2", "203.0.113.2", "10.244.2.0/24"))
        );
        // A Hostname entry is no address of the underlay.
        external["metadata"]["annotations"][UNDERLAY_ANNOTATION] = "n2".into();
        assert!(matches!(status_of(&external), Status::Invalid(_)));

        let mut bare = ready("n4", 4, "192.168.0.4", "10.244.4.0/24");
        bare["status"]["addresses"] = serde_json::json!([]);
        assert!(
            matches!(status_of(&bare), Status::Incomplete(ref why) if why.contains("status.addresses")),
            "{:?}",
            status_of(&bare)
        );
    }

    #[test]
    fn a_node_announcing_vpc_pod_ranges_is_a_vpc_mode_peer() {
        let mut vpc_node = ready("vpc-a", 7, "10.0.0.15", "10.99.0.0/24");
        vpc_node["metadata"]["annotations"][VPC_POD_RANGES_ANNOTATION] =
            "10.0.1.37/32, 10.0.1.16/28".into();
        match status_of(&vpc_node) {
            Status::Peer(p) => {
                assert_eq!(p.kind, PeerKind::Vpc);
                assert_eq!(
                    p.pod_cidrs_text(),
                    "10.0.1.16/28,10.0.1.37/32",
                    "spec.podCIDR ignored"
                );
            }
            other => panic!("{other:?}"),
        }
        let mut sized = vpc_node.clone();
        sized["metadata"]["annotations"][OVERLAY_MTU_ANNOTATION] = "1350".into();
        assert!(matches!(status_of(&sized), Status::Peer(p) if p.mtu == Some(1350)));
        for bad_mtu in ["big", "100"] {
            sized["metadata"]["annotations"][OVERLAY_MTU_ANNOTATION] = bad_mtu.into();
            assert!(
                matches!(status_of(&sized), Status::Invalid(ref why) if why.contains(bad_mtu)),
                "{bad_mtu}: {:?}",
                status_of(&sized)
            );
        }
        let mut empty = vpc_node.clone();
        empty["metadata"]["annotations"][VPC_POD_RANGES_ANNOTATION] = "".into();
        assert!(matches!(status_of(&empty), Status::Peer(p) if p.pod_cidrs.is_empty()));
        let mut bad = vpc_node.clone();
        bad["metadata"]["annotations"][VPC_POD_RANGES_ANNOTATION] = "10.0.1.0/33".into();
        assert!(
            matches!(status_of(&bad), Status::Invalid(ref why) if why.contains("10.0.1.0/33")),
            "{:?}",
            status_of(&bad)
        );

        // A range inside an overlay node's pod CIDR loses to the smaller name.
        let mut clash = ready("zz-vpc", 8, "10.0.0.16", "10.98.0.0/24");
        clash["metadata"]["annotations"][VPC_POD_RANGES_ANNOTATION] = "10.244.2.9/32".into();
        let mut store = NodeStore::default();
        for n in [
            ready("n1", 1, "192.168.0.1", "10.244.1.0/24"),
            ready("n2", 2, "192.168.0.2", "10.244.2.0/24"),
            vpc_node,
            clash,
        ] {
            store.apply(&serde_json::from_value(n).unwrap());
        }
        let peers = store.peers("n1", Some("192.168.0.1".parse().unwrap()));
        let names: Vec<&str> = peers.keys().map(String::as_str).collect();
        assert_eq!(names, ["n2", "vpc-a"]);
    }
}
