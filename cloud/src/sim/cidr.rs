//! IPv4 CIDR arithmetic for VPCs, subnets and /28 prefixes.

use std::fmt;
use std::net::Ipv4Addr;

use super::errors::{err, ErrorCode, SimError};

/// An IPv4 network: `base` has no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Cidr {
    pub base: u32,
    pub len: u8,
}

impl Cidr {
    /// Parses "a.b.c.d/n"; host bits must be zero, as EC2 insists.
    pub fn parse(s: &str) -> Result<Cidr, SimError> {
        let bad = || {
            SimError::new(
                ErrorCode::InvalidParameterValue,
                format!("{s:?} is not a valid IPv4 CIDR block"),
            )
        };
        let (addr, len) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let len: u8 = len.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        let cidr = Cidr {
            base: u32::from(addr),
            len,
        };
        if cidr.base & !cidr.mask() != 0 {
            return err(
                ErrorCode::InvalidParameterValue,
                format!("{s:?} has host bits set"),
            );
        }
        Ok(cidr)
    }

    pub fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// Number of addresses; a /0 is clamped, which no caller allows anyway.
    pub fn size(self) -> u32 {
        if self.len == 0 {
            u32::MAX
        } else {
            1u32 << (32 - u32::from(self.len))
        }
    }

    pub fn last(self) -> u32 {
        self.base | !self.mask()
    }

    pub fn contains(self, ip: u32) -> bool {
        ip & self.mask() == self.base
    }

    pub fn contains_cidr(self, other: Cidr) -> bool {
        other.len >= self.len && self.contains(other.base)
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let c = Cidr::parse("10.0.1.0/24").unwrap();
        assert_eq!(c.size(), 256);
        assert_eq!(c.to_string(), "10.0.1.0/24");
        assert_eq!(Ipv4Addr::from(c.last()), Ipv4Addr::new(10, 0, 1, 255));
        assert!(c.contains(u32::from(Ipv4Addr::new(10, 0, 1, 7))));
        assert!(!c.contains(u32::from(Ipv4Addr::new(10, 0, 2, 7))));
    }

    #[test]
    fn rejects_garbage_and_host_bits() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.1/24",
            "x/24",
            "10.0.0.0/x",
        ] {
            let e = Cidr::parse(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        }
    }

    #[test]
    fn overlap_and_containment() {
        let vpc = Cidr::parse("10.0.0.0/16").unwrap();
        let a = Cidr::parse("10.0.1.0/24").unwrap();
        let b = Cidr::parse("10.0.1.128/25").unwrap();
        let c = Cidr::parse("10.1.0.0/24").unwrap();
        assert!(vpc.contains_cidr(a));
        assert!(!vpc.contains_cidr(c));
        assert!(a.overlaps(b) && b.overlaps(a));
        assert!(!a.overlaps(c));
    }
}
