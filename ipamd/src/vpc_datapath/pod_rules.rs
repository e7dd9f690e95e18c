//! The pods' source rules, `from <ip> lookup <ENI table>` at 1536, as ipamd's desired state:
//! one per assignment on a wired secondary ENI. The plugin writes them at ADD and removes
//! them at DEL; ipamd puts back the ones that went missing (an ENI link that left and came
//! back, an operator's flush) and removes the ones no assignment accounts for.
//!
//! Races with the plugin, which writes the same rules without reading the list:
//! - ADD: ipamd assigns the address before the plugin wires it, so a rule the plugin added is
//!   in our dump only if its assignment was already in the store when we read it after the
//!   dump; we never delete it. A rule we add for an assignment is the one the plugin adds (the
//!   kernel refuses the second copy), and the plugin's own delete-then-add lands on the same
//!   single rule.
//! - Deletes are decided on a store read taken after the dump, and the store is read again
//!   after them: an address assigned in between (its rule added by the plugin just before our
//!   delete) is seen by the second read and its rule put back at once.
//! - DEL: the plugin removes the rules before ipamd releases the address. Adding from a read
//!   taken before the release can leave one rule for an address nobody holds; it selects only
//!   packets sourced from that address, which no pod sends until the address is assigned
//!   again, and that ADD (which deletes every rule of its address first) or our next pass
//!   removes it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

use rtnetlink::packet_route::rule::{RuleAction, RuleMessage};
use rtnetlink::Handle;
use vpc_cni::netlink as nl;
use vpc_cni_proto::RULE_PRIORITY_FROM_POD;

use crate::error::IpamdError;
use crate::store::Store;

/// Which pod rules should exist, from one read of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRuleTargets {
    /// Address -> the table its rule looks up: assignments on wired secondary ENIs.
    pub wanted: BTreeMap<Ipv4Addr, u32>,
    /// Rules left as they are, neither added nor removed: assignments on an ENI that is
    /// attached but whose link is not wired now. Its table is empty meanwhile, so the rule
    /// does no harm, and it is right again the moment the link is back.
    pub kept: BTreeSet<(Ipv4Addr, u32)>,
}

impl PodRuleTargets {
    /// `wired`: device numbers of the secondary ENIs wired now; `attached`: every device
    /// number the node's ENI listing shows.
    pub fn read(store: &Store, wired: &BTreeSet<u32>, attached: &BTreeSet<u32>) -> Self {
        store.read(|ds| {
            let mut targets = Self::default();
            for (assignment, placed) in ds.placed_assignments() {
                match placed {
                    Some(p) if p.device_number > 0 && wired.contains(&p.device_number) => {
                        targets.wanted.insert(assignment.ip, p.route_table);
                    }
                    Some(_) => {}
                    None if assignment.device_number > 0
                        && attached.contains(&assignment.device_number)
                        && !wired.contains(&assignment.device_number) =>
                    {
                        targets.kept.insert((assignment.ip, assignment.route_table));
                    }
                    None => {}
                }
            }
            targets
        })
    }
}

/// A rule at 1536 as far as the sync cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenPodRule {
    /// The `/32` it selects; `None` for any other selector (or none).
    pub from: Option<Ipv4Addr>,
    pub table: u32,
    /// A plain `from <ip> lookup <table>`: no other selector, no other action.
    pub plain: bool,
}

impl SeenPodRule {
    fn of(rule: &RuleMessage) -> Self {
        let from = match nl::rule_source(rule) {
            Some((IpAddr::V4(ip), 32)) => Some(ip),
            _ => None,
        };
        Self {
            from,
            table: nl::rule_table(rule),
            plain: rule.header.action == RuleAction::ToTable
                && rule.header.dst_len == 0
                && rule.header.tos == 0
                && nl::rule_fwmark(rule).is_none()
                && !nl::rule_selects_more(rule),
        }
    }
}

/// Splits the rules at 1536 that look up one of our tables into those to delete (by
/// position) and the wanted rules that exist. Rules into other tables are
/// somebody else's and never touched.
pub fn judge(
    seen: &[SeenPodRule],
    owned_tables: &RangeInclusive<u32>,
    targets: &PodRuleTargets,
) -> (Vec<usize>, BTreeSet<(Ipv4Addr, u32)>) {
    let mut stale = Vec::new();
    let mut present = BTreeSet::new();
    for (i, rule) in seen.iter().enumerate() {
        if !owned_tables.contains(&rule.table) {
            continue;
        }
        let keep = match rule.from {
            Some(ip) if rule.plain => {
                if targets.wanted.get(&ip) == Some(&rule.table) {
                    // Only the first copy counts as present: a duplicate goes.
                    present.insert((ip, rule.table))
                } else {
                    !targets.wanted.contains_key(&ip) && targets.kept.contains(&(ip, rule.table))
                }
            }
            _ => false,
        };
        if !keep {
            stale.push(i);
        }
    }
    (stale, present)
}

/// Makes the rules at 1536 into `owned_tables` match the store: `targets` is called once
/// before the deletes and once after them (see the module comment for why twice).
pub(super) async fn sync(
    handle: &Handle,
    changes: &nl::RuleChanges,
    owned_tables: &RangeInclusive<u32>,
    targets: impl Fn() -> PodRuleTargets,
) -> Result<(), IpamdError> {
    let rules: Vec<RuleMessage> = nl::ipv4_rules(handle, changes)
        .await
        .map_err(IpamdError::netlink("listing IPv4 rules"))?
        .into_iter()
        .filter(|r| nl::rule_priority(r) == Some(RULE_PRIORITY_FROM_POD))
        .collect();
    let seen: Vec<SeenPodRule> = rules.iter().map(SeenPodRule::of).collect();
    let (stale, present) = judge(&seen, owned_tables, &targets());

    for i in stale {
        let rule = rules[i].clone();
        let what = format!(
            "deleting stale pod rule from {:?} lookup {}",
            seen[i].from, seen[i].table
        );
        nl::gone_is_ok(handle.rule().del(rule).execute().await)
            .map_err(IpamdError::netlink(what))?;
        tracing::debug!(from = ?seen[i].from, table = seen[i].table, "stale pod rule removed");
    }

    for (ip, table) in targets().wanted {
        if !present.contains(&(ip, table)) {
            add(handle, ip, table).await?;
            tracing::debug!(%ip, table, "pod rule put in place");
        }
    }
    Ok(())
}

/// Adds `from ip/32 lookup table` at 1536; one that exists already is success.
async fn add(handle: &Handle, ip: Ipv4Addr, table: u32) -> Result<(), IpamdError> {
    let result = handle
        .rule()
        .add()
        .v4()
        .action(RuleAction::ToTable)
        .source_prefix(ip, 32)
        .table_id(table)
        .priority(RULE_PRIORITY_FROM_POD)
        .execute()
        .await;
    match result {
        Err(e) if !nl::is_exists(&e) => Err(IpamdError::netlink(format!(
            "adding pod rule from {ip} lookup {table} priority {RULE_PRIORITY_FROM_POD}"
        ))(e)),
        _ => Ok(()),
    }
}
