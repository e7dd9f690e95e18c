//! ipamd's settings: parsed once at start from flags and environment, then
//! passed down as a typed struct. Nothing deeper reads the environment.

mod aws_knobs;
mod deploy;
mod ec2_client;
mod logging;
mod observe;
mod overlay;
mod parse;
mod vpc;

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};
use vpc_cni_proto::Mode;

pub use aws_knobs::{aws_knob, check_aws_knobs, AwsKnob, KnobNotice, Treatment, Values, AWS_KNOBS};
pub use deploy::{DeploySettings, DEFAULT_SYSCTL_NET_DIR};
pub use ec2_client::Ec2ClientSettings;
pub use logging::{EffectiveFilter, LogFormat, LogLevel, LogSettings, LogTarget};
pub use observe::{
    parse_listen_addr, ObserveSettings, DEFAULT_INTROSPECTION_ADDR, DEFAULT_METRICS_ADDR,
};
pub use overlay::{OverlaySettings, PeerSourceChoice};
pub use parse::{parse_duration, parse_endpoint, parse_mode_setting, parse_mtu, CidrList};
pub use vpc::VpcSettings;
use vpc_cni_proto::net::Ipv4Cidr;

use crate::error::IpamdError;
use crate::overlay::pool::check_pod_cidr_size;

/// `VPC_CNI_MODE`: a mode, or `auto` to let the node decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSetting {
    /// VPC when IMDS answers, overlay otherwise (decided once per boot).
    Auto,
    /// `vpc` (ENIs and VPC addresses from EC2) or `overlay` (the node's pod CIDR).
    Fixed(Mode),
}

/// Command line and environment of `ipamd` (each flag has an env variable of
/// the name shown in its value placeholder; see README's configuration table).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ipamd",
    version,
    about = "vpc-cni node daemon",
    after_help = "Subcommands (each with its own --help): ipamd inspect, ipamd health, ipamd install-cni, ipamd max-pods"
)]
pub struct Settings {
    /// auto | vpc | overlay.
    #[arg(long, env = "VPC_CNI_MODE", value_name = "VPC_CNI_MODE", default_value = "auto",
          value_parser = parse_mode_setting)]
    pub mode: ModeSetting,

    /// The node's pod CIDR (overlay mode's pool), e.g. 10.244.1.0/24.
    #[arg(long, env = "POD_CIDR")]
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
    #[arg(long, env = "IP_COOLDOWN_PERIOD", default_value = "30", value_parser = parse_duration)]
    pub ip_cooldown_period: Duration,

    /// Age below which an assignment without a host veth is kept (its ADD may
    /// still be wiring the pod).
    #[arg(long, env = "ASSIGNMENT_GRACE_PERIOD", default_value = "60",
          value_parser = parse_duration)]
    pub assignment_grace_period: Duration,

    /// How often assignments whose host veth is gone are reclaimed.
    #[arg(long, env = "VETH_SWEEP_INTERVAL", default_value = "60", value_parser = parse_duration)]
    pub veth_sweep_interval: Duration,

    /// MTU of pod interfaces.
    #[arg(long, env = "POD_MTU", value_parser = parse_mtu)]
    pub pod_mtu: Option<u32>,

    /// How often the node datapath (rules, tables, SNAT, VXLAN device) is applied again from
    /// scratch, repairing what someone changed; damage STATUS finds is repaired at once.
    #[arg(long, env = "DATAPATH_RESYNC_INTERVAL", default_value = "60",
          value_parser = parse_duration)]
    pub datapath_resync_interval: Duration,

    /// Longest time an ADD waits for an address to come out of cooldown.
    #[arg(long, env = "POOL_WAIT_TIMEOUT", default_value = "10", value_parser = parse_duration)]
    pub pool_wait_timeout: Duration,

    /// Drop pods' traffic to the instance metadata service (169.254.169.254), in both modes:
    /// on EC2 (either mode) it hands out the node's IAM credentials, and on a node without
    /// one the block costs nothing. The node's own requests are not affected.
    #[arg(long, env = "BLOCK_POD_IMDS", value_name = "BLOCK_POD_IMDS", default_value = "true",
          value_parser = parse::parse_bool, action = ArgAction::Set)]
    pub block_pod_imds: bool,

    #[command(flatten)]
    pub vpc: VpcSettings,

    #[command(flatten)]
    pub overlay: OverlaySettings,

    #[command(flatten)]
    pub observe: ObserveSettings,

    #[command(flatten)]
    pub deploy: DeploySettings,

    #[command(flatten)]
    pub logging: LogSettings,
}

/// The error for an overlay node with no way to learn its pod CIDR.
#[must_use]
pub fn missing_pod_cidr() -> IpamdError {
    IpamdError::Config {
        variable: "POD_CIDR",
        reason: "required in overlay mode unless ipamd reads its Node from the Kubernetes API \
                 (the node's pod CIDR, e.g. 10.244.1.0/24)"
            .into(),
    }
}

/// Pod MTU when `POD_MTU` is unset, for a node with no underlay to derive it from.
pub const DEFAULT_POD_MTU: u32 = 1500;

impl Settings {
    /// Checks the combinations a single flag parser cannot see.
    pub fn validate(&self) -> Result<(), IpamdError> {
        self.overlay.validate()?;
        self.deploy.validate()?;
        if self.mode == ModeSetting::Fixed(Mode::Overlay) && self.pod_cidr.is_none() {
            self.require_pod_cidr()?;
        }
        if let Some(cidr) = self.pod_cidr {
            check_pod_cidr_size(cidr).map_err(|reason| IpamdError::Config {
                variable: "POD_CIDR",
                reason,
            })?;
        }
        parse::require_nonzero("VETH_SWEEP_INTERVAL", self.veth_sweep_interval)?;
        if let Some(timeout) = self.vpc.ec2_client.http_timeout {
            parse::require_nonzero("HTTP_TIMEOUT", timeout)?;
        }
        parse::require_nonzero("DATAPATH_RESYNC_INTERVAL", self.datapath_resync_interval)?;
        if !self.socket.is_absolute() {
            return Err(IpamdError::Config {
                variable: "IPAMD_SOCKET",
                reason: format!("{} is not an absolute path", self.socket.display()),
            });
        }
        Ok(())
    }

    /// In overlay mode the pool is `POD_CIDR`; only the Kubernetes peer source can supply it
    /// instead, from the node's `spec.podCIDR`.
    pub fn require_pod_cidr(&self) -> Result<(), IpamdError> {
        if self.pod_cidr.is_some() || self.overlay.peer_source() == PeerSourceChoice::Kubernetes {
            return Ok(());
        }
        Err(missing_pod_cidr())
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
    fn a_pod_cidr_larger_than_a_slash_16_is_refused_naming_the_bound() {
        for too_large in ["10.0.0.0/8", "10.0.0.0/15", "0.0.0.0/1"] {
            let s = parse(&["--mode", "overlay", "--pod-cidr", too_large]).unwrap();
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("POD_CIDR"), "{err}");
            assert!(err.contains("/16") && err.contains("65536"), "{err}");
        }
        parse(&["--mode", "overlay", "--pod-cidr", "10.0.0.0/16"])
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn vpc_knobs_parse_and_name_their_variable() {
        let s = parse(&[
            "--warm-ip-target",
            "5",
            "--exclude-snat-cidrs",
            "10.9.0.0/16, 192.168.0.0/24",
            "--additional-eni-tags",
            r#"{"team":"net"}"#,
        ])
        .unwrap();
        assert_eq!(s.vpc.warm_ip_target, 5);
        assert_eq!(s.vpc.warm_eni_target, 1);
        assert_eq!(s.vpc.exclude_snat_cidrs.0.len(), 2);
        assert_eq!(
            s.vpc.additional_eni_tags.get("team").map(String::as_str),
            Some("net")
        );
        assert_eq!(s.vpc.eni_mtu, 9001);
        assert_eq!(s.vpc.pool_shrink_interval, Duration::from_secs(30));
        assert_eq!(s.vpc.min_eni_age, Duration::from_secs(60));
        assert_eq!(s.vpc.subnet_full_pause, Duration::from_secs(120));
        let err = parse(&["--enable-prefix-delegation", "maybe"]).unwrap_err();
        assert!(
            err.to_string().contains("ENABLE_PREFIX_DELEGATION"),
            "{err}"
        );
        let err = parse(&["--additional-eni-tags", "[1]"]).unwrap_err();
        assert!(err.to_string().contains("ADDITIONAL_ENI_TAGS"), "{err}");
    }

    #[test]
    fn pods_are_kept_from_imds_unless_the_operator_allows_it() {
        assert!(parse(&[]).unwrap().block_pod_imds);
        assert!(
            !parse(&["--block-pod-imds", "false"])
                .unwrap()
                .block_pod_imds
        );
        let err = parse(&["--block-pod-imds", "sometimes"]).unwrap_err();
        assert!(err.to_string().contains("BLOCK_POD_IMDS"), "{err}");
    }

    #[test]
    fn deploy_knobs_default_off_and_name_their_variable() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.deploy.cni_conf_dir(), None);
        assert_eq!(s.deploy.plugin_log_file(), None);
        assert_eq!(s.deploy.plugin_log_level(), None);
        assert_eq!(
            s.deploy.sysctl_net_dir,
            PathBuf::from(DEFAULT_SYSCTL_NET_DIR)
        );
        let s = parse(&[
            "--cni-conf-dir",
            "/host/etc/cni/net.d",
            "--plugin-log-file",
            "/var/log/vpc-cni/plugin.log",
            "--plugin-log-level",
            "DEBUG",
        ])
        .unwrap();
        s.validate().unwrap();
        assert_eq!(
            s.deploy.cni_conf_dir(),
            Some(std::path::Path::new("/host/etc/cni/net.d"))
        );
        assert_eq!(s.deploy.plugin_log_level(), Some("DEBUG"));
        assert!(parse(&["--plugin-log-file", "stderr"]).is_ok());
        for (args, variable) in [
            (
                &["--plugin-log-file", "plugin.log"][..],
                "AWS_VPC_K8S_PLUGIN_LOG_FILE",
            ),
            (
                &["--plugin-log-file", "stdout"][..],
                "AWS_VPC_K8S_PLUGIN_LOG_FILE",
            ),
            (
                &["--plugin-log-level", "trace"][..],
                "AWS_VPC_K8S_PLUGIN_LOG_LEVEL",
            ),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(variable), "{args:?}: {err}");
        }
        for (args, variable) in [
            (&["--cni-conf-dir", "etc/cni/net.d"][..], "CNI_CONF_DIR"),
            (&["--sysctl-net-dir", "proc/sys/net"][..], "SYSCTL_NET_DIR"),
        ] {
            let err = parse(args).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(variable), "{args:?}: {err}");
        }
    }

    #[test]
    fn vpc_and_auto_modes_need_no_pod_cidr_up_front() {
        parse(&["--mode", "vpc"]).unwrap().validate().unwrap();
        parse(&["--mode", "auto"]).unwrap().validate().unwrap();
    }

    #[test]
    fn overlay_peer_source_is_the_file_then_the_api_then_none() {
        let s = parse(&["--peers-file", "/etc/peers.json", "--kubeconfig", "/k"]).unwrap();
        assert_eq!(
            s.overlay.peer_source(),
            PeerSourceChoice::File("/etc/peers.json".into())
        );
        let s = parse(&["--kubernetes-service-host", "10.96.0.1"]).unwrap();
        assert_eq!(s.overlay.peer_source(), PeerSourceChoice::Kubernetes);
        let s = parse(&[]).unwrap();
        assert_eq!(s.overlay.peer_source(), PeerSourceChoice::Standalone);
        assert_eq!(s.overlay.vxlan_vni, 1);
        assert_eq!(s.overlay.vxlan_port, 8472);
        assert!(!s.overlay.vxlan_direct_routing);
        assert_eq!(s.vpc.max_pods, None);
        assert_eq!(parse(&["--max-pods", "8"]).unwrap().vpc.max_pods, Some(8));
    }

    #[test]
    fn overlay_without_pod_cidr_needs_the_api() {
        let s = parse(&["--mode", "overlay", "--peers-file", "/p.json"]).unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("POD_CIDR"));
        let s = parse(&["--mode", "overlay", "--kubeconfig", "/k"]).unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn bad_overlay_values_name_their_variable() {
        for (args, variable) in [
            (&["--vxlan-vni", "0"][..], "VXLAN_VNI"),
            (&["--vxlan-vni", "16777216"][..], "VXLAN_VNI"),
            (&["--vxlan-port", "0"][..], "VXLAN_PORT"),
            (&["--node-name", " "][..], "MY_NODE_NAME"),
            (
                &["--peers-file-poll-interval", "0"][..],
                "PEERS_FILE_POLL_INTERVAL",
            ),
        ] {
            let err = parse(args).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(variable), "{args:?}: {err}");
        }
        for (args, variable) in [
            (&["--vxlan-port", "70000"][..], "VXLAN_PORT"),
            (
                &["--vxlan-direct-routing", "sometimes"][..],
                "VXLAN_DIRECT_ROUTING",
            ),
            (&["--cluster-cidr", "10.0.0.1/8"][..], "CLUSTER_CIDR"),
            (&["--max-pods", "0"][..], "MAX_PODS"),
            (&["--max-pods", "many"][..], "MAX_PODS"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(variable), "{args:?}: {err}");
        }
    }
}
