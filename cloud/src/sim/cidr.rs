//! The sim's use of the shared IPv4 network type: EC2's error for a block that does not
//! parse, and offsets from a network's first address (the subnet pools count in those).

use std::net::Ipv4Addr;

use vpc_cni_proto::net::Ipv4Cidr;

use super::errors::{ErrorCode, SimError};

/// Parses "a.b.c.d/n"; host bits must be zero, as EC2 insists.
pub(crate) fn parse_cidr(s: &str) -> Result<Ipv4Cidr, SimError> {
    s.parse().map_err(|e| {
        SimError::new(
            ErrorCode::InvalidParameterValue,
            format!("{s:?} is not a valid IPv4 CIDR block: {e}"),
        )
    })
}

/// The network's first address as a number.
pub(crate) fn base(cidr: &Ipv4Cidr) -> u32 {
    u32::from(cidr.network)
}

/// The /28 at `base + offset` (subnet pools hand out block offsets).
pub(crate) fn block_at(cidr: &Ipv4Cidr, offset: u32) -> Ipv4Cidr {
    Ipv4Cidr::containing(Ipv4Addr::from(base(cidr) + offset), 28)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_host_bits_are_invalid_parameter_values() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.1/24",
            "x/24",
            "10.0.0.0/x",
        ] {
            let e = parse_cidr(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        }
        let c = parse_cidr("10.0.1.0/24").unwrap();
        assert_eq!(block_at(&c, 32).to_string(), "10.0.1.32/28");
    }
}
