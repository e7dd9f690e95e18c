//! The VXLAN overlay between nodes without a VPC fabric (DESIGN.md "Node wiring, overlay
//! mode"): one `vxlan.vpc` device per node, and per peer a permanent neighbour, an FDB entry
//! and an onlink route (or a plain route through the underlay with direct routing).
//!
//! [`core`] computes what the kernel should hold without touching it; [`Overlay`] applies it
//! over one rtnetlink connection in the netns of the thread that created it.

pub mod core;
mod device;
mod entries;

#[cfg(test)]
pub(crate) mod tests;

pub use self::core::{
    desired_entries, peer_entries, vtep_mac, Counts, FdbEntry, NeighbourEntry, OverlaySpec, Peer,
    PeerEntries, Plan, ReconcileReport, RouteEntry, RouteKind, DEFAULT_PORT, DEFAULT_VNI,
    DEVICE_NAME, ROUTE_PROTOCOL, VXLAN_OVERHEAD,
};
pub use self::device::{Device, DeviceChange};
use self::entries::Links;
use crate::error::IpamdError;
use crate::kernel::Connection;

/// Observe-and-apply rounds of one reconcile at most (see [`Overlay::reconcile`]).
const RECONCILE_ROUNDS: usize = 3;

/// The overlay device of this node and the entries for its peers.
pub struct Overlay {
    conn: Connection,
    spec: OverlaySpec,
    links: Links,
}

impl Overlay {
    /// Creates, reuses or recreates `vxlan.vpc` in the calling thread's netns (see
    /// [`device`]); must run inside a tokio runtime, which serves the netlink connection.
    pub async fn ensure_device(spec: OverlaySpec) -> Result<(Self, DeviceChange), IpamdError> {
        let conn = Connection::open()?;
        let device = device::ensure_device(conn.handle(), &spec).await?;
        let overlay = Self {
            conn,
            spec,
            links: Links {
                device: device.index,
                underlay: device.underlay_index,
            },
        };
        Ok((overlay, device.change))
    }

    /// Checks the device again and puts right what someone changed: a deleted or replaced
    /// device is created anew (losing its entries, which the next reconcile restores). First
    /// opens the netlink connection again if it has ended: every peer change and every resync
    /// starts here, so a dead connection costs at most the one apply it broke.
    pub async fn refresh_device(&mut self) -> Result<DeviceChange, IpamdError> {
        self.conn.reopen_if_ended()?;
        let device = device::ensure_device(self.conn.handle(), &self.spec).await?;
        self.links = Links {
            device: device.index,
            underlay: device.underlay_index,
        };
        Ok(device.change)
    }

    /// The netlink connection the overlay writes through.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    #[must_use]
    pub fn spec(&self) -> &OverlaySpec {
        &self.spec
    }

    /// Link index of `vxlan.vpc`.
    #[must_use]
    pub fn device_index(&self) -> u32 {
        self.links.device
    }

    /// Makes the kernel hold exactly the entries `peers` need: ours that no peer needs are
    /// removed, missing ones added, entries on other devices left alone. A second run with the
    /// same peers changes nothing.
    ///
    /// A round that changed something is followed by another look: a dump of the neighbour
    /// table (shared by every namespace) that other namespaces change meanwhile can skip an
    /// entry, and a stale entry it skipped would otherwise stay until the next reconcile.
    /// An entry it skipped that is wanted is simply rewritten (harmless).
    pub async fn reconcile(&self, peers: &[Peer]) -> Result<ReconcileReport, IpamdError> {
        let desired = desired_entries(&self.spec, peers);
        let mut report = ReconcileReport::default();
        for _ in 0..RECONCILE_ROUNDS {
            let round = self.reconcile_round(&desired).await?;
            if round.is_unchanged() {
                break;
            }
            report += round;
        }
        if !report.is_unchanged() {
            tracing::info!(?report, peers = peers.len(), "VXLAN overlay reconciled");
        }
        Ok(report)
    }

    /// One observe, plan and apply.
    async fn reconcile_round(
        &self,
        desired: &[PeerEntries],
    ) -> Result<ReconcileReport, IpamdError> {
        let (observed, raw_routes) = entries::observe(self.conn.handle(), self.links).await?;
        let plan = Plan::new(desired, &observed);

        // Reverse order of addition: routes, FDB, neighbours.
        for (i, route) in raw_routes.into_iter().enumerate() {
            if plan.remove_routes.contains(&i) {
                entries::remove_raw_route(self.conn.handle(), route).await?;
            }
        }
        for &i in &plan.remove_fdb {
            entries::remove_fdb(self.conn.handle(), self.links, observed.fdb[i]).await?;
        }
        for &i in &plan.remove_neighbours {
            entries::remove_neighbour(self.conn.handle(), self.links, observed.neighbours[i])
                .await?;
        }

        for &entry in &plan.add_neighbours {
            entries::add_neighbour(self.conn.handle(), self.links, entry).await?;
        }
        for &entry in &plan.add_fdb {
            entries::add_fdb(self.conn.handle(), self.links, entry).await?;
        }
        for &entry in &plan.add_routes {
            entries::add_route(self.conn.handle(), self.links, entry).await?;
        }
        Ok(plan.report())
    }

    /// Programs one peer: neighbour, FDB entry, then the routes that rely on both. Adding a
    /// peer already present rewrites the same entries.
    pub async fn add_peer(&self, peer: &Peer) -> Result<(), IpamdError> {
        let want = peer_entries(&self.spec, peer);
        if let Some(n) = want.neighbour {
            entries::add_neighbour(self.conn.handle(), self.links, n).await?;
        }
        if let Some(f) = want.fdb {
            entries::add_fdb(self.conn.handle(), self.links, f).await?;
        }
        for route in want.routes {
            entries::add_route(self.conn.handle(), self.links, route).await?;
        }
        Ok(())
    }

    /// Removes one peer's entries in the reverse order; entries already gone are no error.
    pub async fn remove_peer(&self, peer: &Peer) -> Result<(), IpamdError> {
        let want = peer_entries(&self.spec, peer);
        for route in want.routes {
            entries::remove_route(self.conn.handle(), self.links, route).await?;
        }
        if let Some(f) = want.fdb {
            entries::remove_fdb(self.conn.handle(), self.links, f).await?;
        }
        if let Some(n) = want.neighbour {
            entries::remove_neighbour(self.conn.handle(), self.links, n).await?;
        }
        Ok(())
    }
}
