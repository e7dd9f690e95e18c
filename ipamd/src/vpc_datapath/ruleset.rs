//! Our nftables table, `ip vpc-cni`: connmark of traffic that must leave through the primary
//! ENI, and SNAT of pod traffic leaving the VPC. Built as an `nft -j` batch that replaces the
//! whole table in one transaction, so no packet ever sees half a ruleset.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{BinaryOperation, Expression, Meta, MetaKey, NamedExpression, Prefix, CT};
use nftables::schema::{
    Chain, NfListObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{Mangle, Match, NATFlag, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use vpc_cni_proto::HOST_VETH_PREFIX;

use super::wiring::CONNMARK;
use crate::config::Ipv4Cidr;

/// Name of our table (family `ip`).
pub const NFT_TABLE: &str = "vpc-cni";

/// Destinations that keep the pod's own source address: VPC CIDRs and exclusions.
const EXEMPT_SET: &str = "snat-exempt";
const PREROUTING: &str = "prerouting";
pub(crate) const POSTROUTING: &str = "postrouting";
/// Before conntrack's NAT (-100), so the mark steers the first packet's routing too.
const PRIO_MANGLE: i32 = -150;
pub(crate) const PRIO_SRCNAT: i32 = 100;

/// What the table expresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnatRuleset {
    /// The primary ENI's link: connections entering through it are marked.
    pub primary_if: String,
    /// Source of SNATed traffic.
    pub primary_ip: Ipv4Addr,
    /// Sorted, without CIDRs another one covers (an interval set rejects overlaps).
    pub exempt: Vec<Ipv4Cidr>,
    /// False under `AWS_VPC_K8S_CNI_EXTERNALSNAT=true`: a NAT outside the node translates,
    /// so pod traffic to the internet keeps its address and leaves through its own ENI.
    pub snat: bool,
}

impl SnatRuleset {
    #[must_use]
    pub fn new(
        primary_if: &str,
        primary_ip: Ipv4Addr,
        exempt: impl IntoIterator<Item = Ipv4Cidr>,
        external_snat: bool,
    ) -> Self {
        Self {
            primary_if: primary_if.to_owned(),
            primary_ip,
            exempt: normalize(exempt),
            snat: !external_snat,
        }
    }

    /// The transaction that makes the table exactly this: add (a no-op when it exists),
    /// delete, then create it afresh with its contents.
    #[must_use]
    pub fn replace_batch(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(table()));
        batch.delete(NfListObject::Table(table()));
        batch.add(NfListObject::Table(table()));
        if self.snat {
            batch.add(NfListObject::Set(Box::new(self.exempt_set())));
        }
        batch.add(NfListObject::Chain(base_chain(
            PREROUTING,
            NfChainType::Filter,
            NfHook::Prerouting,
            PRIO_MANGLE,
        )));
        for expr in self.prerouting_rules() {
            batch.add(NfListObject::Rule(rule(PREROUTING, expr)));
        }
        if self.snat {
            batch.add(NfListObject::Chain(base_chain(
                POSTROUTING,
                NfChainType::NAT,
                NfHook::Postrouting,
                PRIO_SRCNAT,
            )));
            batch.add(NfListObject::Rule(rule(POSTROUTING, self.snat_rule())));
        }
        batch.to_nftables()
    }

    fn exempt_set(&self) -> Set<'static> {
        let elem: Vec<Expression<'static>> = self.exempt.iter().map(prefix).collect();
        Set {
            family: NfFamily::IP,
            table: NFT_TABLE.into(),
            name: EXEMPT_SET.into(),
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            flags: Some(HashSet::from([SetFlag::Interval])),
            elem: (!elem.is_empty()).then(|| elem.into()),
            ..Set::default()
        }
    }

    fn prerouting_rules(&self) -> Vec<Vec<Statement<'static>>> {
        let mut rules = vec![
            // (b) connections entering through the primary ENI: their replies must leave
            // through it too, whichever ENI the pod they reach is on.
            vec![
                ct_state_new(),
                matches(
                    meta(MetaKey::Iifname),
                    self.primary_if.clone(),
                    Operator::EQ,
                ),
                set_connmark(),
            ],
        ];
        if self.snat {
            // (a) pod connections leaving the VPC: SNAT gives them the primary address, which
            // the VPC only accepts from the primary ENI.
            rules.push(vec![
                ct_state_new(),
                matches(meta(MetaKey::Iifname), pod_veths(), Operator::EQ),
                matches(ip_daddr(), format!("@{EXEMPT_SET}"), Operator::NEQ),
                set_connmark(),
            ]);
        }
        // The routing rule looks at the packet mark, so every packet of a marked connection
        // carries it.
        rules.push(vec![
            Statement::Match(Match {
                left: and(ct_mark(), CONNMARK),
                right: Expression::Number(CONNMARK),
                op: Operator::EQ,
            }),
            Statement::Mangle(Mangle {
                key: meta(MetaKey::Mark),
                value: or(meta(MetaKey::Mark), CONNMARK),
            }),
        ]);
        rules
    }

    fn snat_rule(&self) -> Vec<Statement<'static>> {
        vec![
            matches(meta(MetaKey::Iifname), pod_veths(), Operator::EQ),
            matches(ip_daddr(), format!("@{EXEMPT_SET}"), Operator::NEQ),
            Statement::SNAT(Some(NAT {
                addr: Some(Expression::String(self.primary_ip.to_string().into())),
                family: None,
                port: None,
                flags: Some(HashSet::from([NATFlag::FullyRandom])),
            })),
        ]
    }
}

/// The transaction that removes our table, present or not.
#[must_use]
pub fn delete_batch() -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    batch.to_nftables()
}

/// Canonical networks (host bits cleared), sorted, each CIDR covered by another dropped.
#[must_use]
pub fn normalize(cidrs: impl IntoIterator<Item = Ipv4Cidr>) -> Vec<Ipv4Cidr> {
    let mut all: Vec<Ipv4Cidr> = cidrs
        .into_iter()
        .map(|c| Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(c.network) & mask(c.prefix_len)),
            prefix_len: c.prefix_len,
        })
        .collect();
    // Broader networks first at each address, so a covered one always follows its cover.
    all.sort_by_key(|c| (u32::from(c.network), c.prefix_len));
    let mut kept: Vec<Ipv4Cidr> = Vec::with_capacity(all.len());
    for cidr in all {
        let covered = kept
            .iter()
            .any(|k| k.prefix_len <= cidr.prefix_len && k.contains(cidr.network));
        if !covered {
            kept.push(cidr);
        }
    }
    kept
}

fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        len => u32::MAX << (32 - u32::from(len.min(32))),
    }
}

pub(crate) fn table() -> Table<'static> {
    Table {
        family: NfFamily::IP,
        name: NFT_TABLE.into(),
        handle: None,
    }
}

pub(crate) fn base_chain(
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: NFT_TABLE.into(),
        name: name.into(),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

pub(crate) fn rule(chain: &'static str, expr: Vec<Statement<'static>>) -> Rule<'static> {
    Rule {
        family: NfFamily::IP,
        table: NFT_TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        ..Rule::default()
    }
}

pub(crate) fn pod_veths() -> String {
    format!("{HOST_VETH_PREFIX}*")
}

pub(crate) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn ct_mark() -> Expression<'static> {
    ct("mark")
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

pub(crate) fn ip_daddr() -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(
        nftables::expr::Payload::PayloadField(nftables::expr::PayloadField {
            protocol: "ip".into(),
            field: "daddr".into(),
        }),
    ))
}

pub(crate) fn prefix(cidr: &Ipv4Cidr) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(cidr.network.to_string().into())),
        len: u32::from(cidr.prefix_len),
    }))
}

fn and(left: Expression<'static>, value: u32) -> Expression<'static> {
    Expression::BinaryOperation(Box::new(BinaryOperation::AND(
        left,
        Expression::Number(value),
    )))
}

fn or(left: Expression<'static>, value: u32) -> Expression<'static> {
    Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
        left,
        Expression::Number(value),
    ])))
}

pub(crate) fn matches(
    left: Expression<'static>,
    right: String,
    op: Operator,
) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right: Expression::String(right.into()),
        op,
    })
}

fn ct_state_new() -> Statement<'static> {
    Statement::Match(Match {
        left: ct("state"),
        right: Expression::String("new".into()),
        op: Operator::IN,
    })
}

fn set_connmark() -> Statement<'static> {
    Statement::Mangle(Mangle {
        key: ct_mark(),
        value: or(ct_mark(), CONNMARK),
    })
}
