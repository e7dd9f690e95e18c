//! ARP frames written by hand and sent from inside a namespace, the way a pod with
//! `CAP_NET_RAW` (a container runtime's default) can send them: any operation, any sender
//! address, whatever its interface is configured with. Tests use them to play a pod that
//! impersonates the gateway or its neighbours.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::netns::Netns;

/// `ff:ff:ff:ff:ff:ff`.
pub const BROADCAST: [u8; 6] = [0xff; 6];

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const HTYPE_ETHERNET: u16 = 1;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;

/// ARP's two operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

/// One Ethernet frame carrying an IPv4-over-Ethernet ARP packet. The Ethernet source is the
/// sender hardware address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    pub eth_dst: [u8; 6],
    pub op: ArpOp,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl ArpFrame {
    /// A gratuitous ARP as `arping -U` sends it: a broadcast request in which sender and
    /// target are both `ip`, announcing that `ip` is at `mac`.
    #[must_use]
    pub fn gratuitous_request(mac: [u8; 6], ip: Ipv4Addr) -> Self {
        Self {
            eth_dst: BROADCAST,
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: [0; 6],
            target_ip: ip,
        }
    }

    /// A gratuitous ARP as `arping -A` sends it: the same announcement as a broadcast reply.
    #[must_use]
    pub fn gratuitous_reply(mac: [u8; 6], ip: Ipv4Addr) -> Self {
        Self {
            op: ArpOp::Reply,
            target_mac: BROADCAST,
            ..Self::gratuitous_request(mac, ip)
        }
    }

    /// An unsolicited reply to `to` (at `to_mac`) claiming that `claimed` is at `mac`.
    #[must_use]
    pub fn reply(mac: [u8; 6], claimed: Ipv4Addr, to_mac: [u8; 6], to: Ipv4Addr) -> Self {
        Self {
            eth_dst: to_mac,
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: claimed,
            target_mac: to_mac,
            target_ip: to,
        }
    }

    /// A broadcast request for `target` that names `sender` (at `mac`) as the asker: whoever
    /// answers learns `sender` at `mac` on the way.
    #[must_use]
    pub fn request(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Self {
        Self {
            eth_dst: BROADCAST,
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: sender,
            target_mac: [0; 6],
            target_ip: target,
        }
    }

    /// The frame's bytes: Ethernet header, then the 28-byte ARP packet.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        let op = match self.op {
            ArpOp::Request => OP_REQUEST,
            ArpOp::Reply => OP_REPLY,
        };
        let mut frame = Vec::with_capacity(42);
        frame.extend_from_slice(&self.eth_dst);
        frame.extend_from_slice(&self.sender_mac);
        frame.extend_from_slice(&ETH_P_ARP.to_be_bytes());
        frame.extend_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        frame.extend_from_slice(&ETH_P_IP.to_be_bytes());
        frame.extend_from_slice(&[6, 4]);
        frame.extend_from_slice(&op.to_be_bytes());
        frame.extend_from_slice(&self.sender_mac);
        frame.extend_from_slice(&self.sender_ip.octets());
        frame.extend_from_slice(&self.target_mac);
        frame.extend_from_slice(&self.target_ip.octets());
        frame
    }
}

/// The hardware address of `dev` in `ns`, from `ip -o link show`.
pub fn link_mac(ns: &Netns, dev: &str) -> io::Result<[u8; 6]> {
    let text = ns.try_ip(&["-o", "link", "show", "dev", dev])?;
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| io::Error::other(format!("no link/ether in {text:?}")))?;
    parse_mac(word)
}

/// `02:00:5e:00:00:01` as bytes.
pub fn parse_mac(text: &str) -> io::Result<[u8; 6]> {
    let bad = || io::Error::other(format!("{text:?} is not a MAC address"));
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(bad)?;
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Sends `frame` out of `dev` through a raw packet socket, bypassing the namespace's own ARP
/// stack; runs on a thread that has joined the namespace.
pub(crate) fn send_raw(dev: &str, frame: &ArpFrame) -> io::Result<()> {
    let name = CString::new(dev).map_err(|_| io::Error::other(format!("bad name {dev:?}")))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::other(format!(
            "no link {dev}: {}",
            io::Error::last_os_error()
        )));
    }
    let protocol = ETH_P_ARP.to_be();
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns; `OwnedFd` closes it.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };

    // SAFETY: `sockaddr_ll` is plain old data; all zeroes is a valid value of it.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = u16::try_from(libc::AF_PACKET).map_err(io::Error::other)?;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = i32::try_from(index).map_err(io::Error::other)?;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame.eth_dst);
    let bytes = frame.bytes();
    let addr_len =
        u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).map_err(io::Error::other)?;
    // SAFETY: the buffer and the address are valid for the lengths given, for the whole call.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            std::ptr::addr_of!(addr).cast(),
            addr_len,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    if usize::try_from(sent).ok() != Some(bytes.len()) {
        return Err(io::Error::other(format!(
            "sent {sent} of {} bytes",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_gratuitous_request_is_laid_out_as_on_the_wire() {
        let mac = [2, 0, 0, 0, 0, 9];
        let frame = ArpFrame::gratuitous_request(mac, Ipv4Addr::new(169, 254, 1, 1)).bytes();
        assert_eq!(frame.len(), 42);
        assert_eq!(&frame[..6], &BROADCAST);
        assert_eq!(&frame[6..12], &mac);
        assert_eq!(&frame[12..14], &[0x08, 0x06]);
        assert_eq!(&frame[14..22], &[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        assert_eq!(&frame[22..28], &mac);
        assert_eq!(&frame[28..32], &[169, 254, 1, 1]);
        assert_eq!(&frame[32..38], &[0; 6]);
        assert_eq!(&frame[38..42], &[169, 254, 1, 1]);
    }

    #[test]
    fn a_reply_goes_to_its_target_with_operation_two() {
        let frame = ArpFrame::reply(
            [2, 0, 0, 0, 0, 9],
            Ipv4Addr::new(10, 0, 0, 7),
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(10, 0, 0, 1),
        )
        .bytes();
        assert_eq!(&frame[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&frame[20..22], &[0, 2]);
        assert_eq!(&frame[28..32], &[10, 0, 0, 7]);
    }

    #[test]
    fn macs_parse_exactly() {
        assert_eq!(
            parse_mac("02:0a:ff:00:10:01").unwrap(),
            [2, 10, 255, 0, 16, 1]
        );
        assert!(parse_mac("02:0a:ff:00:10").is_err());
        assert!(parse_mac("02:0a:ff:00:10:01:02").is_err());
        assert!(parse_mac("zz:0a:ff:00:10:01").is_err());
    }
}
