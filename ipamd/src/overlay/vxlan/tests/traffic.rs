//! Two nodes joined by a veth underlay: pod addresses on each reach each other through the
//! overlay, and a DF ping that fills the overlay MTU passes.

use super::core::{peer, spec};
use super::kernel::reconcile;
use crate::overlay::vxlan::OverlaySpec;
use vpc_cni_testkit::netns::Netns;

/// Node `ns` on the underlay `ul0` at `underlay`/24 with a pod address (`.5` of its pod CIDR)
/// on lo, which is enough for the kernel to answer for it.
fn node(ns: &Netns, underlay: &str, pod_cidr: &str, pod_ip: &str) -> OverlaySpec {
    ns.ip(&["addr", "add", &format!("{underlay}/24"), "dev", "ul0"]);
    ns.ip(&["link", "set", "ul0", "mtu", "1500", "up"]);
    ns.ip(&["addr", "add", &format!("{pod_ip}/32"), "dev", "lo"]);
    spec("ul0", underlay, pod_cidr)
}

#[test]
fn pods_reach_each_other_through_the_overlay_at_full_mtu() {
    let a = Netns::unique("ovx-tra");
    let b = Netns::unique("ovx-trb");
    a.ip(&[
        "link",
        "add",
        "ul0",
        "type",
        "veth",
        "peer",
        "name",
        "ul0",
        "netns",
        b.name(),
    ]);
    let sa = node(&a, "192.168.70.1", "10.245.1.0/24", "10.245.1.5");
    let sb = node(&b, "192.168.70.2", "10.245.2.0/24", "10.245.2.5");
    reconcile(&a, &sa, &[peer("b", "192.168.70.2", "10.245.2.0/24")]);
    reconcile(&b, &sb, &[peer("a", "192.168.70.1", "10.245.1.0/24")]);

    let ping = |size: u32| {
        let out = a.exec(&[
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            &size.to_string(),
            "-I",
            "10.245.1.5",
            "10.245.2.5",
        ]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, out) = ping(56);
    assert!(ok, "plain ping across the overlay failed:\n{out}");
    let full = sa.device_mtu() - 28;
    let (ok, out) = ping(full);
    assert!(
        ok,
        "DF ping of {full} bytes (fills MTU {}) failed:\n{out}",
        sa.device_mtu()
    );
    // One byte more cannot leave with DF set: the MTU is really the limit.
    let (ok, out) = ping(full + 1);
    assert!(!ok, "DF ping of {} bytes passed:\n{out}", full + 1);

    // The packets went through the tunnel, not around it.
    let stats = a.ip(&["-s", "link", "show", "vxlan.vpc"]);
    let tx_packets: u64 = stats
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("TX:"))
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(tx_packets >= 2, "{stats}");
}
