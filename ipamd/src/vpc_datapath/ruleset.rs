//! VPC mode's content of our nftables table, `ip vpc-cni`: connmark of traffic that must leave
//! through the primary ENI, and SNAT of pod traffic leaving the VPC.

use std::net::Ipv4Addr;

use nftables::batch::Batch;
use nftables::expr::{Expression, MetaKey};
use nftables::schema::{NfListObject, Nftables};
use nftables::stmt::{Mangle, Match, Operator, Statement};
use nftables::types::{NfChainType, NfHook};
use vpc_cni_proto::net::{normalize, Ipv4Cidr};

use crate::kernel::nft::{
    add_pod_snat, and, base_chain, cidr_set, ct, daddr_in, daddr_not_in, from_pod, matches, meta,
    or, replace_table, rule, PodSnat, PREROUTING, PRIO_MANGLE,
};

/// Connection and packet mark of traffic that must leave through the primary ENI.
pub const CONNMARK: u32 = 0x80;

/// Destinations that keep the pod's own source address: VPC CIDRs, exclusions and the
/// overlay's pod CIDRs.
const EXEMPT_SET: &str = "snat-exempt";
/// Pod CIDRs of the overlay nodes of a hybrid cluster, reached through the VXLAN device.
const REMOTE_PODS_SET: &str = "remote-pods";

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
    /// In a hybrid cluster: the overlay nodes' pods, which this node reaches through its
    /// VXLAN device.
    pub overlay: Option<OverlayPods>,
}

/// The overlay nodes' side of a hybrid cluster as a VPC-mode node's table sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayPods {
    /// The VXLAN device.
    pub device: String,
    /// Their pod CIDRs; sorted, none covering another.
    pub remote: Vec<Ipv4Cidr>,
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
            overlay: None,
        }
    }

    /// Adds the overlay nodes of a hybrid cluster: their pods keep their own addresses both
    /// ways (no SNAT), and connections to them from pods, or from them through `device`, are
    /// connmarked so that every packet is routed by the main table, where the overlay's
    /// routes are, and not by a secondary ENI's table.
    #[must_use]
    pub fn with_overlay(
        mut self,
        device: &str,
        remote: impl IntoIterator<Item = Ipv4Cidr>,
    ) -> Self {
        let remote = normalize(remote);
        self.exempt = normalize(self.exempt.iter().chain(&remote).copied());
        self.overlay = Some(OverlayPods {
            device: device.to_owned(),
            remote,
        });
        self
    }

    /// The transaction that makes the table exactly this: add (a no-op when it exists),
    /// delete, then create it afresh with its contents.
    #[must_use]
    pub fn replace_batch(&self) -> Nftables<'static> {
        replace_table(|batch| self.fill(batch))
    }

    fn fill(&self, batch: &mut Batch<'static>) {
        if self.snat {
            batch.add(NfListObject::Set(Box::new(cidr_set(
                EXEMPT_SET,
                &self.exempt,
            ))));
        }
        if let Some(overlay) = self.overlay.as_ref().filter(|o| !o.remote.is_empty()) {
            batch.add(NfListObject::Set(Box::new(cidr_set(
                REMOTE_PODS_SET,
                &overlay.remote,
            ))));
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
            add_pod_snat(batch, EXEMPT_SET, PodSnat::To(self.primary_ip));
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
                from_pod(),
                daddr_not_in(EXEMPT_SET),
                set_connmark(),
            ]);
        }
        if let Some(overlay) = &self.overlay {
            // (c) connections from the overlay's pods, which enter through the VXLAN device:
            // the replies of a pod on a secondary ENI must go back into the overlay.
            rules.push(vec![
                ct_state_new(),
                matches(meta(MetaKey::Iifname), overlay.device.clone(), Operator::EQ),
                set_connmark(),
            ]);
            // (d) connections from pods to the overlay's pods, for the same reason.
            if !overlay.remote.is_empty() {
                rules.push(vec![
                    ct_state_new(),
                    from_pod(),
                    daddr_in(REMOTE_PODS_SET),
                    set_connmark(),
                ]);
            }
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
}

fn ct_mark() -> Expression<'static> {
    ct("mark")
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
