//! The sim's records rendered with EC2's element names, as the aws-sdk-ec2
//! deserializers read them (unknown elements are skipped by the SDK, so one
//! network-interface writer serves both `NetworkInterface` and
//! `InstanceNetworkInterface`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use vpc_cni_cloud::sim::{Eni, Instance, InstanceType, Subnet, Vpc};

use super::stamp::ec2_time;
use super::xml::Xml;
use super::ACCOUNT_ID;

/// The names of the security groups, by id.
#[derive(Debug, Default, Clone)]
pub struct GroupNames {
    names: BTreeMap<String, String>,
}

impl GroupNames {
    pub fn new(groups: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            names: groups.into_iter().collect(),
        }
    }

    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }
}

/// "us-west-2a" -> "us-west-2".
pub fn region_of(az: &str) -> &str {
    az.trim_end_matches(|c: char| c.is_ascii_alphabetic())
}

/// EC2's private DNS name for an address in a region.
pub fn private_dns_name(ip: Ipv4Addr, az: &str) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}.{}.compute.internal", region_of(az))
}

fn tags(x: &mut Xml, tags: &BTreeMap<String, String>) {
    x.set("tagSet", tags, |x, (k, v)| {
        x.text("key", k).text("value", v);
    });
}

fn groups(x: &mut Xml, ids: &[String], names: &GroupNames) {
    x.set("groupSet", ids, |x, id| {
        x.text("groupId", id).text("groupName", names.name(id));
    });
}

/// The body of one network interface (inside `<networkInterface>` or an
/// `<item>`).
pub fn eni(x: &mut Xml, eni: &Eni, names: &GroupNames) {
    x.text("networkInterfaceId", &eni.id)
        .text("subnetId", &eni.subnet_id)
        .text("vpcId", &eni.vpc_id)
        .text("availabilityZone", &eni.availability_zone)
        .text("description", &eni.description)
        .text("ownerId", ACCOUNT_ID)
        .text("requesterManaged", eni.requester_managed)
        .text("status", &eni.status)
        .text("macAddress", &eni.mac);
    if let Some(ip) = eni.primary_ip() {
        x.text("privateIpAddress", ip).text(
            "privateDnsName",
            private_dns_name(ip, &eni.availability_zone),
        );
    }
    x.text("sourceDestCheck", true)
        .text("interfaceType", "interface");
    groups(x, &eni.security_groups, names);
    if let Some(a) = &eni.attachment {
        x.element("attachment", |x| {
            x.text("attachmentId", &a.id)
                .text("instanceId", &a.instance_id)
                .text("instanceOwnerId", ACCOUNT_ID)
                .text("deviceIndex", a.device_index)
                .text("networkCardIndex", a.network_card_index)
                .text("status", &a.status)
                .text("attachTime", ec2_time(a.attached_at_ms))
                .text("deleteOnTermination", a.delete_on_termination);
        });
    }
    tags(x, &eni.tags);
    x.set("privateIpAddressesSet", &eni.private_ips, |x, p| {
        x.text("privateIpAddress", p.address)
            .text(
                "privateDnsName",
                private_dns_name(p.address, &eni.availability_zone),
            )
            .text("primary", p.primary);
    });
    x.set("ipv4PrefixSet", &eni.prefixes, |x, p| {
        x.text("ipv4Prefix", p);
    });
    x.set("ipv6AddressesSet", Vec::<()>::new(), |_, ()| {});
}

/// An instance with its attached network interfaces (`instancesSet` item).
pub fn instance(x: &mut Xml, inst: &Instance, enis: &[Eni], names: &GroupNames) {
    let running = inst.state == "running";
    x.text("instanceId", &inst.id)
        .text("imageId", "ami-0vpcsim000000000")
        .element("instanceState", |x| {
            x.text("code", if running { 16 } else { 48 })
                .text("name", &inst.state);
        })
        .text("instanceType", &inst.instance_type)
        .element("placement", |x| {
            x.text("availabilityZone", &inst.availability_zone)
                .text("tenancy", "default");
        })
        .text("architecture", "x86_64")
        .text("rootDeviceType", "ebs");
    if running {
        x.text(
            "privateDnsName",
            private_dns_name(inst.private_ip, &inst.availability_zone),
        )
        .text("privateIpAddress", inst.private_ip)
        .text("subnetId", &inst.subnet_id)
        .text("vpcId", &inst.vpc_id)
        .text("sourceDestCheck", true);
    }
    let primary_groups = enis
        .iter()
        .find(|e| e.id == inst.primary_eni)
        .map(|e| e.security_groups.clone())
        .unwrap_or_default();
    groups(x, &primary_groups, names);
    let mut all_tags = inst.tags.clone();
    if !inst.name.is_empty() {
        all_tags
            .entry("Name".to_string())
            .or_insert_with(|| inst.name.clone());
    }
    tags(x, &all_tags);
    x.set("networkInterfaceSet", enis, |x, e| eni(x, e, names));
}

pub fn instance_type(x: &mut Xml, t: &InstanceType) {
    x.text("instanceType", t.name)
        .text("currentGeneration", true)
        .text("hypervisor", if t.nitro { "nitro" } else { "xen" })
        .text("bareMetal", false)
        .element("vCpuInfo", |x| {
            x.text("defaultVCpus", t.vcpus);
        })
        .element("networkInfo", |x| {
            x.text("maximumNetworkInterfaces", t.max_enis)
                .text("maximumNetworkCards", 1)
                .text("defaultNetworkCardIndex", 0)
                .set("networkCards", [t], |x, t| {
                    x.text("networkCardIndex", 0)
                        .text("maximumNetworkInterfaces", t.max_enis);
                })
                .text("ipv4AddressesPerInterface", t.ipv4_per_eni)
                .text("ipv6AddressesPerInterface", t.ipv4_per_eni)
                .text("ipv6Supported", true)
                .text("enaSupport", if t.nitro { "required" } else { "supported" })
                .text("efaSupported", false)
                .text("encryptionInTransitSupported", false);
        });
}

pub fn subnet(x: &mut Xml, s: &Subnet) {
    let region = region_of(&s.availability_zone);
    x.text("subnetId", &s.id)
        .text(
            "subnetArn",
            format!("arn:aws:ec2:{region}:{ACCOUNT_ID}:subnet/{}", s.id),
        )
        .text("state", "available")
        .text("vpcId", &s.vpc_id)
        .text("cidrBlock", &s.cidr)
        .text("availableIpAddressCount", s.available_ip_count)
        .text("availabilityZone", &s.availability_zone)
        .text("defaultForAz", false)
        .text("mapPublicIpOnLaunch", false)
        .text("assignIpv6AddressOnCreation", false)
        .text("ownerId", ACCOUNT_ID);
    tags(x, &s.tags);
}

pub fn vpc(x: &mut Xml, v: &Vpc) {
    x.text("vpcId", &v.id)
        .text("ownerId", ACCOUNT_ID)
        .text("state", "available")
        .text("cidrBlock", &v.cidr)
        .set("cidrBlockAssociationSet", &v.cidr_blocks, |x, b| {
            x.text("associationId", &b.association_id)
                .text("cidrBlock", &b.cidr)
                .element("cidrBlockState", |x| {
                    x.text("state", "associated");
                });
        })
        .text("dhcpOptionsId", "default")
        .text("instanceTenancy", "default")
        .text("isDefault", false);
    tags(x, &v.tags);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_dns_names() {
        assert_eq!(region_of("us-west-2a"), "us-west-2");
        assert_eq!(region_of("eu-central-1"), "eu-central-1");
        assert_eq!(
            private_dns_name(Ipv4Addr::new(10, 0, 1, 7), "us-east-1b"),
            "ip-10-0-1-7.us-east-1.compute.internal"
        );
    }

    #[test]
    fn default_group_is_named_default() {
        let names = GroupNames::new([("sg-1".to_string(), "default".to_string())]);
        let mut x = Xml::new();
        groups(&mut x, &["sg-1".into(), "sg-2".into()], &names);
        assert_eq!(
            x.into_string(),
            "<groupSet><item><groupId>sg-1</groupId><groupName>default</groupName></item>\
             <item><groupId>sg-2</groupId><groupName>sg-2</groupName></item></groupSet>"
        );
    }
}
