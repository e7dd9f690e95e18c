//! Admission of every EC2 request to the model: counting it, then the faults in force
//! (scripted failures, the throttle dice, the action class's token bucket).

use super::errors::{ErrorCode, SimError};
use super::faults::{ActionClass, Buckets, Faults};
use super::state::State;
use super::SimVpc;

impl State {
    pub(crate) fn admit(&mut self, action: &str) -> Result<(), SimError> {
        *self.counts.entry(action.to_string()).or_insert(0) += 1;

        if let Some(i) = self
            .faults
            .fail_next
            .iter()
            .position(|f| f.action == action && f.times > 0)
        {
            let f = &mut self.faults.fail_next[i];
            f.times -= 1;
            let code_str = f.code.clone();
            if f.times == 0 {
                self.faults.fail_next.remove(i);
            }
            let code = code_str.parse().unwrap_or(ErrorCode::InternalError);
            return Err(SimError::new(
                code,
                format!("injected failure of {action} (configured code {code_str})"),
            ));
        }

        let rate = self.faults.throttle_rate;
        if rate > 0.0 && self.rng.f64() < rate {
            return Err(throttled(action, "throttle rate"));
        }

        let now = self.now();
        if !self.buckets.try_take(ActionClass::of(action), now) {
            return Err(throttled(action, "token bucket empty"));
        }
        Ok(())
    }
}

fn throttled(action: &str, why: &str) -> SimError {
    SimError::new(
        ErrorCode::RequestLimitExceeded,
        format!("Request limit exceeded for {action} ({why})."),
    )
}

impl SimVpc {
    /// Counts one EC2 request for `action` and decides whether it may run:
    /// scripted failures first, then the throttle dice, then the action
    /// class's token bucket. The server calls it once per request.
    pub fn admit(&self, action: &str) -> Result<(), SimError> {
        self.with(|s| s.admit(action))
    }

    /// Replaces the faults in force; token buckets restart full.
    pub fn set_faults(&self, f: Faults) {
        self.with(|s| {
            let now = s.now();
            s.buckets = Buckets::from_config(f.buckets.as_ref(), now);
            s.faults = f;
        })
    }

    /// The faults in force (fail-next counts as they stand now).
    pub fn faults(&self) -> Faults {
        self.with(|s| s.faults.clone())
    }

    /// Requests seen per action, refused ones included.
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.with(|s| s.counts.clone())
    }
}
