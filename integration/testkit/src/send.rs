//! Packets a test sends from inside a namespace, in order: hand-made ARP frames and UDP
//! datagrams from any source address. The sending thread is pinned to one CPU, so every
//! packet enters the same CPU's receive backlog at each veth it crosses, and the kernel
//! handles them first in, first out: once a later packet (a marker) has arrived somewhere,
//! every earlier one has been dealt with (delivered, learnt from, or dropped).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::arp::{send_raw, ArpFrame};
use crate::netns::Netns;

/// One packet to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// An ARP frame out of `dev`, bypassing the namespace's ARP stack.
    Arp { dev: String, frame: ArpFrame },
    /// A UDP datagram with source address `from`, which the namespace need not hold,
    /// routed as the namespace routes it.
    Udp {
        from: Ipv4Addr,
        to: SocketAddr,
        payload: Vec<u8>,
    },
}

impl Packet {
    #[must_use]
    pub fn arp(dev: &str, frame: ArpFrame) -> Self {
        Self::Arp {
            dev: dev.to_owned(),
            frame,
        }
    }

    #[must_use]
    pub fn udp(from: Ipv4Addr, to: SocketAddr, payload: &[u8]) -> Self {
        Self::Udp {
            from,
            to,
            payload: payload.to_vec(),
        }
    }
}

impl Netns {
    /// Sends `packets` from inside this namespace, one after the other, from one thread
    /// pinned to one CPU (see the module comment).
    pub fn send_in_order(&self, packets: &[Packet]) -> io::Result<()> {
        let packets = packets.to_vec();
        self.in_thread(move || {
            pin_to_one_cpu()?;
            for packet in &packets {
                send(packet)?;
            }
            Ok(())
        })
    }
}

fn pin_to_one_cpu() -> io::Result<()> {
    let allowed = sched_getaffinity(Pid::from_raw(0)).map_err(io::Error::from)?;
    let cpu = (0..CpuSet::count())
        .find(|&cpu| allowed.is_set(cpu).unwrap_or(false))
        .ok_or_else(|| io::Error::other("this thread may run on no CPU"))?;
    let mut one = CpuSet::new();
    one.set(cpu).map_err(io::Error::from)?;
    sched_setaffinity(Pid::from_raw(0), &one).map_err(io::Error::from)
}

fn send(packet: &Packet) -> io::Result<()> {
    match packet {
        Packet::Arp { dev, frame } => send_raw(dev, frame),
        Packet::Udp { from, to, payload } => {
            let socket = udp_socket_from(*from)
                .map_err(|e| io::Error::new(e.kind(), format!("binding UDP {from}:0: {e}")))?;
            socket
                .send_to(payload, to)
                .map(drop)
                .map_err(|e| io::Error::new(e.kind(), format!("sending from {from} to {to}: {e}")))
        }
    }
}

/// A UDP socket bound to `source`, held by the namespace or not: with `IP_TRANSPARENT` the
/// kernel routes its packets out with that source as it would any other (what a pod with
/// `CAP_NET_RAW` gets by writing the IP header itself).
fn udp_socket_from(source: Ipv4Addr) -> io::Result<UdpSocket> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns; `OwnedFd` closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let on: libc::c_int = 1;
    let on_len =
        libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).map_err(io::Error::other)?;
    // SAFETY: `on` is a valid c_int for the length given, for the whole call.
    let set = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_IP,
            libc::IP_TRANSPARENT,
            std::ptr::addr_of!(on).cast(),
            on_len,
        )
    };
    if set < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `sockaddr_in` is plain old data; all zeroes is a valid value of it.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::sa_family_t::try_from(libc::AF_INET).map_err(io::Error::other)?;
    addr.sin_addr.s_addr = u32::from(source).to_be();
    let addr_len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>())
        .map_err(io::Error::other)?;
    // SAFETY: `addr` is a valid `sockaddr_in` for the length given, for the whole call.
    let bound = unsafe { libc::bind(fd.as_raw_fd(), std::ptr::addr_of!(addr).cast(), addr_len) };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UdpSocket::from(fd))
}
