//! The fast path's two tables as one `nft -j` transaction, computed from the node's ENIs and
//! the pods whose host veths exist, and made one object at a time as it is written out (a
//! node's 250 pods never sit in memory as one batch). Pure: [`super::FastPath`] observes and
//! applies.
//!
//! - `ip vpc-cni-fast`, chain `admit` (forward hook, after the filter tables): a forwarded
//!   TCP packet of an established connection that no NAT touched (`ct status` has neither
//!   SNAT nor DNAT), between two VPC addresses, without SYN, FIN or RST, gets [`FAST_MARK`].
//!   Everything on the node that judges a packet (conntrack, kube-proxy, a policy engine's
//!   filter chains, our guard) has seen it by then and let it through.
//! - `netdev vpc-cni-fast`: on egress, a marked packet's 4-tuple (as NAT left it) goes
//!   into a set with a timeout: `out-<device>` when it leaves through that ENI, `in` when
//!   it enters a pod's veth. On ingress, a packet whose 4-tuple is in the set of its direction skips the IP
//!   layer: from a pod (and only with that pod's own source address) straight to its ENI's
//!   subnet router, from an ENI straight to the pod's veth (one lookup of the destination in
//!   the verdict map `pods`, whatever the number of pods). SYN, FIN and RST always take the
//!   slow path, so conntrack sees every connection open and close; an element expires
//!   after [`FLOW_TIMEOUT_SECS`] and the flow's next packet takes the slow path again,
//!   which refreshes conntrack and asks every filter again.
//!
//! NAT is kept out twice over: the admission skips connections conntrack translates, and
//! the sets hold tuples as they leave the node while ingress looks up tuples as they
//! arrive, which only agree for a connection nothing translates.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use nftables::expr::{Expression, MetaKey, NamedExpression, Payload, PayloadField, Verdict};
use nftables::schema::{
    Chain, Element, NfCmd, NfListObject, NfObject, Rule, Set, SetFlag, SetType, SetTypeValue,
};
use nftables::stmt::{
    AnonymousCounter, Counter, FWDFamily, JumpTarget, Mangle, Match, Operator, Statement,
    VerdictMap, FWD,
};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::Serialize;
use serde_json::json;
use vpc_cni_proto::net::{normalize, Ipv4Cidr};

use crate::kernel::nft::{and, cidr_set, ct, meta, or};

/// Both tables' name (one per family).
pub const FAST_PATH_TABLE: &str = "vpc-cni-fast";
/// Packet mark bit of a forwarded packet whose flow may take the fast path. It lives from
/// the forward hook to the egress hook of the same node; veths clear it on the way out.
pub const FAST_MARK: u32 = 0x100;
/// How long a flow stays on the fast path before one packet goes through the IP layer
/// again: the bound on how long conntrack, a policy change or a removed pod go unnoticed.
pub const FLOW_TIMEOUT_SECS: u32 = 10;
/// Flows per set; a full set just leaves new flows on the slow path.
const FLOW_SET_SIZE: u32 = 65_536;
/// After the filter (0) and security (50) tables of the forward hook.
const PRIO_ADMIT: i32 = 100;
const ADMIT: &str = "admit";
const VPC_SET: &str = "vpc";
const IN_SET: &str = "in";
/// Pod address to its delivery chain, looked up by every ENI's ingress chain.
const POD_MAP: &str = "pods";
/// TCP's FIN, SYN and RST bits.
const TCP_FIN_SYN_RST: u32 = 0x07;
/// `ct status` bits SRC_NAT (0x10) and DST_NAT (0x20).
const CT_STATUS_NAT: u32 = 0x30;

/// An ENI link and the router of its subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastEni {
    pub device_number: u32,
    pub link: String,
    pub gateway: Ipv4Addr,
}

/// A pod whose host veth exists, on the ENI of `device_number`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FastPod {
    pub ip: Ipv4Addr,
    pub veth: String,
    /// Part of the plan so a veth made again under the same name is a change.
    pub veth_index: u32,
    pub device_number: u32,
}

/// What the two tables express.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastPathPlan {
    /// By device number.
    enis: BTreeMap<u32, FastEni>,
    /// Sorted; only pods on one of `enis`.
    pods: Vec<FastPod>,
    vpc_cidrs: Vec<Ipv4Cidr>,
}

impl FastPathPlan {
    /// Pods on an ENI not in `enis` are left out: their traffic keeps the slow path.
    #[must_use]
    pub fn new(
        enis: impl IntoIterator<Item = FastEni>,
        pods: impl IntoIterator<Item = FastPod>,
        vpc_cidrs: &[Ipv4Cidr],
    ) -> Self {
        let enis: BTreeMap<u32, FastEni> = enis.into_iter().map(|e| (e.device_number, e)).collect();
        let mut pods: Vec<FastPod> = pods
            .into_iter()
            .filter(|p| enis.contains_key(&p.device_number))
            .collect();
        pods.sort();
        pods.dedup_by(|a, b| a.ip == b.ip);
        Self {
            enis,
            pods,
            vpc_cidrs: normalize(vpc_cidrs.iter().copied()),
        }
    }

    #[must_use]
    pub fn pods(&self) -> &[FastPod] {
        &self.pods
    }

    /// The transaction that makes both tables exactly this plan, as objects made one pod at
    /// a time while they are written to `nft`: for each table, add (a no-op when it exists),
    /// delete, then create it afresh. The flow sets start empty, so every flow takes the
    /// slow path once more.
    pub fn replace_objects(&self) -> impl Iterator<Item = FastObject> + '_ {
        let head = {
            let mut head = Vec::new();
            for family in [NfFamily::IP, NfFamily::NetDev] {
                head.push(add(table(family)));
                head.push(FastObject::Nft(NfObject::CmdObject(NfCmd::Delete(table(
                    family,
                )))));
                head.push(add(table(family)));
            }
            self.push_admission(&mut head);
            head.push(add(flow_set(IN_SET.into())));
            head.push(FastObject::PodMap(json!({ "add": { "map": {
                "family": "netdev",
                "table": FAST_PATH_TABLE,
                "name": POD_MAP,
                "type": "ipv4_addr",
                "map": "verdict",
            }}})));
            head
        };
        // Delivery chains first: the map's elements jump to them and the ENIs' rules look
        // the map up; the pods' own chains last, as they name the ENIs' flow sets.
        head.into_iter()
            .chain(self.pods.iter().flat_map(delivery))
            .chain(self.enis.values().flat_map(eni_chains))
            .chain(self.pods.iter().flat_map(|pod| self.pod_chains(pod)))
    }

    /// The whole transaction at once, as `nft -j` reads it.
    #[cfg(test)]
    #[must_use]
    pub fn replace_batch(&self) -> serde_json::Value {
        json!({ "nftables": self.replace_objects().collect::<Vec<_>>() })
    }

    fn push_admission(&self, objects: &mut Vec<FastObject>) {
        let family = NfFamily::IP;
        objects.push(add(NfListObject::Set(Box::new(Set {
            table: FAST_PATH_TABLE.into(),
            ..cidr_set(VPC_SET, &self.vpc_cidrs)
        }))));
        objects.push(add(NfListObject::Chain(base_chain(
            family,
            ADMIT.into(),
            NfHook::Forward,
            PRIO_ADMIT,
            None,
        ))));
        objects.push(add(rule(
            family,
            ADMIT.into(),
            vec![
                no_syn_fin_rst(),
                Statement::Match(Match {
                    left: ct("state"),
                    right: Expression::String("established".into()),
                    op: Operator::IN,
                }),
                Statement::Match(Match {
                    left: and(ct("status"), CT_STATUS_NAT),
                    right: Expression::Number(0),
                    op: Operator::EQ,
                }),
                in_set(ip_field("saddr"), VPC_SET),
                in_set(ip_field("daddr"), VPC_SET),
                Statement::Mangle(Mangle {
                    key: meta(MetaKey::Mark),
                    value: or(meta(MetaKey::Mark), FAST_MARK),
                }),
            ],
        )));
    }

    /// A pod's ingress chain (to its ENI's subnet router) and egress chain (admitting into
    /// `in`); nothing for a pod whose ENI the plan lacks.
    fn pod_chains(&self, pod: &FastPod) -> Vec<FastObject> {
        let family = NfFamily::NetDev;
        let Some(eni) = self.enis.get(&pod.device_number) else {
            return Vec::new();
        };
        let ingress = format!("pod-{}-in", pod.veth);
        let mut objects = vec![
            add(NfListObject::Chain(base_chain(
                family,
                ingress.clone(),
                NfHook::Ingress,
                0,
                Some(&pod.veth),
            ))),
            add(rule(
                family,
                ingress,
                vec![
                    // The pod's own address only: anything else is the guard's to judge.
                    Statement::Match(Match {
                        left: ip_field("saddr"),
                        right: Expression::String(pod.ip.to_string().into()),
                        op: Operator::EQ,
                    }),
                    no_syn_fin_rst(),
                    in_set(four_tuple(), &out_set(pod.device_number)),
                    counter(),
                    fwd(eni.gateway, &eni.link),
                ],
            )),
        ];
        objects.extend(admission(
            format!("pod-{}-out", pod.veth),
            &pod.veth,
            IN_SET.into(),
        ));
        objects
    }
}

/// The chain that hands a flow's packet from an ENI to the pod's veth, and the map element
/// that leads there by destination.
fn delivery(pod: &FastPod) -> Vec<FastObject> {
    let family = NfFamily::NetDev;
    let deliver = format!("deliver-{}", pod.veth);
    vec![
        add(NfListObject::Chain(chain(family, deliver.clone()))),
        add(rule(
            family,
            deliver.clone(),
            vec![
                in_set(four_tuple(), IN_SET),
                counter(),
                fwd(pod.ip, &pod.veth),
            ],
        )),
        add(NfListObject::Element(Element {
            family,
            table: FAST_PATH_TABLE.into(),
            name: POD_MAP.into(),
            elem: vec![Expression::List(vec![
                Expression::String(pod.ip.to_string().into()),
                Expression::Verdict(Verdict::Jump(JumpTarget {
                    target: deliver.into(),
                })),
            ])]
            .into(),
        })),
    ]
}

/// An ENI's flow set, its ingress chain (to the pods by destination) and its egress chain
/// (admitting into the flow set).
fn eni_chains(eni: &FastEni) -> Vec<FastObject> {
    let family = NfFamily::NetDev;
    let out = out_set(eni.device_number);
    let ingress = format!("eni-{}-in", eni.device_number);
    let mut objects = vec![
        add(flow_set(out.clone())),
        add(NfListObject::Chain(base_chain(
            family,
            ingress.clone(),
            NfHook::Ingress,
            0,
            Some(&eni.link),
        ))),
        add(rule(
            family,
            ingress,
            vec![
                no_syn_fin_rst(),
                Statement::VerdictMap(VerdictMap {
                    key: ip_field("daddr"),
                    data: Expression::String(format!("@{POD_MAP}").into()),
                }),
            ],
        )),
    ];
    objects.extend(admission(
        format!("eni-{}-out", eni.device_number),
        &eni.link,
        out,
    ));
    objects
}

/// One object of the transaction: the crate's, or the pod map, whose `verdict` type the
/// crate cannot name.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum FastObject {
    Nft(NfObject<'static>),
    PodMap(serde_json::Value),
}

fn add(object: NfListObject<'static>) -> FastObject {
    FastObject::Nft(NfObject::CmdObject(NfCmd::Add(object)))
}

/// The egress chain of `device` that puts marked packets' flows into `set`.
fn admission(name: String, device: &str, set: String) -> [FastObject; 2] {
    let family = NfFamily::NetDev;
    [
        add(NfListObject::Chain(base_chain(
            family,
            name.clone(),
            NfHook::Egress,
            0,
            Some(device),
        ))),
        add(rule(
            family,
            name,
            vec![
                Statement::Match(Match {
                    left: and(meta(MetaKey::Mark), FAST_MARK),
                    right: Expression::Number(FAST_MARK),
                    op: Operator::EQ,
                }),
                Statement::Set(nftables::stmt::Set {
                    op: nftables::stmt::SetOp::Add,
                    elem: four_tuple(),
                    set: format!("@{set}").into(),
                }),
            ],
        )),
    ]
}

fn out_set(device_number: u32) -> String {
    format!("out-{device_number}")
}

fn flow_set(name: String) -> NfListObject<'static> {
    NfListObject::Set(Box::new(Set {
        family: NfFamily::NetDev,
        table: FAST_PATH_TABLE.into(),
        name: name.into(),
        set_type: SetTypeValue::Concatenated(
            vec![
                SetType::Ipv4Addr,
                SetType::Ipv4Addr,
                SetType::InetService,
                SetType::InetService,
            ]
            .into(),
        ),
        flags: Some(HashSet::from([SetFlag::Timeout])),
        timeout: Some(FLOW_TIMEOUT_SECS),
        size: Some(FLOW_SET_SIZE),
        ..Set::default()
    }))
}

/// `tcp flags & (fin|syn|rst) == 0` (and, implied, TCP).
fn no_syn_fin_rst() -> Statement<'static> {
    Statement::Match(Match {
        left: and(payload("tcp", "flags"), TCP_FIN_SYN_RST),
        right: Expression::Number(0),
        op: Operator::EQ,
    })
}

/// `ip saddr . ip daddr . tcp sport . tcp dport`.
fn four_tuple() -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![
        ip_field("saddr"),
        ip_field("daddr"),
        payload("tcp", "sport"),
        payload("tcp", "dport"),
    ]))
}

fn in_set(left: Expression<'static>, set: &str) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right: Expression::String(format!("@{set}").into()),
        op: Operator::EQ,
    })
}

/// `fwd ip to <next_hop> device <link>`: the neighbour layer resolves the next hop's MAC,
/// as the route through it would.
fn fwd(next_hop: Ipv4Addr, link: &str) -> Statement<'static> {
    Statement::FWD(Some(FWD {
        dev: Some(Expression::String(link.to_owned().into())),
        family: Some(FWDFamily::IP),
        addr: Some(Expression::String(next_hop.to_string().into())),
    }))
}

/// The counters show an operator how much traffic took the fast path.
fn counter() -> Statement<'static> {
    Statement::Counter(Counter::Anonymous(Some(AnonymousCounter::default())))
}

fn ip_field(field: &'static str) -> Expression<'static> {
    payload("ip", field)
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn table(family: NfFamily) -> NfListObject<'static> {
    NfListObject::Table(nftables::schema::Table {
        family,
        name: FAST_PATH_TABLE.into(),
        handle: None,
    })
}

fn chain(family: NfFamily, name: String) -> Chain<'static> {
    Chain {
        family,
        table: FAST_PATH_TABLE.into(),
        name: name.into(),
        ..Chain::default()
    }
}

fn base_chain(
    family: NfFamily,
    name: String,
    hook: NfHook,
    prio: i32,
    device: Option<&str>,
) -> Chain<'static> {
    Chain {
        _type: Some(NfChainType::Filter),
        hook: Some(hook),
        prio: Some(prio),
        dev: device.map(|d| d.to_owned().into()),
        policy: Some(NfChainPolicy::Accept),
        ..chain(family, name)
    }
}

fn rule(family: NfFamily, chain: String, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family,
        table: FAST_PATH_TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        ..Rule::default()
    })
}
