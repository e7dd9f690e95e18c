//! The guard's two tables as one `nft -j` batch (see the module comment of [`super`] for
//! what each rule is for).

use std::collections::HashSet;

use nftables::batch::Batch;
use nftables::expr::{Expression, Fib, FibFlag, FibResult, NamedExpression, Payload};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{AnonymousCounter, Counter, JumpTarget, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use vpc_cni_proto::POD_GATEWAY;

use super::{PodGuard, GUARD_TABLE, IMDS_ADDR};
use crate::kernel::nft::{from_pod, ip_daddr, matches, PRIO_RAW};

/// The IPv4 table's base chain: every packet the node receives passes its one rule.
const PREROUTING: &str = "prerouting";
/// The ARP table's base chain.
const INPUT: &str = "input";
/// What pods' packets are checked against, in either table.
const FROM_POD: &str = "from-pod";

impl PodGuard {
    /// The transaction that makes both tables exactly this guard: for each, add (a no-op
    /// when it exists), delete, then create it afresh with its contents.
    #[must_use]
    pub fn replace_batch(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        for family in [NfFamily::IP, NfFamily::ARP] {
            batch.add(NfListObject::Table(table(family)));
            batch.delete(NfListObject::Table(table(family)));
            batch.add(NfListObject::Table(table(family)));
        }
        self.fill_ip(&mut batch);
        fill_arp(&mut batch);
        batch.to_nftables()
    }

    /// Rules per table family, as `nft` names the family: what [`PodGuard::damage`]
    /// expects to find.
    pub(super) fn rule_counts(&self) -> [(&'static str, usize); 2] {
        let ip = 2 + usize::from(self.block_imds);
        [("ip", ip), ("arp", 3)]
    }

    fn fill_ip(&self, batch: &mut Batch<'static>) {
        let family = NfFamily::IP;
        batch.add(NfListObject::Chain(base_chain(
            family,
            PREROUTING,
            NfHook::Prerouting,
            PRIO_RAW,
        )));
        batch.add(NfListObject::Chain(chain(family, FROM_POD)));
        batch.add(rule(family, PREROUTING, vec![from_pod(), jump(FROM_POD)]));
        batch.add(rule(
            family,
            FROM_POD,
            counted_drop(vec![source_not_routed_back()]),
        ));
        if self.block_imds {
            let to_imds = matches(ip_daddr(), IMDS_ADDR.to_string(), Operator::EQ);
            batch.add(rule(family, FROM_POD, counted_drop(vec![to_imds])));
        }
    }
}

fn fill_arp(batch: &mut Batch<'static>) {
    let family = NfFamily::ARP;
    batch.add(NfListObject::Chain(base_chain(
        family,
        INPUT,
        NfHook::Input,
        0,
    )));
    batch.add(NfListObject::Chain(chain(family, FROM_POD)));
    batch.add(rule(family, INPUT, vec![from_pod(), jump(FROM_POD)]));
    let not_a_reply = matches(arp_field("operation"), "reply".into(), Operator::NEQ);
    batch.add(rule(family, FROM_POD, counted_drop(vec![not_a_reply])));
    let as_gateway = matches(arp_field("saddr ip"), POD_GATEWAY.to_string(), Operator::EQ);
    batch.add(rule(family, FROM_POD, counted_drop(vec![as_gateway])));
}

/// `fib saddr . iif oif missing`: no route back to the source leaves through the link the
/// packet came in on.
fn source_not_routed_back() -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Oif,
            flags: HashSet::from([FibFlag::Saddr, FibFlag::Iif]),
        })),
        right: Expression::Boolean(false),
        op: Operator::EQ,
    })
}

fn arp_field(field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        nftables::expr::PayloadField {
            protocol: "arp".into(),
            field: field.into(),
        },
    )))
}

/// `<matches> counter drop`: the counter shows an operator what was dropped since the
/// last apply.
fn counted_drop(mut expr: Vec<Statement<'static>>) -> Vec<Statement<'static>> {
    expr.push(Statement::Counter(Counter::Anonymous(Some(
        AnonymousCounter::default(),
    ))));
    expr.push(Statement::Drop(None));
    expr
}

fn jump(target: &'static str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: target.into(),
    })
}

fn table(family: NfFamily) -> Table<'static> {
    Table {
        family,
        name: GUARD_TABLE.into(),
        handle: None,
    }
}

fn chain(family: NfFamily, name: &'static str) -> Chain<'static> {
    Chain {
        family,
        table: GUARD_TABLE.into(),
        name: name.into(),
        ..Chain::default()
    }
}

fn base_chain(family: NfFamily, name: &'static str, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        _type: Some(NfChainType::Filter),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..chain(family, name)
    }
}

fn rule(
    family: NfFamily,
    chain: &'static str,
    expr: Vec<Statement<'static>>,
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family,
        table: GUARD_TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        ..Rule::default()
    })
}
