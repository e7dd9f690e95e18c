//! DescribeNetworkInterfaces: filters and pagination.

use std::collections::{BTreeMap, HashSet};

use super::*;

fn describe_all(w: &World, f: &EniFilter, page: u32) -> Vec<Eni> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let p = w
            .sim
            .describe_network_interfaces(f, Some(page), token.as_deref())
            .unwrap();
        assert!(p.items.len() <= page as usize);
        out.extend(p.items);
        match p.next_token {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}

fn tagged(w: &World, desc: &str, tags: &[(&str, &str)]) -> Eni {
    w.sim
        .create_network_interface(CreateEni {
            subnet_id: w.subnet.id.clone(),
            description: desc.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..CreateEni::default()
        })
        .unwrap()
}

#[test]
fn pagination_round_trips_without_duplicates_or_misses() {
    let w = World::new("10.0.0.0/20");
    let mut want: Vec<String> = (0..53).map(|_| w.eni().id).collect();
    want.sort();
    for page in [5, 7, 10, 53, 1000] {
        let got: Vec<String> = describe_all(&w, &EniFilter::default(), page)
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(got, want, "page size {page}");
    }
    // Without MaxResults everything comes at once.
    let p = w
        .sim
        .describe_network_interfaces(&EniFilter::default(), None, None)
        .unwrap();
    assert_eq!(p.items.len(), 53);
    assert!(p.next_token.is_none());
}

#[test]
fn pagination_survives_changes_between_pages() {
    let w = World::new("10.0.0.0/20");
    let ids: Vec<String> = (0..20).map(|_| w.eni().id).collect();
    let f = EniFilter::default();
    let first = w
        .sim
        .describe_network_interfaces(&f, Some(5), None)
        .unwrap();
    // Delete one already returned: the rest must neither repeat nor be skipped.
    w.sim.delete_network_interface(&first.items[0].id).unwrap();
    let mut seen: Vec<String> = first.items.iter().map(|e| e.id.clone()).collect();
    let mut token = first.next_token;
    while let Some(t) = token {
        let p = w
            .sim
            .describe_network_interfaces(&f, Some(5), Some(&t))
            .unwrap();
        seen.extend(p.items.iter().map(|e| e.id.clone()));
        token = p.next_token;
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
}

#[test]
fn max_results_and_token_are_validated() {
    let w = World::new("10.0.0.0/24");
    let f = EniFilter::default();
    for bad in [0, 4, 1001] {
        assert_eq!(
            code(w.sim.describe_network_interfaces(&f, Some(bad), None)),
            ErrorCode::InvalidParameterValue
        );
    }
    assert_eq!(
        code(
            w.sim
                .describe_network_interfaces(&f, Some(5), Some("garbage"))
        ),
        ErrorCode::InvalidParameterValue
    );
}

#[test]
fn unknown_id_is_not_found() {
    let w = World::new("10.0.0.0/24");
    let e = w.eni();
    let f = EniFilter {
        ids: vec![e.id.clone(), "eni-00000000000000000".into()],
        ..EniFilter::default()
    };
    assert_eq!(
        code(w.sim.describe_network_interfaces(&f, None, None)),
        ErrorCode::InvalidNetworkInterfaceIdNotFound
    );
}

#[test]
fn filters_combine_like_ec2() {
    let w = World::new("10.0.0.0/24");
    let other = w
        .sim
        .create_subnet(&w.vpc.id, "10.0.1.0/24", "us-west-2a")
        .unwrap();
    let i = w.instance("m5.large");
    let leaked = tagged(
        &w,
        "aws-K8S-i-1",
        &[
            ("node.k8s.amazonaws.com/instance_id", "i-1"),
            ("cluster", "a"),
        ],
    );
    let attached = tagged(
        &w,
        "aws-K8S-i-2",
        &[
            ("node.k8s.amazonaws.com/instance_id", "i-2"),
            ("cluster", "b"),
        ],
    );
    w.sim
        .attach_network_interface(&attached.id, &i.id, 1)
        .unwrap();
    let plain = tagged(&w, "something else", &[]);
    let elsewhere = w
        .sim
        .create_network_interface(CreateEni {
            subnet_id: other.id.clone(),
            ..CreateEni::default()
        })
        .unwrap();

    let ids = |f: EniFilter| -> HashSet<String> {
        describe_all(&w, &f, 5).into_iter().map(|e| e.id).collect()
    };
    let set = |v: &[&Eni]| -> HashSet<String> { v.iter().map(|e| e.id.clone()).collect() };

    // The leaked-ENI sweep's filter.
    let sweep = EniFilter {
        tag_keys: vec!["node.k8s.amazonaws.com/instance_id".into()],
        status: Some("available".into()),
        vpc_id: Some(w.vpc.id.clone()),
        description: Some("aws-K8S-*".into()),
        ..EniFilter::default()
    };
    assert_eq!(ids(sweep), set(&[&leaked]));
    assert_eq!(
        ids(EniFilter {
            attachment_instance_id: Some(i.id.clone()),
            ..EniFilter::default()
        }),
        HashSet::from([i.primary_eni.clone(), attached.id.clone()])
    );
    assert_eq!(
        ids(EniFilter {
            tags: vec![("cluster".into(), vec!["a".into(), "b".into()])],
            ..EniFilter::default()
        }),
        set(&[&leaked, &attached])
    );
    assert_eq!(
        ids(EniFilter {
            tags: vec![
                ("cluster".into(), vec!["a".into(), "b".into()]),
                (
                    "node.k8s.amazonaws.com/instance_id".into(),
                    vec!["i-2".into()]
                ),
            ],
            ..EniFilter::default()
        }),
        set(&[&attached])
    );
    assert_eq!(
        ids(EniFilter {
            subnet_id: Some(other.id.clone()),
            ..EniFilter::default()
        }),
        set(&[&elsewhere])
    );
    assert_eq!(
        ids(EniFilter {
            description: Some("something else".into()),
            ..EniFilter::default()
        }),
        set(&[&plain])
    );
    assert_eq!(
        ids(EniFilter {
            status: Some("in-use".into()),
            ..EniFilter::default()
        }),
        HashSet::from([i.primary_eni.clone(), attached.id.clone()])
    );
    assert!(ids(EniFilter {
        vpc_id: Some("vpc-00000000000000000".into()),
        ..EniFilter::default()
    })
    .is_empty());
}
