//! The node's ENIs as one consistent picture: IMDS for what is attached and
//! what it holds, EC2 tags (cached) for which ENIs are ours to manage, the
//! datastore for which addresses pods hold or are cooling.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use vpc_cni_cloud::{EniId, ImdsEni};
use vpc_cni_proto::eni_route_table;
use vpc_cni_proto::net::Ipv4Cidr;

use super::math::{EniView, PrefixView, Slot, SlotState, PREFIX_SIZE};
use crate::store::{AddressState, PoolAddress, Store};

/// What EC2 told us about an attached ENI; IMDS does not show tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EniMeta {
    pub no_manage: bool,
    pub attachment_id: Option<String>,
    /// From our creation tag (unix ms); `None` for ENIs we did not create.
    pub created_ms: Option<u64>,
}

/// One pass's picture of the node.
#[derive(Debug, Clone, Default)]
pub struct NodeSnapshot {
    /// Attached ENIs as IMDS shows them, by device number.
    pub imds: Vec<ImdsEni>,
    /// The same ENIs for the pool math (ENIs of unknown ownership left out).
    pub views: Vec<EniView>,
    /// Every address pods may get now.
    pub pool: Vec<PoolAddress>,
    /// Delegated prefixes that are not /28s: never handed to pods, left out of the pool and
    /// the pool math, and reported by the controller.
    pub unusable_prefixes: BTreeSet<Ipv4Cidr>,
    /// Device numbers of attached ENIs the node datapath could not wire yet (no link with
    /// their MAC): their addresses are left out of the pool until it can.
    pub unwired: Vec<u32>,
    /// When the first resting address becomes idle (unix ms): the pool may shrink then.
    pub resting_until: Option<u64>,
}

impl NodeSnapshot {
    pub fn primary(&self) -> Option<&ImdsEni> {
        self.imds.iter().find(|e| e.device_number == 0)
    }

    pub fn view(&self, eni_id: &EniId) -> Option<&EniView> {
        self.views.iter().find(|v| &v.id == eni_id)
    }
}

/// The 16 addresses of a delegated /28; `None` for a prefix of any other length (EC2 only
/// delegates /28s, so such a prefix is not ours to hand out).
pub(crate) fn prefix_addresses(prefix: &Ipv4Cidr) -> Option<Vec<Ipv4Addr>> {
    (u64::from(PREFIX_SIZE) == prefix.size()).then(|| prefix.addresses().collect())
}

/// Pods on a secondary ENI at device N use its table; the primary ENI's pods use main (0).
pub(crate) fn route_table(device_number: u32) -> u32 {
    if device_number == 0 {
        0
    } else {
        eni_route_table(device_number)
    }
}

/// Builds the snapshot. `meta` must cover every ENI that is to be managed;
/// `quarantined` addresses (just released, IMDS may still list them) and
/// ENIs (just detached) are left out of the pool. A free address that came back from a pod
/// less than `rest_ms` ago is [`SlotState::Resting`].
pub(crate) fn build(
    imds: Vec<ImdsEni>,
    meta: &HashMap<EniId, EniMeta>,
    quarantined_ips: &HashSet<Ipv4Addr>,
    quarantined_enis: &HashSet<EniId>,
    store: &Store,
    (now_ms, rest_ms): (u64, u64),
) -> NodeSnapshot {
    let mut imds: Vec<ImdsEni> = imds
        .into_iter()
        .filter(|e| !quarantined_enis.contains(&e.eni_id))
        .collect();
    imds.sort_by_key(|e| e.device_number);

    let mut pool = Vec::new();
    let mut unusable_prefixes = BTreeSet::new();
    let mut skeleton = Vec::new();
    for e in &imds {
        let Some(m) = meta.get(&e.eni_id) else {
            continue;
        };
        let no_manage = m.no_manage;
        let addr = |ip: Ipv4Addr| PoolAddress {
            ip,
            route_table: route_table(e.device_number),
            device_number: e.device_number,
        };
        let secondary: Vec<Ipv4Addr> = e
            .addresses
            .iter()
            .skip(1)
            .filter(|ip| !quarantined_ips.contains(ip))
            .copied()
            .collect();
        let mut prefixes: Vec<(Ipv4Cidr, Vec<Ipv4Addr>)> = Vec::new();
        for prefix in &e.prefixes {
            match prefix_addresses(prefix) {
                Some(ips) if !ips.iter().any(|ip| quarantined_ips.contains(ip)) => {
                    prefixes.push((*prefix, ips));
                }
                Some(_) => {}
                None => {
                    unusable_prefixes.insert(*prefix);
                }
            }
        }
        if !no_manage {
            pool.extend(secondary.iter().copied().map(addr));
            pool.extend(
                prefixes
                    .iter()
                    .flat_map(|(_, ips)| ips.iter().copied().map(addr)),
            );
        }
        skeleton.push((e, no_manage, secondary, prefixes));
    }

    let resting_until = std::cell::Cell::new(None::<u64>);
    let views = store.read(|ds| {
        let slot = |ip: Ipv4Addr| Slot {
            ip,
            state: match ds.address_state(ip, now_ms) {
                Some(AddressState::Assigned) => SlotState::Assigned,
                Some(AddressState::Cooling { .. }) => SlotState::Cooling,
                Some(AddressState::Free) | None => {
                    match ds.free_since(ip).map(|t| t.saturating_add(rest_ms)) {
                        Some(until) if until > now_ms => {
                            let first = resting_until.get().map_or(until, |u| u.min(until));
                            resting_until.set(Some(first));
                            SlotState::Resting
                        }
                        _ => SlotState::Free,
                    }
                }
            },
        };
        skeleton
            .iter()
            .map(|(e, no_manage, secondary, prefixes)| EniView {
                id: e.eni_id.clone(),
                device_index: e.device_number,
                primary: e.device_number == 0,
                no_manage: *no_manage,
                secondary: secondary.iter().copied().map(slot).collect(),
                prefixes: prefixes
                    .iter()
                    .map(|(p, ips)| PrefixView {
                        prefix: *p,
                        slots: ips.iter().copied().map(slot).collect(),
                    })
                    .collect(),
                subnet_full: false,
            })
            .collect()
    });
    NodeSnapshot {
        imds,
        views,
        pool,
        unusable_prefixes,
        unwired: Vec::new(),
        resting_until: resting_until.get(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn only_slash_28_prefixes_expand() {
        let ips = prefix_addresses(&"10.0.0.16/28".parse().unwrap()).unwrap();
        assert_eq!(ips.len(), 16);
        assert_eq!(ips[0], Ipv4Addr::new(10, 0, 0, 16));
        assert_eq!(ips[15], Ipv4Addr::new(10, 0, 0, 31));
        assert_eq!(prefix_addresses(&"10.0.0.0/27".parse().unwrap()), None);
    }

    #[test]
    fn tables_follow_device_numbers() {
        assert_eq!(route_table(0), 0);
        assert_eq!(route_table(1), 2);
        assert_eq!(route_table(7), 8);
    }
}
