//! The fabric's desired state, computed from the model alone (no kernel), so
//! what the fabric should look like can be tested without root.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;

use vpc_cni_cloud::sim::{Eni, FabricView};
use vpc_cni_proto::net::Ipv4Cidr;

/// Parses "a.b.c.d/len" with zero host bits; the error names the input.
pub fn parse_net(text: &str) -> io::Result<Ipv4Cidr> {
    text.parse()
        .map_err(|e| invalid(format!("bad CIDR {text:?}: {e}")))
}

/// Everything the fabric wires, keyed by instance id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FabricSpec {
    /// Unassigned VPC addresses must not leak to the internet route.
    pub vpc_cidrs: BTreeSet<Ipv4Cidr>,
    pub nodes: BTreeMap<String, NodeSpec>,
}

/// One running instance: a namespace with one veth per attached ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub instance_id: String,
    /// The instance's name as given at RunInstances; names its namespace.
    pub name: String,
    /// The primary ENI's primary address: the only one with a public mapping.
    pub primary_ip: Ipv4Addr,
    /// By device index (`eth<index>` in the node).
    pub ports: BTreeMap<u32, PortSpec>,
}

/// One attached ENI as the fabric sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub eni_id: String,
    /// The fabric-side end of the veth.
    pub link: String,
    pub mac: String,
    pub subnet: Ipv4Cidr,
    pub primary_ip: Ipv4Addr,
    /// Every assigned address (/32) and prefix: routed to this port, and the
    /// only sources accepted from it.
    pub routes: BTreeSet<Ipv4Cidr>,
}

impl PortSpec {
    /// What the veth itself is made of; a change means a new veth.
    #[must_use]
    pub fn same_wire(&self, other: &Self) -> bool {
        self.eni_id == other.eni_id
            && self.link == other.link
            && self.mac == other.mac
            && self.subnet == other.subnet
            && self.primary_ip == other.primary_ip
    }
}

impl FabricSpec {
    /// The desired state for a model view. Fails, naming the culprit, when the
    /// view is inconsistent (an ENI in an unknown subnet, two instances whose
    /// names would share a namespace).
    pub fn from_view(view: &FabricView) -> io::Result<Self> {
        let vpc_cidrs = view
            .vpc_cidrs
            .iter()
            .map(|c| parse_net(c))
            .collect::<io::Result<BTreeSet<_>>>()?;
        let subnets = view
            .subnets
            .iter()
            .map(|s| Ok((s.id.as_str(), parse_net(&s.cidr)?)))
            .collect::<io::Result<BTreeMap<_, _>>>()?;
        let mut nodes = BTreeMap::new();
        let mut names = BTreeMap::new();
        for instance in view.instances.iter().filter(|i| i.state == "running") {
            let name = node_name(&instance.name, &instance.id);
            if let Some(other) = names.insert(name.clone(), instance.id.clone()) {
                return Err(invalid(format!(
                    "instances {other} and {} would share the namespace name {name:?}",
                    instance.id
                )));
            }
            nodes.insert(
                instance.id.clone(),
                NodeSpec {
                    instance_id: instance.id.clone(),
                    name,
                    primary_ip: instance.private_ip,
                    ports: BTreeMap::new(),
                },
            );
        }
        for eni in &view.enis {
            let Some(attachment) = &eni.attachment else {
                continue;
            };
            let Some(node) = nodes.get_mut(&attachment.instance_id) else {
                continue;
            };
            let subnet = *subnets.get(eni.subnet_id.as_str()).ok_or_else(|| {
                invalid(format!(
                    "{} is in subnet {}, which the view does not list",
                    eni.id, eni.subnet_id
                ))
            })?;
            let port = port_spec(eni, subnet)?;
            node.ports.insert(attachment.device_index, port);
        }
        Ok(Self { vpc_cidrs, nodes })
    }

    /// Sources the internet accepts: each instance's primary address.
    #[must_use]
    pub fn internet_sources(&self) -> BTreeSet<Ipv4Addr> {
        self.nodes.values().map(|n| n.primary_ip).collect()
    }
}

fn port_spec(eni: &Eni, subnet: Ipv4Cidr) -> io::Result<PortSpec> {
    let primary_ip = eni
        .primary_ip()
        .ok_or_else(|| invalid(format!("{} has no primary address", eni.id)))?;
    let mut routes: BTreeSet<Ipv4Cidr> = eni
        .private_ips
        .iter()
        .map(|p| Ipv4Cidr::host(p.address))
        .collect();
    for prefix in &eni.prefixes {
        routes.insert(parse_net(prefix)?);
    }
    Ok(PortSpec {
        eni_id: eni.id.clone(),
        link: port_link_name(&eni.id),
        mac: eni.mac.clone(),
        subnet,
        primary_ip,
        routes,
    })
}

/// Link names stop at 15 bytes; the tail of the id is its random part, so
/// two ENIs never share one in practice.
#[must_use]
pub fn port_link_name(eni_id: &str) -> String {
    let chars: Vec<char> = eni_id.chars().filter(char::is_ascii_alphanumeric).collect();
    let tail: String = chars[chars.len().saturating_sub(14)..].iter().collect();
    format!("f{tail}")
}

/// A namespace-name-safe form of the instance name (the id when it has
/// none). Only `[A-Za-z0-9-]` survive, so the fabric's own namespaces,
/// which use `_`, can never collide with a node's.
fn node_name(name: &str, id: &str) -> String {
    let source = if name.is_empty() { id } else { name };
    source
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
