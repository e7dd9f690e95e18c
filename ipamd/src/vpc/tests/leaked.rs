//! Leaked-ENI cleanup deletes our old `available` ENIs and nothing else.

use std::collections::BTreeMap;

use vpc_cni_cloud::sim::{FailNext, Faults};

use super::harness::{config, Node, SETTLE_MS};
use crate::vpc::math::PoolConfig;
use crate::vpc::{CREATED_AT_TAG, INSTANCE_ID_TAG, NO_MANAGE_TAG};

#[tokio::test]
async fn only_old_available_enis_of_ours_are_deleted() {
    let mut node = Node::new(config(PoolConfig::default())).await;
    node.add_pods(10).await;
    node.idle().await;
    let leaked = node
        .sim
        .imds_instance(&node.instance_id)
        .unwrap()
        .interfaces[1]
        .interface_id
        .clone();

    // The recipe: the detach succeeds, every delete after it fails.
    node.sim.set_faults(Faults {
        fail_next: vec![FailNext {
            action: "DeleteNetworkInterface".to_string(),
            times: 3,
            code: "InternalError".to_string(),
        }],
        ..Faults::default()
    });
    node.remove_all_pods().await;
    node.advance(SETTLE_MS);
    node.idle().await;
    assert_eq!(node.shape().enis, 1);
    let status = |id: &str| {
        node.world_enis()
            .into_iter()
            .find(|e| e.id == id)
            .map(|e| e.status)
    };
    assert_eq!(status(&leaked).as_deref(), Some("available"));

    let ours = |created: &str| {
        BTreeMap::from([
            (INSTANCE_ID_TAG.to_string(), "i-0dead".to_string()),
            (CREATED_AT_TAG.to_string(), created.to_string()),
        ])
    };
    let desc = "vpc-cni-i-0dead";
    let untagged = node.foreign_eni(BTreeMap::new(), desc, 0, None);
    let mut kept_tags = ours("2000-01-01T00:00:00Z");
    kept_tags.insert(NO_MANAGE_TAG.to_string(), "true".to_string());
    let no_manage = node.foreign_eni(kept_tags, desc, 0, None);
    let foreign_desc = node.foreign_eni(ours("2000-01-01T00:00:00Z"), "someone else", 0, None);
    let in_use = node.foreign_eni(ours("2000-01-01T00:00:00Z"), desc, 0, Some(3));
    let undated = node.foreign_eni(
        BTreeMap::from([(INSTANCE_ID_TAG.to_string(), "i-0dead".to_string())]),
        desc,
        0,
        None,
    );
    let other_node = node.foreign_eni(ours("2000-01-01T00:00:00Z"), desc, 0, None);

    // Younger than LEAKED_ENI_MIN_AGE (5 min): kept.
    let report = node.ctl.cleanup_leaked_enis().await.unwrap();
    assert_eq!(report.deleted, [other_node.as_str()]);
    assert_eq!(report.too_young, [leaked.as_str()]);
    assert_eq!(report.tagged, [undated.as_str()]);

    // The leaked ENI is past 5 min (it was made before the cooldown passed);
    // the one tagged just now (whole seconds) is 10 s short of it.
    node.advance(5 * 60 * 1000 - 10_000);
    let report = node.ctl.cleanup_leaked_enis().await.unwrap();
    assert_eq!(report.deleted, [leaked.as_str()]);
    assert_eq!(report.too_young, [undated.as_str()]);
    assert!(report.failed.is_empty());
    assert_eq!(status(&leaked), None);
    for kept in [&untagged, &no_manage, &foreign_desc, &in_use, &undated] {
        assert!(status(kept).is_some(), "{kept} was deleted");
    }
    node.advance(10_000);
    let report = node.ctl.cleanup_leaked_enis().await.unwrap();
    assert_eq!(report.deleted, [undated.as_str()]);
    node.print_counts("leaked-ENI cleanup");
}
