//! The desired node state of VPC mode, computed from the ENIs and settings: links, the
//! per-ENI route tables, main-table routes to drop, policy rules, the nftables ruleset and
//! sysctls. Pure: the apply layer observes the links, calls [`NodeWiring::plan`] and makes
//! the kernel match the result.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};
use vpc_cni_proto::{eni_route_table, MAIN_TABLE, RULE_PRIORITY_CONNMARK};

use super::ruleset::{OverlayPods, SnatRuleset, CONNMARK};
use crate::error::IpamdError;
use crate::kernel::Sysctl;

/// Highest table ever treated as an ENI's, whatever the instance limit says: far below the
/// kernel's default (253), main (254) and local (255) tables.
const LAST_ENI_TABLE: u32 = 100;

/// `AWS_VPC_ENI_MTU`'s default.
pub const DEFAULT_ENI_MTU: u32 = 9001;

/// The ENI at device index 0; it routes through the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryEni {
    pub mac: MacAddr,
    /// The ENI's primary private address: the source of SNATed traffic.
    pub address: Ipv4Addr,
}

/// An ENI ipamd attached (device index >= 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryEni {
    pub mac: MacAddr,
    pub device_number: u32,
    /// The ENI's subnet; its gateway is the subnet's first host address (`.1`).
    pub subnet: Ipv4Cidr,
}

impl SecondaryEni {
    /// The VPC router of the subnet, as EC2 places it.
    #[must_use]
    pub fn gateway(&self) -> Ipv4Addr {
        vpc_cni_cloud::subnet_router(&self.subnet)
    }
}

/// Everything the node wiring depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpcNodeSpec {
    pub primary: PrimaryEni,
    pub secondaries: Vec<SecondaryEni>,
    pub vpc_cidrs: Vec<Ipv4Cidr>,
    /// `AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS`.
    pub exclude_snat_cidrs: Vec<Ipv4Cidr>,
    /// `AWS_VPC_K8S_CNI_EXTERNALSNAT`.
    pub external_snat: bool,
    /// `AWS_VPC_ENI_MTU`.
    pub eni_mtu: u32,
    /// The instance type's ENI limit. Route tables 2..=max_enis are ours (device indexes
    /// 1..max_enis): routes in them and pod rules pointing at them that no attached ENI
    /// accounts for are stale and removed.
    pub max_enis: u32,
    /// In a hybrid cluster, the overlay nodes' pods (see [`SnatRuleset::with_overlay`]).
    pub overlay: Option<OverlayPods>,
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLink {
    pub name: String,
    pub index: u32,
    pub mac: MacAddr,
}

/// An ENI link to bring up with the ENI MTU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPlan {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
}

/// A unicast route; without a gateway it has link scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    pub table: u32,
    pub dst: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
    pub dev: String,
    pub index: u32,
}

/// Formatted as `ip route show table <t>` prints it.
impl fmt::Display for RoutePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dst.prefix_len {
            0 => f.write_str("default")?,
            32 => write!(f, "{}", self.dst.network)?,
            _ => write!(f, "{}", self.dst)?,
        }
        match self.gateway {
            Some(gw) => write!(f, " via {gw} dev {}", self.dev),
            None => write!(f, " dev {} scope link", self.dev),
        }
    }
}

/// `fwmark <mark>/<mask> lookup <table>` at `priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulePlan {
    pub priority: u32,
    pub fwmark: u32,
    pub fwmask: u32,
    pub table: u32,
}

/// Formatted as `ip rule` prints it.
impl fmt::Display for RulePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = if self.table == MAIN_TABLE {
            "main".to_owned()
        } else {
            self.table.to_string()
        };
        write!(
            f,
            "{}:\tfrom all fwmark {:#x}/{:#x} lookup {table}",
            self.priority, self.fwmark, self.fwmask
        )
    }
}

/// The node's desired VPC-mode state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeWiring {
    /// Every ENI link, primary first.
    pub links: Vec<LinkPlan>,
    /// Contents of the secondary ENIs' tables, two routes per ENI (gateway, then default).
    pub routes: Vec<RoutePlan>,
    /// Tables that belong to ENI device indexes; anything in them not in `routes` goes.
    pub owned_tables: RangeInclusive<u32>,
    /// Subnet routes of secondary ENIs in main (put there by DHCP or an address); traffic
    /// of those subnets must not leave through an ENI that the source is not on.
    pub main_routes_to_remove: Vec<RoutePlan>,
    pub rules: Vec<RulePlan>,
    pub ruleset: SnatRuleset,
    pub sysctls: Vec<Sysctl>,
}

impl NodeWiring {
    /// Computes the desired state. `links` is what the kernel has: each ENI's link is found
    /// by its MAC, so a missing one (attached but not yet visible) fails the plan.
    pub fn plan(spec: &VpcNodeSpec, links: &[ObservedLink]) -> Result<Self, IpamdError> {
        let primary = find_link(links, spec.primary.mac, 0)?;
        let owned_tables = owned_tables(spec.max_enis);

        let mut secondaries: Vec<&SecondaryEni> = spec.secondaries.iter().collect();
        secondaries.sort_by_key(|eni| eni.device_number);
        for pair in secondaries.windows(2) {
            if pair[0].device_number == pair[1].device_number {
                return Err(IpamdError::Internal(format!(
                    "two ENIs at device index {}: {} and {}",
                    pair[0].device_number, pair[0].mac, pair[1].mac
                )));
            }
        }

        let mut wiring_links = vec![LinkPlan {
            name: primary.name.clone(),
            index: primary.index,
            mtu: spec.eni_mtu,
        }];
        let mut routes = Vec::new();
        let mut main_routes_to_remove = Vec::new();
        for eni in secondaries {
            let table = eni_route_table(eni.device_number);
            if eni.device_number == 0 || !owned_tables.contains(&table) {
                return Err(IpamdError::Internal(format!(
                    "ENI {} has device index {}, outside 1..={}",
                    eni.mac,
                    eni.device_number,
                    owned_tables.end() - 1
                )));
            }
            let link = find_link(links, eni.mac, eni.device_number)?;
            wiring_links.push(LinkPlan {
                name: link.name.clone(),
                index: link.index,
                mtu: spec.eni_mtu,
            });
            let gateway = eni.gateway();
            let route = |dst, gateway| RoutePlan {
                table,
                dst,
                gateway,
                dev: link.name.clone(),
                index: link.index,
            };
            routes.push(route(Ipv4Cidr::host(gateway), None));
            routes.push(route(Ipv4Cidr::DEFAULT, Some(gateway)));
            main_routes_to_remove.push(RoutePlan {
                table: MAIN_TABLE,
                ..route(eni.subnet, None)
            });
        }

        let rules = vec![RulePlan {
            priority: RULE_PRIORITY_CONNMARK,
            fwmark: CONNMARK,
            fwmask: CONNMARK,
            table: MAIN_TABLE,
        }];
        let ruleset = SnatRuleset::new(
            &primary.name,
            spec.primary.address,
            spec.vpc_cidrs
                .iter()
                .chain(&spec.exclude_snat_cidrs)
                .copied(),
            spec.external_snat,
        );
        let ruleset = match &spec.overlay {
            Some(overlay) => ruleset.with_overlay(&overlay.device, overlay.remote.iter().copied()),
            None => ruleset,
        };
        let sysctls = vec![
            Sysctl::ip_forward(),
            // Replies to SNATed traffic of pods on secondary ENIs enter through the primary
            // ENI while the pod's address routes out through another: strict mode drops them.
            Sysctl {
                path: format!("/proc/sys/net/ipv4/conf/{}/rp_filter", primary.name),
                value: "2",
            },
        ];
        Ok(Self {
            links: wiring_links,
            routes,
            owned_tables,
            main_routes_to_remove,
            rules,
            ruleset,
            sysctls,
        })
    }
}

/// The route tables of ENI device indexes 1..`max_enis`: ours, whatever is attached now.
#[must_use]
pub fn owned_tables(max_enis: u32) -> RangeInclusive<u32> {
    eni_route_table(1)..=max_enis.min(LAST_ENI_TABLE)
}

fn find_link(
    links: &[ObservedLink],
    mac: MacAddr,
    device: u32,
) -> Result<&ObservedLink, IpamdError> {
    links
        .iter()
        .find(|link| link.mac == mac)
        .ok_or(IpamdError::EniLinkMissing { device, mac })
}
