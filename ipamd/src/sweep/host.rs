//! The sweep's view of the node: netlink in the namespace the sweep was started in.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use futures::future::BoxFuture;
use vpc_cni::dataplane::unwire_host;
use vpc_cni::netlink::{self as nl, Handle};
use vpc_cni_proto::{HOST_VETH_PREFIX, MAIN_TABLE};

use super::HostView;
use crate::error::IpamdError;

/// One netlink connection in the calling thread's network namespace.
pub struct NodeHost {
    handle: Handle,
}

impl NodeHost {
    pub fn connect() -> Result<Self, IpamdError> {
        Ok(Self {
            handle: crate::kernel::connect()?,
        })
    }
}

impl HostView for NodeHost {
    fn listed_veths(&self) -> BoxFuture<'_, Result<HashSet<String>, IpamdError>> {
        Box::pin(async move {
            let links = nl::link_summaries()
                .await
                .map_err(IpamdError::netlink(format!(
                    "listing links {HOST_VETH_PREFIX}*"
                )))?;
            Ok(links
                .into_iter()
                .map(|link| link.name)
                .filter(|name| name.starts_with(HOST_VETH_PREFIX))
                .collect())
        })
    }

    fn veth_index<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<u32>, IpamdError>> {
        Box::pin(async move {
            let link = nl::link_by_name(&self.handle, name)
                .await
                .map_err(IpamdError::netlink(format!("looking up link {name}")))?;
            Ok(link.map(|l| l.header.index))
        })
    }

    fn routed_to(&self, index: u32) -> BoxFuture<'_, Result<HashSet<Ipv4Addr>, IpamdError>> {
        Box::pin(async move {
            let routes = nl::ipv4_routes(&self.handle)
                .await
                .map_err(IpamdError::netlink("listing IPv4 routes"))?;
            Ok(routes
                .iter()
                .filter(|r| {
                    r.header.destination_prefix_length == 32
                        && nl::route_table(r) == MAIN_TABLE
                        && nl::route_oif(r) == Some(index)
                })
                .filter_map(nl::route_dst)
                .collect())
        })
    }

    fn unwire(&self, ip: Ipv4Addr) -> BoxFuture<'_, Result<(), IpamdError>> {
        Box::pin(async move { Ok(unwire_host(ip, None).await?) })
    }
}
