//! Listing every link of a namespace in bounded memory: index, name and MAC only.
//!
//! rtnetlink decodes a whole dump before the caller sees its first link (its connection
//! reads the socket until it would block, and the kernel refills a dump on every read), and
//! a decoded `LinkMessage`, with its statistics and per-family settings, takes tens of KiB.
//! With 250 pods' veths one listing took the heap up by several MiB, which the allocator
//! then keeps. The periodic listings (veth sweep, ENI links) need three fields, so this reads
//! the dump one datagram at a time and keeps only those; it also sees the kernel's
//! "dump interrupted" flag, which rtnetlink does not pass on, and lists again.

use std::num::NonZeroI32;

use rtnetlink::packet_core::{
    ErrorBuffer, ErrorMessage, NetlinkBuffer, NetlinkMessage, NlasIterator, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkExtentMask, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};
use rtnetlink::Error;
use vpc_cni_proto::net::MacAddr;

// Kernel constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h) that the packet
// crates use internally but do not export.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
/// `struct ifinfomsg`, which precedes a link message's attributes.
const IFINFOMSG_LEN: usize = 16;
/// Listings taken again when the kernel says links changed during one.
const INTERRUPTED_RETRIES: usize = 3;

/// What the periodic listings need of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSummary {
    pub index: u32,
    pub name: String,
    /// The link's hardware address when it is 6 bytes long (Ethernet; lo's is all zeros).
    pub mac: Option<MacAddr>,
}

/// Every link of the calling thread's network namespace (a socket opened here is in it).
pub async fn link_summaries() -> Result<Vec<LinkSummary>, Error> {
    let mut attempt = 0;
    loop {
        let (links, interrupted) = dump_once().await?;
        attempt += 1;
        // A dump that ran while links came and went may have skipped one; after a few tries
        // the last listing is the answer, as good as one rtnetlink would have given.
        if !interrupted || attempt > INTERRUPTED_RETRIES {
            return Ok(links);
        }
    }
}

async fn dump_once() -> Result<(Vec<LinkSummary>, bool), Error> {
    let mut socket = TokioSocket::new(NETLINK_ROUTE).map_err(io_error)?;
    socket.socket_mut().bind_auto().map_err(io_error)?;
    socket
        .socket_mut()
        .connect(&SocketAddr::new(0, 0))
        .map_err(io_error)?;
    socket.send(&request()).await.map_err(io_error)?;

    let mut links = Vec::new();
    let mut interrupted = false;
    loop {
        let (datagram, _) = socket.recv_from_full().await.map_err(io_error)?;
        let mut rest = datagram.as_slice();
        while !rest.is_empty() {
            let message = NetlinkBuffer::new_checked(rest).map_err(decode_error)?;
            let length = (message.length() as usize).max(1);
            interrupted |= message.flags() & NLM_F_DUMP_INTR != 0;
            match message.message_type() {
                NLMSG_DONE => return Ok((links, interrupted)),
                NLMSG_ERROR => return Err(kernel_error(message.payload())?),
                RTM_NEWLINK => links.extend(summary(message.payload())?),
                _ => {}
            }
            // Messages are aligned to 4 bytes within a datagram.
            rest = rest.get(length.next_multiple_of(4)..).unwrap_or_default();
        }
    }
}

/// RTM_GETLINK for every link, without statistics (the kernel skips building them).
fn request() -> Vec<u8> {
    let mut link = LinkMessage::default();
    link.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    let mut message = NetlinkMessage::from(RouteNetlinkMessage::GetLink(link));
    message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.finalize();
    let mut bytes = vec![0; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// Index, name and MAC of one RTM_NEWLINK payload; `None` for a link without a name.
fn summary(payload: &[u8]) -> Result<Option<LinkSummary>, Error> {
    let (Some(header), Some(attributes)) =
        (payload.get(..IFINFOMSG_LEN), payload.get(IFINFOMSG_LEN..))
    else {
        return Err(Error::InvalidNla(format!(
            "link message of {} bytes, shorter than its header",
            payload.len()
        )));
    };
    let index = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
    let (mut name, mut mac) = (None, None);
    for attribute in NlasIterator::new(attributes) {
        let attribute = attribute.map_err(decode_error)?;
        match attribute.kind() {
            IFLA_IFNAME => {
                let value = attribute.value();
                let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
                name = Some(String::from_utf8_lossy(&value[..end]).into_owned());
            }
            IFLA_ADDRESS => mac = MacAddr::from_slice(attribute.value()),
            _ => {}
        }
    }
    Ok(name.map(|name| LinkSummary { index, name, mac }))
}

/// The kernel's NACK as rtnetlink reports one, so callers tell errnos apart the same way.
fn kernel_error(payload: &[u8]) -> Result<Error, Error> {
    let code = ErrorBuffer::new_checked(payload)
        .map_err(decode_error)?
        .code();
    let mut message = ErrorMessage::default();
    message.code = code;
    Ok(Error::NetlinkError(message))
}

/// A socket error as a NACK carrying its errno: to callers both are the kernel refusing.
fn io_error(e: std::io::Error) -> Error {
    let mut message = ErrorMessage::default();
    message.code = NonZeroI32::new(-e.raw_os_error().unwrap_or(EIO));
    Error::NetlinkError(message)
}

/// EIO, for an I/O error that carries no errno.
const EIO: i32 = 5;

fn decode_error(e: impl std::fmt::Display) -> Error {
    Error::InvalidNla(format!("undecodable link dump: {e}"))
}

#[cfg(test)]
#[path = "link_dump_tests.rs"]
mod tests;
