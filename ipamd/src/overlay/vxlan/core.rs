//! What the overlay should look like in the kernel, computed without touching it: the device
//! settings, the entries each peer needs, and the difference between that and what the
//! kernel holds.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::error::IpamdError;
use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};

/// Name of the overlay device; one per node.
pub const DEVICE_NAME: &str = "vxlan.vpc";
/// Default VXLAN network identifier.
pub const DEFAULT_VNI: u32 = 1;
/// Default UDP port: the Linux default (4789 is the IANA one, for interop).
pub const DEFAULT_PORT: u16 = 8472;
/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
pub const VXLAN_OVERHEAD: u32 = 50;
/// Protocol number on the routes we add, so that ours are recognisable on a device we do not
/// own (direct routes sit on the underlay interface).
pub const ROUTE_PROTOCOL: u8 = 0x56;

/// Smallest device MTU IPv4 allows.
const MIN_IPV4_MTU: u32 = 68;

/// Another node of the overlay, as the peer sources report it.
pub use crate::overlay::peers::Peer;

/// The VTEP MAC of the node with this underlay address: locally administered, so it never
/// collides with a vendor MAC, and derivable by every peer without an exchange.
#[must_use]
pub fn vtep_mac(underlay: Ipv4Addr) -> MacAddr {
    let [a, b, c, d] = underlay.octets();
    MacAddr([0x0e, 0x56, a, b, c, d])
}

/// `VXLAN_VNI` must fit VXLAN's 24 bits and not be 0; `VXLAN_PORT` must be a UDP port.
pub fn check_vni_and_port(vni: u32, port: u16) -> Result<(), IpamdError> {
    if vni == 0 || vni >= 1 << 24 {
        return Err(IpamdError::Config {
            variable: "VXLAN_VNI",
            reason: format!("{vni} is outside 1..=16777215"),
        });
    }
    if port == 0 {
        return Err(IpamdError::Config {
            variable: "VXLAN_PORT",
            reason: "port 0 is not a UDP port".to_owned(),
        });
    }
    Ok(())
}

/// This node's side of the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySpec {
    pub vni: u32,
    pub port: u16,
    pub underlay_iface: String,
    pub underlay_ip: Ipv4Addr,
    pub underlay_mtu: u32,
    /// `None` on a VPC-mode node of a hybrid cluster: its pods hold VPC addresses, and the
    /// device carries no address of its own.
    pub own_pod_cidr: Option<Ipv4Cidr>,
    /// Peers on `underlay_subnet` are reached by a plain route through the underlay.
    pub direct_routing: bool,
    pub underlay_subnet: Option<Ipv4Cidr>,
}

impl OverlaySpec {
    /// MTU of the device, and the MTU pods get: the encapsulation must fit the underlay.
    #[must_use]
    pub fn device_mtu(&self) -> u32 {
        self.underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
    }

    /// The MAC the device carries, which every peer derives on its own.
    #[must_use]
    pub fn own_vtep_mac(&self) -> MacAddr {
        vtep_mac(self.underlay_ip)
    }

    /// Rejects settings the kernel would take but that cannot carry traffic.
    pub fn validate(&self) -> Result<(), IpamdError> {
        check_vni_and_port(self.vni, self.port)?;
        if self.device_mtu() < MIN_IPV4_MTU {
            return Err(IpamdError::Config {
                variable: "VXLAN_UNDERLAY_IFACE",
                reason: format!(
                    "underlay {} has MTU {}, too small for {VXLAN_OVERHEAD} bytes of VXLAN headers",
                    self.underlay_iface, self.underlay_mtu
                ),
            });
        }
        Ok(())
    }

    fn is_direct(&self, peer: &Peer) -> bool {
        self.direct_routing
            && self
                .underlay_subnet
                .is_some_and(|subnet| subnet.contains(peer.underlay))
    }
}

/// A permanent ARP entry on the device: the peer's gateway address -> its VTEP MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighbourEntry {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
}

/// A forwarding entry on the device: frames to this VTEP MAC go to this underlay address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FdbEntry {
    pub mac: MacAddr,
    pub dst: Ipv4Addr,
}

/// How a peer's pod CIDR is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `via <peer network address> dev vxlan.vpc onlink`.
    Overlay,
    /// `via <peer underlay>` on the underlay interface (direct routing).
    Direct,
}

/// A route to a peer's pod CIDR in the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteEntry {
    pub dst: (Ipv4Addr, u8),
    pub gateway: Ipv4Addr,
    pub kind: RouteKind,
    /// The route's MTU, when the path to the peer carries less than the device (a VPC node
    /// behind a link smaller than this node's underlay): a pod's full-size packet is then
    /// refused with "fragmentation needed" here, so the pod sizes its packets for the path,
    /// instead of the encapsulated packet being fragmented on the way.
    pub mtu: Option<u32>,
}

impl std::fmt::Display for RouteEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (net, len) = self.dst;
        match self.kind {
            RouteKind::Overlay => write!(
                f,
                "{net}/{len} via {} dev {DEVICE_NAME} onlink",
                self.gateway
            )?,
            RouteKind::Direct => write!(f, "{net}/{len} via {}", self.gateway)?,
        }
        match self.mtu {
            Some(mtu) => write!(f, " mtu {mtu}"),
            None => Ok(()),
        }
    }
}

/// The entries one peer needs: a route per pod CIDR, and for a peer behind the device one
/// neighbour and one FDB entry. A directly routed peer needs only its routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntries {
    pub neighbour: Option<NeighbourEntry>,
    pub fdb: Option<FdbEntry>,
    pub routes: Vec<RouteEntry>,
}

/// What `peer` needs on this node.
#[must_use]
pub fn peer_entries(spec: &OverlaySpec, peer: &Peer) -> PeerEntries {
    let dsts = peer.pod_cidrs.iter().map(|c| (c.network, c.prefix_len));
    if spec.is_direct(peer) {
        return PeerEntries {
            neighbour: None,
            fdb: None,
            routes: dsts
                .map(|dst| RouteEntry {
                    dst,
                    gateway: peer.underlay,
                    kind: RouteKind::Direct,
                    mtu: None,
                })
                .collect(),
        };
    }
    let mac = vtep_mac(peer.underlay);
    let gateway = peer.gateway();
    let mtu = peer.mtu.filter(|&mtu| mtu < spec.device_mtu());
    PeerEntries {
        neighbour: Some(NeighbourEntry { ip: gateway, mac }),
        fdb: Some(FdbEntry {
            mac,
            dst: peer.underlay,
        }),
        routes: dsts
            .map(|dst| RouteEntry {
                dst,
                gateway,
                kind: RouteKind::Overlay,
                mtu,
            })
            .collect(),
    }
}

/// Entries for every usable peer. This node itself, and a second peer claiming a pod CIDR,
/// underlay address or next hop already taken, are left out: their entries would clash with
/// the first.
#[must_use]
pub fn desired_entries(spec: &OverlaySpec, peers: &[Peer]) -> Vec<PeerEntries> {
    let mut cidrs: HashSet<(Ipv4Addr, u8)> = spec
        .own_pod_cidr
        .iter()
        .map(|own| (own.network, own.prefix_len))
        .collect();
    let mut underlays = HashSet::from([spec.underlay_ip]);
    let mut gateways = HashSet::new();
    let mut out = Vec::with_capacity(peers.len());
    for peer in peers {
        let own: Vec<(Ipv4Addr, u8)> = peer
            .pod_cidrs
            .iter()
            .map(|c| (c.network, c.prefix_len))
            .collect();
        if own.iter().any(|c| cidrs.contains(c))
            || underlays.contains(&peer.underlay)
            || gateways.contains(&peer.gateway())
        {
            tracing::warn!(
                peer = %peer.name,
                underlay = %peer.underlay,
                pod_cidrs = %peer.pod_cidrs_text(),
                "peer skipped: a pod CIDR or its underlay address is this node's or another \
                 peer's"
            );
            continue;
        }
        cidrs.extend(own);
        underlays.insert(peer.underlay);
        gateways.insert(peer.gateway());
        out.push(peer_entries(spec, peer));
    }
    out
}

/// Our entries as the kernel holds them. A route is `None` when it is ours (on the device) but
/// not of a shape we would add: it can only be stale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub neighbours: Vec<NeighbourEntry>,
    pub fdb: Vec<FdbEntry>,
    pub routes: Vec<Option<RouteEntry>>,
}

/// The work reconcile does: indexes into [`Observed`] to delete, then entries to add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub remove_routes: Vec<usize>,
    pub remove_fdb: Vec<usize>,
    pub remove_neighbours: Vec<usize>,
    pub add_neighbours: Vec<NeighbourEntry>,
    pub add_fdb: Vec<FdbEntry>,
    pub add_routes: Vec<RouteEntry>,
}

/// How many entries of each kind changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub neighbours: usize,
    pub fdb: usize,
    pub routes: usize,
}

impl Counts {
    #[must_use]
    pub fn total(&self) -> usize {
        self.neighbours + self.fdb + self.routes
    }
}

/// What a reconcile changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub added: Counts,
    pub removed: Counts,
}

impl ReconcileReport {
    #[must_use]
    pub fn is_unchanged(&self) -> bool {
        self.added.total() == 0 && self.removed.total() == 0
    }
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.neighbours += other.neighbours;
        self.fdb += other.fdb;
        self.routes += other.routes;
    }
}

impl std::ops::AddAssign for ReconcileReport {
    fn add_assign(&mut self, other: Self) {
        self.added += other.added;
        self.removed += other.removed;
    }
}

impl Plan {
    /// Removals first (a stale route may hold the destination a new one needs), then additions
    /// in neighbour, FDB, route order so that no route is usable before its next hop resolves.
    #[must_use]
    pub fn new(desired: &[PeerEntries], observed: &Observed) -> Self {
        // Neighbours and FDB entries are unique in the kernel (one per address, or MAC and
        // remote, on a device): an entry a dump lists twice is one entry listed twice (the
        // neighbour table is shared by every namespace and may change under the dump), so it
        // is removed at most once and never because it repeats.
        fn split<T: Copy + Eq + std::hash::Hash>(
            want: impl Iterator<Item = T>,
            have: &[T],
        ) -> (Vec<usize>, Vec<T>) {
            let want: Vec<T> = want.collect();
            let want_set: HashSet<T> = want.iter().copied().collect();
            let mut seen = HashSet::new();
            let remove = have
                .iter()
                .enumerate()
                .filter(|(_, e)| seen.insert(**e) && !want_set.contains(e))
                .map(|(i, _)| i)
                .collect();
            let add = want.into_iter().filter(|e| !seen.contains(e)).collect();
            (remove, add)
        }
        let (remove_neighbours, add_neighbours) = split(
            desired.iter().filter_map(|p| p.neighbour),
            &observed.neighbours,
        );
        let (remove_fdb, add_fdb) = split(desired.iter().filter_map(|p| p.fdb), &observed.fdb);

        let want_routes: HashSet<RouteEntry> = desired
            .iter()
            .flat_map(|p| p.routes.iter().copied())
            .collect();
        let mut seen = HashSet::new();
        let remove_routes = observed
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| match r {
                Some(r) => !want_routes.contains(r) || !seen.insert(*r),
                None => true,
            })
            .map(|(i, _)| i)
            .collect();
        let add_routes = desired
            .iter()
            .flat_map(|p| p.routes.iter().copied())
            .filter(|r| !seen.contains(r))
            .collect();
        Self {
            remove_routes,
            remove_fdb,
            remove_neighbours,
            add_neighbours,
            add_fdb,
            add_routes,
        }
    }

    /// The counts this plan will produce once applied.
    #[must_use]
    pub fn report(&self) -> ReconcileReport {
        ReconcileReport {
            added: Counts {
                neighbours: self.add_neighbours.len(),
                fdb: self.add_fdb.len(),
                routes: self.add_routes.len(),
            },
            removed: Counts {
                neighbours: self.remove_neighbours.len(),
                fdb: self.remove_fdb.len(),
                routes: self.remove_routes.len(),
            },
        }
    }
}
