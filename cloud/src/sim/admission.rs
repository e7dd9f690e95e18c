//! Admission of every EC2 request to the model: counting it, then the faults in force
//! (scripted failures, the throttle dice, the action class's token bucket).

use super::errors::{ErrorCode, SimError};
use super::faults::{ActionClass, Buckets, Faults};
use super::state::State;
use super::SimVpc;

impl State {
    pub(crate) fn admit(&mut self, caller: Option<&str>, action: &str) -> Result<(), SimError> {
        *self.counts.entry(action.to_string()).or_insert(0) += 1;
        if let Some(instance) = caller {
            let counts = self
                .counts_by_instance
                .entry(instance.to_string())
                .or_default();
            *counts.entry(action.to_string()).or_insert(0) += 1;
        }

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
        self.with(|s| s.admit(None, action))
    }

    /// [`SimVpc::admit`] for a request whose caller is known: it is counted for that instance
    /// too (the server knows the caller by its source address).
    pub fn admit_from(&self, instance: Option<&str>, action: &str) -> Result<(), SimError> {
        self.with(|s| s.admit(instance, action))
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

    /// Requests seen per action from one instance, refused ones included (empty when it sent
    /// none, or when the server could not tell who sent them).
    pub fn request_counts_of(&self, instance: &str) -> std::collections::BTreeMap<String, u64> {
        self.with(|s| {
            s.counts_by_instance
                .get(instance)
                .cloned()
                .unwrap_or_default()
        })
    }

    /// [`SimVpc::request_counts_of`] for every instance that sent a request.
    pub fn request_counts_by_instance(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> {
        self.with(|s| s.counts_by_instance.clone())
    }
}
