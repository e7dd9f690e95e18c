//! The AWS VPC CNI's pacing of pool changes, kept for drop-in behaviour and because each rule
//! saves EC2 calls:
//! - the pool shrinks at most once per 30 s, so pods that come and go do not make the node
//!   give addresses back and ask for them again;
//! - an ENI younger than a minute is not freed, for the same reason at ENI scale (an attach
//!   and a detach are the slowest, most rate-limited calls);
//! - after EC2 says the subnet is full, growth pauses for two minutes instead of retrying
//!   into the same answer (a full subnet rarely frees up within seconds).

use super::math::PoolDecision;

/// Least time between two passes that give addresses or ENIs back.
pub const SHRINK_INTERVAL_MS: u64 = 30_000;
/// Least age of an ENI before it may be freed.
pub const MIN_ENI_AGE_MS: u64 = 60_000;
/// How long growth waits after `InsufficientFreeAddressesInSubnet` / `InsufficientCidrBlocks`.
pub const SUBNET_FULL_PAUSE_MS: u64 = 120_000;

/// The rules' intervals (the AWS VPC CNI's by default; tests shorten them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingConfig {
    pub shrink_interval_ms: u64,
    pub min_eni_age_ms: u64,
    pub subnet_full_pause_ms: u64,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            shrink_interval_ms: SHRINK_INTERVAL_MS,
            min_eni_age_ms: MIN_ENI_AGE_MS,
            subnet_full_pause_ms: SUBNET_FULL_PAUSE_MS,
        }
    }
}

/// The rules and when they last fired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pacing {
    config: PacingConfig,
    last_shrink_ms: Option<u64>,
    growth_paused_until_ms: Option<u64>,
}

/// Whether a step may run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Go,
    /// Not before this time (unix ms); the pass stops here.
    HoldUntil(u64),
}

fn is_growth(d: &PoolDecision) -> bool {
    matches!(
        d,
        PoolDecision::AssignToExisting { .. } | PoolDecision::CreateEni { .. }
    )
}

fn is_shrink(d: &PoolDecision) -> bool {
    matches!(
        d,
        PoolDecision::Release { .. } | PoolDecision::FreeEni { .. }
    )
}

impl Pacing {
    pub fn new(config: PacingConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Judges `decision` at `now_ms`. A pass that has already shrunk may go on shrinking:
    /// the interval is between passes, not between the steps of one.
    /// `eni_created_ms` is the creation time of the ENI a `FreeEni` would free, if known.
    pub fn check(
        &self,
        decision: &PoolDecision,
        eni_created_ms: Option<u64>,
        now_ms: u64,
        shrunk_this_pass: bool,
    ) -> Verdict {
        let mut hold = None;
        if is_growth(decision) {
            hold = self.growth_paused_until_ms.filter(|&t| t > now_ms);
        }
        if is_shrink(decision) && !shrunk_this_pass {
            hold = self
                .last_shrink_ms
                .map(|t| t.saturating_add(self.config.shrink_interval_ms))
                .filter(|&t| t > now_ms);
        }
        if let PoolDecision::FreeEni { .. } = decision {
            let old_enough = eni_created_ms
                .map(|t| t.saturating_add(self.config.min_eni_age_ms))
                .filter(|&t| t > now_ms);
            hold = hold.max(old_enough);
        }
        hold.map_or(Verdict::Go, Verdict::HoldUntil)
    }

    /// A step that gave something back ran at `now_ms`.
    pub fn record(&mut self, decision: &PoolDecision, now_ms: u64) {
        if is_shrink(decision) {
            self.last_shrink_ms = Some(now_ms);
        }
    }

    /// EC2 answered that the subnet is full at `now_ms`.
    pub fn subnet_full(&mut self, now_ms: u64) {
        self.growth_paused_until_ms = Some(now_ms.saturating_add(self.config.subnet_full_pause_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> PoolDecision {
        PoolDecision::Release {
            eni: "eni-1".into(),
            addresses: Vec::new(),
            prefixes: Vec::new(),
        }
    }

    fn free() -> PoolDecision {
        PoolDecision::FreeEni {
            eni: "eni-2".into(),
        }
    }

    fn grow() -> PoolDecision {
        PoolDecision::CreateEni { count: 3 }
    }

    #[test]
    fn shrink_waits_thirty_seconds_between_passes() {
        let mut p = Pacing::default();
        assert_eq!(p.check(&release(), None, 1_000, false), Verdict::Go);
        p.record(&release(), 1_000);
        // The same pass goes on; a later pass waits, and growth is not held.
        assert_eq!(p.check(&free(), None, 1_000, true), Verdict::Go);
        assert_eq!(
            p.check(&release(), None, 2_000, false),
            Verdict::HoldUntil(31_000)
        );
        assert_eq!(p.check(&grow(), None, 2_000, false), Verdict::Go);
        assert_eq!(p.check(&release(), None, 31_000, false), Verdict::Go);
    }

    #[test]
    fn young_enis_are_not_freed() {
        let p = Pacing::default();
        assert_eq!(
            p.check(&free(), Some(10_000), 30_000, false),
            Verdict::HoldUntil(70_000)
        );
        assert_eq!(p.check(&free(), Some(10_000), 70_000, false), Verdict::Go);
        // Unknown age (not created by us): no hold.
        assert_eq!(p.check(&free(), None, 30_000, false), Verdict::Go);
        // Both rules: the later time wins.
        let mut shrunk = Pacing::default();
        shrunk.record(&release(), 50_000);
        assert_eq!(
            shrunk.check(&free(), Some(10_000), 60_000, false),
            Verdict::HoldUntil(80_000)
        );
    }

    #[test]
    fn a_full_subnet_pauses_growth_for_two_minutes() {
        let mut p = Pacing::default();
        p.subnet_full(5_000);
        assert_eq!(
            p.check(&grow(), None, 6_000, false),
            Verdict::HoldUntil(125_000)
        );
        let top_up = PoolDecision::AssignToExisting {
            eni: "eni-1".into(),
            count: 1,
        };
        assert_eq!(
            p.check(&top_up, None, 124_999, false),
            Verdict::HoldUntil(125_000)
        );
        assert_eq!(p.check(&release(), None, 6_000, false), Verdict::Go);
        assert_eq!(p.check(&grow(), None, 125_000, false), Verdict::Go);
    }
}
