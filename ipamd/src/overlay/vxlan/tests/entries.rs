//! The kernel's overlay entries of a test namespace, as text lines to compare runs.

use std::collections::BTreeSet;

use vpc_cni_testkit::netns::Netns;

use crate::overlay::vxlan::DEVICE_NAME;

/// Every permanent neighbour, FDB entry and main-table route in the namespace, one per line,
/// so that a comparison also sees changes on other devices. The neighbours are read on a
/// presized table (the neighbour table is shared by every namespace; see the testkit).
pub(crate) fn snapshot(ns: &Netns) -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for (tag, text) in [
        ("neigh", ns.neighbours(&["nud", "permanent"])),
        ("fdb", ns.bridge(&["fdb", "show"])),
        ("route", ns.ip(&["-4", "route", "show", "table", "main"])),
    ] {
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{tag}: {}", l.trim_end())),
        );
    }
    lines
}

/// Only the entries on `vxlan.vpc`, and routes via it or with our protocol.
pub(crate) fn overlay_entries(ns: &Netns) -> BTreeSet<String> {
    snapshot(ns)
        .into_iter()
        .filter(|l| {
            l.contains(&format!("dev {DEVICE_NAME}"))
                && !l.contains("33:33:")
                && !l.contains("01:00:5e:")
                || l.contains("proto 86")
        })
        .collect()
}
