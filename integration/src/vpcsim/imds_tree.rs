//! The instance metadata tree, computed from one `ImdsView`: directories list
//! their entries one per line (subdirectories with a trailing `/`), leaves
//! are text or JSON documents, as EC2's IMDS serves them.

use serde_json::json;
use vpc_cni_cloud::sim::{ImdsInterface, ImdsView};

use super::ec2_xml::private_dns_name;
use vpc_cni_proto::time::now_ms;

use super::stamp::{imds_time, token};
use super::ACCOUNT_ID;

/// Credentials IMDS hands out are valid this long (EC2 uses about six hours).
const CREDENTIAL_LIFETIME_MS: u64 = 6 * 3600 * 1000;

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// What a path resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir(Vec<String>),
    Leaf(String),
}

impl Node {
    pub fn body(&self) -> String {
        match self {
            Node::Dir(entries) => entries.join("\n"),
            Node::Leaf(text) => text.clone(),
        }
    }
}

fn dir(entries: &[&str]) -> Option<Node> {
    Some(Node::Dir(entries.iter().map(|s| s.to_string()).collect()))
}

fn leaf(text: impl Into<String>) -> Option<Node> {
    Some(Node::Leaf(text.into()))
}

fn lines<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Resolves `path` (below `/latest/`, no leading or trailing slash) for the
/// instance `view`; `None` is a 404.
pub fn lookup(view: &ImdsView, path: &str) -> Option<Node> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [] => dir(&["dynamic/", "meta-data/"]),
        ["dynamic"] => dir(&["instance-identity/"]),
        ["dynamic", "instance-identity"] => dir(&["document"]),
        ["dynamic", "instance-identity", "document"] => leaf(identity_document(view)),
        ["meta-data", rest @ ..] => meta_data(view, rest),
        _ => None,
    }
}

fn meta_data(view: &ImdsView, parts: &[&str]) -> Option<Node> {
    match parts {
        [] => dir(&[
            "iam/",
            "instance-id",
            "instance-type",
            "local-hostname",
            "local-ipv4",
            "mac",
            "network/",
            "placement/",
        ]),
        ["instance-id"] => leaf(&view.instance_id),
        ["instance-type"] => leaf(&view.instance_type),
        ["local-ipv4"] => leaf(view.local_ipv4.to_string()),
        ["local-hostname"] => leaf(private_dns_name(view.local_ipv4, &view.availability_zone)),
        ["mac"] => leaf(&view.mac),
        ["placement"] => dir(&["availability-zone", "region"]),
        ["placement", "availability-zone"] => leaf(&view.availability_zone),
        ["placement", "region"] => leaf(&view.region),
        ["network"] => dir(&["interfaces/"]),
        ["network", "interfaces"] => dir(&["macs/"]),
        ["network", "interfaces", "macs"] => Some(Node::Dir(
            view.interfaces
                .iter()
                .map(|i| format!("{}/", i.mac))
                .collect(),
        )),
        ["network", "interfaces", "macs", mac, rest @ ..] => {
            let iface = view.interfaces.iter().find(|i| i.mac == *mac)?;
            interface(view, iface, rest)
        }
        ["iam"] if !view.iam_role.is_empty() => dir(&["info", "security-credentials/"]),
        ["iam", "info"] if !view.iam_role.is_empty() => leaf(iam_info(view)),
        ["iam", "security-credentials"] if !view.iam_role.is_empty() => leaf(&view.iam_role),
        ["iam", "security-credentials", role] if *role == view.iam_role => {
            leaf(credentials(now_ms()))
        }
        _ => None,
    }
}

fn interface(view: &ImdsView, i: &ImdsInterface, parts: &[&str]) -> Option<Node> {
    match parts {
        [] => {
            let mut entries = vec![
                "device-number",
                "interface-id",
                "local-hostname",
                "local-ipv4s",
                "mac",
                "network-card",
                "owner-id",
                "security-group-ids",
                "subnet-id",
                "subnet-ipv4-cidr-block",
                "vpc-id",
                "vpc-ipv4-cidr-block",
                "vpc-ipv4-cidr-blocks",
            ];
            // EC2 shows the key only once the interface has a prefix.
            if !i.ipv4_prefixes.is_empty() {
                entries.insert(2, "ipv4-prefix");
            }
            dir(&entries)
        }
        ["device-number"] => leaf(i.device_number.to_string()),
        ["interface-id"] => leaf(&i.interface_id),
        ["ipv4-prefix"] if !i.ipv4_prefixes.is_empty() => leaf(lines(&i.ipv4_prefixes)),
        ["local-hostname"] => {
            let ip = i.local_ipv4s.first()?;
            leaf(private_dns_name(*ip, &view.availability_zone))
        }
        ["local-ipv4s"] => leaf(lines(&i.local_ipv4s)),
        ["mac"] => leaf(&i.mac),
        ["network-card"] => leaf(i.network_card.to_string()),
        ["owner-id"] => leaf(ACCOUNT_ID),
        ["security-group-ids"] => leaf(lines(&i.security_group_ids)),
        ["subnet-id"] => leaf(&i.subnet_id),
        ["subnet-ipv4-cidr-block"] => leaf(&i.subnet_cidr),
        ["vpc-id"] => leaf(&i.vpc_id),
        ["vpc-ipv4-cidr-block"] => leaf(i.vpc_cidrs.first()?),
        ["vpc-ipv4-cidr-blocks"] => leaf(lines(&i.vpc_cidrs)),
        _ => None,
    }
}

fn identity_document(view: &ImdsView) -> String {
    let doc = json!({
        "accountId": ACCOUNT_ID,
        "architecture": "x86_64",
        "availabilityZone": view.availability_zone,
        "imageId": "ami-0vpcsim000000000",
        "instanceId": view.instance_id,
        "instanceType": view.instance_type,
        "privateIp": view.local_ipv4.to_string(),
        "region": view.region,
        "version": "2017-09-30",
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
}

fn iam_info(view: &ImdsView) -> String {
    json!({
        "Code": "Success",
        "LastUpdated": imds_time(now_ms()),
        "InstanceProfileArn": format!("arn:aws:iam::{ACCOUNT_ID}:instance-profile/{}", view.iam_role),
        "InstanceProfileId": format!("AIPA{}", token(17, UPPER_ALNUM)),
    })
    .to_string()
}

/// Fake, freshly minted role credentials; nothing checks them, the SDK only
/// needs their shape and a future expiry.
fn credentials(now: u64) -> String {
    let doc = json!({
        "Code": "Success",
        "LastUpdated": imds_time(now),
        "Type": "AWS-HMAC",
        "AccessKeyId": format!("ASIA{}", token(16, UPPER_ALNUM)),
        "SecretAccessKey": token(40, SECRET_CHARS),
        "Token": token(200, SECRET_CHARS),
        "Expiration": imds_time(now + CREDENTIAL_LIFETIME_MS),
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn view() -> ImdsView {
        ImdsView {
            instance_id: "i-1".into(),
            instance_type: "t3.medium".into(),
            region: "us-west-2".into(),
            availability_zone: "us-west-2a".into(),
            local_ipv4: Ipv4Addr::new(10, 0, 0, 10),
            mac: "02:00:00:00:00:01".into(),
            iam_role: "node-role".into(),
            interfaces: vec![
                ImdsInterface {
                    mac: "02:00:00:00:00:01".into(),
                    interface_id: "eni-1".into(),
                    device_number: 0,
                    network_card: 0,
                    subnet_id: "subnet-1".into(),
                    vpc_id: "vpc-1".into(),
                    security_group_ids: vec!["sg-1".into(), "sg-2".into()],
                    subnet_cidr: "10.0.0.0/20".into(),
                    vpc_cidrs: vec!["10.0.0.0/16".into()],
                    local_ipv4s: vec![Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 11)],
                    ipv4_prefixes: vec![],
                },
                ImdsInterface {
                    mac: "02:00:00:00:00:02".into(),
                    interface_id: "eni-2".into(),
                    device_number: 1,
                    network_card: 0,
                    subnet_id: "subnet-1".into(),
                    vpc_id: "vpc-1".into(),
                    security_group_ids: vec!["sg-1".into()],
                    subnet_cidr: "10.0.0.0/20".into(),
                    vpc_cidrs: vec!["10.0.0.0/16".into()],
                    local_ipv4s: vec![Ipv4Addr::new(10, 0, 0, 12)],
                    ipv4_prefixes: vec!["10.0.0.32/28".into()],
                },
            ],
        }
    }

    fn body(path: &str) -> Option<String> {
        lookup(&view(), path).map(|n| n.body())
    }

    #[test]
    fn top_level_and_placement() {
        assert_eq!(body("").unwrap(), "dynamic/\nmeta-data/");
        assert!(body("meta-data").unwrap().contains("network/\nplacement/"));
        assert_eq!(body("meta-data/instance-id").unwrap(), "i-1");
        assert_eq!(body("meta-data/placement/region").unwrap(), "us-west-2");
        assert_eq!(
            body("meta-data/placement/availability-zone").unwrap(),
            "us-west-2a"
        );
        assert_eq!(body("meta-data/nope"), None);
        assert_eq!(body("user-data"), None);
    }

    #[test]
    fn per_mac_tree() {
        let macs = "meta-data/network/interfaces/macs";
        assert_eq!(
            body(macs).unwrap(),
            "02:00:00:00:00:01/\n02:00:00:00:00:02/"
        );
        let m1 = format!("{macs}/02:00:00:00:00:01");
        assert_eq!(
            body(&format!("{m1}/security-group-ids")).unwrap(),
            "sg-1\nsg-2"
        );
        assert_eq!(
            body(&format!("{m1}/local-ipv4s")).unwrap(),
            "10.0.0.10\n10.0.0.11"
        );
        assert_eq!(body(&format!("{m1}/vpc-id")).unwrap(), "vpc-1");
        assert_eq!(body(&format!("{m1}/ipv4-prefix")), None);
        assert!(!body(&m1).unwrap().contains("ipv4-prefix"));
        let m2 = format!("{macs}/02:00:00:00:00:02");
        assert_eq!(body(&format!("{m2}/ipv4-prefix")).unwrap(), "10.0.0.32/28");
        assert_eq!(body(&format!("{m2}/device-number")).unwrap(), "1");
        assert_eq!(
            body(&format!("{m2}/subnet-ipv4-cidr-block")).unwrap(),
            "10.0.0.0/20"
        );
        assert_eq!(body(&format!("{macs}/02:00:00:00:00:09/mac")), None);
    }

    #[test]
    fn credentials_and_identity() {
        assert_eq!(
            body("meta-data/iam/security-credentials").unwrap(),
            "node-role"
        );
        let creds: serde_json::Value =
            serde_json::from_str(&body("meta-data/iam/security-credentials/node-role").unwrap())
                .unwrap();
        assert_eq!(creds["Code"], "Success");
        assert_eq!(creds["Type"], "AWS-HMAC");
        assert!(creds["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
        assert!(creds["Expiration"].as_str().unwrap().ends_with('Z'));
        assert!(creds["Expiration"].as_str().unwrap() > creds["LastUpdated"].as_str().unwrap());
        assert_eq!(body("meta-data/iam/security-credentials/other"), None);
        let doc: serde_json::Value =
            serde_json::from_str(&body("dynamic/instance-identity/document").unwrap()).unwrap();
        assert_eq!(doc["region"], "us-west-2");
        assert_eq!(doc["privateIp"], "10.0.0.10");
        assert_eq!(doc["accountId"], ACCOUNT_ID);
    }
}
