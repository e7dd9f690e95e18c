//! Security groups: each VPC's default group and those created in it, the groups an ENI
//! carries (checked to exist in the ENI's VPC), and changing them on a live ENI.

use super::errors::{err, ErrorCode, SimError};
use super::state::State;
use super::types::SecurityGroup;
use super::SimVpc;

impl State {
    pub(crate) fn add_group(
        &mut self,
        vpc_id: &str,
        name: &str,
        description: &str,
    ) -> SecurityGroup {
        let group = SecurityGroup {
            id: self.new_id("sg"),
            vpc_id: vpc_id.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
        };
        self.groups.insert(group.id.clone(), group.clone());
        group
    }

    fn create_group(
        &mut self,
        vpc_id: &str,
        name: &str,
        description: &str,
    ) -> Result<SecurityGroup, SimError> {
        if !self.vpcs.contains_key(vpc_id) {
            return err(
                ErrorCode::InvalidVpcIdNotFound,
                format!("The vpc ID '{vpc_id}' does not exist"),
            );
        }
        if name.is_empty() || name.starts_with("sg-") || name.len() > 255 {
            return err(
                ErrorCode::InvalidParameterValue,
                format!("Invalid security group name {name:?}"),
            );
        }
        if self
            .groups
            .values()
            .any(|g| g.vpc_id == vpc_id && g.name == name)
        {
            return err(
                ErrorCode::InvalidGroupDuplicate,
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            );
        }
        Ok(self.add_group(vpc_id, name, description))
    }

    /// Every group exists and belongs to `vpc_id`, as EC2 requires of an ENI's groups.
    pub(crate) fn check_groups(&self, vpc_id: &str, groups: &[String]) -> Result<(), SimError> {
        for id in groups {
            match self.groups.get(id) {
                None => {
                    return err(
                        ErrorCode::InvalidGroupNotFound,
                        format!("The security group '{id}' does not exist"),
                    )
                }
                Some(g) if g.vpc_id != vpc_id => {
                    return err(
                        ErrorCode::InvalidParameterValue,
                        format!(
                            "Security group {id} and the network interface belong to different \
                             networks ({} and {vpc_id})",
                            g.vpc_id
                        ),
                    )
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn set_groups(&mut self, eni_id: &str, groups: &[String]) -> Result<(), SimError> {
        if groups.is_empty() {
            return err(
                ErrorCode::InvalidParameterValue,
                "a network interface keeps at least one security group",
            );
        }
        let vpc_id = self.eni(eni_id)?.eni.vpc_id.clone();
        self.check_groups(&vpc_id, groups)?;
        self.eni_mut(eni_id)?.eni.security_groups = groups.to_vec();
        Ok(())
    }
}

impl SimVpc {
    /// CreateSecurityGroup in a VPC (names unique per VPC).
    pub fn create_security_group(
        &self,
        vpc_id: &str,
        name: &str,
        description: &str,
    ) -> Result<SecurityGroup, SimError> {
        self.with(|s| s.create_group(vpc_id, name, description))
    }

    /// ModifyNetworkInterfaceAttribute(Groups): replaces an ENI's security groups.
    pub fn set_security_groups(&self, eni_id: &str, groups: &[String]) -> Result<(), SimError> {
        self.with(|s| s.set_groups(eni_id, groups))
    }

    /// Every security group, by id.
    pub fn security_groups(&self) -> Vec<SecurityGroup> {
        self.with(|s| s.groups.values().cloned().collect())
    }
}
