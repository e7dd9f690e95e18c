//! STATUS (CNI 1.1): can ADD be served? Only an unreachable ipamd says no;
//! an empty pool is a normal state of a full node.

use vpc_cni_proto::StatusRequest;

use super::Context;
use crate::client::IpamdClient;
use crate::error::CniError;

pub(super) async fn run(ctx: &Context<'_>) -> Result<(), CniError> {
    ctx.require_version(
        ctx.conf.cni_version.has_gc_status(),
        "STATUS needs cniVersion 1.1.0",
    )?;
    let not_ready = |e: CniError| CniError::NotReady(e.to_string());
    let mut client = IpamdClient::connect(&ctx.socket).await.map_err(not_ready)?;
    client
        .rpc()
        .status(StatusRequest {
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await
        .map_err(|s| not_ready(client.map_status(&s)))?;
    Ok(())
}
