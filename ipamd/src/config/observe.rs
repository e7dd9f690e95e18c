//! Settings of what ipamd shows about itself: the Prometheus endpoint and the introspection
//! API, by the AWS VPC CNI's names where it has them (`DISABLE_METRICS`,
//! `INTROSPECTION_BIND_ADDRESS`, `DISABLE_INTROSPECTION`; its metrics port is fixed at
//! 61678, ours is `METRICS_ADDR`).

use std::net::{Ipv4Addr, SocketAddr};

use clap::{ArgAction, Args};

use super::parse::parse_bool;

/// Where Prometheus scrapes ipamd: every address of the node, the AWS VPC CNI's port.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:61678";

/// Where `ipamd inspect` finds a running ipamd: loopback only, the AWS VPC CNI's port.
pub const DEFAULT_INTROSPECTION_ADDR: &str = "127.0.0.1:61679";

#[derive(Debug, Clone, Args)]
pub struct ObserveSettings {
    /// Address of the Prometheus endpoint `/metrics` (`host:port`, or `:port` for every
    /// address of the node).
    #[arg(long, env = "METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR,
          value_parser = parse_listen_addr)]
    pub metrics_addr: SocketAddr,

    /// Serve no metrics (the port stays closed).
    #[arg(long, env = "DISABLE_METRICS", default_value = "false", value_parser = parse_bool,
          action = ArgAction::Set)]
    pub disable_metrics: bool,

    /// Address of the read-only introspection API that `ipamd inspect` reads (`host:port`);
    /// it names pods, so keep it on loopback unless you mean otherwise.
    #[arg(long, env = "INTROSPECTION_BIND_ADDRESS", default_value = DEFAULT_INTROSPECTION_ADDR,
          value_parser = parse_listen_addr)]
    pub introspection_bind_address: SocketAddr,

    /// Serve no introspection API (the port stays closed).
    #[arg(long, env = "DISABLE_INTROSPECTION", default_value = "false",
          value_parser = parse_bool, action = ArgAction::Set)]
    pub disable_introspection: bool,
}

/// `host:port` (an IPv4 or IPv6 address), or `:port` for every IPv4 address of the node, the
/// way Go programs such as the AWS VPC CNI write a listen address.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?} is not :PORT (a port is 0..=65535)"))?;
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not an address and port, e.g. 127.0.0.1:61679 or :61678"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;
    use crate::config::Settings;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Settings::try_parse_from(std::iter::once("ipamd").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_the_aws_ports_metrics_on_every_address_introspection_on_loopback() {
        let s = parse(&[]).unwrap().observe;
        assert_eq!(s.metrics_addr, "0.0.0.0:61678".parse().unwrap());
        assert_eq!(
            s.introspection_bind_address,
            "127.0.0.1:61679".parse().unwrap()
        );
        assert!(!s.disable_metrics && !s.disable_introspection);
    }

    #[test]
    fn listen_addresses_take_host_port_and_go_s_colon_port() {
        assert_eq!(
            parse_listen_addr(":9100").unwrap(),
            "0.0.0.0:9100".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr(" 10.0.0.5:61678 ").unwrap(),
            "10.0.0.5:61678".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::1]:61679").unwrap(),
            "[::1]:61679".parse().unwrap()
        );
        for bad in ["", "61678", "localhost:61679", ":", ":70000", "10.0.0.5"] {
            assert!(parse_listen_addr(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (args, variable) in [
            (&["--metrics-addr", "61678"][..], "METRICS_ADDR"),
            (&["--disable-metrics", "maybe"][..], "DISABLE_METRICS"),
            (
                &["--introspection-bind-address", "loopback"][..],
                "INTROSPECTION_BIND_ADDRESS",
            ),
            (
                &["--disable-introspection", "2"][..],
                "DISABLE_INTROSPECTION",
            ),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(variable), "{args:?}: {err}");
        }
    }

    #[test]
    fn the_switches_take_the_manifest_spellings() {
        let s = parse(&[
            "--disable-metrics",
            "true",
            "--disable-introspection",
            "TRUE",
        ])
        .unwrap()
        .observe;
        assert!(s.disable_metrics && s.disable_introspection);
    }
}
