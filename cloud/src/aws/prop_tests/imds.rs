//! Properties of what `AwsImds` makes of IMDS's answers: each value is parsed by our code
//! (`parse_lines`, `CloudError::parse_metadata`), through the real IMDSv2 client over a fake
//! IMDS. Any answer at any path gives the node's facts, or an error naming a path that was
//! read; valid answers give exactly the facts they describe.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use aws_config::imds::Client;
use aws_config::provider_config::ProviderConfig;
use proptest::prelude::*;
use proptest::sample::Index;
use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};
use vpc_cni_testkit::prop::{config, gen};

use super::ec2::run;
use super::fake_http::{Answer, FakeHttp};
use crate::api::{EniId, Imds, ImdsEni, NodeIdentity, SubnetId};
use crate::aws::imds::{lines, parse_lines};
use crate::aws::AwsImds;
use crate::error::CloudError;

/// One attached ENI as the fake IMDS shows it.
fn eni() -> impl Strategy<Value = ImdsEni> {
    let cidr =
        (any::<u32>(), 8u8..=28).prop_map(|(n, len)| Ipv4Cidr::containing(Ipv4Addr::from(n), len));
    let ip = any::<u32>().prop_map(Ipv4Addr::from);
    (
        (
            any::<[u8; 6]>(),
            "eni-[0-9a-f]{8}",
            0u32..16,
            "subnet-[0-9a-f]{8}",
            "vpc-[0-9a-f]{8}",
        ),
        prop::collection::vec("sg-[0-9a-f]{8}", 0..3),
        (cidr.clone(), prop::collection::vec(cidr, 1..3)),
        (
            prop::collection::vec(ip, 1..4),
            prop::collection::vec(any::<u32>(), 0..2),
        ),
    )
        .prop_map(
            |(
                (mac, id, device, subnet, vpc),
                groups,
                (subnet_cidr, vpc_cidrs),
                (addresses, prefixes),
            )| ImdsEni {
                mac: MacAddr(mac),
                eni_id: EniId::new(id),
                device_number: device,
                subnet_id: SubnetId::new(subnet),
                vpc_id: vpc,
                security_groups: groups,
                subnet_cidr,
                vpc_cidrs,
                addresses,
                prefixes: prefixes
                    .into_iter()
                    .map(|n| Ipv4Cidr::containing(Ipv4Addr::from(n), 28))
                    .collect(),
            },
        )
}

fn identity() -> impl Strategy<Value = NodeIdentity> {
    (
        "i-[0-9a-f]{8,17}",
        "[a-z0-9]{2,4}\\.[a-z0-9]{4,8}",
        any::<[u8; 6]>(),
        any::<u32>(),
    )
        .prop_map(|(id, kind, mac, ip)| NodeIdentity {
            instance_id: id,
            instance_type: kind,
            region: "us-west-2".into(),
            availability_zone: "us-west-2a".into(),
            primary_mac: MacAddr(mac),
            local_ipv4: Ipv4Addr::from(ip),
        })
}

fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path IMDS answers for `node` and `enis`, relative to `/latest/meta-data/`.
fn tree(node: &NodeIdentity, enis: &[ImdsEni]) -> BTreeMap<String, String> {
    let mut t = BTreeMap::new();
    t.insert("instance-id".into(), node.instance_id.clone());
    t.insert("instance-type".into(), node.instance_type.clone());
    t.insert("placement/region".into(), node.region.clone());
    t.insert(
        "placement/availability-zone".into(),
        node.availability_zone.clone(),
    );
    t.insert("mac".into(), node.primary_mac.to_string());
    t.insert("local-ipv4".into(), node.local_ipv4.to_string());
    let macs: Vec<String> = enis.iter().map(|e| format!("{}/", e.mac)).collect();
    t.insert("network/interfaces/macs/".into(), joined(&macs));
    for e in enis {
        let base = format!("network/interfaces/macs/{}", e.mac);
        let mut put = |leaf: &str, value: String| t.insert(format!("{base}/{leaf}"), value);
        put("interface-id", e.eni_id.as_str().to_owned());
        put("device-number", e.device_number.to_string());
        put("subnet-id", e.subnet_id.as_str().to_owned());
        put("vpc-id", e.vpc_id.clone());
        put("security-group-ids", joined(&e.security_groups));
        put("subnet-ipv4-cidr-block", e.subnet_cidr.to_string());
        put("vpc-ipv4-cidr-blocks", joined(&e.vpc_cidrs));
        put("local-ipv4s", joined(&e.addresses));
        if !e.prefixes.is_empty() {
            put("ipv4-prefix", joined(&e.prefixes));
        }
    }
    t
}

/// One change to what IMDS answers at one path.
#[derive(Debug, Clone)]
enum Change {
    Value(Index, String),
    Status(Index, u16),
    /// CRLF line ends, blank lines and padding: the same facts, written differently.
    Spacing(Index),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (
            any::<Index>(),
            prop_oneof![gen::string(), "[0-9a-f:./ \n-]{0,40}", gen::raw_json()]
        )
            .prop_map(|(i, v)| Change::Value(i, v)),
        (
            any::<Index>(),
            prop::sample::select(vec![404u16, 401, 403, 429, 500, 503, 302])
        )
            .prop_map(|(i, s)| Change::Status(i, s)),
        any::<Index>().prop_map(Change::Spacing),
    ]
}

/// The fake IMDS for `tree`, and the paths it was asked for.
fn imds(tree: BTreeMap<String, Answer>) -> (AwsImds, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let http = FakeHttp::imds(move |path| {
        let path = path
            .strip_prefix("/latest/meta-data/")
            .unwrap_or(path)
            .to_owned();
        let answer = tree
            .get(&path)
            .cloned()
            .unwrap_or((404, b"Not Found".to_vec()));
        log.lock().unwrap().push(path);
        answer
    });
    let provider = ProviderConfig::without_region().with_http_client(http);
    let client = Client::builder()
        .configure(&provider)
        .max_attempts(1)
        .endpoint("http://169.254.169.254")
        .unwrap()
        .build();
    (AwsImds::from_client(client), asked)
}

/// Checks an error names a path that was read.
fn names_a_read_path(err: &CloudError, asked: &[String]) -> Result<(), TestCaseError> {
    let msg = err.to_string();
    prop_assert!(msg.contains("IMDS"), "{}", msg);
    prop_assert!(
        asked
            .iter()
            .any(|p| !p.is_empty() && msg.contains(p.trim_end_matches('/'))),
        "{} names none of the paths read {:?}",
        msg,
        asked
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any value, status or spelling at any path.
    #[test]
    fn prop_imds_any_answer_gives_facts_or_names_a_path(
        node in identity(),
        enis in prop::collection::vec(eni(), 0..3),
        changes in prop::collection::vec(change(), 0..4),
    ) {
        let valid = tree(&node, &enis);
        let paths: Vec<String> = valid.keys().cloned().collect();
        let mut answers: BTreeMap<String, Answer> =
            valid.into_iter().map(|(k, v)| (k, (200, v.into_bytes()))).collect();
        let mut facts_changed = false;
        for change in &changes {
            let (Change::Value(i, _) | Change::Status(i, _) | Change::Spacing(i)) = change;
            let path = &paths[i.index(paths.len())];
            let answer = answers.get_mut(path).unwrap();
            match change {
                Change::Value(_, v) => {
                    *answer = (200, v.clone().into_bytes());
                    facts_changed = true;
                }
                Change::Status(_, s) => {
                    answer.0 = *s;
                    facts_changed = true;
                }
                Change::Spacing(_) => {
                    let text = String::from_utf8_lossy(&answer.1).replace('\n', "\r\n\n  ");
                    answer.1 = format!(" {text}\t\r\n").into_bytes();
                }
            }
        }
        let (imds, asked) = imds(answers);
        let got = run(async { (imds.identity().await, imds.enis().await) })?;
        let asked = asked.lock().unwrap().clone();
        match &got.0 {
            Ok(identity) if !facts_changed => prop_assert_eq!(identity, &node),
            Ok(_) => {}
            Err(e) => names_a_read_path(e, &asked)?,
        }
        match &got.1 {
            Ok(found) if !facts_changed => {
                let mut expected = enis.clone();
                expected.sort_by_key(|e| e.device_number);
                prop_assert_eq!(found, &expected);
            }
            Ok(_) => {}
            Err(e) => names_a_read_path(e, &asked)?,
        }
    }

    /// The line parser alone, on any text: every line parses, or the first bad one is
    /// named with the path.
    #[test]
    fn prop_imds_lines_parse_or_name_the_line(
        text in prop_oneof![gen::string(), "([0-9]{1,3}\\.){3}[0-9]{1,3}(/[0-9]{1,3})?([ \t]*\r?\n[ \t]*([0-9]{1,3}\\.){3}[0-9]{1,3}(/[0-9]{1,2})?){0,5}"],
    ) {
        let path = "network/interfaces/macs/0e:00:00:00:00:01/local-ipv4s";
        let all = lines(&text);
        prop_assert!(all.iter().all(|l| !l.is_empty() && l.trim() == l));
        match parse_lines::<Ipv4Addr>(path, &text) {
            Ok(ips) => prop_assert_eq!(ips.len(), all.len()),
            Err(err @ CloudError::BadMetadata { .. }) => {
                let msg = err.to_string();
                prop_assert!(msg.contains(path), "{}", msg);
                let bad = all.iter().find(|l| l.parse::<Ipv4Addr>().is_err()).unwrap();
                prop_assert!(msg.contains(&format!("{bad:?}")), "{} does not show {:?}", msg, bad);
            }
            Err(other) => prop_assert!(false, "untyped answer {:?}", other),
        }
        let _ = parse_lines::<Ipv4Cidr>(path, &text);
        let _ = parse_lines::<MacAddr>(path, &text);
        let _ = CloudError::parse_metadata::<u32>(path, &text);
    }
}

/// Found by `prop_imds_any_answer_gives_facts_or_names_a_path`: a line of the MAC listing
/// that is not a MAC went into the next path as it was, and aws-config's client panicked
/// ("valid request: InvalidUriChar") on the space in it.
#[test]
fn a_listed_mac_that_is_not_a_mac_is_named_not_requested() {
    let listing = "0e:00:00:00:00:01/\nnot a mac/\n";
    let (imds, asked) = imds(BTreeMap::from([(
        "network/interfaces/macs/".to_owned(),
        (200, listing.as_bytes().to_vec()),
    )]));
    let err = run(imds.enis()).unwrap().unwrap_err();
    assert!(matches!(err, CloudError::BadMetadata { .. }), "{err:?}");
    assert!(err.to_string().contains("not a mac"), "{err}");
    assert!(!asked
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.contains("not a mac")));
}
