//! Plain network values every crate passes around: IPv4 networks and hardware addresses,
//! parsed and printed one way.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A value that does not parse; says what was read and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{input:?} is not in CIDR form (a.b.c.d/len)")]
    NotCidr { input: String },
    #[error("{input:?} is not an IPv4 address")]
    NotIpv4 { input: String },
    #[error("prefix length {input:?} is not 0..=32")]
    PrefixLength { input: String },
    #[error("{input} has host bits set")]
    HostBits { input: String },
    #[error("{input:?} is not a MAC address (six hex bytes separated by colons)")]
    NotMac { input: String },
}

/// An IPv4 network whose host bits are zero, e.g. `10.1.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

/// The netmask of a prefix length as a number (`/24` -> `0xffff_ff00`); lengths over 32 count
/// as 32.
#[must_use]
pub fn netmask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        len => u32::MAX << (32 - u32::from(len.min(32))),
    }
}

impl Ipv4Cidr {
    /// The network of `prefix_len` bits that holds `ip` (host bits cleared).
    #[must_use]
    pub fn containing(ip: Ipv4Addr, prefix_len: u8) -> Self {
        let prefix_len = prefix_len.min(32);
        Self {
            network: Ipv4Addr::from(u32::from(ip) & netmask(prefix_len)),
            prefix_len,
        }
    }

    /// `ip/32`.
    #[must_use]
    pub const fn host(ip: Ipv4Addr) -> Self {
        Self {
            network: ip,
            prefix_len: 32,
        }
    }

    /// `0.0.0.0/0`.
    pub const DEFAULT: Self = Self {
        network: Ipv4Addr::UNSPECIFIED,
        prefix_len: 0,
    };

    #[must_use]
    pub fn mask(&self) -> u32 {
        netmask(self.prefix_len)
    }

    /// Number of addresses the prefix covers.
    #[must_use]
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix_len.min(32)))
    }

    /// The highest address of the network (its broadcast address).
    #[must_use]
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    /// Whether `ip` lies inside this network.
    #[must_use]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Whether `other` lies wholly inside this network.
    #[must_use]
    pub fn contains_cidr(&self, other: &Ipv4Cidr) -> bool {
        other.prefix_len >= self.prefix_len && self.contains(other.network)
    }

    #[must_use]
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// Every address of the network, lowest first.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u64::from(u32::from(self.network));
        (first..first + self.size()).filter_map(|a| u32::try_from(a).ok().map(Ipv4Addr::from))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ParseError;

    /// `a.b.c.d/len` with no host bits set, as EC2, Kubernetes and our settings write them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (network, prefix_len) = parse_address_with_prefix(s)?;
        let cidr = Self {
            network,
            prefix_len,
        };
        if !cidr.contains(network) {
            return Err(ParseError::HostBits {
                input: s.to_owned(),
            });
        }
        Ok(cidr)
    }
}

/// `a.b.c.d/len`, host bits allowed: an interface address with its prefix length, as CNI
/// results carry them.
pub fn parse_address_with_prefix(s: &str) -> Result<(Ipv4Addr, u8), ParseError> {
    let (addr, len) = s.split_once('/').ok_or_else(|| ParseError::NotCidr {
        input: s.to_owned(),
    })?;
    let address: Ipv4Addr = addr.parse().map_err(|_| ParseError::NotIpv4 {
        input: addr.to_owned(),
    })?;
    // Digits only: `u8::from_str` would take "+24".
    let prefix_len = Some(len)
        .filter(|l| !l.is_empty() && l.len() <= 2 && l.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|l| l.parse::<u8>().ok())
        .filter(|l| *l <= 32)
        .ok_or_else(|| ParseError::PrefixLength {
            input: len.to_owned(),
        })?;
    Ok((address, prefix_len))
}

/// Canonical networks, sorted, each one another covers dropped: the shape an nftables
/// interval set accepts.
#[must_use]
pub fn normalize(cidrs: impl IntoIterator<Item = Ipv4Cidr>) -> Vec<Ipv4Cidr> {
    let mut all: Vec<Ipv4Cidr> = cidrs
        .into_iter()
        .map(|c| Ipv4Cidr::containing(c.network, c.prefix_len))
        .collect();
    // Broader networks first at each address, so a covered one always follows its cover.
    all.sort_by_key(|c| (u32::from(c.network), c.prefix_len));
    let mut kept: Vec<Ipv4Cidr> = Vec::with_capacity(all.len());
    for cidr in all {
        if !kept.iter().any(|k| k.contains_cidr(&cidr)) {
            kept.push(cidr);
        }
    }
    kept
}

/// An Ethernet hardware address, printed as `0e:56:c0:a8:32:01` (lowercase, as `ip`, IMDS
/// and EC2 write it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The address in `bytes` when it has exactly six.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(Self)
    }

    #[must_use]
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(bytes: [u8; 6]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError::NotMac {
            input: s.to_owned(),
        };
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(mac))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_strictly_and_print_back() {
        let c: Ipv4Cidr = "10.1.0.0/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.0.0/24");
        assert_eq!(c.size(), 256);
        assert_eq!(c.last(), Ipv4Addr::new(10, 1, 0, 255));
        assert!(c.contains(Ipv4Addr::new(10, 1, 0, 9)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 1, 9)));
        for (bad, want) in [
            ("10.1.0.1/24", "host bits"),
            ("10.1.0.0/33", "prefix length"),
            ("10.1.0.0/+8", "prefix length"),
            ("10.1.0.0", "CIDR form"),
            ("x/24", "IPv4"),
        ] {
            let err = bad.parse::<Ipv4Cidr>().unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert_eq!(
            parse_address_with_prefix("10.1.0.7/24").unwrap(),
            (Ipv4Addr::new(10, 1, 0, 7), 24)
        );
        assert_eq!(
            parse_address_with_prefix("0.0.0.0/0").unwrap(),
            (Ipv4Addr::UNSPECIFIED, 0)
        );
        for bad in [
            "10.0.0.5",
            "10.0.0.5/",
            "10.0.0.5/33",
            "10.0.0.5/+1",
            "10.0.0.5/032",
            "10.0.0/8",
            "/8",
            "fd00::1/64",
            " 10.0.0.5/32",
        ] {
            assert!(parse_address_with_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn containment_overlap_and_addresses() {
        let vpc: Ipv4Cidr = "10.0.0.0/16".parse().unwrap();
        let a: Ipv4Cidr = "10.0.1.0/24".parse().unwrap();
        let b: Ipv4Cidr = "10.0.1.128/25".parse().unwrap();
        let c: Ipv4Cidr = "10.1.0.0/24".parse().unwrap();
        assert!(vpc.contains_cidr(&a) && !vpc.contains_cidr(&c) && !a.contains_cidr(&vpc));
        assert!(a.overlaps(&b) && b.overlaps(&a) && !a.overlaps(&c));
        let p: Ipv4Cidr = "10.0.0.16/28".parse().unwrap();
        let all: Vec<_> = p.addresses().collect();
        assert_eq!(all.len(), 16);
        assert_eq!(all[15], Ipv4Addr::new(10, 0, 0, 31));
        assert_eq!(Ipv4Cidr::DEFAULT.size(), 1 << 32);
    }

    #[test]
    fn normalize_drops_covered_networks() {
        let list = ["10.0.0.0/16", "10.0.1.0/24", "192.168.0.0/24", "10.0.0.0/8"]
            .iter()
            .map(|s| s.parse().unwrap());
        let kept: Vec<String> = normalize(list).iter().map(ToString::to_string).collect();
        assert_eq!(kept, ["10.0.0.0/8", "192.168.0.0/24"]);
    }

    #[test]
    fn macs_round_trip() {
        let m: MacAddr = "0e:56:C0:a8:32:01".parse().unwrap();
        assert_eq!(m.0, [0x0e, 0x56, 0xc0, 0xa8, 0x32, 0x01]);
        assert_eq!(m.to_string(), "0e:56:c0:a8:32:01");
        for bad in [
            "0e:56:c0:a8:32",
            "0e:56:c0:a8:32:01:02",
            "0e-56-c0-a8-32-01",
            "e:56:c0:a8:32:1",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert_eq!(MacAddr::from_slice(&[1, 2, 3]), None);
    }
}
