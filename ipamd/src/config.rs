//! ipamd's settings: parsed once at start from flags and environment, then
//! passed down as a typed struct. Nothing deeper reads the environment.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::error::IpamdError;

/// Which pool source and node datapath ipamd runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeSetting {
    /// VPC when IMDS answers, overlay otherwise (decided once per boot).
    Auto,
    /// ENIs and VPC addresses from EC2 (not built yet).
    Vpc,
    /// Addresses from the node's pod CIDR.
    Overlay,
}

/// An IPv4 network in CIDR form whose host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
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
fn parse_duration(s: &str) -> Result<Duration, String> {
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

fn parse_mtu(s: &str) -> Result<u32, String> {
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

/// Command line and environment of `ipamd` (each flag has an env variable of
/// the name shown in its value placeholder; see README's configuration table).
#[derive(Debug, Clone, Parser)]
#[command(name = "ipamd", version, about = "vpc-cni node daemon")]
pub struct Settings {
    /// auto | vpc | overlay.
    #[arg(
        long,
        env = "VPC_CNI_MODE",
        value_name = "VPC_CNI_MODE",
        default_value = "auto"
    )]
    pub mode: ModeSetting,

    /// The node's pod CIDR (overlay mode's pool), e.g. 10.244.1.0/24.
    #[arg(long, env = "POD_CIDR", value_name = "POD_CIDR")]
    pub pod_cidr: Option<Ipv4Cidr>,

    /// Unix socket the CniBackend service listens on (mode 0600).
    #[arg(long, env = "IPAMD_SOCKET", value_name = "IPAMD_SOCKET",
          default_value = vpc_cni_proto::DEFAULT_IPAMD_SOCKET)]
    pub socket: PathBuf,

    /// Directory of the checkpoint `ipam.json` (tmpfs on purpose).
    #[arg(long, env = "IPAMD_STATE_DIR", value_name = "IPAMD_STATE_DIR",
          default_value = vpc_cni_proto::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// How long a released address rests before it is handed out again.
    #[arg(long, env = "IP_COOLDOWN_PERIOD", value_name = "IP_COOLDOWN_PERIOD",
          default_value = "30", value_parser = parse_duration)]
    pub ip_cooldown_period: Duration,

    /// Age below which an assignment without a host veth is kept (its ADD may
    /// still be wiring the pod).
    #[arg(long, env = "ASSIGNMENT_GRACE_PERIOD", value_name = "ASSIGNMENT_GRACE_PERIOD",
          default_value = "60", value_parser = parse_duration)]
    pub assignment_grace_period: Duration,

    /// How often assignments whose host veth is gone are reclaimed.
    #[arg(long, env = "VETH_SWEEP_INTERVAL", value_name = "VETH_SWEEP_INTERVAL",
          default_value = "60", value_parser = parse_duration)]
    pub veth_sweep_interval: Duration,

    /// MTU of pod interfaces.
    #[arg(long, env = "POD_MTU", value_name = "POD_MTU", value_parser = parse_mtu)]
    pub pod_mtu: Option<u32>,

    /// Longest time an ADD waits for an address to come out of cooldown.
    #[arg(long, env = "POOL_WAIT_TIMEOUT", value_name = "POOL_WAIT_TIMEOUT",
          default_value = "10", value_parser = parse_duration)]
    pub pool_wait_timeout: Duration,
}

/// Pod MTU when `POD_MTU` is unset, for a node with no underlay to derive it from.
pub const DEFAULT_POD_MTU: u32 = 1500;

impl Settings {
    /// Checks the combinations a single flag parser cannot see.
    pub fn validate(&self) -> Result<(), IpamdError> {
        match self.mode {
            ModeSetting::Vpc => {
                return Err(IpamdError::Config {
                    variable: "VPC_CNI_MODE",
                    reason:
                        "vpc mode (ENIs through EC2) is not built yet; use overlay with POD_CIDR"
                            .into(),
                })
            }
            ModeSetting::Auto | ModeSetting::Overlay => {
                let cidr = self.pod_cidr.ok_or(IpamdError::Config {
                    variable: "POD_CIDR",
                    reason: "required in overlay mode (the node's pod CIDR, e.g. 10.244.1.0/24)"
                        .into(),
                })?;
                if cidr.prefix_len > 30 || cidr.prefix_len < 8 {
                    return Err(IpamdError::Config {
                        variable: "POD_CIDR",
                        reason: format!("{cidr}: prefix length must be 8..=30"),
                    });
                }
            }
        }
        if self.veth_sweep_interval.is_zero() {
            return Err(IpamdError::Config {
                variable: "VETH_SWEEP_INTERVAL",
                reason: "must be greater than zero".into(),
            });
        }
        if !self.socket.is_absolute() {
            return Err(IpamdError::Config {
                variable: "IPAMD_SOCKET",
                reason: format!("{} is not an absolute path", self.socket.display()),
            });
        }
        Ok(())
    }

    /// The MTU pods get.
    #[must_use]
    pub fn effective_pod_mtu(&self) -> u32 {
        self.pod_mtu.unwrap_or(DEFAULT_POD_MTU)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Settings::try_parse_from(std::iter::once("ipamd").chain(args.iter().copied()))
    }

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn cidr_parsing_rejects_host_bits_and_bad_lengths() {
        let c: Ipv4Cidr = "10.1.0.0/24".parse().unwrap();
        assert_eq!(c.size(), 256);
        assert!(c.contains("10.1.0.9".parse().unwrap()));
        assert!(!c.contains("10.1.1.9".parse().unwrap()));
        assert!("10.1.0.1/24".parse::<Ipv4Cidr>().is_err());
        assert!("10.1.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.1.0.0".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = parse(&["--ip-cooldown-period", "soon"]).unwrap_err();
        assert!(err.to_string().contains("IP_COOLDOWN_PERIOD"), "{err}");
        let err = parse(&["--pod-cidr", "10.0.0.1/8"]).unwrap_err();
        assert!(err.to_string().contains("POD_CIDR"), "{err}");
        let err = parse(&["--pod-mtu", "20000"]).unwrap_err();
        assert!(err.to_string().contains("POD_MTU"), "{err}");
    }

    #[test]
    fn overlay_needs_a_pod_cidr() {
        let s = parse(&["--mode", "overlay"]).unwrap();
        let err = s.validate().unwrap_err();
        assert!(err.to_string().contains("POD_CIDR"), "{err}");
        let s = parse(&["--mode", "overlay", "--pod-cidr", "10.9.0.0/31"]).unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("POD_CIDR"));
        let s = parse(&["--pod-cidr", "10.9.0.0/24"]).unwrap();
        s.validate().unwrap();
        assert_eq!(s.ip_cooldown_period, Duration::from_secs(30));
        assert_eq!(s.assignment_grace_period, Duration::from_secs(60));
    }

    #[test]
    fn vpc_mode_is_refused_until_it_exists() {
        let s = parse(&["--mode", "vpc"]).unwrap();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("VPC_CNI_MODE"));
    }
}
