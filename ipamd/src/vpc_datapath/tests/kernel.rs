//! The apply layer against the real kernel: a node namespace whose veths stand in for the
//! ENIs eth0 (primary), eth1 and eth2 (device indexes 1 and 2).

use super::core::{cidr, eni, imds_eni, spec, MAC0, MAC1, MAC2};
use vpc_cni_testkit::netns::Netns;

use super::add_eni_link;
use crate::datapath::NodeDatapath;
use crate::vpc_datapath::wiring::VpcNodeSpec;
use crate::vpc_datapath::{apply_node_wiring, VpcDatapath};

/// A node namespace with eth0..eth2; their peers sit up in the same namespace, so the
/// ENI stand-ins have carrier once the wiring brings them up.
fn node() -> Netns {
    let ns = Netns::unique("vdp-node");
    for (i, mac) in [MAC0, MAC1, MAC2].into_iter().enumerate() {
        let peer = format!("peer{i}");
        add_eni_link(&ns, &format!("eth{i}"), mac, &peer, None);
        ns.ip(&["link", "set", &peer, "up"]);
    }
    ns
}

fn apply(ns: &Netns, spec: &VpcNodeSpec) {
    let spec = spec.clone();
    ns.run(|| async move { apply_node_wiring(&spec).await.map(drop) })
        .unwrap();
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// The routes of a table; a table that never held one does not exist, which is empty too.
fn table(ns: &Netns, table: &str) -> Vec<String> {
    let out = ns.exec(&["ip", "route", "show", "table", table]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("FIB table does not exist") {
        return Vec::new();
    }
    assert!(
        out.status.success(),
        "ip route show table {table}: {stderr}"
    );
    lines(&String::from_utf8_lossy(&out.stdout))
}

fn rules(ns: &Netns) -> Vec<String> {
    lines(&ns.ip(&["rule"]))
}

fn nft_table(ns: &Netns) -> String {
    ns.exec_ok(&["nft", "list", "table", "ip", "vpc-cni"])
}

/// Everything the wiring touches, as text, to compare runs.
fn snapshot(ns: &Netns) -> String {
    [
        ns.ip(&["-4", "route", "show", "table", "all"]),
        ns.ip(&["rule"]),
        ns.ip(&["-o", "link"]),
        nft_table(ns),
        ns.sysctl("/proc/sys/net/ipv4/ip_forward"),
        ns.sysctl("/proc/sys/net/ipv4/conf/eth0/rp_filter"),
    ]
    .join("\n--\n")
}

const SNAT_TABLE: &str = "table ip vpc-cni {
	set snat-exempt {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/16, 192.0.2.0/24 }
	}

	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		ct state new iifname \"eth0\" ct mark set ct mark | 0x00000080
		ct state new iifname \"vpc*\" ip daddr != @snat-exempt ct mark set ct mark | 0x00000080
		ct mark & 0x00000080 == 0x00000080 meta mark set meta mark | 0x00000080
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		iifname \"vpc*\" ip daddr != @snat-exempt snat to 10.0.0.10 fully-random
	}
}
";

const CONNMARK_RULE: &str = "1024:\tfrom all fwmark 0x80/0x80 lookup main";

#[test]
fn apply_wires_links_tables_rules_nftables_and_sysctls_exactly() {
    let ns = node();
    // Off to begin with, so that the apply below is what turns it on.
    ns.write_sysctls(&[("net.ipv4.ip_forward", "0")]).unwrap();
    apply(&ns, &spec());

    assert_eq!(
        table(&ns, "2"),
        [
            "default via 10.0.1.1 dev eth1",
            "10.0.1.1 dev eth1 scope link"
        ]
    );
    assert_eq!(
        table(&ns, "3"),
        [
            "default via 10.0.2.1 dev eth2",
            "10.0.2.1 dev eth2 scope link"
        ]
    );
    assert_eq!(
        rules(&ns),
        [
            "0:\tfrom all lookup local",
            CONNMARK_RULE,
            "32766:\tfrom all lookup main",
            "32767:\tfrom all lookup default",
        ]
    );
    assert_eq!(nft_table(&ns), SNAT_TABLE);
    assert_eq!(ns.sysctl("/proc/sys/net/ipv4/ip_forward"), "1");
    assert_eq!(ns.sysctl("/proc/sys/net/ipv4/conf/eth0/rp_filter"), "2");
    assert_eq!(ns.sysctl("/proc/sys/net/ipv4/conf/eth1/rp_filter"), "0");
    for eth in ["eth0", "eth1", "eth2"] {
        let link = ns.ip(&["-o", "link", "show", eth]);
        let flags = link.split(['<', '>']).nth(1).unwrap();
        assert!(flags.split(',').any(|f| f == "UP"), "{link}");
        assert!(link.contains(" mtu 9001 "), "{link}");
    }
}

#[test]
fn applying_twice_changes_nothing_and_duplicates_nothing() {
    let ns = node();
    apply(&ns, &spec());
    let first = snapshot(&ns);
    apply(&ns, &spec());
    assert_eq!(snapshot(&ns), first);
    assert_eq!(rules(&ns).iter().filter(|r| *r == CONNMARK_RULE).count(), 1);
}

#[test]
fn apply_replaces_stale_state_and_leaves_foreign_state_alone() {
    let ns = node();
    for eth in ["eth1", "eth2"] {
        ns.ip(&["link", "set", eth, "up"]);
    }
    // What DHCP or an older run may have left: subnet routes in main, junk in our tables,
    // a wrong gateway, a variant of our rule.
    ns.ip(&["route", "add", "10.0.1.0/24", "dev", "eth1"]);
    ns.ip(&["route", "add", "10.7.0.0/16", "dev", "eth1", "table", "2"]);
    ns.ip(&[
        "route", "add", "default", "via", "10.0.9.1", "dev", "eth2", "onlink", "table", "3",
    ]);
    ns.ip(&["route", "add", "10.4.0.0/16", "dev", "eth2", "table", "4"]);
    ns.ip(&[
        "rule",
        "add",
        "fwmark",
        "0x80/0xff",
        "lookup",
        "main",
        "priority",
        "1024",
    ]);
    // Not ours: a main route of another prefix, a table past the ENI range, another rule.
    ns.ip(&["route", "add", "10.9.0.0/16", "dev", "eth1"]);
    ns.ip(&["route", "add", "10.8.0.0/16", "dev", "eth1", "table", "200"]);
    ns.ip(&[
        "rule",
        "add",
        "from",
        "10.0.0.99",
        "lookup",
        "main",
        "priority",
        "1024",
    ]);

    apply(&ns, &spec());

    assert_eq!(
        table(&ns, "2"),
        [
            "default via 10.0.1.1 dev eth1",
            "10.0.1.1 dev eth1 scope link"
        ]
    );
    assert_eq!(
        table(&ns, "3"),
        [
            "default via 10.0.2.1 dev eth2",
            "10.0.2.1 dev eth2 scope link"
        ]
    );
    assert!(table(&ns, "4").is_empty());
    assert_eq!(table(&ns, "main"), ["10.9.0.0/16 dev eth1 scope link"]);
    assert_eq!(table(&ns, "200"), ["10.8.0.0/16 dev eth1 scope link"]);
    assert_eq!(
        rules(&ns),
        [
            "0:\tfrom all lookup local",
            "1024:\tfrom 10.0.0.99 lookup main",
            CONNMARK_RULE,
            "32766:\tfrom all lookup main",
            "32767:\tfrom all lookup default",
        ]
    );
}

#[test]
fn external_snat_has_no_snat_rule_and_no_pod_connmark() {
    let ns = node();
    let mut s = spec();
    s.external_snat = true;
    apply(&ns, &s);
    assert_eq!(
        nft_table(&ns),
        "table ip vpc-cni {
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		ct state new iifname \"eth0\" ct mark set ct mark | 0x00000080
		ct mark & 0x00000080 == 0x00000080 meta mark set meta mark | 0x00000080
	}
}
"
    );
    assert!(rules(&ns).contains(&CONNMARK_RULE.to_owned()));

    // Switching back restores SNAT in the same transaction that replaces the table.
    apply(&ns, &spec());
    assert_eq!(nft_table(&ns), SNAT_TABLE);
}

#[test]
fn exclusions_become_exemptions_merged_with_the_vpc_cidrs() {
    let ns = node();
    let mut s = spec();
    s.vpc_cidrs.push(cidr("100.64.0.0/16"));
    s.exclude_snat_cidrs = vec![
        cidr("203.0.113.0/24"),
        cidr("10.0.5.0/24"),
        cidr("100.64.0.0/10"),
    ];
    apply(&ns, &s);
    let listing = nft_table(&ns);
    assert!(
        listing.contains("elements = { 10.0.0.0/16, 100.64.0.0/10,\n\t\t\t     203.0.113.0/24 }")
            || listing.contains("elements = { 10.0.0.0/16, 100.64.0.0/10, 203.0.113.0/24 }"),
        "{listing}"
    );
}

/// Pod rules of a removed ENI are the store's to judge: see
/// `pod_rules_follow_the_store_through_a_link_that_leaves_and_returns`.
#[test]
fn removing_an_eni_removes_its_table() {
    let ns = node();
    let dp = std::sync::Arc::new(VpcDatapath::new(spec()));
    let setup = dp.clone();
    ns.run(|| async move { setup.apply().await }).unwrap();

    // The controller's path: IMDS shows the ENIs attached now.
    let update = dp.clone();
    ns.run(|| async move {
        update
            .enis_changed(&[
                imds_eni(MAC0, 0, "10.0.0.0/24"),
                imds_eni(MAC1, 1, "10.0.1.0/24"),
            ])
            .await
    })
    .unwrap();

    assert!(table(&ns, "3").is_empty());
    assert_eq!(
        table(&ns, "2"),
        [
            "default via 10.0.1.1 dev eth1",
            "10.0.1.1 dev eth1 scope link"
        ]
    );
    // And back: the ENI returns (e.g. after the controller re-attached it).
    let again = dp.clone();
    let wired = ns
        .run(|| async move {
            again
                .enis_changed(&[
                    imds_eni(MAC0, 0, "10.0.0.0/24"),
                    imds_eni(MAC1, 1, "10.0.1.0/24"),
                    imds_eni(MAC2, 2, "10.0.2.0/24"),
                ])
                .await
        })
        .unwrap();
    assert_eq!(wired.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(
        table(&ns, "3"),
        [
            "default via 10.0.2.1 dev eth2",
            "10.0.2.1 dev eth2 scope link"
        ]
    );
}

#[test]
fn setup_after_a_restart_restores_what_was_lost() {
    let ns = node();
    let first = VpcDatapath::new(spec());
    ns.run(|| async move { first.apply().await }).unwrap();
    let applied = snapshot(&ns);

    // What a crash plus an admin's cleanup might leave behind.
    ns.ip(&["route", "flush", "table", "2"]);
    ns.ip(&["rule", "del", "priority", "1024"]);
    ns.ip(&["link", "set", "eth2", "down"]);
    ns.ip(&["link", "set", "eth1", "mtu", "1500"]);
    ns.exec_ok(&["nft", "delete", "table", "ip", "vpc-cni"]);
    ns.exec_ok(&["sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0"]);

    let restarted = VpcDatapath::new(spec());
    ns.run(|| async move { restarted.apply().await }).unwrap();
    assert_eq!(snapshot(&ns), applied);
}

#[test]
fn an_eni_whose_link_is_missing_fails_the_apply_naming_it() {
    let ns = node();
    let mut s = spec();
    s.secondaries.push(eni(
        vpc_cni_proto::net::MacAddr([2, 0xee, 0, 0, 0, 0x33]),
        3,
        "10.0.3.0/24",
    ));
    let err = ns
        .run(|| async move { apply_node_wiring(&s).await.map(drop) })
        .unwrap_err()
        .to_string();
    assert!(err.contains("02:ee:00:00:00:33"), "{err}");
    // Nothing was written before the plan failed.
    assert!(table(&ns, "2").is_empty());
    assert!(!ns
        .exec(&["nft", "list", "table", "ip", "vpc-cni"])
        .status
        .success());
}

#[test]
fn the_root_namespace_never_gets_our_table() {
    // Runs alongside the others: every apply above happens in a test namespace only.
    let ns = node();
    apply(&ns, &spec());
    let root = std::process::Command::new("nft")
        .args(["list", "table", "ip", "vpc-cni"])
        .output()
        .unwrap();
    assert!(
        !root.status.success(),
        "our table leaked into the root netns"
    );
}

/// The rules at 1536, sorted (the kernel lists rules of one priority in insertion order).
fn pod_rules(ns: &Netns) -> Vec<String> {
    let mut rules = lines(&ns.ip(&["rule", "show", "pref", "1536"]));
    rules.sort();
    rules
}

/// Root: the pods' 1536 rules follow the store. Missing ones come back, stale ones go,
/// rules of an attached ENI whose link is away stay, and when the link returns its pods'
/// rules are there again; once the ENI is really gone they go. Before ipamd owned these
/// rules, an ENI link that left took its pods' rules with it and nothing put them back.
#[test]
fn pod_rules_follow_the_store_through_a_link_that_leaves_and_returns() {
    use super::pod_rules::{placed, store};

    let ns = node();
    let parking = Netns::unique("vdp-park");
    let dp = std::sync::Arc::new(VpcDatapath::new(spec()));
    let full = vec![
        placed("10.0.0.50", 0),
        placed("10.0.1.50", 1),
        placed("10.0.1.51", 1),
        placed("10.0.2.50", 2),
    ];
    let all = [
        imds_eni(MAC0, 0, "10.0.0.0/24"),
        imds_eni(MAC1, 1, "10.0.1.0/24"),
        imds_eni(MAC2, 2, "10.0.2.0/24"),
    ];
    let attached: std::collections::BTreeSet<u32> = [0, 1, 2].into();
    // The first three addresses are held; 10.0.2.50 is not.
    let store = store(&full, 3);
    // Left by the plugin or earlier owners: one right rule, 10.0.1.51's is missing, a rule
    // of an address nobody holds, a stale one of the primary ENI's pod, a foreign table.
    for (from, table) in [
        ("10.0.1.50", "2"),
        ("10.0.2.50", "3"),
        ("10.0.0.50", "3"),
        ("10.0.0.99", "150"),
    ] {
        ns.ip(&[
            "rule", "add", "from", from, "lookup", table, "priority", "1536",
        ]);
    }

    let sync = |attached: std::collections::BTreeSet<u32>| {
        let (dp, store) = (dp.clone(), store.clone());
        ns.run(|| async move { dp.sync_pod_rules(&store, &attached).await })
            .unwrap();
    };
    let enis_changed = |enis: Vec<vpc_cni_cloud::ImdsEni>| {
        let dp = dp.clone();
        ns.run(|| async move { dp.enis_changed(&enis).await })
            .unwrap()
    };
    let set_pool = |pool: Vec<crate::store::PoolAddress>| {
        let store = store.clone();
        ns.run(|| async move { store.set_pool(pool).await.1 })
            .unwrap();
    };
    let wired_rules = [
        "1536:\tfrom 10.0.0.99 lookup 150",
        "1536:\tfrom 10.0.1.50 lookup 2",
        "1536:\tfrom 10.0.1.51 lookup 2",
    ];

    let setup = dp.clone();
    ns.run(|| async move { setup.apply().await }).unwrap();
    sync(attached.clone());
    assert_eq!(pod_rules(&ns), wired_rules);

    // eth1 leaves the namespace: the ENI is still attached, its addresses leave the pool.
    ns.ip(&["link", "set", "eth1", "netns", parking.name()]);
    let wired = enis_changed(all.to_vec());
    assert_eq!(wired.into_iter().collect::<Vec<_>>(), [0, 2]);
    set_pool(vec![full[0], full[3]]);
    sync(attached.clone());
    assert_eq!(pod_rules(&ns), wired_rules);
    // Meanwhile one of them is lost anyway (an operator, an older ipamd).
    ns.ip(&["rule", "del", "from", "10.0.1.51", "priority", "1536"]);

    // Back: wired again, the pool shows its addresses, and both pods' rules are there.
    parking.ip(&["link", "set", "eth1", "netns", ns.name()]);
    let wired = enis_changed(all.to_vec());
    assert_eq!(wired.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
    set_pool(full.clone());
    sync(attached.clone());
    assert_eq!(pod_rules(&ns), wired_rules);
    // A second pass changes nothing.
    sync(attached.clone());
    assert_eq!(pod_rules(&ns), wired_rules);

    // eth1 detached for good: IMDS no longer lists it.
    enis_changed(vec![all[0].clone(), all[2].clone()]);
    set_pool(vec![full[0], full[3]]);
    sync([0, 2].into());
    assert_eq!(pod_rules(&ns), ["1536:\tfrom 10.0.0.99 lookup 150"]);
}

#[test]
fn root_the_kernel_takes_a_hybrid_nodes_table() {
    let ns = Netns::unique("vdp-hyb");
    let ruleset = crate::vpc_datapath::SnatRuleset::new(
        "eth0",
        "10.0.0.10".parse().unwrap(),
        [cidr("10.0.0.0/16")],
        false,
    )
    .with_overlay("vxlan.vpc", [cidr("10.244.1.0/24")]);
    ns.run(|| async move { crate::kernel::nft::run(&ruleset.replace_batch(), "replacing").await })
        .unwrap();
    let table = nft_table(&ns);
    for part in [
        "set remote-pods",
        "10.244.1.0/24",
        "ct state new iifname \"vxlan.vpc\" ct mark set ct mark | 0x00000080",
        "ip daddr @remote-pods ct mark set ct mark | 0x00000080",
    ] {
        assert!(table.contains(part), "{part} missing:\n{table}");
    }
}

#[test]
fn root_overlay_pods_follow_the_overlay_nodes() {
    let ns = node();
    let datapath = std::sync::Arc::new(VpcDatapath::new(spec()));
    let overlay = |remote: &[&str]| crate::vpc_datapath::OverlayPods {
        device: "vxlan.vpc".into(),
        remote: remote.iter().map(|c| cidr(c)).collect(),
    };
    let apply_pods = |pods: crate::vpc_datapath::OverlayPods| {
        let datapath = std::sync::Arc::clone(&datapath);
        ns.run(|| async move { datapath.overlay_pods_changed(pods).await })
            .unwrap();
    };
    apply_pods(overlay(&["10.244.1.0/24"]));
    let first = nft_table(&ns);
    assert!(first.contains("10.244.1.0/24"), "{first}");
    assert!(!first.contains("10.244.2.0/24"), "{first}");
    apply_pods(overlay(&["10.244.1.0/24", "10.244.2.0/24"]));
    let second = nft_table(&ns);
    assert!(second.contains("10.244.2.0/24"), "{second}");
    // The last overlay node left: no set, the device's rule stays for the next one.
    apply_pods(overlay(&[]));
    let empty = nft_table(&ns);
    assert!(!empty.contains("remote-pods"), "{empty}");
    assert!(empty.contains("iifname \"vxlan.vpc\""), "{empty}");
}
