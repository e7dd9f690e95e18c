//! The campaign's table: one row per scenario, written to `docs/reliability.md`.

use std::fmt::Write as _;

use super::Tally;

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub setup: String,
    pub tally: Tally,
    /// Figures the scenario measures besides the counts (packets lost, memory), as text.
    pub figures: String,
    /// False when a scenario-specific promise failed (beside the counts).
    pub extra_ok: bool,
}

impl Row {
    #[must_use]
    pub fn new(scenario: &str, setup: String, tally: Tally) -> Self {
        Row {
            scenario: scenario.to_string(),
            setup,
            tally,
            figures: String::new(),
            extra_ok: true,
        }
    }

    #[must_use]
    pub fn with_figures(mut self, figures: String, ok: bool) -> Self {
        self.figures = figures;
        self.extra_ok = ok;
        self
    }

    #[must_use]
    pub fn ok(&self) -> bool {
        self.tally.clean() && self.extra_ok
    }
}

/// The Markdown table of `rows`.
#[must_use]
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Scenario | Set-up | Duplicates | Orphaned | Lost | Leaked ENIs | Failed DELs | Vanished / reported | Exercised | Figures | Result |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let t = &r.tally;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} cycles, {} failed ADDs retried, {} DELs retried, {} disruptions, {} pods audited | {} | {} |",
            r.scenario,
            r.setup,
            t.duplicates,
            t.orphaned,
            t.lost,
            t.leaked_enis,
            t.failed_dels,
            t.vanished,
            t.reported,
            t.cycles,
            t.failed_adds,
            t.del_retries,
            t.disruptions,
            t.pods_audited,
            if r.figures.is_empty() { "—" } else { &r.figures },
            if r.ok() { "pass" } else { "**FAIL**" }
        );
    }
    out
}
