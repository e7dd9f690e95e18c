//! In-process tests: the servers on 127.0.0.1:0, driven with hand-built HTTP
//! requests as a plain client would send them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ec2_api;
mod imds_admin;

use std::net::SocketAddr;

use serde_json::Value;
use vpc_cni_cloud::sim::SimVpc;

use super::client::{self, HttpReply};
use super::{start_loopback, Running};

pub async fn ec2(addr: SocketAddr, pairs: &[(&str, &str)]) -> HttpReply {
    let mut owned: Vec<(String, String)> = vec![("Version".into(), "2016-11-15".into())];
    owned.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    tokio::task::spawn_blocking(move || {
        let refs: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        client::post_form(addr, &refs)
    })
    .await
    .unwrap()
    .unwrap()
}

pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    let (method, path, body) = (method.to_string(), path.to_string(), body.to_string());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        client::request(addr, &method, &path, &h, body.as_bytes())
    })
    .await
    .unwrap()
    .unwrap()
}

pub async fn admin(run: &Running, method: &str, path: &str, body: Value) -> (u16, Value) {
    let reply = http(
        run.admin,
        method,
        path,
        &[("Content-Type", "application/json")],
        &body.to_string(),
    )
    .await;
    (reply.status, reply.json().unwrap())
}

/// Text of every `<name>` element, in document order.
pub fn all(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

pub fn one(xml: &str, name: &str) -> String {
    all(xml, name)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"))
}

/// A sim with one VPC, one subnet and one t3.medium instance.
pub async fn world() -> (Running, String, String, String) {
    let sim = SimVpc::new();
    let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
    let subnet = sim
        .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
        .unwrap();
    let inst = sim.run_instance(&subnet.id, "t3.medium", "n1").unwrap();
    let run = start_loopback(sim).await.unwrap();
    (run, vpc.default_security_group, subnet.id, inst.id)
}
