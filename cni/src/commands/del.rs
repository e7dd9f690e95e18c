//! DEL: idempotent and best effort. With ipamd up, it releases the address and
//! removes the pod's rules and host route (the veth dies with the netns).
//! With ipamd down, it removes what prevResult describes plus the host veth,
//! so ipamd's veth sweep reclaims the address later.

use super::{parse_reply_ip, pod_ipv4, Context};
use crate::client::IpamdClient;
use crate::dataplane::{delete_link, unwire_host};
use crate::error::CniError;

pub(super) async fn run(ctx: &Context<'_>) -> Result<(), CniError> {
    let request = ctx.attachment()?;
    let reply = match IpamdClient::connect(&ctx.socket).await {
        Ok(mut client) => client
            .rpc()
            .del_network(request)
            .await
            .map_err(|s| client.map_status(&s))
            .map(tonic::Response::into_inner),
        Err(err) => Err(err),
    };
    match reply {
        Ok(reply) if reply.released => {
            let ip = parse_reply_ip(reply.ip.as_ref())?;
            unwire_host(ip, None).await
        }
        // ipamd knew nothing of it: a repeated DEL. Touch nothing, the address
        // may already belong to another pod.
        Ok(_) => Ok(()),
        Err(CniError::IpamdUnavailable { .. }) => teardown_without_ipamd(ctx).await,
        Err(other) => Err(other),
    }
}

async fn teardown_without_ipamd(ctx: &Context<'_>) -> Result<(), CniError> {
    let host_veth = ctx.host_veth()?;
    let ifname = ctx.ifname()?;
    match ctx
        .conf
        .prev_result
        .as_ref()
        .and_then(|r| pod_ipv4(r, ifname))
    {
        Some(ip) => unwire_host(ip, Some(&host_veth)).await,
        None => delete_link(&host_veth).await,
    }
}
