//! Overlay mode's nftables table, `ip vpc-cni`: pod traffic to anywhere outside the cluster's
//! pod CIDRs is masqueraded to the node's address, because nothing outside the overlay has a
//! route back to a pod CIDR. Replaced whole in one transaction, as in VPC mode.

use std::collections::HashSet;

use nftables::batch::Batch;
use nftables::expr::{Expression, MetaKey};
use nftables::schema::{NfListObject, Nftables, Set, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{NATFlag, Operator, Statement, NAT};
use nftables::types::{NfChainType, NfFamily, NfHook};

use crate::config::Ipv4Cidr;
use crate::vpc_datapath::ruleset::{
    base_chain, ip_daddr, matches, meta, normalize, pod_veths, prefix, rule, table, NFT_TABLE,
    POSTROUTING, PRIO_SRCNAT,
};

/// Destinations pods reach with their own address: every pod CIDR of the cluster.
const CLUSTER_SET: &str = "cluster";

/// What the table expresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySnat {
    /// Sorted, without CIDRs another one covers.
    pub cluster: Vec<Ipv4Cidr>,
}

impl OverlaySnat {
    #[must_use]
    pub fn new(cluster: impl IntoIterator<Item = Ipv4Cidr>) -> Self {
        Self {
            cluster: normalize(cluster),
        }
    }

    /// The transaction that makes the table exactly this.
    #[must_use]
    pub fn replace_batch(&self) -> Nftables<'static> {
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(table()));
        batch.delete(NfListObject::Table(table()));
        batch.add(NfListObject::Table(table()));
        let elem: Vec<Expression<'static>> = self.cluster.iter().map(prefix).collect();
        batch.add(NfListObject::Set(Box::new(Set {
            family: NfFamily::IP,
            table: NFT_TABLE.into(),
            name: CLUSTER_SET.into(),
            set_type: SetTypeValue::Single(SetType::Ipv4Addr),
            flags: Some(HashSet::from([SetFlag::Interval])),
            elem: (!elem.is_empty()).then(|| elem.into()),
            ..Set::default()
        })));
        batch.add(NfListObject::Chain(base_chain(
            POSTROUTING,
            NfChainType::NAT,
            NfHook::Postrouting,
            PRIO_SRCNAT,
        )));
        batch.add(NfListObject::Rule(rule(
            POSTROUTING,
            vec![
                matches(meta(MetaKey::Iifname), pod_veths(), Operator::EQ),
                matches(ip_daddr(), format!("@{CLUSTER_SET}"), Operator::NEQ),
                Statement::Masquerade(Some(NAT {
                    addr: None,
                    family: None,
                    port: None,
                    flags: Some(HashSet::from([NATFlag::FullyRandom])),
                })),
            ],
        )));
        batch.to_nftables()
    }
}
