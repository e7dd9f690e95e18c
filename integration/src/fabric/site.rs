//! An on-prem site joined to the VPC: a data centre LAN whose nodes run the overlay, behind
//! one namespace that is at once the LAN's router, the site's own NAT to the internet and its
//! end of a VPN or direct link into the VPC.
//!
//! Routing is what such a set-up gives and no more: the VPC routes the site's LAN to the link
//! and the site routes the VPC's CIDRs to it; nothing on either side routes the site's pod
//! CIDRs, so an unencapsulated packet from an on-prem pod address can go into the VPC but no
//! answer can come back. Cutting the link drops every packet on it both ways, the way a VPN
//! tunnel that went down does, and leaves every route in place for when it comes back.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;

use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_testkit::netns::Netns;

use super::apply::{load_rules, route_vpc};
use super::Fabric;

/// The link's name at both ends.
pub const SITE_LINK: &str = "site0";
/// The VPC's and the site's ends of the link (TEST-NET-1, a /30 of its own).
pub const SITE_LINK_VPC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const SITE_LINK_SITE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The site's public address: every LAN address is masqueraded to it on the way out.
pub const SITE_NAT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 6);
/// The internet's end of the site's uplink.
const SITE_UPLINK_INTERNET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 5);
const SITE_UPLINK: &str = "nat0";
const LAN_BRIDGE: &str = "lan0";
const NAT_TABLE: &str = "site_nat";
const CUT_TABLE: &str = "site_cut";

/// What the site is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSpec {
    /// The LAN: its first address is the router, the nodes' default gateway.
    pub lan: Ipv4Cidr,
    /// MTU of the LAN and of the nodes' links into it.
    pub lan_mtu: u32,
    /// MTU of the link into the VPC: a VPN tunnel's is below the LAN's.
    pub link_mtu: u32,
}

impl SiteSpec {
    /// The router's address on the LAN.
    #[must_use]
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.lan.network) + 1)
    }
}

/// The site as the fabric holds it.
pub(super) struct Site {
    pub(super) spec: SiteSpec,
    pub(super) router: Arc<Netns>,
    /// VPC CIDRs the router sends into the link.
    pub(super) routed_vpc: BTreeSet<Ipv4Cidr>,
    ports: usize,
}

impl Fabric {
    /// Builds the site (once per fabric): its router namespace with the LAN bridge, the
    /// link into the VPC and the uplink to the internet; returns the router's namespace.
    pub fn attach_site(&self, spec: SiteSpec) -> io::Result<Arc<Netns>> {
        let mut applied = self.lock();
        if applied.site.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this fabric has a site already",
            ));
        }
        if spec.lan.prefix_len > 30 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("site LAN {} has no room for a router and nodes", spec.lan),
            ));
        }
        let router = Arc::new(Netns::try_new(&format!("{}_site", self.prefix))?);
        router.write_sysctls(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ])?;
        let link_mtu = spec.link_mtu;
        self.fabric.ip_batch(
            &[
                format!(
                    "link add {SITE_LINK} mtu {link_mtu} type veth peer name {SITE_LINK} \
                     netns {} mtu {link_mtu}",
                    router.name()
                ),
                format!("addr add {SITE_LINK_VPC}/30 dev {SITE_LINK}"),
                format!("link set {SITE_LINK} up"),
                format!(
                    "route replace {} via {SITE_LINK_SITE} dev {SITE_LINK}",
                    spec.lan
                ),
            ],
            false,
        )?;
        self.internet.ip_batch(
            &[
                format!(
                    "link add {SITE_UPLINK} type veth peer name {SITE_UPLINK} netns {}",
                    router.name()
                ),
                format!("addr add {SITE_UPLINK_INTERNET}/30 dev {SITE_UPLINK}"),
                format!("link set {SITE_UPLINK} up"),
            ],
            false,
        )?;
        router.ip_batch(
            &[
                format!("link add {LAN_BRIDGE} mtu {} type bridge", spec.lan_mtu),
                format!(
                    "addr add {}/{} dev {LAN_BRIDGE}",
                    spec.gateway(),
                    spec.lan.prefix_len
                ),
                format!("link set {LAN_BRIDGE} up"),
                format!("addr add {SITE_LINK_SITE}/30 dev {SITE_LINK}"),
                format!("link set {SITE_LINK} up"),
                format!("addr add {SITE_NAT_ADDR}/30 dev {SITE_UPLINK}"),
                format!("link set {SITE_UPLINK} up"),
                format!("route add default via {SITE_UPLINK_INTERNET} dev {SITE_UPLINK}"),
            ],
            false,
        )?;
        router.nft_load(&nat_script(spec.lan))?;
        let mut site = Site {
            spec,
            router: Arc::clone(&router),
            routed_vpc: BTreeSet::new(),
            ports: 0,
        };
        let vpc_cidrs = applied.spec.vpc_cidrs.clone();
        route_vpc(&site.router, &mut site.routed_vpc, &vpc_cidrs)?;
        applied.site = Some(site);
        load_rules(self, &mut applied)?;
        Ok(router)
    }

    /// Plugs a node namespace into the site's LAN: `eth0` at `ip`, default route through
    /// the site's router, as a rack's host is cabled.
    pub fn plug_site_node(&self, node: &Netns, ip: Ipv4Addr) -> io::Result<()> {
        let mut applied = self.lock();
        let site = applied
            .site
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "this fabric has no site"))?;
        if !site.spec.lan.contains(ip) || ip == site.spec.gateway() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{ip} is not a node address of the site LAN {} (router {})",
                    site.spec.lan,
                    site.spec.gateway()
                ),
            ));
        }
        let port = format!("port{}", site.ports);
        site.ports += 1;
        let mtu = site.spec.lan_mtu;
        site.router.ip_batch(
            &[
                format!(
                    "link add {port} mtu {mtu} type veth peer name eth0 netns {} mtu {mtu}",
                    node.name()
                ),
                format!("link set {port} master {LAN_BRIDGE} up"),
            ],
            false,
        )?;
        node.ip_batch(
            &[
                format!("addr add {ip}/{} dev eth0", site.spec.lan.prefix_len),
                "link set eth0 up".to_string(),
                format!("route add default via {}", site.spec.gateway()),
            ],
            false,
        )
    }

    /// Cuts the link between the site and the VPC (`false`) or restores it (`true`); routes
    /// stay as they are on both sides. Idempotent.
    pub fn set_site_link(&self, up: bool) -> io::Result<()> {
        let applied = self.lock();
        let site = applied
            .site
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "this fabric has no site"))?;
        for ns in [&self.fabric, site.router.as_ref()] {
            ns.nft_load(&cut_script(up))?;
        }
        Ok(())
    }

    /// The site's router namespace, if the fabric has a site.
    #[must_use]
    pub fn site_router(&self) -> Option<Arc<Netns>> {
        self.lock().site.as_ref().map(|s| Arc::clone(&s.router))
    }
}

/// The site's NAT: LAN sources leaving through the uplink take the site's public address;
/// nothing else is translated (the link into the VPC carries LAN addresses as they are).
fn nat_script(lan: Ipv4Cidr) -> String {
    format!(
        "table ip {NAT_TABLE} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{SITE_UPLINK}\" ip saddr {lan} snat to {SITE_NAT_ADDR}\n\
         \t}}\n\
         }}\n"
    )
}

/// A netdev table on the link that drops everything arriving on it (`up` false) or no table
/// at all (`up` true); loaded in the namespaces at both ends.
fn cut_script(up: bool) -> String {
    let mut script = format!("table netdev {CUT_TABLE}\ndelete table netdev {CUT_TABLE}\n");
    if !up {
        let _ = write!(
            script,
            "table netdev {CUT_TABLE} {{\n\
             \tchain ingress {{\n\
             \t\ttype filter hook ingress device \"{SITE_LINK}\" priority 0; policy drop;\n\
             \t}}\n\
             }}\n"
        );
    }
    script
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_router_takes_the_lans_first_address() {
        let spec = SiteSpec {
            lan: "172.20.0.0/24".parse().unwrap(),
            lan_mtu: 1500,
            link_mtu: 1400,
        };
        assert_eq!(spec.gateway(), Ipv4Addr::new(172, 20, 0, 1));
    }

    #[test]
    fn a_cut_drops_everything_arriving_and_a_restore_removes_the_table() {
        let cut = cut_script(false);
        assert!(cut.contains("hook ingress device \"site0\""), "{cut}");
        assert!(cut.contains("policy drop"), "{cut}");
        let restored = cut_script(true);
        assert!(!restored.contains("hook"), "{restored}");
        assert!(
            restored.contains("delete table netdev site_cut"),
            "{restored}"
        );
    }

    #[test]
    fn only_lan_sources_leaving_by_the_uplink_are_translated() {
        let script = nat_script("172.20.0.0/24".parse().unwrap());
        assert!(
            script.contains("oifname \"nat0\" ip saddr 172.20.0.0/24 snat to 198.51.100.6"),
            "{script}"
        );
    }
}
