//! Fault injection and request accounting: what `admit` decides before the
//! server runs an EC2 action.

use serde::{Deserialize, Serialize};

/// The faults in force. `Default` is a well-behaved cloud.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Probability (0.0..=1.0) that a request is refused with RequestLimitExceeded.
    pub throttle_rate: f64,
    /// The server sleeps this long per request; the model only stores it.
    pub latency_ms: u64,
    /// New attachments, secondary addresses and prefixes stay invisible to
    /// Describe calls and IMDS this long (EC2's eventual consistency).
    pub visibility_delay_ms: u64,
    /// Scripted failures, consumed in order per action.
    pub fail_next: Vec<FailNext>,
    /// EC2-style token buckets per action class; `None` means unlimited.
    pub buckets: Option<BucketConfig>,
}

/// "Fail action X the next N times with code C".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailNext {
    /// EC2 action name, e.g. "DeleteNetworkInterface".
    pub action: String,
    pub times: u32,
    /// An EC2 error code string, e.g. "InvalidNetworkInterface.InUse".
    pub code: String,
}

/// Token-bucket sizes per action class, like EC2's request-rate throttling:
/// Describe* actions share one bucket, everything else the other.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BucketConfig {
    pub mutating_capacity: u32,
    pub mutating_refill_per_sec: u32,
    pub describe_capacity: u32,
    pub describe_refill_per_sec: u32,
}

/// Which bucket an action draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionClass {
    Describe,
    Mutating,
}

impl ActionClass {
    pub fn of(action: &str) -> ActionClass {
        if action.starts_with("Describe") {
            ActionClass::Describe
        } else {
            ActionClass::Mutating
        }
    }
}

#[derive(Clone, Debug)]
struct Bucket {
    capacity: f64,
    refill_per_ms: f64,
    tokens: f64,
    last_ms: u64,
}

impl Bucket {
    fn new(capacity: u32, refill_per_sec: u32, now: u64) -> Bucket {
        Bucket {
            capacity: f64::from(capacity),
            refill_per_ms: f64::from(refill_per_sec) / 1000.0,
            tokens: f64::from(capacity),
            last_ms: now,
        }
    }

    fn try_take(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.refill_per_ms).min(self.capacity);
        self.last_ms = now.max(self.last_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The live buckets (built fresh whenever the config changes).
#[derive(Clone, Debug, Default)]
pub(crate) struct Buckets {
    mutating: Option<Bucket>,
    describe: Option<Bucket>,
}

impl Buckets {
    pub fn from_config(cfg: Option<&BucketConfig>, now: u64) -> Buckets {
        match cfg {
            None => Buckets::default(),
            Some(c) => Buckets {
                mutating: Some(Bucket::new(
                    c.mutating_capacity,
                    c.mutating_refill_per_sec,
                    now,
                )),
                describe: Some(Bucket::new(
                    c.describe_capacity,
                    c.describe_refill_per_sec,
                    now,
                )),
            },
        }
    }

    /// Takes a token for a request of `class`; true when there was one or no bucket limits it.
    pub(crate) fn try_take(&mut self, class: ActionClass, now: u64) -> bool {
        let bucket = match class {
            ActionClass::Describe => self.describe.as_mut(),
            ActionClass::Mutating => self.mutating.as_mut(),
        };
        bucket.is_none_or(|b| b.try_take(now))
    }
}
