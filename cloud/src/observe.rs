//! What the EC2 seam tells a watcher about each request it sends. The cloud crate keeps no
//! metrics of its own: ipamd turns these reports into its Prometheus series, and a crate that
//! only needs the seam pays nothing for them.

use std::time::Duration;

/// How one attempt at an EC2 action ended, as the wire showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt<'a> {
    /// EC2 answered with success.
    Succeeded,
    /// EC2 answered with an error: its HTTP status, and its error code when it sent one.
    Refused { status: u16, code: Option<&'a str> },
    /// No usable answer came: a timeout, a broken connection, a reply that did not parse
    /// (with the HTTP status when there was one).
    NoAnswer { status: Option<u16> },
}

impl Attempt<'_> {
    /// Whether the attempt failed.
    #[must_use]
    pub fn failed(&self) -> bool {
        !matches!(self, Self::Succeeded)
    }

    /// The HTTP status EC2 answered with; `None` when there was no answer.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Succeeded => Some(200),
            Self::Refused { status, .. } => Some(*status),
            Self::NoAnswer { status } => *status,
        }
    }

    /// EC2's error code, when it sent one.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => *code,
            Self::Succeeded | Self::NoAnswer { .. } => None,
        }
    }
}

/// Told of every request the AWS implementation of `Ec2` sends: each attempt, so a retried
/// call is reported once per request, as EC2 (or vpc-sim) counts them.
pub trait CallObserver: Send + Sync {
    /// One attempt at `action` ended after `took` (the request alone, not the wait for a
    /// token).
    fn attempt(&self, action: &'static str, outcome: Attempt<'_>, took: Duration);

    /// The attempt at `action` waited `waited` for the token bucket (reported only when it
    /// had to wait).
    fn token_wait(&self, action: &'static str, waited: Duration);
}

/// The observer of a client nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl CallObserver for Unobserved {
    fn attempt(&self, _: &'static str, _: Attempt<'_>, _: Duration) {}

    fn token_wait(&self, _: &'static str, _: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_follow_the_answer() {
        assert_eq!(Attempt::Succeeded.status(), Some(200));
        assert!(!Attempt::Succeeded.failed());
        let refused = Attempt::Refused {
            status: 503,
            code: Some("RequestLimitExceeded"),
        };
        assert!(refused.failed());
        assert_eq!(refused.status(), Some(503));
        assert_eq!(refused.code(), Some("RequestLimitExceeded"));
        let silent = Attempt::NoAnswer { status: None };
        assert!(silent.failed());
        assert_eq!((silent.status(), silent.code()), (None, None));
    }
}
