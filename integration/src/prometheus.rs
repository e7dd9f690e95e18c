//! Reading ipamd's `/metrics` as Prometheus does: one scrape from inside a namespace, and
//! the samples of a text exposition.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use vpc_cni_testkit::netns::Netns;

use crate::vpcsim::client::request;

/// Every sample of a Prometheus text exposition, `name{labels}` -> value.
#[must_use]
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `GET /metrics` at `addr`, sent from inside `ns`; its samples.
pub fn scrape(ns: &Netns, addr: SocketAddr) -> std::io::Result<BTreeMap<String, f64>> {
    let reply = ns.in_thread(move || {
        request(addr, "GET", "/metrics", &[], b"").map_err(|e| std::io::Error::other(e.to_string()))
    })?;
    if reply.status != 200 {
        return Err(std::io::Error::other(format!(
            "GET http://{addr}/metrics answered {}: {}",
            reply.status, reply.body
        )));
    }
    Ok(samples(&reply.body))
}
