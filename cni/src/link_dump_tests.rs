#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use vpc_cni_testkit::netns::Netns;

use super::*;

/// What `ip -j link` says of every link: index -> (name, 6-byte address; lo's is zeros).
fn ip_links(ns: &Netns) -> BTreeMap<u32, (String, Option<MacAddr>)> {
    let listed: serde_json::Value = serde_json::from_str(&ns.ip(&["-j", "link", "show"])).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let mac = l["address"].as_str().and_then(|a| a.parse().ok());
            (
                u32::try_from(l["ifindex"].as_u64().unwrap()).unwrap(),
                (l["ifname"].as_str().unwrap().to_owned(), mac),
            )
        })
        .collect()
}

/// Root: a namespace with 400 links, more than one datagram of the dump holds, is listed
/// whole, each link with the index, name and MAC the kernel reports to `ip`.
#[test]
fn lists_every_link_with_its_index_name_and_mac_across_datagrams() {
    let ns = Netns::unique("ldump");
    let commands: Vec<String> = (0..200)
        .map(|i| format!("link add ld{i}a type veth peer name ld{i}b"))
        .collect();
    ns.ip_batch(&commands, false).unwrap();

    let listed = ns.run(|| async { link_summaries().await.unwrap() });

    let by_index: BTreeMap<u32, (String, Option<MacAddr>)> = listed
        .into_iter()
        .map(|l| (l.index, (l.name, l.mac)))
        .collect();
    let expected = ip_links(&ns);
    assert_eq!(expected.len(), 401, "lo and 400 veths");
    assert_eq!(by_index, expected);
}

/// Root: the request's own socket lists the namespace of the thread that calls it, not the
/// process's.
#[test]
fn lists_the_calling_threads_namespace() {
    let ns = Netns::unique("ldns");
    ns.ip(&[
        "link",
        "add",
        "only-here",
        "type",
        "veth",
        "peer",
        "name",
        "only-peer",
    ]);
    let names: Vec<String> = ns.run(|| async {
        link_summaries()
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect()
    });
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"only-here".to_owned()));
}
