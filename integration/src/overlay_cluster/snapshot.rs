//! What ipamd's overlay puts into a node's kernel, read back with the same
//! tools an operator would use, as sorted text lines that tests compare
//! exactly.

use std::fmt;
use std::io;
use std::process::Command;

use vpc_cni_testkit::netns::Netns;
use vpc_cni_testkit::process::run_checked;

/// ipamd's overlay device.
pub const DEVICE: &str = "vxlan.vpc";
/// Protocol number ipamd puts on its routes.
const ROUTE_PROTOCOL: &str = "0x56";
/// ipamd's nftables table (family ip).
const NFT_TABLE: &str = "vpc-cni";

/// The settings of `vxlan.vpc` that define the overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanDevice {
    pub vni: Option<u32>,
    pub port: Option<u16>,
    pub local: Option<String>,
    pub underlay_dev: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub learning: bool,
    /// IPv4 addresses on the device, `a.b.c.d/len`, sorted.
    pub addresses: Vec<String>,
}

impl VxlanDevice {
    /// Parses `ip -d link show` and `ip -4 -o addr show` of the device.
    #[must_use]
    pub fn parse(link: &str, addrs: &str) -> Self {
        let tokens: Vec<&str> = link.split_whitespace().collect();
        let after = |key: &[&str]| {
            tokens
                .windows(key.len() + 1)
                .find(|w| w[..key.len()] == *key)
                .map(|w| w[key.len()].to_string())
        };
        let mut addresses: Vec<String> = addrs
            .lines()
            .filter_map(|l| {
                let t: Vec<&str> = l.split_whitespace().collect();
                t.windows(2)
                    .find(|w| w[0] == "inet")
                    .map(|w| w[1].to_string())
            })
            .collect();
        addresses.sort();
        Self {
            vni: after(&["vxlan", "id"]).and_then(|v| v.parse().ok()),
            port: after(&["dstport"]).and_then(|v| v.parse().ok()),
            local: after(&["local"]),
            underlay_dev: after(&["dev"]),
            mtu: after(&["mtu"]).and_then(|v| v.parse().ok()),
            mac: after(&["link/ether"]),
            learning: !tokens.contains(&"nolearning"),
            addresses,
        }
    }
}

impl fmt::Display for VxlanDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn opt<T: fmt::Display>(v: Option<&T>) -> String {
            v.map_or_else(|| "?".to_string(), ToString::to_string)
        }
        write!(
            f,
            "{DEVICE} vni={} port={} local={} dev={} mtu={} mac={} learning={} addr={}",
            opt(self.vni.as_ref()),
            opt(self.port.as_ref()),
            opt(self.local.as_ref()),
            opt(self.underlay_dev.as_ref()),
            opt(self.mtu.as_ref()),
            opt(self.mac.as_ref()),
            if self.learning { "on" } else { "off" },
            self.addresses.join(",")
        )
    }
}

/// A node's overlay entries. Every line starts with its source (`link:`,
/// `neigh:`, `fdb:`, `route:`, then `nft:`); kernel entries are sorted and
/// whitespace is normalised, so two snapshots of the same state are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySnapshot {
    pub device: Option<VxlanDevice>,
    pub lines: Vec<String>,
}

impl OverlaySnapshot {
    /// Reads the node's overlay state: the device, permanent neighbours and
    /// FDB entries with a remote on it, routes of ipamd's protocol in the main
    /// table (overlay routes and direct routes alike) and ipamd's nft table.
    pub fn read(node: &Netns) -> io::Result<Self> {
        let device_present = node.try_ip(&["link", "show", "dev", DEVICE]).is_ok();
        let mut lines = Vec::new();
        let device = if device_present {
            let link = node.try_ip(&["-d", "link", "show", "dev", DEVICE])?;
            let addrs = node.try_ip(&["-4", "-o", "addr", "show", "dev", DEVICE])?;
            let device = VxlanDevice::parse(&link, &addrs);
            lines.push(format!("link: {device}"));
            let neigh = node.try_neighbours(&["dev", DEVICE, "nud", "permanent"])?;
            lines.extend(tagged("neigh", &neigh, |l| l.contains("PERMANENT")));
            let fdb = output(node.command("bridge").args(["fdb", "show", "dev", DEVICE]))?;
            lines.extend(tagged("fdb", &fdb, |l| {
                l.split_whitespace().any(|t| t == "dst")
            }));
            Some(device)
        } else {
            None
        };
        let routes = node.try_ip(&["route", "show", "proto", ROUTE_PROTOCOL])?;
        lines.extend(tagged("route", &routes, |_| true));
        // The kernel dumps entries in hash order, so those are sorted; nft
        // prints its table in a fixed order whose structure (which rule sits
        // in which chain) is worth keeping, so its lines follow unsorted.
        lines.sort();
        lines.extend(tagged("nft", &nft_table(node), |_| true));
        Ok(Self { device, lines })
    }

    /// Lines of a source (`"neigh"`, `"fdb"`, ...), without their tag.
    #[must_use]
    pub fn section(&self, tag: &str) -> Vec<&str> {
        let prefix = format!("{tag}: ");
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    }

    /// This snapshot without the lines `drop` picks.
    #[must_use]
    pub fn without(&self, drop: impl Fn(&str) -> bool) -> Self {
        Self {
            device: self.device.clone(),
            lines: self.lines.iter().filter(|l| !drop(l)).cloned().collect(),
        }
    }

    /// Lines of `self` missing from `other` and lines of `other` not in `self`,
    /// for assertion messages.
    #[must_use]
    pub fn difference(&self, other: &Self) -> String {
        let gone: Vec<&String> = self
            .lines
            .iter()
            .filter(|l| !other.lines.contains(l))
            .collect();
        let new: Vec<&String> = other
            .lines
            .iter()
            .filter(|l| !self.lines.contains(l))
            .collect();
        format!("missing {gone:#?}\nunexpected {new:#?}")
    }
}

impl fmt::Display for OverlaySnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Whether a snapshot line belongs to the peer with this VTEP MAC and pod
/// CIDR: its neighbour and FDB entries carry the MAC, its route starts with
/// the CIDR (exact tokens, so 10.244.3.0/24 never matches 10.244.30.0/24).
#[must_use]
pub fn is_peer_line(line: &str, vtep_mac: &str, pod_cidr: &str) -> bool {
    let network = pod_cidr.split('/').next().unwrap_or(pod_cidr);
    line.split_whitespace()
        .any(|t| t == vtep_mac || t == pod_cidr || t == network)
        && !line.starts_with("link:")
        && !line.starts_with("nft:")
}

/// `nft list table ip vpc-cni`, with rule counters reduced to the word
/// `counter`: traffic moves the numbers, and they are not entries ipamd
/// programs. A missing table reads as one line saying so.
fn nft_table(node: &Netns) -> String {
    match output(node.command("nft").args(["list", "table", "ip", NFT_TABLE])) {
        Ok(text) => text
            .lines()
            .map(strip_counters)
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => format!("(no table ip {NFT_TABLE})"),
    }
}

fn strip_counters(line: &str) -> String {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        out.push(tokens[i]);
        let is_counter = tokens[i] == "counter"
            && tokens.get(i + 1) == Some(&"packets")
            && tokens.get(i + 3) == Some(&"bytes");
        i += if is_counter { 5 } else { 1 };
    }
    out.join(" ")
}

/// Non-empty lines of `text` that `keep` accepts, whitespace normalised and
/// tagged with their source.
fn tagged(tag: &str, text: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && keep(l))
        .map(|l| format!("{tag}: {l}"))
        .collect()
}

/// Stdout of a command that must succeed.
pub(crate) fn output(cmd: &mut Command) -> io::Result<String> {
    let out = run_checked(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Everything worth seeing about a node when a test fails there.
#[must_use]
pub fn node_state_dump(node: &Netns) -> String {
    let show = |args: &[&str]| {
        node.try_ip(args)
            .unwrap_or_else(|e| format!("ip {args:?}: {e}\n"))
    };
    let fdb = output(node.command("bridge").args(["fdb", "show", "dev", DEVICE]))
        .unwrap_or_else(|e| format!("bridge fdb: {e}\n"));
    let nft = output(node.command("nft").args(["list", "ruleset"]))
        .unwrap_or_else(|e| format!("nft list ruleset: {e}\n"));
    format!(
        "--- ip addr ---\n{}--- ip -d link {DEVICE} ---\n{}--- ip route ---\n{}\
         --- ip neigh ---\n{}--- bridge fdb {DEVICE} ---\n{fdb}--- nft ---\n{nft}",
        show(&["-br", "addr"]),
        show(&["-d", "link", "show", "dev", DEVICE]),
        show(&["route", "show", "table", "all"]),
        show(&["neigh"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_details_are_read_from_ip_output() {
        let link = "3: vxlan.vpc: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue state UNKNOWN\n    link/ether 0e:56:ac:14:00:0b brd ff:ff:ff:ff:ff:ff promiscuity 0 minmtu 68 maxmtu 65535\n    vxlan id 1 local 172.20.0.11 dev eth0 srcport 0 0 dstport 8472 nolearning ttl auto";
        let addrs =
            "3: vxlan.vpc    inet 10.244.1.0/32 scope global vxlan.vpc\\       valid_lft forever";
        let d = VxlanDevice::parse(link, addrs);
        assert_eq!(d.vni, Some(1));
        assert_eq!(d.port, Some(8472));
        assert_eq!(d.mtu, Some(1450));
        assert_eq!(d.local.as_deref(), Some("172.20.0.11"));
        assert_eq!(d.underlay_dev.as_deref(), Some("eth0"));
        assert_eq!(d.mac.as_deref(), Some("0e:56:ac:14:00:0b"));
        assert!(!d.learning);
        assert_eq!(d.addresses, vec!["10.244.1.0/32".to_string()]);
    }

    #[test]
    fn counters_are_reduced_and_peer_lines_found_by_exact_tokens() {
        assert_eq!(
            strip_counters("ip saddr 10.244.1.0/24 counter packets 12 bytes 900 masquerade"),
            "ip saddr 10.244.1.0/24 counter masquerade"
        );
        let mac = "0e:56:ac:14:00:0d";
        assert!(is_peer_line(
            "route: 10.244.3.0/24 via 10.244.3.0 dev vxlan.vpc onlink",
            mac,
            "10.244.3.0/24"
        ));
        assert!(is_peer_line(
            "fdb: 0e:56:ac:14:00:0d dst 172.20.0.13 self permanent",
            mac,
            "10.244.3.0/24"
        ));
        assert!(!is_peer_line(
            "route: 10.244.30.0/24 via 10.244.30.0 dev vxlan.vpc onlink",
            mac,
            "10.244.3.0/24"
        ));
    }
}
