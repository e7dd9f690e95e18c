//! Pings that run through a disruption: started before it, stopped after, counting the
//! packets lost on the way.

use std::process::{Child, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use vpc_cni_testkit::netns::Netns;

/// A cap on a ping run should the test die before stopping it.
const PING_CAP: &str = "3000";

/// A child process that a failing test must not leave running.
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    /// Sends `signal` and collects the output; panics (a harness failure) if the child was
    /// already stopped or cannot be signalled.
    #[must_use]
    pub fn stop(&mut self, signal: Signal) -> std::process::Output {
        let Some(child) = self.0.take() else {
            panic!("the child was already stopped");
        };
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        kill(Pid::from_raw(pid), signal).unwrap_or_else(|e| panic!("signalling pid {pid}: {e}"));
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for pid {pid}: {e}"))
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A ping from a pod's namespace, running until [`Ping::stop`].
pub struct Ping {
    what: String,
    child: KillOnDrop,
}

impl Ping {
    #[must_use]
    pub fn start(what: &str, from: &Netns, target: std::net::Ipv4Addr) -> Self {
        let child = from
            .command("ping")
            .args(["-n", "-i", "0.2", "-W", "1", "-c", PING_CAP])
            .arg(target.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting ping for {what}: {e}"));
        Self {
            what: what.to_string(),
            child: KillOnDrop(Some(child)),
        }
    }

    /// SIGINT (ping prints its summary) and the packets lost. A packet sent
    /// just before the SIGINT whose reply had no time to come back is in
    /// flight, not lost: ping numbers packets from 1, so that is the one
    /// numbered `transmitted` when it is missing from the replies.
    pub fn stop(mut self) -> PingOutcome {
        let out = self.child.stop(Signal::SIGINT);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (transmitted, received) = summary(&stdout).unwrap_or_else(|| {
            panic!(
                "{}: no summary in ping's output:\n{stdout}\n{}",
                self.what,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let replied = |seq: u64| {
            stdout
                .lines()
                .any(|l| l.contains(&format!("icmp_seq={seq} ")) && !l.contains("DUP"))
        };
        let in_flight = u64::from(transmitted > 0 && !replied(transmitted));
        PingOutcome {
            what: self.what,
            transmitted,
            received,
            lost: transmitted.saturating_sub(received + in_flight),
            output: stdout,
        }
    }
}

pub struct PingOutcome {
    pub what: String,
    pub transmitted: u64,
    pub received: u64,
    pub lost: u64,
    pub output: String,
}

/// "N packets transmitted, M received" from ping's summary.
fn summary(output: &str) -> Option<(u64, u64)> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut parts = line.split(',');
    let number = |part: Option<&str>| part?.split_whitespace().next()?.parse().ok();
    Some((number(parts.next())?, number(parts.next())?))
}
