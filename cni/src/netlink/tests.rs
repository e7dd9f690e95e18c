//! Kernel tests of the rule reader and the rule delete: everything lives in a namespace the
//! test made. Needs root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vpc_cni_testkit::netns::Netns;

use super::*;

const SENTINEL_PRIORITY: u32 = 1000;
const SENTINELS: u8 = 10;
const CHURN_PRIORITY: u32 = 512;
const CHURN_RULES: u32 = 2000;
const CHURN_ROUNDS: u32 = 4;

fn sentinel(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, 0, i)
}

fn churn_rules(verb: &str) -> Vec<String> {
    (0..CHURN_RULES)
        .map(|i| {
            let ip = Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250) as u8);
            format!("rule {verb} priority {CHURN_PRIORITY} to {ip}/32 lookup main")
        })
        .collect()
}

/// The sentinel rules of one read, in order; each should appear exactly once.
fn sentinels_in(rules: &[RuleMessage]) -> Vec<Ipv4Addr> {
    rules
        .iter()
        .filter(|r| rule_priority(r) == Some(SENTINEL_PRIORITY))
        .filter_map(|r| (0..SENTINELS).map(sentinel).find(|ip| rule_is_to(r, *ip)))
        .collect()
}

/// Thousands of rules ahead of the sentinels are added and deleted while the rules are
/// read: a plain dump then skips or repeats sentinels (docs/testing.md has the figures), a
/// read by `ipv4_rules` never does.
#[test]
fn rule_reads_see_each_rule_once_while_rules_ahead_come_and_go() {
    let ns = Netns::unique("nlr");
    let sentinels: Vec<String> = (0..SENTINELS)
        .map(|i| {
            format!(
                "rule add priority {SENTINEL_PRIORITY} to {}/32 lookup main",
                sentinel(i)
            )
        })
        .collect();
    ns.ip_batch(&sentinels, false).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..CHURN_ROUNDS {
                ns.ip_batch(&churn_rules("add"), false).unwrap();
                ns.ip_batch(&churn_rules("del"), false).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        let done = Arc::clone(&done);
        ns.run(move || async move {
            let handle = connect().unwrap();
            let changes = RuleChanges::subscribe().unwrap();
            let want: Vec<Ipv4Addr> = (0..SENTINELS).map(sentinel).collect();
            // One more read after the churn ends, so at least one read always happens.
            for read in 0.. {
                let finished = done.load(Ordering::SeqCst);
                let rules = ipv4_rules(&handle, &changes).await.unwrap();
                assert_eq!(sentinels_in(&rules), want, "read {read}");
                if finished {
                    break;
                }
            }
        });
    });
}

/// Rules at `priority` for `ip/32` as `ip rule` shows them.
fn rules_at(ns: &Netns, priority: u32) -> Vec<String> {
    ns.ip(&["rule", "show"])
        .lines()
        .filter(|l| l.starts_with(&format!("{priority}:")))
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn deleting_rules_by_selector_takes_every_variant_and_nothing_else() {
    let ns = Netns::unique("nlr");
    ns.ip_batch(
        &[
            "rule add priority 1536 from 10.9.0.5/32 lookup 7",
            "rule add priority 1536 from 10.9.0.5/32 lookup 8",
            "rule add priority 1536 from 10.9.0.5/32 iif lo lookup 8",
            "rule add priority 1536 from 10.9.0.5/32 fwmark 0x80 lookup 8",
            "rule add priority 1536 from 10.9.0.0/24 lookup 8",
            "rule add priority 1536 from 10.9.0.6/32 lookup 8",
            "rule add priority 1536 to 10.9.0.5/32 lookup 8",
            "rule add priority 1537 from 10.9.0.5/32 lookup 8",
        ]
        .map(String::from),
        false,
    )
    .unwrap();

    let deleted = ns.run(|| async {
        let handle = connect().unwrap();
        let selector = RuleSelector::From(Ipv4Addr::new(10, 9, 0, 5));
        let first = delete_ipv4_rules(&handle, 1536, selector).await.unwrap();
        let again = delete_ipv4_rules(&handle, 1536, selector).await.unwrap();
        (first, again)
    });
    assert_eq!(deleted, (4, 0));
    assert_eq!(
        rules_at(&ns, 1536),
        [
            "1536:\tfrom 10.9.0.0/24 lookup 8",
            "1536:\tfrom 10.9.0.6 lookup 8",
            "1536:\tfrom all to 10.9.0.5 lookup 8",
        ]
    );
    assert_eq!(rules_at(&ns, 1537), ["1537:\tfrom 10.9.0.5 lookup 8"]);
}
