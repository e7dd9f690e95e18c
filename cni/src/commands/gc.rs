//! GC (CNI 1.1): release every attachment the runtime no longer lists.

use vpc_cni_proto::{Attachment, GarbageCollectRequest};

use super::{parse_reply_ip, required, Context};
use crate::client::IpamdClient;
use crate::dataplane::unwire_host;
use crate::error::CniError;

pub(super) async fn run(ctx: &Context<'_>) -> Result<(), CniError> {
    let valid = required(
        ctx.conf.valid_attachments.as_ref(),
        "cni.dev/valid-attachments",
        "GC needs the list of attachments to keep",
    )?;
    let request = GarbageCollectRequest {
        valid_attachments: valid
            .iter()
            .map(|a| Attachment {
                container_id: a.container_id.clone(),
                ifname: a.ifname.clone(),
            })
            .collect(),
        network_name: ctx.conf.name.clone(),
        client_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut client = IpamdClient::connect(&ctx.socket).await?;
    let reply = client
        .rpc()
        .garbage_collect(request)
        .await
        .map_err(|s| client.map_status(&s))?
        .into_inner();
    // Keep going past one failure: every released attachment deserves its
    // clean-up; report the first error at the end.
    let mut first_error = None;
    for released in reply.released {
        let outcome = match parse_reply_ip(released.ip.as_ref()) {
            // No name: the veth now belongs to a live pod (a StatefulSet successor).
            Ok(ip) => {
                let veth = Some(released.host_veth.as_str()).filter(|v| !v.is_empty());
                unwire_host(ip, veth).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
