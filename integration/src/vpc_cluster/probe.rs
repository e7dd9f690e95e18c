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
