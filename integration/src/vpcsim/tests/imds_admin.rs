//! IMDSv2 and the admin API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use serde_json::{json, Value};
use vpc_cni_cloud::sim::SimVpc;

use super::{admin, http, world};
use crate::vpcsim::{start_loopback, TOKEN_HEADER, TTL_HEADER};

#[tokio::test]
async fn imds_v2_token_flow_and_tree() {
    let (run, default_sg, subnet, _) = world().await;
    let (status, inst) = admin(
        &run,
        "POST",
        "/instances",
        json!({ "subnetId": subnet, "instanceType": "t3.small", "name": "n2" }),
    )
    .await;
    assert_eq!(status, 200, "{inst}");
    let ep: SocketAddr = inst["imdsEndpoint"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let id = inst["id"].as_str().unwrap();

    let r = http(ep, "GET", "/latest/meta-data/instance-id", &[], "").await;
    assert_eq!(r.status, 401, "v1 reads are refused");
    for bad in ["0", "21601", "x"] {
        let r = http(ep, "PUT", "/latest/api/token", &[(TTL_HEADER, bad)], "").await;
        assert_eq!(r.status, 400, "ttl {bad}");
    }
    let r = http(ep, "PUT", "/latest/api/token", &[], "").await;
    assert_eq!(r.status, 400);
    let r = http(ep, "PUT", "/latest/api/token", &[(TTL_HEADER, "300")], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header(TTL_HEADER), Some("300"));
    let token = r.body.clone();
    let get = |path: &'static str| {
        let token = token.clone();
        async move { http(ep, "GET", path, &[(TOKEN_HEADER, &token)], "").await }
    };
    assert_eq!(
        http(
            ep,
            "GET",
            "/latest/meta-data/instance-id",
            &[(TOKEN_HEADER, "forged")],
            ""
        )
        .await
        .status,
        401
    );
    assert_eq!(get("/latest/meta-data/instance-id").await.body, id);
    assert_eq!(
        get("/latest/meta-data/instance-type").await.body,
        "t3.small"
    );
    assert_eq!(
        get("/latest/meta-data/placement/region").await.body,
        "us-west-2"
    );
    assert_eq!(
        get("/latest/meta-data/placement/availability-zone")
            .await
            .body,
        "us-west-2a"
    );
    let mac = get("/latest/meta-data/mac").await.body;
    let macs = get("/latest/meta-data/network/interfaces/macs/").await;
    assert_eq!(macs.body, format!("{mac}/"));
    let base = format!("/latest/meta-data/network/interfaces/macs/{mac}");
    let per_mac = |leaf: &str| {
        let (path, token) = (format!("{base}/{leaf}"), token.clone());
        async move {
            http(ep, "GET", &path, &[(TOKEN_HEADER, &token)], "")
                .await
                .body
        }
    };
    assert_eq!(per_mac("security-group-ids").await, default_sg);
    assert_eq!(per_mac("subnet-id").await, subnet);
    assert!(per_mac("vpc-id").await.starts_with("vpc-"));
    assert_eq!(
        per_mac("local-ipv4s").await,
        inst["private_ip"].as_str().unwrap()
    );
    assert_eq!(per_mac("device-number").await, "0");
    assert_eq!(get("/latest/meta-data/nothing-here").await.status, 404);

    let role = get("/latest/meta-data/iam/security-credentials/")
        .await
        .body;
    assert!(!role.is_empty());
    let path = format!("/latest/meta-data/iam/security-credentials/{role}");
    let creds: Value = http(ep, "GET", &path, &[(TOKEN_HEADER, &token)], "")
        .await
        .json()
        .unwrap();
    assert_eq!(creds["Code"], "Success");
    assert!(creds["SecretAccessKey"].as_str().unwrap().len() >= 40);
    let doc: Value = get("/latest/dynamic/instance-identity/document")
        .await
        .json()
        .unwrap();
    assert_eq!(doc["instanceId"], id);
    assert_eq!(doc["privateIp"], inst["private_ip"]);

    // A terminated instance's IMDS listener goes away with it.
    let (status, _) = admin(&run, "DELETE", &format!("/instances/{id}"), Value::Null).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn admin_builds_dumps_and_resets() {
    let run = start_loopback(SimVpc::new()).await.unwrap();
    let (s, vpc) = admin(&run, "POST", "/vpcs", json!({ "cidr": "10.1.0.0/16" })).await;
    assert_eq!(s, 200, "{vpc}");
    let (s, subnet) = admin(
        &run,
        "POST",
        "/subnets",
        json!({ "vpcId": vpc["id"], "cidr": "10.1.0.0/20", "az": "eu-west-1b" }),
    )
    .await;
    assert_eq!(s, 200, "{subnet}");
    let (s, inst) = admin(&run, "POST", "/instances", json!({ "name": "n1" })).await;
    assert_eq!(s, 200, "{inst}");
    assert_eq!(
        inst["subnet_id"], subnet["id"],
        "defaults to the only subnet"
    );
    let (s, bad) = admin(
        &run,
        "POST",
        "/subnets",
        json!({ "vpcId": "vpc-nope", "cidr": "10.9.0.0/20", "az": "x" }),
    )
    .await;
    assert_eq!(s, 400, "{bad}");
    let (_, state) = admin(&run, "GET", "/state", Value::Null).await;
    assert_eq!(state["instances"].as_array().unwrap().len(), 1);
    let (_, faults) = admin(&run, "PUT", "/faults", json!({ "latency_ms": 1 })).await;
    assert_eq!(faults["latency_ms"], 1);
    let (s, _) = admin(&run, "PUT", "/faults", json!({ "throttle_rate": 2.0 })).await;
    assert_eq!(s, 400);
    let (s, _) = admin(&run, "POST", "/reset", Value::Null).await;
    assert_eq!(s, 200);
    let (_, state) = admin(&run, "GET", "/state", Value::Null).await;
    assert!(state["instances"].as_array().unwrap().is_empty());
    assert_eq!(state["faults"]["latency_ms"], 0);
    let (s, _) = admin(&run, "GET", "/nope", Value::Null).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn imds_by_source_ip_refuses_strangers() {
    let (run, _, _, _) = world().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ep = listener.local_addr().unwrap();
    let server = tokio::spawn(crate::vpcsim::serve_imds(
        run.sim.clone(),
        listener,
        crate::vpcsim::ImdsResolver::BySourceIp,
        std::future::pending(),
    ));
    // 127.0.0.1 is no instance's address in 10.0.0.0/16.
    let r = http(ep, "PUT", "/latest/api/token", &[(TTL_HEADER, "60")], "").await;
    assert_eq!(r.status, 404, "{}", r.body);
    server.abort();
}
