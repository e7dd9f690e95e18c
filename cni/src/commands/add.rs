//! ADD: take an address from ipamd, wire the pod, print the result.

use std::path::PathBuf;

use vpc_cni_proto::POD_GATEWAY;

use super::{parse_reply_ip, Context};
use crate::client::IpamdClient;
use crate::dataplane::{unwire_host, wire_pod, PodWiring};
use crate::error::CniError;
use crate::spec::{render, AddResult, Interface, IpConfig, Route};

pub(super) async fn run(ctx: &Context<'_>) -> Result<String, CniError> {
    let netns = ctx.env.netns.clone().ok_or(CniError::InvalidEnvironment {
        var: "CNI_NETNS",
        reason: "missing".into(),
    })?;
    // Refuse before any address is taken: nothing to undo afterwards.
    if !std::path::Path::new(&netns).exists() {
        return Err(CniError::InvalidEnvironment {
            var: "CNI_NETNS",
            reason: format!("network namespace {netns} does not exist"),
        });
    }
    let request = ctx.attachment()?;
    let mut client = IpamdClient::connect(&ctx.socket).await?;
    let reply = client
        .rpc()
        .add_network(request.clone())
        .await
        .map_err(|s| client.map_status(&s))?
        .into_inner();
    let ip = parse_reply_ip(reply.ip.as_ref())?;
    let wiring = PodWiring {
        netns_path: PathBuf::from(&netns),
        ifname: ctx.ifname()?.to_string(),
        host_veth: ctx.host_veth()?,
        ip,
        route_table: reply.route_table,
        mtu: ctx.conf.mtu.unwrap_or(reply.mtu),
    };
    let wired = match wire_pod(&wiring).await {
        Ok(wired) => wired,
        Err(err) => {
            // Give the address back so a failed ADD leaks nothing; the error
            // the runtime sees is the wiring failure, not the clean-up's.
            let _ = unwire_host(ip, Some(&wiring.host_veth)).await;
            let _ = client.rpc().del_network(request).await;
            return Err(err);
        }
    };
    let result = AddResult {
        interfaces: vec![
            Interface {
                name: wiring.host_veth.clone(),
                mac: wired.host_mac.to_string(),
                sandbox: None,
                mtu: Some(wiring.mtu),
            },
            Interface {
                name: wiring.ifname.clone(),
                mac: wired.pod_mac.to_string(),
                sandbox: Some(netns),
                mtu: Some(wiring.mtu),
            },
        ],
        ips: vec![IpConfig {
            address: ip,
            prefix_len: 32,
            gateway: Some(POD_GATEWAY),
            interface: Some(1),
        }],
        routes: vec![Route {
            dst: std::net::Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            gw: Some(POD_GATEWAY),
        }],
    };
    Ok(render(&result, ctx.conf.cni_version, ctx.conf.prev_result.as_ref()).to_string())
}
