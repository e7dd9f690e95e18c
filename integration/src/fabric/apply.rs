//! Moves the kernel from what the fabric applied last to a new desired
//! state, touching only what differs. The record is updated as each step
//! lands, so a failed step is retried by the next reconcile.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;

use super::nft::{rules_script, Sender};
use super::spec::{FabricSpec, NodeSpec, PortSpec};
use super::{Applied, Fabric, ENI_NEXT_HOP, INTERNET_LINK, MTU, SITE_LINK, SITE_LINK_VPC};
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::netns::Netns;

pub(super) fn apply(fabric: &Fabric, applied: &mut Applied, desired: FabricSpec) -> io::Result<()> {
    let router = &fabric.fabric;
    unwire_stale(router, applied, &desired)?;
    for (id, want) in &desired.nodes {
        if !applied.nodes.contains_key(id) {
            let ns = Netns::try_new(&format!("{}-{}", fabric.prefix, want.name))?;
            applied.nodes.insert(id.clone(), Arc::new(ns));
            applied.spec.nodes.insert(
                id.clone(),
                NodeSpec {
                    ports: BTreeMap::new(),
                    ..want.clone()
                },
            );
        }
        wire_new_ports(&fabric.fabric, applied, id, want)?;
    }
    route_assigned(router, applied, &desired)?;
    let mut commands: Vec<String> = applied
        .spec
        .vpc_cidrs
        .difference(&desired.vpc_cidrs)
        .map(|c| format!("route del unreachable {c}"))
        .collect();
    router.ip_batch(&commands, true)?;
    // Unassigned VPC addresses get no answer instead of leaking out the
    // default route; proxy ARP stays silent for them too.
    commands = desired
        .vpc_cidrs
        .iter()
        .map(|c| format!("route replace unreachable {c}"))
        .collect();
    router.ip_batch(&commands, false)?;
    if let Some(site) = applied.site.as_mut() {
        route_vpc(&site.router, &mut site.routed_vpc, &desired.vpc_cidrs)?;
    }
    applied.spec = desired;
    load_rules(fabric, applied)
}

/// Deletes the veths of instances that are gone and of ENIs that are
/// detached or changed; deleting one end of a veth deletes both, and the
/// routes through it go with it.
fn unwire_stale(router: &Netns, applied: &mut Applied, desired: &FabricSpec) -> io::Result<()> {
    let mut commands = Vec::new();
    let gone: Vec<String> = applied
        .spec
        .nodes
        .iter()
        .filter(|(id, have)| {
            desired
                .nodes
                .get(*id)
                .is_none_or(|want| want.name != have.name)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in gone {
        if let Some(node) = applied.spec.nodes.remove(&id) {
            commands.extend(node.ports.values().map(|p| format!("link del {}", p.link)));
        }
        applied.nodes.remove(&id);
    }
    for (id, have) in &mut applied.spec.nodes {
        let Some(want) = desired.nodes.get(id) else {
            continue;
        };
        have.ports.retain(|index, port| {
            let keep = want.ports.get(index).is_some_and(|w| w.same_wire(port));
            if !keep {
                commands.push(format!("link del {}", port.link));
            }
            keep
        });
    }
    router.ip_batch(&commands, true)
}

fn wire_new_ports(
    router: &Netns,
    applied: &mut Applied,
    id: &str,
    want: &NodeSpec,
) -> io::Result<()> {
    let (Some(ns), Some(have)) = (applied.nodes.get(id), applied.spec.nodes.get_mut(id)) else {
        return Err(io::Error::other(format!("no namespace recorded for {id}")));
    };
    for (index, port) in &want.ports {
        if have.ports.contains_key(index) {
            continue;
        }
        wire_port(router, ns, *index, port)?;
        have.ports.insert(
            *index,
            PortSpec {
                routes: Default::default(),
                ..port.clone()
            },
        );
    }
    Ok(())
}

/// One ENI: the veth, the subnet gateway on the fabric side, and on the
/// node side what DHCP would give the primary ENI. Secondary ENIs stay down
/// and unaddressed, as a hot-plugged ENI appears: configuring them is
/// ipamd's job.
fn wire_port(router: &Netns, node: &Netns, index: u32, port: &PortSpec) -> io::Result<()> {
    let gateway = vpc_cni_cloud::subnet_router(&port.subnet);
    router.ip_batch(
        &[
            format!(
                "link add {} mtu {MTU} type veth peer name eth{index} netns {} address {} mtu {MTU}",
                port.link,
                node.name(),
                port.mac
            ),
            format!("addr add {gateway}/32 dev {}", port.link),
            format!("link set {} up", port.link),
            format!(
                "neigh replace {ENI_NEXT_HOP} lladdr {} dev {} nud permanent",
                port.mac, port.link
            ),
        ],
        false,
    )?;
    // Without this the kernel holds each proxied ARP reply back up to
    // 0.8 s at random, which only slows every first contact down.
    let delay = format!("net.ipv4.neigh.{}.proxy_delay", port.link);
    router.write_sysctls(&[(delay.as_str(), "0")])?;
    if index == 0 {
        node.ip_batch(
            &[
                "link set eth0 up".to_string(),
                format!(
                    "addr add {}/{} dev eth0",
                    port.primary_ip, port.subnet.prefix_len
                ),
                format!("route add default via {gateway} dev eth0"),
            ],
            false,
        )?;
    }
    Ok(())
}

/// Routes every assigned address and prefix to its ENI. Removals go first
/// so an address that moved between ENIs ends up on its new one.
fn route_assigned(router: &Netns, applied: &mut Applied, desired: &FabricSpec) -> io::Result<()> {
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    for (id, want) in &desired.nodes {
        let Some(have) = applied.spec.nodes.get(id) else {
            continue;
        };
        for (index, port) in &want.ports {
            let Some(current) = have.ports.get(index) else {
                continue;
            };
            removals.extend(
                current
                    .routes
                    .difference(&port.routes)
                    .map(|r| format!("route del {r} dev {}", current.link)),
            );
            additions.extend(port.routes.difference(&current.routes).map(|r| {
                format!(
                    "route replace {r} via {ENI_NEXT_HOP} dev {} onlink",
                    port.link
                )
            }));
        }
    }
    router.ip_batch(&removals, true)?;
    router.ip_batch(&additions, false)?;
    for (id, want) in &desired.nodes {
        if let Some(have) = applied.spec.nodes.get_mut(id) {
            for (index, port) in &want.ports {
                if let Some(current) = have.ports.get_mut(index) {
                    current.routes.clone_from(&port.routes);
                }
            }
        }
    }
    Ok(())
}

/// Makes the site's router send exactly `vpc_cidrs` into its link to the VPC; `routed` is
/// what it sends there now.
pub(super) fn route_vpc(
    router: &Netns,
    routed: &mut BTreeSet<Ipv4Cidr>,
    vpc_cidrs: &BTreeSet<Ipv4Cidr>,
) -> io::Result<()> {
    let removals: Vec<String> = routed
        .difference(vpc_cidrs)
        .map(|c| format!("route del {c} via {SITE_LINK_VPC} dev {SITE_LINK}"))
        .collect();
    router.ip_batch(&removals, true)?;
    let additions: Vec<String> = vpc_cidrs
        .iter()
        .map(|c| format!("route replace {c} via {SITE_LINK_VPC} dev {SITE_LINK}"))
        .collect();
    router.ip_batch(&additions, false)?;
    routed.clone_from(vpc_cidrs);
    Ok(())
}

/// Reloads the source checks and the internet rule when they changed.
pub(super) fn load_rules(fabric: &Fabric, applied: &mut Applied) -> io::Result<()> {
    let mut senders: Vec<Sender> = applied
        .spec
        .nodes
        .values()
        .flat_map(|n| n.ports.values())
        .map(|p| Sender {
            link: p.link.clone(),
            sources: p.routes.clone(),
        })
        .collect();
    senders.extend(applied.hosts.values().map(|h| Sender {
        link: h.link.clone(),
        sources: [Ipv4Cidr::host(h.ip)].into(),
    }));
    // The site's link is a VPN or direct link, which checks no sources.
    let mut trusted = vec!["lo", INTERNET_LINK];
    if applied.site.is_some() {
        trusted.push(SITE_LINK);
    }
    let script = rules_script(
        &trusted,
        &senders,
        INTERNET_LINK,
        &applied.spec.internet_sources(),
    );
    if script != applied.rules {
        fabric.fabric.nft_load(&script)?;
        applied.rules = script;
    }
    Ok(())
}
