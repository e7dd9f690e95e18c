//! Properties of `AwsEc2` on any EC2 reply: the SDK parses the XML, our code converts what
//! it parsed. Whatever comes back (any status, any bytes, a valid reply edited by
//! structure or byte by byte), every call returns, after a bounded number of requests, a
//! value or a `CloudError` that names the action; and a valid reply converts to exactly
//! what it describes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};
use vpc_cni_testkit::prop::{config, gen};

use super::fake_http::{ec2_client as client, Answer, FakeHttp};
use super::xml::{self, elem, set, text, Node};
use crate::api::{Assign, Ec2, EniId, EniInfo, EniQuery, NewEni, SubnetId};
use crate::aws::AwsEc2;
use crate::error::CloudError;
use crate::retry::RetryPolicy;

/// Runs `f` on a fresh single-threaded runtime. A call that loops fails through the fake's
/// request bound (`fake_http::MAX_REQUESTS`); one that waits fails through this timeout.
pub(super) fn run<T>(f: impl std::future::Future<Output = T>) -> Result<T, TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), f).await })
        .map_err(|_| TestCaseError::fail("the call did not return within 20 s"))
}

/// An ENI as EC2 describes it, and what `eni_info` must make of it.
#[derive(Debug, Clone)]
struct Eni {
    id: String,
    mac: [u8; 6],
    subnet: String,
    description: String,
    status: &'static str,
    tags: BTreeMap<String, String>,
    secondaries: Vec<Ipv4Addr>,
    primary: Option<(Ipv4Addr, Index)>,
    prefixes: Vec<Ipv4Cidr>,
    attachment: Option<(String, String, u32)>,
}

fn eni() -> impl Strategy<Value = Eni> {
    let prefix = any::<u32>().prop_map(|n| Ipv4Cidr::containing(Ipv4Addr::from(n), 28));
    (
        ("eni-[0-9a-f]{8,17}", any::<[u8; 6]>(), "subnet-[0-9a-f]{8}"),
        "[a-zA-Z0-9 <>&'\"./-]{0,40}",
        prop::sample::select(vec!["in-use", "available", "attaching", "detaching"]),
        prop::collection::btree_map("[a-zA-Z0-9:./_-]{1,20}", "[a-zA-Z0-9 :./_-]{1,20}", 0..4),
        prop::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 0..6),
        prop::option::of((any::<u32>().prop_map(Ipv4Addr::from), any::<Index>())),
        prop::collection::vec(prefix, 0..3),
        prop::option::of(("eni-attach-[0-9a-f]{8}", "i-[0-9a-f]{8,17}", 0u32..16)),
    )
        .prop_map(
            |(
                (id, mac, subnet),
                description,
                status,
                tags,
                secondaries,
                primary,
                prefixes,
                attachment,
            )| Eni {
                id,
                mac,
                subnet,
                description,
                status,
                tags,
                secondaries,
                primary,
                prefixes,
                attachment,
            },
        )
}

impl Eni {
    /// The XML body of the ENI, primary address wherever EC2 put it in the list.
    fn xml(&self) -> Vec<Node> {
        let mut ips: Vec<Vec<Node>> = self
            .secondaries
            .iter()
            .map(|ip| vec![text("privateIpAddress", ip), text("primary", false)])
            .collect();
        if let Some((ip, at)) = &self.primary {
            let at = at.index(ips.len() + 1);
            ips.insert(
                at,
                vec![text("privateIpAddress", ip), text("primary", true)],
            );
        }
        let mut body = vec![
            text("networkInterfaceId", &self.id),
            text("subnetId", &self.subnet),
            text("description", &self.description),
            text("status", self.status),
            text("macAddress", MacAddr(self.mac)),
        ];
        if let Some((attachment, instance, index)) = &self.attachment {
            body.push(elem(
                "attachment",
                vec![
                    text("attachmentId", attachment),
                    text("instanceId", instance),
                    text("deviceIndex", index),
                ],
            ));
        }
        body.push(set(
            "tagSet",
            self.tags
                .iter()
                .map(|(k, v)| vec![text("key", k), text("value", v)]),
        ));
        body.push(set("privateIpAddressesSet", ips));
        body.push(set(
            "ipv4PrefixSet",
            self.prefixes.iter().map(|p| vec![text("ipv4Prefix", p)]),
        ));
        body
    }

    fn info(&self) -> EniInfo {
        EniInfo {
            id: EniId::new(&self.id),
            mac: MacAddr(self.mac),
            subnet_id: SubnetId::new(&self.subnet),
            description: self.description.clone(),
            status: self.status.to_owned(),
            tags: self.tags.clone(),
            addresses: self
                .primary
                .iter()
                .map(|(ip, _)| *ip)
                .chain(self.secondaries.iter().copied())
                .collect(),
            prefixes: self.prefixes.clone(),
            attachment_id: self.attachment.as_ref().map(|a| a.0.clone()),
            instance_id: self.attachment.as_ref().map(|a| a.1.clone()),
            device_index: self.attachment.as_ref().map(|a| a.2),
        }
    }
}

/// The calls ipamd makes, each with a valid reply for it.
#[derive(Debug, Clone, Copy)]
enum Call {
    Describe,
    Create,
    Assign,
    Attach,
    Limits,
    Unassign,
    Detach,
    Delete,
    Tag,
}

const CALLS: [Call; 9] = [
    Call::Describe,
    Call::Create,
    Call::Assign,
    Call::Attach,
    Call::Limits,
    Call::Unassign,
    Call::Detach,
    Call::Delete,
    Call::Tag,
];

impl Call {
    /// The EC2 actions the call sends; an error must name one of them.
    fn actions(self) -> &'static [&'static str] {
        match self {
            Call::Describe => &["DescribeNetworkInterfaces"],
            Call::Create => &["CreateNetworkInterface"],
            Call::Assign => &["AssignPrivateIpAddresses"],
            Call::Attach => &["AttachNetworkInterface", "ModifyNetworkInterfaceAttribute"],
            Call::Limits => &["DescribeInstanceTypes"],
            Call::Unassign => &["UnassignPrivateIpAddresses"],
            Call::Detach => &["DetachNetworkInterface"],
            Call::Delete => &["DeleteNetworkInterface"],
            Call::Tag => &["CreateTags"],
        }
    }

    /// A reply EC2 could send, built from `enis`.
    fn valid_reply(self, enis: &[Eni], token: Option<&str>) -> Node {
        let action = self.actions()[0];
        let body = match self {
            Call::Describe => {
                let mut body = vec![set("networkInterfaceSet", enis.iter().map(Eni::xml))];
                if let Some(token) = token {
                    body.push(text("nextToken", token));
                }
                body
            }
            Call::Create => {
                let eni = enis.first().map(Eni::xml).unwrap_or_default();
                vec![elem("networkInterface", eni), text("clientToken", "t")]
            }
            Call::Assign => {
                let eni = enis.first().cloned();
                let ips = eni.iter().flat_map(|e| e.secondaries.clone());
                let prefixes = eni.iter().flat_map(|e| e.prefixes.clone());
                vec![
                    text("networkInterfaceId", "eni-1"),
                    set(
                        "assignedPrivateIpAddressesSet",
                        ips.map(|ip| vec![text("privateIpAddress", ip)]),
                    ),
                    set(
                        "assignedIpv4PrefixSet",
                        prefixes.map(|p| vec![text("ipv4Prefix", p)]),
                    ),
                ]
            }
            Call::Attach => vec![text("attachmentId", "eni-attach-1"), text("return", true)],
            Call::Limits => vec![set(
                "instanceTypeSet",
                [vec![
                    text("instanceType", "m5.large"),
                    text("hypervisor", "nitro"),
                    elem("vCpuInfo", vec![text("defaultVCpus", 2)]),
                    elem(
                        "networkInfo",
                        vec![
                            text("maximumNetworkInterfaces", enis.len()),
                            text("ipv4AddressesPerInterface", 10),
                        ],
                    ),
                ]],
            )],
            Call::Unassign | Call::Detach | Call::Delete | Call::Tag => {
                vec![text("return", true)]
            }
        };
        xml::response(action, body)
    }

    /// Makes the call; errors come back as they are, values as text for the report.
    async fn make(self, ec2: &AwsEc2) -> Result<String, CloudError> {
        let eni = EniId::new("eni-1");
        let tags = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
        let new = NewEni {
            subnet_id: SubnetId::new("subnet-1"),
            secondary_count: 1,
            ..NewEni::default()
        };
        Ok(match self {
            Call::Describe => format!(
                "{:?}",
                ec2.describe_enis(EniQuery::AttachedTo("i-1".into()))
                    .await?
            ),
            Call::Create => format!("{:?}", ec2.create_eni(new).await?),
            Call::Assign => format!("{:?}", ec2.assign(&eni, Assign::Addresses(2)).await?),
            Call::Attach => ec2.attach_eni(&eni, "i-1", 1).await?,
            Call::Limits => format!("{:?}", ec2.instance_limits("m5.large").await?),
            Call::Unassign => {
                format!(
                    "{:?}",
                    ec2.unassign(&eni, &[Ipv4Addr::new(10, 0, 0, 1)], &[])
                        .await?
                )
            }
            Call::Detach => format!("{:?}", ec2.detach_eni("eni-attach-1").await?),
            Call::Delete => format!("{:?}", ec2.delete_eni(&eni).await?),
            Call::Tag => format!(
                "{:?}",
                ec2.create_tags(std::slice::from_ref(&eni), &tags).await?
            ),
        })
    }
}

/// Any reply: a valid one (or an error document) edited by structure or byte by byte,
/// any bytes, under any status.
fn reply(call: Call) -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        6 => Just(200u16),
        1 => prop::sample::select(vec![400u16, 403, 404, 429, 500, 503]),
        1 => 100u16..600,
    ];
    let code = prop_oneof![
        prop::sample::select(vec![
            "RequestLimitExceeded",
            "InvalidNetworkInterfaceID.NotFound",
            "InternalError",
            "InsufficientFreeAddressesInSubnet",
            "AttachmentLimitExceeded",
            "InvalidNetworkInterface.InUse",
            "UnauthorizedOperation",
        ])
        .prop_map(str::to_owned),
        gen::string(),
    ];
    let document = prop_oneof![
        3 => (prop::collection::vec(eni(), 0..3), prop::option::of("[a-zA-Z0-9+/=]{1,20}"))
            .prop_map(move |(enis, token)| call.valid_reply(&enis, token.as_deref())),
        1 => (code, gen::string()).prop_map(|(c, m)| xml::error_document(&c, &m)),
    ];
    let body = prop_oneof![
        3 => (document.clone(), xml::edits(3)).prop_map(|(d, e)| xml::render(&xml::apply(d, &e))),
        2 => document.clone().prop_map(|d| xml::render(&d)),
        1 => gen::bytes_around(document.prop_map(|d| xml::render(&d)).boxed()),
    ];
    (status, body)
}

/// Any reply to any call.
fn call_and_reply() -> impl Strategy<Value = (Call, Answer)> {
    prop::sample::select(&CALLS[..]).prop_flat_map(|call| (Just(call), reply(call)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prop_ec2_any_reply_answers_a_value_or_an_error_naming_the_action(
        (call, answer) in call_and_reply(),
    ) {
        let http = FakeHttp::always(answer);
        let ec2 = client(http.clone());
        let result = run(call.make(&ec2))?;
        if let Err(err) = &result {
            let msg = err.to_string();
            prop_assert!(
                call.actions().iter().any(|a| msg.contains(a)),
                "{:?}: {} names none of {:?}", call, msg, call.actions()
            );
        }
        // Attach makes two calls; a describe follows a token at most once when every page
        // is the same reply.
        prop_assert!(http.requests() <= 2, "{} requests for one {:?}", http.requests(), call);
    }

    /// Valid replies convert to exactly what they describe, pages followed to the end.
    #[test]
    fn prop_ec2_valid_describe_pages_convert_exactly(
        pages in prop::collection::vec(prop::collection::vec(eni(), 0..3), 1..4),
    ) {
        let replies: Vec<Vec<u8>> = pages
            .iter()
            .enumerate()
            .map(|(i, enis)| {
                let token = (i + 1 < pages.len()).then(|| format!("page-{}", i + 1));
                xml::render(&Call::Describe.valid_reply(enis, token.as_deref()))
            })
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let http = FakeHttp::new(move |_, _| {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (200, replies[i.min(replies.len() - 1)].clone())
        });
        let ec2 = client(http.clone());
        let got = run(ec2.describe_enis(EniQuery::AttachedTo("i-1".into())))?.unwrap();
        let expected: Vec<EniInfo> = pages.iter().flatten().map(Eni::info).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(http.requests(), pages.len());
    }
}

/// Found by `prop_ec2_any_reply_answers_a_value_or_an_error_naming_the_action`: a page
/// whose nextToken EC2 had already given made `describe_enis` ask again forever.
#[test]
fn a_repeated_next_token_ends_the_listing_with_an_error() {
    let page = Call::Describe.valid_reply(&[], Some("same"));
    let http = FakeHttp::always((200, xml::render(&page)));
    let ec2 = client(http.clone());
    let err = run(ec2.describe_enis(EniQuery::AttachedTo("i-1".into())))
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, CloudError::MalformedReply { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("DescribeNetworkInterfaces") && msg.contains("\"same\""),
        "{msg}"
    );
    assert_eq!(http.requests(), 2);
}

/// One report: action, status, code, failed.
type Reported = (&'static str, Option<u16>, Option<String>, bool);

/// Records every report of the call observer.
#[derive(Default)]
struct Recorder {
    attempts: std::sync::Mutex<Vec<Reported>>,
}

impl crate::observe::CallObserver for Recorder {
    fn attempt(&self, action: &'static str, outcome: crate::observe::Attempt<'_>, _took: Duration) {
        self.attempts.lock().unwrap().push((
            action,
            outcome.status(),
            outcome.code().map(str::to_owned),
            outcome.failed(),
        ));
    }

    fn token_wait(&self, _action: &'static str, _waited: Duration) {}
}

/// What ipamd's EC2 metrics rest on: one report per request sent, retries included, with
/// the status and error code EC2 answered.
#[test]
fn every_attempt_is_reported_with_its_status_and_code() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let answered = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&answered);
    let http = FakeHttp::new(move |_, _| match n.fetch_add(1, Ordering::Relaxed) {
        0 => (
            503,
            xml::render(&xml::error_document("RequestLimitExceeded", "slow down")),
        ),
        1 => (500, b"not xml".to_vec()),
        _ => (200, xml::render(&Call::Describe.valid_reply(&[], None))),
    });
    let recorder = Arc::new(Recorder::default());
    let ec2 = client(http.clone())
        .with_retry_policy(RetryPolicy {
            max_attempts: 3,
            base: Duration::ZERO,
            cap: Duration::ZERO,
        })
        .with_observer(recorder.clone());
    run(ec2.describe_enis(EniQuery::AttachedTo("i-1".into())))
        .unwrap()
        .unwrap();
    let action = "DescribeNetworkInterfaces";
    assert_eq!(
        *recorder.attempts.lock().unwrap(),
        [
            (
                action,
                Some(503),
                Some("RequestLimitExceeded".to_owned()),
                true
            ),
            (action, Some(500), None, true),
            (action, Some(200), None, false),
        ]
    );
    assert_eq!(http.requests(), 3);
    assert_eq!(ec2.call_counts()[action], 3);
}
