//! Connectivity probes between namespaces that need no tools inside them
//! (pod namespaces have no busybox): ping from the host's `ping`, TCP from
//! std sockets opened inside the namespaces.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::fabric::in_namespace;
use vpc_cni_testkit::netns::Netns;

/// Pings per probe before calling a target unreachable: an address EC2
/// just handed out may need one follower period to be routed.
const PING_ATTEMPTS: u32 = 3;
const CONNECT_ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on the accept after a completed connect (a harness bound, the
/// connection is already queued).
const ACCEPT_LIMIT: Duration = Duration::from_secs(5);

/// Whether `target` answers a ping from `from` within a few attempts.
#[must_use]
pub fn reachable(from: &Netns, target: Ipv4Addr) -> bool {
    (0..PING_ATTEMPTS).any(|_| from.ping(target))
}

/// Listens on `listen_ip` (any free port) inside `listen_in`, connects to
/// it from inside `connect_from`, and returns the peer address the
/// listener saw: the source after every NAT on the way.
pub fn tcp_peer(
    listen_in: &Netns,
    listen_ip: Ipv4Addr,
    connect_from: &Netns,
) -> io::Result<SocketAddr> {
    let listener = in_namespace(listen_in, move || {
        TcpListener::bind((listen_ip, 0)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("bind {listen_ip}:0 in the listener's namespace: {e}"),
            )
        })
    })?;
    let target = listener.local_addr()?;
    // Once connect returns, the handshake is done and the connection waits
    // in the listener's queue, so the accept below cannot block for long.
    let mut last_error = None;
    let mut stream = None;
    for _ in 0..CONNECT_ATTEMPTS {
        match in_namespace(connect_from, move || {
            TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
        }) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(_stream) = stream else {
        let e = last_error.unwrap_or_else(|| io::Error::other("no attempt made"));
        return Err(io::Error::new(
            e.kind(),
            format!(
                "connecting to {target} from {} ({CONNECT_ATTEMPTS} attempts): {e}",
                connect_from.name()
            ),
        ));
    };
    listener.set_nonblocking(true)?;
    let started = Instant::now();
    loop {
        match listener.accept() {
            Ok((_, peer)) => return Ok(peer),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if started.elapsed() > ACCEPT_LIMIT {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connected to {target} but the listener accepted nothing"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A stalled bulk transfer fails instead of hanging the test.
const TRANSFER_STALL_LIMIT: Duration = Duration::from_secs(10);

/// The byte at offset `i` of a bulk transfer: a pattern whose period (251) divides no
/// segment or buffer size, so a lost, repeated or reordered piece shows.
fn pattern_byte(i: u64) -> u8 {
    // i % 251 < 256: the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let byte = (i % 251) as u8;
    byte
}

/// Sends `bytes` bytes over TCP from `from` to a listener on `to_ip` in `to`, and checks
/// that every byte arrived in order: full-size segments in one direction, which crosses
/// whatever MTU the path has (or fails where path MTU discovery or fragmentation does not
/// work).
pub fn tcp_transfer(from: &Netns, to: &Netns, to_ip: Ipv4Addr, bytes: u64) -> io::Result<()> {
    use std::io::{Read, Write};
    let listener = in_namespace(to, move || TcpListener::bind((to_ip, 0)))?;
    let target = listener.local_addr()?;
    let mut sender = in_namespace(from, move || {
        TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
    })
    .map_err(|e| io::Error::new(e.kind(), format!("connecting to {target}: {e}")))?;
    let (mut receiver, _) = listener.accept()?;
    receiver.set_read_timeout(Some(TRANSFER_STALL_LIMIT))?;
    sender.set_write_timeout(Some(TRANSFER_STALL_LIMIT))?;
    let reading = std::thread::spawn(move || -> io::Result<u64> {
        let mut buf = vec![0_u8; 64 * 1024];
        let mut at = 0_u64;
        loop {
            let n = receiver.read(&mut buf)?;
            if n == 0 {
                return Ok(at);
            }
            for &byte in &buf[..n] {
                if byte != pattern_byte(at) {
                    return Err(io::Error::other(format!(
                        "byte {at} differs from what was sent"
                    )));
                }
                at += 1;
            }
        }
    });
    let chunk: Vec<u8> = (0..256 * 1024).map(pattern_byte).collect();
    let mut sent = 0_u64;
    let mut result = Ok(());
    while sent < bytes && result.is_ok() {
        let start = usize::try_from(sent % 251).unwrap_or(0);
        let len = usize::try_from((bytes - sent).min(128 * 1024)).unwrap_or(0);
        result = sender.write_all(&chunk[start..start + len]);
        sent += len as u64;
    }
    // End of stream even when sending failed, so the reader stops.
    let _ = sender.shutdown(std::net::Shutdown::Write);
    let received = reading
        .join()
        .map_err(|_| io::Error::other("the receiving thread panicked"))?;
    result.map_err(|e| io::Error::new(e.kind(), format!("sending to {target}: {e}")))?;
    let received =
        received.map_err(|e| io::Error::new(e.kind(), format!("receiving at {target}: {e}")))?;
    if received != bytes {
        return Err(io::Error::other(format!(
            "{target} received {received} of {bytes} bytes"
        )));
    }
    Ok(())
}
