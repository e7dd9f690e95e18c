//! STATUS (CNI 1.1): can ADD be served, and is the node's network intact? An unreachable ipamd
//! is code 50 (ADD cannot be served at all); a node datapath ipamd reports damaged (its
//! nftables table, policy rules or VXLAN device missing) is code 51 (pods would be wired but
//! could not reach everything). An empty pool is a normal state of a full node, not a failure.

use vpc_cni_proto::StatusRequest;

use super::Context;
use crate::client::IpamdClient;
use crate::error::CniError;

pub(super) async fn run(ctx: &Context<'_>) -> Result<(), CniError> {
    let not_ready = |e: CniError| CniError::NotReady(e.to_string());
    let mut client = IpamdClient::connect(&ctx.socket).await.map_err(not_ready)?;
    let reply = client
        .rpc()
        .status(StatusRequest {
            client_version: env!("CARGO_PKG_VERSION").to_string(),
        })
        .await
        .map_err(|s| not_ready(client.map_status(&s)))?
        .into_inner();
    if reply.datapath_damage.is_empty() {
        Ok(())
    } else {
        Err(CniError::DataplaneBroken(format!(
            "{} (ipamd is repairing it)",
            reply.datapath_damage.join("; ")
        )))
    }
}
