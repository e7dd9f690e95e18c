//! The reliability campaign (`make chaos`, and a short version of each scenario in
//! `make test`): crashes, damaged state, a misbehaving cloud and long churn against the
//! real ipamd and plugin on vpc-sim, each scenario judged by a ground-truth audit of the
//! live pod namespaces, ipamd's checkpoint and EC2 (see [`audit`]), never by ipamd's own
//! word.
//!
//! - `audit`: what the namespaces, the checkpoints and EC2 say, and the counts that must be 0.
//! - `churn`: pods added and deleted the way a runtime does it, retries included.
//! - `kill`, `checkpoint`, `cloud`, `restart`, `soak`: the scenarios.
//! - `report`: the table `docs/reliability.md` is written from.

pub mod audit;
pub mod checkpoint;
pub mod churn;
pub mod cloud;
pub mod kill;
pub mod report;
pub mod restart;
pub mod soak;

use std::time::Duration;

pub use audit::Tally;
pub use report::Row;

/// How big a run: `Short` is what `make test` runs, `Full` what `make chaos` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Short,
    Full,
}

impl Size {
    /// `short` in `make test`, `full` in `make chaos`.
    #[must_use]
    pub fn pick<T>(self, short: T, full: T) -> T {
        match self {
            Size::Short => short,
            Size::Full => full,
        }
    }
}

/// Bound on waiting for ipamd to converge after a scenario (sweeps, cooldowns, EC2
/// retries under throttling): a harness bound, never an assertion on speed.
pub const CONVERGE_LIMIT: Duration = Duration::from_secs(180);

/// ipamd settings for chaos clusters: quick sweeps and leaked-ENI cleanup, so convergence
/// is seen within the run.
pub const CHAOS_ENV: [(&str, &str); 3] = [
    ("LEAKED_ENI_CLEANUP_INTERVAL", "3s"),
    ("LEAKED_ENI_MIN_AGE", "1s"),
    ("WARM_IP_TARGET", "3"),
];
