//! What IMDS and the network-namespace fabric see: attached ENIs with the
//! visibility delay applied.

use std::net::Ipv4Addr;

use vpc_cni_proto::net::Ipv4Cidr;

use super::state::{State, VpcRec};
use super::types::{Eni, FabricView, ImdsInterface, ImdsView};
use super::SimVpc;

/// "us-west-2a" -> "us-west-2" (Local Zones and Wavelength are out of scope).
pub(crate) fn region_of(az: &str) -> String {
    az.trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .to_string()
}

impl State {
    /// Visible ENIs attached to `instance_id`, by device index.
    fn visible_attached(&self, instance_id: &str, now: u64) -> Vec<Eni> {
        let mut v: Vec<Eni> = self
            .enis
            .values()
            .filter(|r| {
                r.eni
                    .attachment
                    .as_ref()
                    .is_some_and(|a| a.instance_id == instance_id)
            })
            .map(|r| self.visible_eni(r, now))
            .filter(|e| e.attachment.is_some())
            .collect();
        v.sort_by_key(|e| e.attachment.as_ref().map_or(0, |a| a.device_index));
        v
    }

    fn imds(&self, instance_id: &str) -> Option<ImdsView> {
        let inst = self.instances.get(instance_id)?;
        if inst.state != "running" {
            return None;
        }
        let now = self.now();
        let vpc_cidrs: Vec<String> = self
            .vpcs
            .get(&inst.vpc_id)
            .map(VpcRec::cidr_texts)
            .unwrap_or_default();
        let primary_mac = self.enis.get(&inst.primary_eni)?.eni.mac.clone();
        let interfaces = self
            .visible_attached(instance_id, now)
            .into_iter()
            .map(|e| ImdsInterface {
                mac: e.mac.clone(),
                interface_id: e.id.clone(),
                device_number: e.attachment.as_ref().map_or(0, |a| a.device_index),
                network_card: e.attachment.as_ref().map_or(0, |a| a.network_card_index),
                subnet_cidr: self
                    .subnets
                    .get(&e.subnet_id)
                    .map(|s| s.subnet.cidr.clone())
                    .unwrap_or_default(),
                subnet_id: e.subnet_id,
                vpc_id: e.vpc_id,
                security_group_ids: e.security_groups,
                vpc_cidrs: vpc_cidrs.clone(),
                local_ipv4s: e.private_ips.iter().map(|p| p.address).collect(),
                ipv4_prefixes: e.prefixes,
            })
            .collect();
        Some(ImdsView {
            instance_id: inst.id.clone(),
            instance_type: inst.instance_type.clone(),
            region: region_of(&inst.availability_zone),
            availability_zone: inst.availability_zone.clone(),
            local_ipv4: inst.private_ip,
            mac: primary_mac,
            iam_role: inst.iam_role.clone(),
            interfaces,
        })
    }

    /// The running instance holding `ip` as a primary, secondary or
    /// delegated-prefix address on an attached ENI.
    fn owner_instance(&self, ip: Ipv4Addr) -> Option<String> {
        let block = Ipv4Cidr::containing(ip, 28);
        let eni_id = self
            .addr_owner
            .get(&ip)
            .or_else(|| self.prefix_owner.get(&block.network))?;
        let eni = &self.enis.get(eni_id)?.eni;
        self.attached_running_instance(eni).map(|i| i.id.clone())
    }

    fn fabric(&self) -> FabricView {
        let now = self.now();
        let instances: Vec<_> = self
            .instances
            .values()
            .filter(|i| i.state == "running")
            .cloned()
            .collect();
        let enis = instances
            .iter()
            .flat_map(|i| self.visible_attached(&i.id, now))
            .collect();
        FabricView {
            vpc_cidrs: self.vpcs.values().flat_map(VpcRec::cidr_texts).collect(),
            subnets: self.subnets.values().map(|s| s.view()).collect(),
            instances,
            enis,
        }
    }
}

impl SimVpc {
    /// The instance's metadata as IMDS serves it; `None` for unknown or
    /// terminated instances.
    pub fn imds_instance(&self, instance_id: &str) -> Option<ImdsView> {
        self.with(|s| s.imds(instance_id))
    }

    /// Which running instance owns `ip` (IMDS in the fabric identifies its
    /// caller by source address; pods call from secondary addresses too).
    pub fn instance_by_private_ip(&self, ip: Ipv4Addr) -> Option<String> {
        self.with(|s| s.owner_instance(ip))
    }

    /// Running instances and their visible attached ENIs, for the fabric.
    pub fn fabric_view(&self) -> FabricView {
        self.with(|s| s.fabric())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    #[test]
    fn region_strips_the_zone_letter() {
        assert_eq!(super::region_of("us-west-2a"), "us-west-2");
        assert_eq!(super::region_of("eu-central-1c"), "eu-central-1");
    }
}
