//! Reports computed from what the pool controller last saw and the datastore holds now: pure
//! functions over their inputs, so unit tests check them without a node.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use vpc_cni_cloud::{EniId, NodeIdentity};

use super::reports::{AddressRow, EniRow, PodRow, PrefixRow, SlotStatus, VpcPool};
use crate::store::{AddressState, Assignment};
use crate::vpc::math::{self, Limits, PoolConfig, PREFIX_SIZE};
use crate::vpc::Seen;

/// Where an address stands in the datastore now (`None`: not in the pool, nobody holds it).
pub type StateOf<'a> = &'a dyn Fn(Ipv4Addr) -> Option<AddressState>;

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn status(state: Option<AddressState>) -> SlotStatus {
    match state {
        Some(AddressState::Free) => SlotStatus::Free,
        Some(AddressState::Assigned) => SlotStatus::Assigned,
        Some(AddressState::Cooling { .. }) => SlotStatus::Cooling,
        None => SlotStatus::Unavailable,
    }
}

/// The controller's limits and targets, as the pool math sees them.
#[derive(Debug, Clone, Copy)]
pub struct PoolShape<'a> {
    pub node: &'a NodeIdentity,
    pub limits: Limits,
    pub config: PoolConfig,
    pub max_pods: u32,
}

/// The ENI side of the pool: managed ENIs, the caps, the /28s and how many are wholly free.
#[must_use]
pub fn vpc_pool(seen: &Seen, shape: &PoolShape<'_>, state: StateOf<'_>) -> VpcPool {
    let unmanaged: HashSet<&EniId> = seen.unmanaged.iter().collect();
    let managed: Vec<_> = seen
        .enis
        .iter()
        .filter(|e| !unmanaged.contains(&e.eni_id))
        .collect();
    let prefix_mode = shape.config.prefix_mode(&shape.limits);
    let per_eni = math::per_eni(&shape.limits) * if prefix_mode { PREFIX_SIZE } else { 1 };
    let max_enis = shape
        .config
        .max_enis(&shape.limits)
        .saturating_sub(count(unmanaged.len()));
    let slash_28s: Vec<_> = managed
        .iter()
        .flat_map(|e| e.prefixes.iter())
        .filter(|p| p.size() == u64::from(PREFIX_SIZE))
        .collect();
    let free_prefixes = slash_28s
        .iter()
        .filter(|p| {
            p.addresses()
                .all(|ip| matches!(state(ip), Some(AddressState::Free)))
        })
        .count();
    VpcPool {
        instance_id: shape.node.instance_id.clone(),
        instance_type: shape.node.instance_type.clone(),
        enis: count(managed.len()),
        unmanaged_enis: count(unmanaged.len()),
        unwired_enis: count(seen.unwired.len()),
        max_enis,
        addresses_per_eni: per_eni,
        ip_max: max_enis.saturating_mul(per_eni),
        prefix_mode,
        prefixes: count(slash_28s.len()),
        free_prefixes: count(free_prefixes),
        max_pods: shape.max_pods,
        observed_at_ms: seen.at_ms,
    }
}

/// Every attached ENI with the state of each of its addresses; `holder` names the pod holding
/// an address.
#[must_use]
pub fn eni_rows(
    seen: &Seen,
    state: StateOf<'_>,
    holder: &dyn Fn(Ipv4Addr) -> Option<String>,
) -> Vec<EniRow> {
    let unmanaged: HashSet<&EniId> = seen.unmanaged.iter().collect();
    seen.enis
        .iter()
        .map(|e| EniRow {
            id: e.eni_id.to_string(),
            device_number: e.device_number,
            mac: e.mac.to_string(),
            subnet_id: e.subnet_id.to_string(),
            subnet_cidr: e.subnet_cidr.to_string(),
            primary_ip: e
                .addresses
                .first()
                .map(ToString::to_string)
                .unwrap_or_default(),
            managed: !unmanaged.contains(&e.eni_id),
            wired: !seen.unwired.contains(&e.device_number),
            addresses: e
                .addresses
                .iter()
                .skip(1)
                .map(|&ip| AddressRow {
                    ip: ip.to_string(),
                    state: status(state(ip)),
                    pod: holder(ip),
                })
                .collect(),
            prefixes: e
                .prefixes
                .iter()
                .map(|p| {
                    let mut row = PrefixRow {
                        prefix: p.to_string(),
                        free: 0,
                        assigned: 0,
                        cooling: 0,
                    };
                    for ip in p.addresses() {
                        match status(state(ip)) {
                            SlotStatus::Free => row.free += 1,
                            SlotStatus::Assigned => row.assigned += 1,
                            SlotStatus::Cooling => row.cooling += 1,
                            SlotStatus::Unavailable => {}
                        }
                    }
                    row
                })
                .collect(),
        })
        .collect()
}

/// `namespace/name` of an assignment's pod, or its container id when the runtime named none.
#[must_use]
pub fn pod_name(a: &Assignment) -> String {
    if a.pod.pod_name.is_empty() {
        a.key.container_id.clone()
    } else {
        format!("{}/{}", a.pod.pod_namespace, a.pod.pod_name)
    }
}

/// Every assignment, ordered by pod.
#[must_use]
pub fn pod_rows<'a>(assignments: impl Iterator<Item = &'a Assignment>) -> Vec<PodRow> {
    let mut rows: Vec<PodRow> = assignments
        .map(|a| PodRow {
            namespace: a.pod.pod_namespace.clone(),
            name: a.pod.pod_name.clone(),
            container_id: a.key.container_id.clone(),
            ifname: a.key.ifname.clone(),
            network: a.pod.network_name.clone(),
            ip: a.ip.to_string(),
            device_number: a.device_number,
            route_table: a.route_table,
            host_veth: a.pod.host_veth.clone(),
            assigned_at_ms: a.assigned_at_ms,
        })
        .collect();
    rows.sort_by(|x, y| {
        (&x.namespace, &x.name, &x.container_id, &x.ifname).cmp(&(
            &y.namespace,
            &y.name,
            &y.container_id,
            &y.ifname,
        ))
    });
    rows
}

/// Address -> the pod holding it, for [`eni_rows`].
#[must_use]
pub fn holders<'a>(
    assignments: impl Iterator<Item = &'a Assignment>,
) -> BTreeMap<Ipv4Addr, String> {
    assignments.map(|a| (a.ip, pod_name(a))).collect()
}

#[cfg(test)]
#[path = "figures_tests.rs"]
mod tests;
