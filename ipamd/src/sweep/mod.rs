//! The veth-presence sweep: an assignment whose pod's host veth is gone and
//! which is older than the grace period is released. This is how an address
//! whose DEL never reached ipamd (ipamd down, node crash mid-DEL) comes back.
//!
//! A pass has two steps. [`plan`] compares the assignments with one listing of
//! the node's links and picks candidates; it is cheap (one dump for every pod)
//! but a dump can miss a link (rtnetlink does not act on the kernel's
//! dump-interrupted flag), so a candidate is only a suspicion. [`confirm`]
//! looks each candidate's veth up by name, which no concurrent change can
//! hide, before anything is released.
//!
//! A host veth is named after the pod (namespace and name), so a StatefulSet
//! pod whose DEL was lost shares its name with its successor's live veth. The
//! kernel's `/32` route to that veth names the address it carries: the other
//! holders of the name are stale.

mod host;

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use vpc_cni_proto::time::{millis, now_ms};

use crate::error::IpamdError;
use crate::store::{Assignment, Datastore, Store};

pub use host::NodeHost;

/// What the sweep needs from the node's network namespace.
pub trait HostView: Send + Sync {
    /// Names of the host veths one listing of the links shows (may miss some).
    fn listed_veths(&self) -> BoxFuture<'_, Result<HashSet<String>, IpamdError>>;
    /// The index of the link called `name`, asked by name; `None` when there is none.
    fn veth_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<u32>, IpamdError>>;
    /// The addresses whose main-table `/32` route goes out of link `index`.
    fn routed_to(&self, index: u32) -> BoxFuture<'_, Result<HashSet<Ipv4Addr>, IpamdError>>;
    /// Removes `ip`'s policy rules and `/32` route; an error means some may remain.
    fn unwire(&self, ip: Ipv4Addr) -> BoxFuture<'_, Result<(), IpamdError>>;
}

/// The holders of one host veth name that the listing gave a reason to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub host_veth: String,
    /// Every assignment on this name, each with whether it is past the grace period.
    pub holders: Vec<(Assignment, bool)>,
}

/// Step one, pure: the names to look at. A name is a candidate when the listing lacks it and
/// one of its holders is past the grace period, or when several assignments share it and one
/// of them is past the grace period (a StatefulSet pod that lost its DEL).
#[must_use]
pub fn plan(ds: &Datastore, listed: &HashSet<String>, now: u64, grace_ms: u64) -> Vec<Candidate> {
    let mut by_veth: BTreeMap<&str, Vec<(Assignment, bool)>> = BTreeMap::new();
    for a in ds.assignments() {
        let last_add = ds.last_add_ms(&a.key).unwrap_or(a.assigned_at_ms);
        let old = now.saturating_sub(last_add) >= grace_ms;
        by_veth
            .entry(a.pod.host_veth.as_str())
            .or_default()
            .push((a.clone(), old));
    }
    by_veth
        .into_iter()
        .filter(|(veth, holders)| {
            holders.iter().any(|(_, old)| *old) && (!listed.contains(*veth) || holders.len() > 1)
        })
        .map(|(veth, holders)| Candidate {
            host_veth: veth.to_owned(),
            holders,
        })
        .collect()
}

/// Step two: the assignments of `candidate` that are stale, by what the kernel shows now.
///
/// - The veth is gone (by name): every holder past the grace period.
/// - It exists and one assignment holds the name: none (the listing missed it).
/// - It exists and several do: the ones past the grace period that its `/32` route does not
///   point at, provided the route points at exactly one holder; otherwise the owner cannot
///   be told (the successor may be mid-wiring) and the next pass decides.
pub async fn confirm(
    host: &dyn HostView,
    candidate: &Candidate,
) -> Result<Vec<Assignment>, IpamdError> {
    let old = || {
        candidate
            .holders
            .iter()
            .filter(|(_, old)| *old)
            .map(|(a, _)| a)
    };
    let Some(index) = host.veth_index(&candidate.host_veth).await? else {
        return Ok(old().cloned().collect());
    };
    if candidate.holders.len() < 2 {
        debug!(veth = %candidate.host_veth, "the link listing missed a live host veth");
        return Ok(Vec::new());
    }
    let routed = host.routed_to(index).await?;
    let owners: Vec<&Assignment> = candidate
        .holders
        .iter()
        .map(|(a, _)| a)
        .filter(|a| routed.contains(&a.ip))
        .collect();
    let [owner] = owners.as_slice() else {
        debug!(
            veth = %candidate.host_veth, routed_holders = owners.len(),
            "several assignments share a host veth and its route names no single one; waiting"
        );
        return Ok(Vec::new());
    };
    Ok(old().filter(|a| a.key != owner.key).cloned().collect())
}

/// One pass at time `now` (unix ms); returns how many assignments were released.
pub async fn sweep_with(
    store: &Store,
    grace: Duration,
    now: u64,
    host: &dyn HostView,
) -> Result<usize, IpamdError> {
    let listed = host.listed_veths().await?;
    let candidates = store.read(|ds| plan(ds, &listed, now, millis(grace)));
    let mut release = Vec::new();
    for candidate in &candidates {
        let stale = match confirm(host, candidate).await {
            Ok(stale) => stale,
            Err(e) => {
                warn!(veth = %candidate.host_veth, error = %e, "checking a host veth failed");
                continue;
            }
        };
        for a in stale {
            // Rules left behind would point the address's next holder's traffic at a dead
            // veth: the address goes back only once they are gone.
            if let Err(e) = host.unwire(a.ip).await {
                warn!(
                    ip = %a.ip, error = %e,
                    "removing rules of a vanished pod failed; keeping its address until the next sweep"
                );
                continue;
            }
            info!(
                container = %a.key.container_id, ip = %a.ip, veth = %a.pod.host_veth,
                "releasing address of a pod whose host veth is gone or belongs to another pod"
            );
            release.push(a.key);
        }
    }
    if release.is_empty() {
        return Ok(0);
    }
    let released = store.release_many(release, now).await?;
    Ok(released.len())
}

/// One pass in the calling thread's network namespace; returns how many were released.
pub async fn sweep_once(store: &Store, grace: Duration) -> Result<usize, IpamdError> {
    let host = NodeHost::connect()?;
    sweep_with(store, grace, now_ms(), &host).await
}

/// Runs `sweep_once` every `interval` until `shutdown` flips to true.
pub async fn run_sweeper(
    store: Arc<Store>,
    grace: Duration,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = sweep_once(&store, grace).await {
                    warn!(error = %e, "veth sweep failed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod tests;
