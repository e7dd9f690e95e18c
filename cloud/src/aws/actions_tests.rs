//! [`EC2_ACTIONS`] is exactly what `AwsEc2` sends: every `Ec2` method is called over a fake
//! HTTP connector that records the `Action` of each request, and the recorded set must equal
//! the list. A new `Ec2` method must be called here too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use super::EC2_ACTIONS;
use crate::api::{Assign, Ec2, EniId, EniQuery, NewEni, SubnetId};
use crate::aws::prop_tests::fake_http::{ec2_client as client, FakeHttp, Seen};

/// A reply every action's parser takes: EC2's envelope, with the one field a follow-up call
/// needs (the attachment id, for the DeleteOnTermination that follows an attach).
fn reply(seen: &Seen<'_>) -> (u16, Vec<u8>) {
    let action = seen.action.as_deref().unwrap_or("Unknown");
    let body = format!(
        r#"<{action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId><attachmentId>eni-attach-1</attachmentId><return>true</return></{action}Response>"#
    );
    (200, body.into_bytes())
}

#[tokio::test]
async fn the_list_is_exactly_what_the_client_sends() {
    let http = FakeHttp::seeing(reply);
    let ec2 = client(http.clone());
    let eni = EniId::new("eni-0123456789abcdef0");
    let tags = BTreeMap::from([("vpc-cni.io/instance-id".to_owned(), "i-1".to_owned())]);
    let address = "10.0.0.10".parse().unwrap();
    let prefix = "10.0.1.0/28".parse().unwrap();

    // Replies are envelopes only, so some calls fail to convert them; what matters is what
    // was sent.
    let _ = ec2.instance_limits("m5.large").await;
    let _ = ec2
        .create_eni(NewEni {
            subnet_id: SubnetId::new("subnet-1"),
            description: "vpc-cni-i-1".into(),
            security_groups: vec!["sg-1".into()],
            tags: tags.clone(),
            secondary_count: 2,
            prefix_count: 0,
        })
        .await;
    ec2.attach_eni(&eni, "i-1", 1).await.unwrap();
    let _ = ec2.assign(&eni, Assign::Addresses(2)).await;
    let _ = ec2.assign(&eni, Assign::Prefixes(1)).await;
    ec2.unassign(&eni, &[address], &[prefix]).await.unwrap();
    ec2.detach_eni("eni-attach-1").await.unwrap();
    ec2.delete_eni(&eni).await.unwrap();
    for query in [
        EniQuery::Ids(vec![eni.clone()]),
        EniQuery::AttachedTo("i-1".into()),
        EniQuery::AvailableTagged("vpc-cni.io/instance-id".into()),
    ] {
        ec2.describe_enis(query).await.unwrap();
    }
    ec2.create_tags(std::slice::from_ref(&eni), &tags)
        .await
        .unwrap();
    ec2.describe_subnets("vpc-1", "us-west-2a").await.unwrap();
    ec2.set_security_groups(&eni, &["sg-1".to_owned()])
        .await
        .unwrap();

    let sent: BTreeSet<String> = http.actions().into_iter().collect();
    let listed: BTreeSet<String> = EC2_ACTIONS.iter().map(|a| (*a).to_owned()).collect();
    assert_eq!(
        sent, listed,
        "EC2_ACTIONS must name exactly the actions the client sends"
    );
    // And the client's own per-action counts agree with the wire.
    let counted: BTreeSet<String> = ec2.call_counts().into_keys().collect();
    assert_eq!(counted, listed);
}

#[test]
fn the_list_is_sorted_and_has_no_duplicates() {
    let mut sorted = EC2_ACTIONS.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, EC2_ACTIONS);
}
