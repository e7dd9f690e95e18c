//! An attached ENI whose link has not appeared yet (root, real kernel): its addresses stay
//! out of the pool, and the pass asks to look again soon rather than at the next periodic
//! tick, so an ADD waiting for those addresses is not left to time out.

use std::sync::Arc;

use vpc_cni_testkit::netns::Netns;

use super::harness::{config, world, Node};
use crate::vpc::math::PoolConfig;
use crate::vpc_datapath::{PrimaryEni, VpcDatapath, VpcNodeSpec};

#[test]
fn a_pass_looks_again_soon_for_the_link_of_an_attached_eni() {
    let ns = Netns::unique("unwired");
    let (sim, instance_id, subnet_id) = world(7);
    let view = sim.imds_instance(&instance_id).unwrap();
    let primary = view
        .interfaces
        .iter()
        .find(|i| i.device_number == 0)
        .unwrap()
        .clone();
    ns.ip(&[
        "link",
        "add",
        "eth0",
        "address",
        &primary.mac,
        "type",
        "veth",
        "peer",
        "name",
        "peer0",
    ]);
    let ns_path = ns.name().to_owned();
    ns.run(move || async move {
        let datapath = Arc::new(VpcDatapath::new(VpcNodeSpec {
            primary: PrimaryEni {
                mac: primary.mac.parse().unwrap(),
                address: primary.local_ipv4s[0],
            },
            secondaries: Vec::new(),
            vpc_cidrs: vec!["10.0.0.0/16".parse().unwrap()],
            exclude_snat_cidrs: Vec::new(),
            external_snat: false,
            eni_mtu: 9001,
            max_enis: 8,
            overlay: None,
        }));
        // WARM_ENI_TARGET=2: the controller attaches a second ENI at once.
        let node = Node::wired_by(
            sim.clone(),
            instance_id.clone(),
            subnet_id,
            config(PoolConfig {
                warm_eni_target: 2,
                ..PoolConfig::default()
            }),
            Some(datapath),
        )
        .await;
        let report = node.ctl.reconcile_once().await.unwrap();
        let second = sim
            .imds_instance(&instance_id)
            .unwrap()
            .interfaces
            .into_iter()
            .find(|i| i.device_number == 1)
            .expect("a second ENI attached");
        let total_before = node.store.counts(node.now()).total;
        assert!(
            report.look_again.is_some(),
            "no early look for the missing link of {}",
            second.interface_id
        );
        assert!(
            node.store.read(|ds| second
                .local_ipv4s
                .iter()
                .skip(1)
                .all(|ip| ds.address_state(*ip, 0).is_none())),
            "addresses of an unwired ENI reached the pool"
        );

        // The link appears: the next pass wires it and stops asking.
        let out = std::process::Command::new("ip")
            .args([
                "-n",
                &ns_path,
                "link",
                "add",
                "eth1",
                "address",
                &second.mac,
                "type",
                "veth",
                "peer",
                "name",
                "peer1",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = node.ctl.reconcile_once().await.unwrap();
        assert!(report.look_again.is_none(), "still looking: {report:?}");
        assert!(node.store.counts(node.now()).total > total_before);
    });
}
