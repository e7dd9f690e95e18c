//! The CNI commands. `run` is the whole plugin minus process plumbing: it
//! takes the parsed environment and stdin and returns what to print.

mod add;
mod check;
mod del;
mod gc;
mod status;

use std::path::PathBuf;

use vpc_cni_proto::AttachmentRequest;

use crate::dataplane::host_veth_name;
use crate::error::CniError;
use crate::spec::{parse_netconf, version_reply, CniEnv, Command, NetConf};

/// Runs one CNI command. `Ok(Some(json))` is printed on stdout; `Ok(None)`
/// prints nothing (DEL, CHECK, GC, STATUS succeed silently).
pub async fn run(env: &CniEnv, stdin: &[u8]) -> Result<Option<String>, CniError> {
    if env.command == Command::Version {
        let requested = crate::spec::parse_version_only(stdin);
        return Ok(Some(version_reply(&requested).to_string()));
    }
    let conf = parse_netconf(stdin)?;
    let ctx = Context::new(env, conf);
    ctx.require_version()?;
    match env.command {
        Command::Add => add::run(&ctx).await.map(Some),
        Command::Del => del::run(&ctx).await.map(|()| None),
        Command::Check => check::run(&ctx).await.map(|()| None),
        Command::Gc => gc::run(&ctx).await.map(|()| None),
        Command::Status => status::run(&ctx).await.map(|()| None),
        Command::Version => Ok(None),
    }
}

/// Everything a command needs, resolved once.
pub(crate) struct Context<'a> {
    pub env: &'a CniEnv,
    pub conf: NetConf,
    pub socket: PathBuf,
}

impl<'a> Context<'a> {
    fn new(env: &'a CniEnv, conf: NetConf) -> Self {
        let socket = conf
            .ipamd_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(vpc_cni_proto::DEFAULT_IPAMD_SOCKET));
        Self { env, conf, socket }
    }

    /// Refuses a command the configured `cniVersion` does not have (CHECK came with 0.4.0,
    /// GC and STATUS with 1.1.0).
    pub fn require_version(&self) -> Result<(), CniError> {
        let version = self.conf.cni_version;
        let (supported, need) = match self.env.command {
            Command::Check => (version.has_check(), "CHECK needs cniVersion 0.4.0 or later"),
            Command::Gc => (version.has_gc_status(), "GC needs cniVersion 1.1.0"),
            Command::Status => (version.has_gc_status(), "STATUS needs cniVersion 1.1.0"),
            Command::Add | Command::Del | Command::Version => (true, ""),
        };
        if supported {
            Ok(())
        } else {
            Err(CniError::IncompatibleVersion {
                requested: version.as_str().to_string(),
                supported: need.to_string(),
            })
        }
    }

    /// The container id; the env parser guarantees it for ADD, DEL and CHECK.
    pub fn container_id(&self) -> Result<&str, CniError> {
        self.env
            .container_id
            .as_deref()
            .ok_or(CniError::InvalidEnvironment {
                var: "CNI_CONTAINERID",
                reason: "missing".into(),
            })
    }

    pub fn ifname(&self) -> Result<&str, CniError> {
        self.env
            .ifname
            .as_deref()
            .ok_or(CniError::InvalidEnvironment {
                var: "CNI_IFNAME",
                reason: "missing".into(),
            })
    }

    pub fn host_veth(&self) -> Result<String, CniError> {
        Ok(host_veth_name(
            self.env.args.pod_namespace.as_deref(),
            self.env.args.pod_name.as_deref(),
            self.container_id()?,
        ))
    }

    /// The gRPC request identifying this attachment.
    pub fn attachment(&self) -> Result<AttachmentRequest, CniError> {
        let args = &self.env.args;
        Ok(AttachmentRequest {
            container_id: self.container_id()?.to_string(),
            ifname: self.ifname()?.to_string(),
            netns: self.env.netns.clone().unwrap_or_default(),
            network_name: self.conf.name.clone(),
            pod_namespace: args.pod_namespace.clone().unwrap_or_default(),
            pod_name: args.pod_name.clone().unwrap_or_default(),
            pod_uid: args.pod_uid.clone().unwrap_or_default(),
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }
}

/// A field of the network configuration the command cannot do without.
pub(crate) fn required<'v, T>(
    value: Option<&'v T>,
    field: &str,
    reason: &str,
) -> Result<&'v T, CniError> {
    value.ok_or_else(|| CniError::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    })
}

/// Parses the dotted address ipamd returned.
pub(crate) fn parse_reply_ip(
    ip: Option<&vpc_cni_proto::IpAddress>,
) -> Result<std::net::Ipv4Addr, CniError> {
    let ip = ip.ok_or_else(|| CniError::Internal("ipamd replied without an address".into()))?;
    ip.address.parse().map_err(|_| {
        CniError::Internal(format!("ipamd replied with a bad address {:?}", ip.address))
    })
}

/// The pod address this plugin put into a (prev)result: the IPv4 entry whose
/// `interface` is the container-side interface named `ifname`. In a chain,
/// other plugins' addresses sit beside ours; the first IPv4 is only a
/// fallback for results that carry no interface indices.
pub(crate) fn pod_ipv4(result: &serde_json::Value, ifname: &str) -> Option<std::net::Ipv4Addr> {
    let interfaces = result
        .get("interfaces")
        .and_then(serde_json::Value::as_array);
    let pod_index = interfaces.and_then(|list| {
        list.iter().position(|i| {
            i.get("name").and_then(serde_json::Value::as_str) == Some(ifname)
                && i.get("sandbox")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|s| !s.is_empty())
        })
    });
    let ours = pod_index.and_then(|index| {
        result
            .get("ips")?
            .as_array()?
            .iter()
            .filter(|ip| {
                ip.get("interface").and_then(serde_json::Value::as_u64) == u64::try_from(index).ok()
            })
            .find_map(|ip| {
                let address = ip.get("address")?.as_str()?;
                vpc_cni_proto::net::parse_address_with_prefix(address)
                    .ok()
                    .map(|(a, _)| a)
            })
    });
    ours.or_else(|| crate::spec::first_ipv4(result).map(|(a, _)| a))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pod_ipv4_prefers_the_address_of_our_interface_in_a_chain() {
        let chained = serde_json::json!({
            "interfaces": [
                {"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
                {"name": "vpc1234", "mac": "bb:bb:bb:bb:bb:bb"},
                {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/p"}
            ],
            "ips": [
                {"address": "172.16.0.9/24", "interface": 0},
                {"address": "10.1.0.7/32", "interface": 2}
            ]
        });
        assert_eq!(
            pod_ipv4(&chained, "eth0"),
            Some("10.1.0.7".parse().unwrap())
        );
        let bare = serde_json::json!({"ips": [{"address": "10.1.0.8/32"}]});
        assert_eq!(pod_ipv4(&bare, "eth0"), Some("10.1.0.8".parse().unwrap()));
        assert_eq!(pod_ipv4(&serde_json::json!({}), "eth0"), None);
    }
}
