//! The tables in the kernel: as `nft` lists them, named by the damage report when broken,
//! and restored by the next apply, as the datapath upkeep runs it.

use std::sync::Arc;

use vpc_cni_testkit::netns::Netns;

use crate::datapath::{LocalDatapath, NodeDatapath};
use crate::guard::{GuardedDatapath, PodGuard};

const IP_TABLE: &str = "table ip vpc-cni-guard {
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname \"vpc*\" jump from-pod
	}

	chain from-pod {
		fib saddr . iif oif missing counter packets 0 bytes 0 drop
		ip daddr 169.254.169.254 counter packets 0 bytes 0 drop
	}
}
";

const ARP_TABLE: &str = "table arp vpc-cni-guard {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname \"vpc*\" jump from-pod
	}

	chain from-pod {
		arp operation != reply counter packets 0 bytes 0 drop
		arp saddr ip 169.254.1.1 counter packets 0 bytes 0 drop
	}
}
";

fn listing(ns: &Netns, family: &str) -> String {
    ns.exec_ok(&["nft", "list", "table", family, "vpc-cni-guard"])
}

fn guarded(ns: &Netns, guard: PodGuard) -> Arc<GuardedDatapath> {
    let datapath = Arc::new(GuardedDatapath::new(Arc::new(LocalDatapath), guard));
    let first = Arc::clone(&datapath);
    ns.run(move || async move { first.apply().await }).unwrap();
    datapath
}

fn damage(ns: &Netns, datapath: &Arc<GuardedDatapath>) -> Vec<String> {
    let datapath = Arc::clone(datapath);
    ns.run(move || async move { datapath.damage().await })
        .unwrap()
}

fn reapply(ns: &Netns, datapath: &Arc<GuardedDatapath>) {
    let datapath = Arc::clone(datapath);
    ns.run(move || async move { datapath.apply().await })
        .unwrap();
}

#[test]
fn the_tables_read_back_as_written() {
    let ns = Netns::unique("grd-k");
    guarded(&ns, PodGuard::new(true));
    assert_eq!(listing(&ns, "ip"), IP_TABLE);
    assert_eq!(listing(&ns, "arp"), ARP_TABLE);
}

#[test]
fn damage_names_each_broken_table_and_the_next_apply_repairs_it() {
    let ns = Netns::unique("grd-k");
    let datapath = guarded(&ns, PodGuard::new(true));
    assert_eq!(damage(&ns, &datapath), Vec::<String>::new());

    ns.exec_ok(&["nft", "delete", "table", "ip", "vpc-cni-guard"]);
    assert_eq!(
        damage(&ns, &datapath),
        ["nftables table ip vpc-cni-guard is missing"]
    );
    reapply(&ns, &datapath);
    assert_eq!(listing(&ns, "ip"), IP_TABLE);

    ns.exec_ok(&["nft", "flush", "chain", "arp", "vpc-cni-guard", "from-pod"]);
    // An accept ahead of the checks would let everything through just as well.
    ns.exec_ok(&[
        "nft",
        "insert",
        "rule",
        "ip",
        "vpc-cni-guard",
        "from-pod",
        "accept",
    ]);
    assert_eq!(
        damage(&ns, &datapath),
        [
            "nftables table ip vpc-cni-guard holds 4 rules instead of 3",
            "nftables table arp vpc-cni-guard holds 1 rules instead of 3",
        ]
    );
    reapply(&ns, &datapath);
    assert_eq!(listing(&ns, "ip"), IP_TABLE);
    assert_eq!(listing(&ns, "arp"), ARP_TABLE);
    assert_eq!(damage(&ns, &datapath), Vec::<String>::new());
}

#[test]
fn the_imds_rule_follows_the_setting_across_a_restart() {
    let ns = Netns::unique("grd-k");
    guarded(&ns, PodGuard::new(true));
    let allowed = guarded(&ns, PodGuard::new(false));
    let without: String = IP_TABLE
        .lines()
        .filter(|l| !l.contains("169.254.169.254"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(listing(&ns, "ip"), without);
    assert_eq!(damage(&ns, &allowed), Vec::<String>::new());

    // A table left by a blocking ipamd is damage to one that allows.
    guarded(&ns, PodGuard::new(true));
    assert_eq!(
        damage(&ns, &allowed),
        ["nftables table ip vpc-cni-guard holds 3 rules instead of 2"]
    );
}

#[test]
fn the_root_namespace_never_gets_the_guard() {
    // Runs alongside the others: every apply above happens in a test namespace only.
    let ns = Netns::unique("grd-k");
    guarded(&ns, PodGuard::new(true));
    for family in ["ip", "arp"] {
        let root = std::process::Command::new("nft")
            .args(["list", "table", family, "vpc-cni-guard"])
            .output()
            .unwrap();
        assert!(
            !root.status.success(),
            "the {family} guard table leaked into the root netns"
        );
    }
}
