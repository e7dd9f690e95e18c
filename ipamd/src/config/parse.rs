//! Value parsers for settings: CIDRs, durations, MTUs, lists.

use std::net::Ipv4Addr;
use std::time::Duration;

/// An IPv4 network in CIDR form whose host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// The network of `prefix_len` bits that holds `ip` (host bits cleared).
    #[must_use]
    pub fn containing(ip: Ipv4Addr, prefix_len: u8) -> Self {
        let prefix_len = prefix_len.min(32);
        let mask = if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix_len))
        };
        Self {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            prefix_len,
        }
    }

    /// Number of addresses the prefix covers.
    #[must_use]
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix_len))
    }

    /// Whether `ip` lies inside this network.
    #[must_use]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len))
        };
        u32::from(ip) & mask == u32::from(self.network)
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR form (a.b.c.d/len)"))?;
        let network: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("prefix length {len:?} is not 0..=32"))?;
        let cidr = Self {
            network,
            prefix_len,
        };
        if !cidr.contains(network) {
            return Err(format!("{s} has host bits set"));
        }
        Ok(cidr)
    }
}

/// A duration given as whole seconds ("30", as the AWS VPC CNI takes it) or
/// with a unit suffix ("500ms", "30s", "5m", "1h").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30, 30s, 500ms, 5m)"))?;
    let millis = match unit {
        "" | "s" => value.checked_mul(1000),
        "ms" => Some(value),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    }
    .ok_or_else(|| format!("{s:?} is too large"))?;
    Ok(Duration::from_millis(millis))
}

pub fn parse_mtu(s: &str) -> Result<u32, String> {
    let mtu: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if (576..=9001).contains(&mtu) {
        Ok(mtu)
    } else {
        Err(format!("{mtu} is outside 576..=9001"))
    }
}

/// A list of CIDRs given as one comma-separated value (a newtype, so clap
/// takes the whole list as one value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrList(pub Vec<Ipv4Cidr>);

/// A comma-separated list of CIDRs (empty string = none).
pub fn parse_cidr_list(s: &str) -> Result<CidrList, String> {
    s.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map(CidrList)
}

/// `true`/`false` in the spellings Kubernetes manifests use.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// A JSON object of string tags, as the AWS VPC CNI takes `ADDITIONAL_ENI_TAGS`.
pub fn parse_tags(s: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    if s.trim().is_empty() {
        return Ok(std::collections::BTreeMap::new());
    }
    serde_json::from_str(s).map_err(|e| format!("not a JSON object of strings: {e}"))
}
