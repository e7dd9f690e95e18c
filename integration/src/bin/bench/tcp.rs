//! One bulk TCP transfer between two namespaces, with std sockets only (no
//! iperf3 on the machine, and none needed inside pod namespaces): each
//! socket is opened by a thread that joined its namespace and stays there,
//! the bytes are then pushed by ordinary threads of this process. The rate
//! is taken at the receiver, from its first byte to end of stream, so
//! nothing still sitting in socket buffers counts.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vpc_cni_integration::fabric::in_namespace;
use vpc_cni_testkit::netns::Netns;

/// Size of every write and read, as the brief of `make bench` fixes it.
pub const CHUNK: usize = 128 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A stalled transfer fails the run instead of hanging it.
const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Sends for `duration` from `from` to `to_ip` (an address inside `to`);
/// returns the receiver's rate in Gbit/s.
pub fn transfer(
    from: &Netns,
    to: &Netns,
    to_ip: Ipv4Addr,
    duration: Duration,
) -> anyhow::Result<f64> {
    let listener = in_namespace(to, move || TcpListener::bind((to_ip, 0)))
        .with_context(|| format!("listening on {to_ip} in {}", to.name()))?;
    let target = listener.local_addr()?;
    let mut sender = in_namespace(from, move || {
        TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
    })
    .with_context(|| format!("connecting to {target} from {}", from.name()))?;
    // The handshake is done, so the connection already waits in the queue.
    let (receiver, _) = listener.accept()?;
    receiver.set_read_timeout(Some(STALL_LIMIT))?;
    sender.set_write_timeout(Some(STALL_LIMIT))?;

    let reading = std::thread::spawn(move || drain(receiver));
    let sent = send_for(&mut sender, duration);
    // End of stream even when sending failed, so the reader never waits
    // out its timeout for bytes that will not come.
    let closed = sender.shutdown(Shutdown::Write);
    let (bytes, elapsed) = reading
        .join()
        .map_err(|_| anyhow::anyhow!("the receiving thread panicked"))?
        .with_context(|| format!("receiving from {} at {target}", from.name()))?;
    let sent = sent.with_context(|| format!("sending from {} to {target}", from.name()))?;
    closed?;
    if bytes != sent {
        bail!("{target} received {bytes} bytes of the {sent} sent");
    }
    if elapsed.is_zero() {
        bail!("no time elapsed between the first byte and the end at {target}");
    }
    // u64 -> f64 loses nothing that matters at these sizes.
    #[allow(clippy::cast_precision_loss)]
    let bits = bytes as f64 * 8.0;
    Ok(bits / elapsed.as_secs_f64() / 1e9)
}

fn send_for(stream: &mut TcpStream, duration: Duration) -> std::io::Result<u64> {
    let chunk = vec![0x5a_u8; CHUNK];
    let started = Instant::now();
    let mut sent = 0_u64;
    while started.elapsed() < duration {
        stream.write_all(&chunk)?;
        sent += CHUNK as u64;
    }
    Ok(sent)
}

/// Reads to end of stream; returns the bytes and the time from the first
/// byte to the end.
fn drain(mut stream: TcpStream) -> std::io::Result<(u64, Duration)> {
    let mut buf = vec![0_u8; CHUNK];
    let mut bytes = 0_u64;
    let mut first = None;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                bytes += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((bytes, first.map(|t| t.elapsed()).unwrap_or_default()))
}
