//! Packets a test sends from inside a namespace, in order: hand-made ARP frames and UDP
//! datagrams from any source address. The sending thread is pinned to one CPU, so every
//! packet enters the same CPU's receive backlog at each veth it crosses, and the kernel
//! handles them first in, first out: once a later packet (a marker) has arrived somewhere,
//! every earlier one has been dealt with (delivered, learnt from, or dropped).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::arp::{send_raw, ArpFrame};
use crate::netns::Netns;

/// One packet to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// An ARP frame out of `dev`, bypassing the namespace's ARP stack.
    Arp { dev: String, frame: ArpFrame },
    /// A UDP datagram with source address `from` (which the namespace need not hold: see
    /// [`Netns::allow_any_source`]), routed as the namespace routes it.
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
            let socket = UdpSocket::bind(SocketAddrV4::new(*from, 0))
                .map_err(|e| io::Error::new(e.kind(), format!("binding UDP {from}:0: {e}")))?;
            socket
                .send_to(payload, to)
                .map(drop)
                .map_err(|e| io::Error::new(e.kind(), format!("sending from {from} to {to}: {e}")))
        }
    }
}
