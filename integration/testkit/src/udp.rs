//! UDP inboxes in namespaces, to see which packets arrive where. A sender (see
//! [`crate::send`]) may use any source address, as a spoofing pod would; an [`Inbox`] reports
//! what reached it before a marker datagram that the sender sends last, from an address the
//! path lets through. The marker turns "this never arrives" into a positive event to wait
//! for, so no test has to wait a fixed time for an absence.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// A UDP socket bound inside a namespace.
pub struct Inbox {
    socket: UdpSocket,
}

/// A datagram as received: who sent it (after any NAT) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub payload: Vec<u8>,
}

impl Inbox {
    /// Where senders reach this inbox.
    pub fn addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The datagrams waiting now, without waiting for more: what reached this inbox before
    /// a marker that another inbox on the same path has seen.
    pub fn pending(&self) -> io::Result<Vec<Datagram>> {
        self.socket.set_nonblocking(true)?;
        let mut waiting = Vec::new();
        let mut buf = [0u8; 2048];
        let result = loop {
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => waiting.push(Datagram {
                    from,
                    payload: buf[..len].to_vec(),
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(waiting),
                Err(e) => break Err(e),
            }
        };
        self.socket.set_nonblocking(false)?;
        result
    }

    /// The datagrams received before the first one whose payload is `marker`, waiting up to
    /// `bound` for it (a harness bound: reaching it is an error, never a result).
    pub fn until_marker(&self, marker: &[u8], bound: Duration) -> io::Result<Vec<Datagram>> {
        let started = Instant::now();
        let mut before = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let left = bound.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no marker within {bound:?}; received before it: {before:?}"),
                ));
            }
            self.socket.set_read_timeout(Some(left))?;
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    let payload = buf[..len].to_vec();
                    if payload == marker {
                        return Ok(before);
                    }
                    before.push(Datagram { from, payload });
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Netns {
    /// A UDP socket on `ip` (any free port) inside this namespace.
    pub fn udp_inbox(&self, ip: Ipv4Addr) -> io::Result<Inbox> {
        let socket = self.in_thread(move || {
            UdpSocket::bind(SocketAddrV4::new(ip, 0))
                .map_err(|e| io::Error::new(e.kind(), format!("binding UDP {ip}:0: {e}")))
        })?;
        Ok(Inbox { socket })
    }
}
