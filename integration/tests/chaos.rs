//! The short version of every reliability scenario (issue 12; `make chaos` runs the full
//! campaign and writes docs/reliability.md): kill -9 three times during churn, the
//! checkpoint lost or damaged four ways, each cloud fault once, and restarts under traffic
//! in both modes. Every row must show 0 duplicates, orphans, lost pods, leaked ENIs and
//! failed DELs. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vpc_cni_integration::chaos::{self, report, Row, Size};
use vpc_cni_testkit::require_root;

fn check(row: &Row) {
    let table = report::table(std::slice::from_ref(row));
    println!("{table}");
    assert!(row.ok(), "scenario failed:\n{table}");
}

#[test]
fn kill_9_during_churn() {
    require_root();
    check(&chaos::kill::run(Size::Short));
}

#[test]
fn checkpoint_lost_or_damaged_under_running_pods() {
    require_root();
    check(&chaos::checkpoint::run(Size::Short));
}

#[test]
fn cloud_faults_while_pods_churn() {
    require_root();
    check(&chaos::cloud::run(Size::Short));
}

#[test]
fn restarts_under_traffic_vpc() {
    require_root();
    check(&chaos::restart::vpc(Size::Short));
}

#[test]
fn restarts_under_traffic_overlay() {
    require_root();
    check(&chaos::restart::overlay(Size::Short));
}
