//! Our nftables table, `ip vpc-cni`, as both modes build it: the pieces of an `nft -j` batch
//! (table, base chains, rules, interval sets, the common match expressions) and the run that
//! applies one batch as a single transaction, so no packet ever sees half a ruleset.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::Stdio;

use nftables::batch::Batch;
use nftables::expr::{
    BinaryOperation, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, CT,
};
use nftables::helper::{NftablesError, DEFAULT_NFT};
use nftables::schema::{
    Chain, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{Match, NATFlag, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::{ChildStdin, Command};
use vpc_cni_proto::net::Ipv4Cidr;
use vpc_cni_proto::HOST_VETH_PREFIX;

use crate::error::IpamdError;

/// Name of our table (family `ip`).
pub const NFT_TABLE: &str = "vpc-cni";

pub const PREROUTING: &str = "prerouting";
pub const POSTROUTING: &str = "postrouting";
/// Before conntrack (-200): a packet dropped there never gets a connection entry.
pub const PRIO_RAW: i32 = -300;
/// Before conntrack's NAT (-100), so a mark set there steers the first packet's routing too.
pub const PRIO_MANGLE: i32 = -150;
pub const PRIO_SRCNAT: i32 = 100;
/// Found on `PATH`, as the nftables crate's own calls find it.
const NFT_PROGRAM: &str = "nft";

/// A batch that makes our table exactly what `fill` adds to it: add (a no-op when it exists),
/// delete, then create it afresh.
#[must_use]
pub fn replace_table(fill: impl FnOnce(&mut Batch<'static>)) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    batch.add(NfListObject::Table(table()));
    fill(&mut batch);
    batch.to_nftables()
}

/// Runs one `nft -j -f -` transaction on our table in the calling thread's namespace.
pub async fn run(batch: &Nftables<'_>, what: &str) -> Result<(), IpamdError> {
    run_on(batch, what, &format!("ip {NFT_TABLE}")).await
}

/// Runs one `nft -j -f -` transaction in the calling thread's namespace; errors name it as
/// `<what> nftables table <tables>`.
pub async fn run_on(batch: &Nftables<'_>, what: &str, tables: &str) -> Result<(), IpamdError> {
    run_streamed(batch.objects.iter(), what, tables).await
}

/// Runs the transaction of `objects` through `nft -j -f -`, writing them one at a time as
/// they come, so a large ruleset is never held whole in our memory (as objects or as text);
/// `nft` reads all of it before it commits anything.
pub async fn run_streamed<T: Serialize>(
    objects: impl IntoIterator<Item = T>,
    what: &str,
    tables: &str,
) -> Result<(), IpamdError> {
    let fail = |detail: String| IpamdError::Nft {
        action: format!("{what} nftables table {tables}"),
        detail,
    };
    let mut nft = Command::new(NFT_PROGRAM)
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| fail(format!("cannot run {NFT_PROGRAM}: {err}")))?;
    let written = match nft.stdin.take() {
        Some(stdin) => write_batch(stdin, objects).await,
        None => Ok(()),
    };
    let output = nft
        .wait_with_output()
        .await
        .map_err(|err| fail(format!("waiting for {NFT_PROGRAM}: {err}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(fail(format!(
            "{NFT_PROGRAM} {}: {}",
            output.status,
            stderr.trim()
        )));
    }
    // nft succeeded on what it read, so a failed write means it committed less than asked.
    written.map_err(|err| match err {
        WriteError::Encode(source) => IpamdError::NftEncode { source },
        WriteError::Pipe(err) => fail(format!("writing to {NFT_PROGRAM}: {err}")),
    })
}

enum WriteError {
    Encode(serde_json::Error),
    Pipe(std::io::Error),
}

/// Writes `{"nftables":[<object>,...]}` to `nft`'s stdin and closes it; one object's text
/// at a time, in one reused buffer.
async fn write_batch<T: Serialize>(
    mut stdin: ChildStdin,
    objects: impl IntoIterator<Item = T>,
) -> Result<(), WriteError> {
    let mut text = Vec::with_capacity(4096);
    stdin
        .write_all(br#"{"nftables":["#)
        .await
        .map_err(WriteError::Pipe)?;
    for (n, object) in objects.into_iter().enumerate() {
        text.clear();
        if n > 0 {
            text.push(b',');
        }
        serde_json::to_writer(&mut text, &object).map_err(WriteError::Encode)?;
        stdin.write_all(&text).await.map_err(WriteError::Pipe)?;
    }
    stdin.write_all(b"]}").await.map_err(WriteError::Pipe)?;
    stdin.shutdown().await.map_err(WriteError::Pipe)
}

/// Whether our table exists in the calling thread's namespace.
pub async fn table_exists() -> Result<bool, IpamdError> {
    listed(&["table", "ip", NFT_TABLE]).await
}

/// Whether chain `<family> <table> <chain>` exists in the calling thread's namespace (its
/// listing alone, without the table's sets).
pub async fn chain_exists(family: &str, table: &str, chain: &str) -> Result<bool, IpamdError> {
    listed(&["chain", family, table, chain]).await
}

/// Whether `nft list <object...>` finds the object.
async fn listed(object: &[&str]) -> Result<bool, IpamdError> {
    let mut args = vec!["list".to_owned()];
    args.extend(object.iter().map(|word| (*word).to_owned()));
    match nftables::helper::get_current_ruleset_raw_async(DEFAULT_NFT, &args).await {
        Ok(_) => Ok(true),
        Err(NftablesError::NftFailed { stderr, .. }) if stderr.contains("No such file") => {
            Ok(false)
        }
        Err(err) => Err(IpamdError::Nft {
            action: format!("listing nftables {}", object.join(" ")),
            detail: err.to_string(),
        }),
    }
}

/// How many rules table `<family> <name>` holds in the calling thread's namespace; `None`
/// when there is no such table.
pub async fn rule_count(family: &str, name: &str) -> Result<Option<usize>, IpamdError> {
    let listed = nftables::helper::get_current_ruleset_with_args_async(
        DEFAULT_NFT,
        ["list", "table", family, name],
    )
    .await;
    match listed {
        Ok(ruleset) => Ok(Some(
            ruleset
                .objects
                .iter()
                .filter(|o| matches!(o, NfObject::ListObject(NfListObject::Rule(_))))
                .count(),
        )),
        Err(NftablesError::NftFailed { stderr, .. }) if stderr.contains("No such file") => Ok(None),
        Err(err) => Err(IpamdError::Nft {
            action: format!("listing nftables table {family} {name}"),
            detail: err.to_string(),
        }),
    }
}

#[must_use]
pub fn table() -> Table<'static> {
    Table {
        family: NfFamily::IP,
        name: NFT_TABLE.into(),
        handle: None,
    }
}

#[must_use]
pub fn base_chain(
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

#[must_use]
pub fn rule(chain: &'static str, expr: Vec<Statement<'static>>) -> Rule<'static> {
    Rule {
        family: NfFamily::IP,
        table: NFT_TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        ..Rule::default()
    }
}

/// A named interval set of IPv4 networks (`cidrs` already normalized: no overlaps).
#[must_use]
pub fn cidr_set(name: &'static str, cidrs: &[Ipv4Cidr]) -> Set<'static> {
    let elem: Vec<Expression<'static>> = cidrs.iter().map(prefix).collect();
    Set {
        family: NfFamily::IP,
        table: NFT_TABLE.into(),
        name: name.into(),
        set_type: SetTypeValue::Single(SetType::Ipv4Addr),
        flags: Some(HashSet::from([SetFlag::Interval])),
        elem: (!elem.is_empty()).then(|| elem.into()),
        ..Set::default()
    }
}

/// Where source NAT puts pod traffic that leaves the networks pods reach directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodSnat {
    /// To this address (VPC mode: the primary ENI's).
    To(Ipv4Addr),
    /// To the address of the interface it leaves through (overlay mode).
    Masquerade,
}

/// Adds the postrouting NAT chain and its one rule: pod traffic to anywhere outside the
/// networks of `direct_set` (which the batch must hold already) is source-NATed as `how`
/// says, with fully random ports.
pub fn add_pod_snat(batch: &mut Batch<'static>, direct_set: &str, how: PodSnat) {
    batch.add(NfListObject::Chain(base_chain(
        POSTROUTING,
        NfChainType::NAT,
        NfHook::Postrouting,
        PRIO_SRCNAT,
    )));
    let nat = NAT {
        addr: match how {
            PodSnat::To(ip) => Some(Expression::String(ip.to_string().into())),
            PodSnat::Masquerade => None,
        },
        family: None,
        port: None,
        flags: Some(HashSet::from([NATFlag::FullyRandom])),
    };
    let translate = match how {
        PodSnat::To(_) => Statement::SNAT(Some(nat)),
        PodSnat::Masquerade => Statement::Masquerade(Some(nat)),
    };
    batch.add(NfListObject::Rule(rule(
        POSTROUTING,
        vec![from_pod(), daddr_not_in(direct_set), translate],
    )));
}

/// `iifname "vpc*"`: traffic that comes from a pod.
#[must_use]
pub fn from_pod() -> Statement<'static> {
    matches(
        meta(MetaKey::Iifname),
        format!("{HOST_VETH_PREFIX}*"),
        Operator::EQ,
    )
}

/// `ip daddr != @<set>`.
#[must_use]
pub fn daddr_not_in(set: &str) -> Statement<'static> {
    matches(ip_daddr(), format!("@{set}"), Operator::NEQ)
}

/// `ip daddr @<set>`.
#[must_use]
pub fn daddr_in(set: &str) -> Statement<'static> {
    matches(ip_daddr(), format!("@{set}"), Operator::EQ)
}

#[must_use]
pub fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

#[must_use]
pub fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

/// `<left> & <value>`.
#[must_use]
pub fn and(left: Expression<'static>, value: u32) -> Expression<'static> {
    Expression::BinaryOperation(Box::new(BinaryOperation::AND(
        left,
        Expression::Number(value),
    )))
}

/// `<left> | <value>`.
#[must_use]
pub fn or(left: Expression<'static>, value: u32) -> Expression<'static> {
    Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
        left,
        Expression::Number(value),
    ])))
}

#[must_use]
pub fn ip_daddr() -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: "ip".into(),
            field: "daddr".into(),
        },
    )))
}

#[must_use]
pub fn prefix(cidr: &Ipv4Cidr) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(cidr.network.to_string().into())),
        len: u32::from(cidr.prefix_len),
    }))
}

#[must_use]
pub fn matches(left: Expression<'static>, right: String, op: Operator) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right: Expression::String(right.into()),
        op,
    })
}
