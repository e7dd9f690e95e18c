//! The plan: what `NodeWiring::plan` derives from the ENIs and settings.

use std::net::Ipv4Addr;

use vpc_cni_cloud::ImdsEni;
use vpc_cni_proto::net::{normalize, Ipv4Cidr, MacAddr};

use crate::vpc_datapath::wiring::{
    NodeWiring, ObservedLink, PrimaryEni, SecondaryEni, VpcNodeSpec,
};

pub(super) fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

pub(super) const MAC0: MacAddr = MacAddr([0x02, 0xee, 0, 0, 0, 0x10]);
pub(super) const MAC1: MacAddr = MacAddr([0x02, 0xee, 0, 0, 0, 0x11]);
pub(super) const MAC2: MacAddr = MacAddr([0x02, 0xee, 0, 0, 0, 0x12]);

pub(super) fn eni(mac: MacAddr, device_number: u32, subnet: &str) -> SecondaryEni {
    SecondaryEni {
        mac,
        device_number,
        subnet: cidr(subnet),
    }
}

/// The ENI as IMDS describes it, as the pool controller hands it to the datapath.
pub(super) fn imds_eni(mac: MacAddr, device_number: u32, subnet: &str) -> ImdsEni {
    ImdsEni {
        mac,
        eni_id: format!("eni-{device_number}").into(),
        device_number,
        subnet_id: format!("subnet-{device_number}").into(),
        vpc_id: "vpc-1".into(),
        security_groups: Vec::new(),
        subnet_cidr: cidr(subnet),
        vpc_cidrs: vec![cidr("10.0.0.0/16")],
        addresses: Vec::new(),
        prefixes: Vec::new(),
    }
}

/// A node in VPC 10.0.0.0/16 with its primary ENI at 10.0.0.10 and two more ENIs.
pub(super) fn spec() -> VpcNodeSpec {
    VpcNodeSpec {
        primary: PrimaryEni {
            mac: MAC0,
            address: Ipv4Addr::new(10, 0, 0, 10),
        },
        secondaries: vec![eni(MAC1, 1, "10.0.1.0/24"), eni(MAC2, 2, "10.0.2.0/24")],
        vpc_cidrs: vec![cidr("10.0.0.0/16")],
        exclude_snat_cidrs: vec![cidr("192.0.2.0/24")],
        external_snat: false,
        eni_mtu: 9001,
        max_enis: 4,
        overlay: None,
    }
}

fn links() -> Vec<ObservedLink> {
    let link = |name: &str, index, mac| ObservedLink {
        name: name.to_owned(),
        index,
        mac,
    };
    vec![
        link("lo", 1, MacAddr::default()),
        link("eth0", 2, MAC0),
        link("eth1", 3, MAC1),
        link("eth2", 4, MAC2),
    ]
}

fn lines<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

#[test]
fn plan_gives_each_secondary_eni_table_n_plus_1() {
    let w = NodeWiring::plan(&spec(), &links()).unwrap();
    let tables: Vec<_> = w.routes.iter().map(|r| r.table).collect();
    assert_eq!(tables, [2, 2, 3, 3]);
    assert_eq!(
        lines(&w.routes),
        [
            "10.0.1.1 dev eth1 scope link",
            "default via 10.0.1.1 dev eth1",
            "10.0.2.1 dev eth2 scope link",
            "default via 10.0.2.1 dev eth2",
        ]
    );
    assert_eq!(w.owned_tables, 2..=4);
}

#[test]
fn plan_brings_every_eni_up_with_the_eni_mtu_primary_first() {
    let mut s = spec();
    s.eni_mtu = 1500;
    let w = NodeWiring::plan(&s, &links()).unwrap();
    let got: Vec<_> = w
        .links
        .iter()
        .map(|l| (l.name.as_str(), l.index, l.mtu))
        .collect();
    assert_eq!(
        got,
        [("eth0", 2, 1500), ("eth1", 3, 1500), ("eth2", 4, 1500)]
    );
}

#[test]
fn plan_removes_secondary_subnet_routes_from_main_only() {
    let w = NodeWiring::plan(&spec(), &links()).unwrap();
    assert_eq!(
        lines(&w.main_routes_to_remove),
        [
            "10.0.1.0/24 dev eth1 scope link",
            "10.0.2.0/24 dev eth2 scope link"
        ]
    );
    assert!(w.main_routes_to_remove.iter().all(|r| r.table == 254));
}

#[test]
fn plan_has_the_connmark_rule_at_1024_and_nothing_else() {
    let w = NodeWiring::plan(&spec(), &links()).unwrap();
    assert_eq!(
        lines(&w.rules),
        ["1024:\tfrom all fwmark 0x80/0x80 lookup main"]
    );
}

#[test]
fn plan_sets_forwarding_and_loose_rp_filter_on_the_primary_only() {
    let w = NodeWiring::plan(&spec(), &links()).unwrap();
    let got: Vec<_> = w
        .sysctls
        .iter()
        .map(|s| (s.path.as_str(), s.value))
        .collect();
    assert_eq!(
        got,
        [
            ("/proc/sys/net/ipv4/ip_forward", "1"),
            ("/proc/sys/net/ipv4/conf/eth0/rp_filter", "2"),
        ]
    );
}

#[test]
fn plan_finds_links_by_mac_not_by_name_or_order() {
    let mut renamed = links();
    renamed[1].name = "ens5".into();
    renamed[3].name = "ens6".into();
    renamed.swap(2, 3);
    let w = NodeWiring::plan(&spec(), &renamed).unwrap();
    assert_eq!(w.ruleset.primary_if, "ens5");
    assert_eq!(w.routes[2].dev, "ens6");
    assert_eq!(w.routes[2].index, 4);
}

#[test]
fn plan_without_secondaries_has_no_tables_and_still_owns_the_range() {
    let mut s = spec();
    s.secondaries.clear();
    let w = NodeWiring::plan(&s, &links()).unwrap();
    assert!(w.routes.is_empty());
    assert!(w.main_routes_to_remove.is_empty());
    assert_eq!(w.owned_tables, 2..=4);
}

#[test]
fn plan_fails_naming_the_mac_of_an_eni_without_a_link() {
    let mut s = spec();
    s.secondaries
        .push(eni(MacAddr([2, 0xee, 0, 0, 0, 0x13]), 3, "10.0.3.0/24"));
    let err = NodeWiring::plan(&s, &links()).unwrap_err().to_string();
    assert!(err.contains("02:ee:00:00:00:13"), "{err}");
    assert!(err.contains("device index 3"), "{err}");
}

#[test]
fn plan_rejects_duplicate_and_out_of_range_device_indexes() {
    let mut s = spec();
    s.secondaries[1].device_number = 1;
    let err = NodeWiring::plan(&s, &links()).unwrap_err().to_string();
    assert!(err.contains("two ENIs at device index 1"), "{err}");

    let mut s = spec();
    s.secondaries[1].device_number = 4;
    let err = NodeWiring::plan(&s, &links()).unwrap_err().to_string();
    assert!(err.contains("device index 4, outside 1..=3"), "{err}");

    let mut s = spec();
    s.secondaries[1].device_number = 0;
    assert!(NodeWiring::plan(&s, &links()).is_err());
}

#[test]
fn owned_tables_never_reach_the_kernels_own_tables() {
    let mut s = spec();
    s.max_enis = 10_000;
    let w = NodeWiring::plan(&s, &links()).unwrap();
    assert_eq!(*w.owned_tables.end(), 100);
}

#[test]
fn gateway_is_the_subnets_first_address() {
    assert_eq!(
        eni(MAC1, 1, "10.0.64.0/18").gateway(),
        Ipv4Addr::new(10, 0, 64, 1)
    );
}

#[test]
fn exemptions_are_canonical_sorted_and_without_covered_cidrs() {
    let got = normalize([
        cidr("192.0.2.0/24"),
        cidr("10.0.0.0/16"),
        cidr("10.0.5.0/24"),
        cidr("100.64.0.0/10"),
        cidr("10.0.0.0/8"),
        cidr("192.0.2.0/24"),
        Ipv4Cidr {
            network: Ipv4Addr::new(198, 51, 100, 77),
            prefix_len: 24,
        },
    ]);
    let got: Vec<_> = got.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "10.0.0.0/8",
            "100.64.0.0/10",
            "192.0.2.0/24",
            "198.51.100.0/24"
        ]
    );
}

/// How many listings a [`listings`] source has handed out.
type Taken = std::rc::Rc<std::cell::Cell<usize>>;
type Listing = std::future::Ready<Result<Vec<ObservedLink>, crate::error::IpamdError>>;

/// Listings handed out in turn, counting how many were taken.
fn listings(rounds: Vec<Vec<ObservedLink>>) -> (Taken, impl FnMut() -> Listing) {
    let taken = Taken::default();
    let count = taken.clone();
    let mut rounds = rounds.into_iter();
    (taken, move || {
        count.set(count.get() + 1);
        std::future::ready(Ok(rounds.next().unwrap()))
    })
}

fn names(links: &[ObservedLink]) -> Vec<&str> {
    links.iter().map(|l| l.name.as_str()).collect()
}

/// A link listing that missed eth1 (a dump interrupted by pods' veths coming and going)
/// does not make it unwired: a second listing is merged in. Before, one listing decided.
#[tokio::test]
async fn one_listing_missing_an_eni_link_is_confirmed_by_a_second() {
    use crate::vpc_datapath::netlink::confirm_links;
    let all = links();
    let without_eth1: Vec<ObservedLink> = all.iter().filter(|l| l.mac != MAC1).cloned().collect();
    let (taken, list) = listings(vec![without_eth1.clone(), all.clone()]);
    let seen = confirm_links(&[MAC1, MAC2], list).await.unwrap();
    assert_eq!(taken.get(), 2);
    assert_eq!(names(&seen), ["lo", "eth0", "eth2", "eth1"]);

    // Missing from both: gone.
    let (_, list) = listings(vec![without_eth1.clone(), without_eth1]);
    assert_eq!(
        names(&confirm_links(&[MAC1], list).await.unwrap()),
        ["lo", "eth0", "eth2"]
    );

    // Nothing missing: one listing is enough.
    let (taken, list) = listings(vec![all.clone()]);
    assert_eq!(confirm_links(&[MAC1, MAC2], list).await.unwrap(), all);
    assert_eq!(taken.get(), 1);
}
