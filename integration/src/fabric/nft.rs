//! The fabric's nftables table: the source/dest check and the internet's
//! public-address rule. Rendered as text here (pure), loaded with `nft -f`
//! inside the fabric namespace only.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use vpc_cni_proto::net::Ipv4Cidr;

pub const TABLE: &str = "vpcsim_fabric";
/// Counts packets dropped by the source/dest check.
pub const SPOOFED: &str = "spoofed";
/// Counts packets to or from the internet that lack a public mapping.
pub const NOT_PUBLIC: &str = "not_public";

/// Creates the table once. Its counters are named objects, so refilling the
/// chains on every reconcile keeps their counts.
#[must_use]
pub fn table_script() -> String {
    format!(
        "table ip {TABLE} {{\n\
         \tcounter {SPOOFED} {{}}\n\
         \tcounter {NOT_PUBLIC} {{}}\n\
         \tchain srccheck {{ type filter hook prerouting priority raw; policy accept; }}\n\
         \tchain internet {{ type filter hook forward priority filter; policy accept; }}\n\
         }}\n"
    )
}

/// One link that sends into the fabric and the sources it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub link: String,
    pub sources: BTreeSet<Ipv4Cidr>,
}

/// Replaces both chains' rules in one transaction. Packets from `trusted`
/// links (the fabric's own and the internet's) are not checked; a packet
/// from any other link whose source is not one of its sender's is dropped,
/// as EC2's source/dest check does. Only `public` addresses talk to the
/// internet, in both directions.
#[must_use]
pub fn rules_script(
    trusted: &[&str],
    senders: &[Sender],
    internet_link: &str,
    public: &BTreeSet<Ipv4Addr>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "flush chain ip {TABLE} srccheck");
    let _ = writeln!(out, "flush chain ip {TABLE} internet");
    let trusted: Vec<String> = trusted.iter().map(|l| format!("\"{l}\"")).collect();
    if !trusted.is_empty() {
        let _ = writeln!(
            out,
            "add rule ip {TABLE} srccheck iifname {{ {} }} accept",
            trusted.join(", ")
        );
    }
    for sender in senders.iter().filter(|s| !s.sources.is_empty()) {
        let _ = writeln!(
            out,
            "add rule ip {TABLE} srccheck iifname \"{}\" ip saddr {} accept",
            sender.link,
            set(sender.sources.iter())
        );
    }
    let _ = writeln!(
        out,
        "add rule ip {TABLE} srccheck counter name \"{SPOOFED}\" drop"
    );
    if public.is_empty() {
        for dir in ["oifname", "iifname"] {
            let _ = writeln!(
                out,
                "add rule ip {TABLE} internet {dir} \"{internet_link}\" counter name \"{NOT_PUBLIC}\" drop"
            );
        }
    } else {
        let public = set(public.iter());
        for (dir, field) in [("oifname", "saddr"), ("iifname", "daddr")] {
            let _ = writeln!(
                out,
                "add rule ip {TABLE} internet {dir} \"{internet_link}\" ip {field} != {public} counter name \"{NOT_PUBLIC}\" drop"
            );
        }
    }
    out
}

fn set<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let items: Vec<String> = items.map(|i| i.to_string()).collect();
    format!("{{ {} }}", items.join(", "))
}

/// The packet count in `nft list counter` output.
#[must_use]
pub fn parse_packets(listing: &str) -> Option<u64> {
    let mut words = listing.split_whitespace();
    while let Some(word) = words.next() {
        if word == "packets" {
            return words.next().and_then(|n| n.parse().ok());
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn rules_accept_each_links_own_sources_and_drop_the_rest() {
        let senders = vec![
            Sender {
                link: "fa".into(),
                sources: [net("10.0.0.5/32"), net("10.0.0.16/28")].into(),
            },
            Sender {
                link: "fb".into(),
                sources: [net("10.0.0.6/32")].into(),
            },
        ];
        let public = [Ipv4Addr::new(10, 0, 0, 5)].into();
        let script = rules_script(&["lo", "up0"], &senders, "up0", &public);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            lines,
            vec![
                "flush chain ip vpcsim_fabric srccheck",
                "flush chain ip vpcsim_fabric internet",
                "add rule ip vpcsim_fabric srccheck iifname { \"lo\", \"up0\" } accept",
                "add rule ip vpcsim_fabric srccheck iifname \"fa\" ip saddr { 10.0.0.5/32, 10.0.0.16/28 } accept",
                "add rule ip vpcsim_fabric srccheck iifname \"fb\" ip saddr { 10.0.0.6/32 } accept",
                "add rule ip vpcsim_fabric srccheck counter name \"spoofed\" drop",
                "add rule ip vpcsim_fabric internet oifname \"up0\" ip saddr != { 10.0.0.5 } counter name \"not_public\" drop",
                "add rule ip vpcsim_fabric internet iifname \"up0\" ip daddr != { 10.0.0.5 } counter name \"not_public\" drop",
            ]
        );
    }

    #[test]
    fn without_public_addresses_the_internet_is_cut_off() {
        let script = rules_script(&[], &[], "up0", &BTreeSet::new());
        assert!(script.contains("oifname \"up0\" counter name \"not_public\" drop"));
        assert!(script.contains("iifname \"up0\" counter name \"not_public\" drop"));
        assert!(!script.contains("{  }"), "empty set in {script}");
    }

    #[test]
    fn packets_are_read_from_a_counter_listing() {
        let listing = "table ip t {\n\tcounter spoofed {\n\t\tpackets 3 bytes 252\n\t}\n}\n";
        assert_eq!(parse_packets(listing), Some(3));
        assert_eq!(parse_packets("table ip t {}"), None);
    }
}
