//! CHECK: the pod still has what ADD gave it, and ipamd still agrees.

use std::path::PathBuf;

use super::{parse_reply_ip, pod_ipv4, required, Context};
use crate::client::IpamdClient;
use crate::dataplane::{check_pod, PodWiring};
use crate::error::CniError;

pub(super) async fn run(ctx: &Context<'_>) -> Result<(), CniError> {
    let prev = required(
        ctx.conf.prev_result.as_ref(),
        "prevResult",
        "CHECK needs the result of the ADD",
    )?;
    let expected_ip = pod_ipv4(prev, ctx.ifname()?).ok_or_else(|| CniError::InvalidConfig {
        field: "prevResult.ips".into(),
        reason: "holds no IPv4 address".into(),
    })?;
    let mut client = IpamdClient::connect(&ctx.socket).await?;
    let reply = client
        .rpc()
        .check_network(ctx.attachment()?)
        .await
        .map_err(|s| match s.code() {
            tonic::Code::NotFound => CniError::CheckFailed(s.message().to_string()),
            _ => client.map_status(&s),
        })?
        .into_inner();
    let ip = parse_reply_ip(reply.ip.as_ref())?;
    if ip != expected_ip {
        return Err(CniError::CheckFailed(format!(
            "prevResult has {expected_ip} but ipamd assigned {ip}"
        )));
    }
    let netns = ctx.env.netns.clone().ok_or(CniError::InvalidEnvironment {
        var: "CNI_NETNS",
        reason: "missing".into(),
    })?;
    check_pod(&PodWiring {
        netns_path: PathBuf::from(netns),
        ifname: ctx.ifname()?.to_string(),
        host_veth: ctx.host_veth()?,
        ip,
        route_table: reply.route_table,
        mtu: ctx.conf.mtu.unwrap_or(reply.mtu),
    })
    .await
}
