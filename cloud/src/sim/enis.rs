//! ENI lifecycle: create, attach, detach, delete, DeleteOnTermination.

use std::collections::{BTreeMap, HashMap};

use super::addresses::{bad_value, Taken};
use super::errors::{err, ErrorCode, SimError};
use super::instance_types::instance_type;
use super::state::{EniRec, State};
use super::types::{Assigned, Attachment, CreateEni, Eni, PrivateIp};
use super::SimVpc;

impl State {
    /// Creates an ENI with its primary address (and any requested secondary
    /// addresses or prefixes), all-or-nothing.
    pub(crate) fn create_eni(&mut self, req: &CreateEni) -> Result<Eni, SimError> {
        let sub = self.subnet(&req.subnet_id)?.subnet.clone();
        let vpc = match self.vpcs.get(&sub.vpc_id) {
            Some(v) => v.vpc.clone(),
            None => {
                return err(
                    ErrorCode::InternalError,
                    format!("subnet {} has no VPC {}", sub.id, sub.vpc_id),
                )
            }
        };
        if req.secondary_count > 0 && req.prefix_count > 0 {
            return err(
                ErrorCode::InvalidParameterCombination,
                "SecondaryPrivateIpAddressCount and Ipv4PrefixCount cannot be specified together",
            );
        }
        if let Some(g) = req.security_groups.iter().find(|g| !g.starts_with("sg-")) {
            return bad_value(format!("{g:?} is not a security group id"));
        }
        self.check_groups(&sub.vpc_id, &req.security_groups)?;
        let id = self.new_id("eni");
        let mut taken = Taken::default();
        let res = self.allocate_for_new_eni(req, &id, &mut taken);
        let (primary, secondaries, prefixes) = match res {
            Ok(v) => v,
            Err(e) => {
                self.give_back(&sub.id, &taken);
                self.ids.remove(&id);
                return Err(e);
            }
        };
        let now = self.now();
        let groups = if req.security_groups.is_empty() {
            vec![vpc.default_security_group.clone()]
        } else {
            req.security_groups.clone()
        };
        let mac = self.new_mac();
        let eni = Eni {
            id: id.clone(),
            subnet_id: sub.id.clone(),
            vpc_id: sub.vpc_id.clone(),
            availability_zone: sub.availability_zone.clone(),
            mac,
            description: req.description.clone(),
            security_groups: groups,
            tags: req.tags.clone(),
            private_ips: vec![PrivateIp {
                address: primary,
                primary: true,
            }],
            prefixes: Vec::new(),
            status: "available".to_string(),
            attachment: None,
            requester_managed: false,
            created_at_ms: now,
        };
        self.addr_owner.insert(primary, id.clone());
        self.enis.insert(
            id.clone(),
            EniRec {
                eni,
                ip_added_ms: HashMap::new(),
                prefix_added_ms: HashMap::new(),
                attach_added_ms: 0,
            },
        );
        let extra = Assigned {
            addresses: secondaries,
            prefixes: prefixes.iter().map(|c| c.to_string()).collect(),
        };
        self.record(&id, &extra, now);
        Ok(self.eni(&id)?.eni.clone())
    }

    #[allow(clippy::type_complexity)]
    fn allocate_for_new_eni(
        &mut self,
        req: &CreateEni,
        id: &str,
        taken: &mut Taken,
    ) -> Result<
        (
            std::net::Ipv4Addr,
            Vec<std::net::Ipv4Addr>,
            Vec<vpc_cni_proto::net::Ipv4Cidr>,
        ),
        SimError,
    > {
        let primary = match req.private_ip {
            Some(ip) => {
                self.take_specific_addresses(&req.subnet_id, id, &[ip], false, taken)?;
                ip
            }
            None => {
                let got = self.take_addresses(&req.subnet_id, 1, taken)?;
                match got.first() {
                    Some(ip) => *ip,
                    None => return err(ErrorCode::InternalError, "allocated no primary address"),
                }
            }
        };
        let secondaries = if req.secondary_count > 0 {
            self.take_addresses(&req.subnet_id, req.secondary_count, taken)?
        } else {
            Vec::new()
        };
        let prefixes = if req.prefix_count > 0 {
            self.take_prefixes(&req.subnet_id, req.prefix_count, taken)?
        } else {
            Vec::new()
        };
        Ok((primary, secondaries, prefixes))
    }

    pub(crate) fn attach(
        &mut self,
        eni_id: &str,
        instance_id: &str,
        device_index: u32,
        visible_from: Option<u64>,
    ) -> Result<Attachment, SimError> {
        let eni = self.eni(eni_id)?.eni.clone();
        let inst = self.instance(instance_id)?.clone();
        if let Some(a) = &eni.attachment {
            return err(
                ErrorCode::InvalidNetworkInterfaceInUse,
                format!(
                    "Interface {eni_id} is currently in use by {} ({})",
                    a.instance_id, a.id
                ),
            );
        }
        if inst.state != "running" {
            return bad_value(format!(
                "instance {instance_id} is {} and cannot take interfaces",
                inst.state
            ));
        }
        if eni.availability_zone != inst.availability_zone || eni.vpc_id != inst.vpc_id {
            return bad_value(format!(
                "interface {eni_id} ({}, {}) and instance {instance_id} ({}, {}) are not in the same availability zone and VPC",
                eni.availability_zone, eni.vpc_id, inst.availability_zone, inst.vpc_id
            ));
        }
        let Some(it) = instance_type(&inst.instance_type) else {
            return err(
                ErrorCode::InternalError,
                format!(
                    "instance {instance_id} has unknown type {}",
                    inst.instance_type
                ),
            );
        };
        let used: Vec<u32> = self
            .enis
            .values()
            .filter_map(|r| r.eni.attachment.as_ref())
            .filter(|a| a.instance_id == instance_id)
            .map(|a| a.device_index)
            .collect();
        if used.len() as u32 >= it.max_enis || device_index >= it.max_enis {
            return err(
                ErrorCode::AttachmentLimitExceeded,
                format!(
                    "Interface count {} exceeds the limit for {} ({} interfaces; device index {device_index} requested)",
                    used.len() + 1,
                    it.name,
                    it.max_enis
                ),
            );
        }
        if used.contains(&device_index) {
            return bad_value(format!(
                "Instance '{instance_id}' already has an interface attached at device index '{device_index}'"
            ));
        }
        let now = self.now();
        let att = Attachment {
            id: self.new_id("eni-attach"),
            instance_id: instance_id.to_string(),
            device_index,
            network_card_index: 0,
            status: "attached".to_string(),
            delete_on_termination: device_index == 0,
            attached_at_ms: now,
        };
        self.attachments.insert(att.id.clone(), eni_id.to_string());
        let rec = self.eni_mut(eni_id)?;
        rec.eni.attachment = Some(att.clone());
        rec.eni.status = "in-use".to_string();
        rec.attach_added_ms = visible_from.unwrap_or(now);
        Ok(att)
    }

    fn eni_of_attachment(&self, attachment_id: &str) -> Result<String, SimError> {
        match self.attachments.get(attachment_id) {
            Some(e) => Ok(e.clone()),
            None => err(
                ErrorCode::InvalidAttachmentIdNotFound,
                format!("The attachment ID '{attachment_id}' does not exist"),
            ),
        }
    }

    pub(crate) fn detach(
        &mut self,
        attachment_id: &str,
        allow_primary: bool,
    ) -> Result<(), SimError> {
        let eni_id = self.eni_of_attachment(attachment_id)?;
        let rec = self.eni_mut(&eni_id)?;
        if !allow_primary
            && rec
                .eni
                .attachment
                .as_ref()
                .is_some_and(|a| a.device_index == 0)
        {
            return bad_value(format!(
                "The network interface at device index 0 ({eni_id}) cannot be detached"
            ));
        }
        rec.eni.attachment = None;
        rec.eni.status = "available".to_string();
        self.attachments.remove(attachment_id);
        Ok(())
    }

    pub(crate) fn delete_eni(&mut self, eni_id: &str) -> Result<(), SimError> {
        let rec = self.eni(eni_id)?;
        if let Some(a) = &rec.eni.attachment {
            return err(
                ErrorCode::InvalidNetworkInterfaceInUse,
                format!(
                    "Network interface '{eni_id}' is currently in use by {} ({})",
                    a.instance_id, a.id
                ),
            );
        }
        let subnet_id = rec.eni.subnet_id.clone();
        let ips: Vec<_> = rec.eni.private_ips.iter().map(|p| p.address).collect();
        let prefixes = rec.eni.prefixes.clone();
        for ip in ips {
            self.release_address(&subnet_id, ip);
        }
        for p in prefixes {
            if let Ok(c) = super::cidr::parse_cidr(&p) {
                self.release_prefix(&subnet_id, c);
            }
        }
        self.enis.remove(eni_id);
        Ok(())
    }

    fn set_dot(&mut self, eni_id: &str, attachment_id: &str, value: bool) -> Result<(), SimError> {
        let rec = self.eni_mut(eni_id)?;
        match rec.eni.attachment.as_mut() {
            Some(a) if a.id == attachment_id => {
                a.delete_on_termination = value;
                Ok(())
            }
            _ => err(
                ErrorCode::InvalidAttachmentIdNotFound,
                format!("The attachment ID '{attachment_id}' does not exist on {eni_id}"),
            ),
        }
    }

    pub(crate) fn tag_eni(
        &mut self,
        eni_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), SimError> {
        let rec = self.eni_mut(eni_id)?;
        rec.eni
            .tags
            .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }
}

impl SimVpc {
    /// CreateNetworkInterface. No instance type applies yet, only the
    /// subnet's free space.
    pub fn create_network_interface(&self, req: CreateEni) -> Result<Eni, SimError> {
        self.with(|s| s.create_eni(&req))
    }

    /// AttachNetworkInterface. DeleteOnTermination starts false, as in EC2.
    pub fn attach_network_interface(
        &self,
        eni_id: &str,
        instance_id: &str,
        device_index: u32,
    ) -> Result<Attachment, SimError> {
        self.with(|s| s.attach(eni_id, instance_id, device_index, None))
    }

    /// DetachNetworkInterface; `force` changes nothing in the model.
    pub fn detach_network_interface(
        &self,
        attachment_id: &str,
        force: bool,
    ) -> Result<(), SimError> {
        let _ = force;
        self.with(|s| s.detach(attachment_id, false))
    }

    /// DeleteNetworkInterface; frees its addresses and prefixes.
    pub fn delete_network_interface(&self, eni_id: &str) -> Result<(), SimError> {
        self.with(|s| s.delete_eni(eni_id))
    }

    /// ModifyNetworkInterfaceAttribute(Attachment.DeleteOnTermination).
    pub fn set_delete_on_termination(
        &self,
        eni_id: &str,
        attachment_id: &str,
        value: bool,
    ) -> Result<(), SimError> {
        self.with(|s| s.set_dot(eni_id, attachment_id, value))
    }
}
