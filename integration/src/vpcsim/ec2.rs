//! The EC2 Query API over the sim: one POST per action, XML out, EC2's error
//! documents and status codes on failure.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::net::TcpListener;
use vpc_cni_cloud::sim::{AssignIps, CreateEni, EniFilter, SimVpc};

use super::api_error::ApiError;
use super::ec2_filter::{check_max, eni_matches, instance_matches, keep, narrow, page};
use super::ec2_xml::{self, GroupNames};
use super::http::{self, HttpRequest, Reply};
use super::query::{ParamError, Query};
use super::stamp::request_id;
use super::xml::{error_document, response, Xml};

/// The actions DESIGN.md lists and those that build a world; anything else is
/// `InvalidAction`.
pub const ACTIONS: &[&str] = &[
    "CreateNetworkInterface",
    "AttachNetworkInterface",
    "ModifyNetworkInterfaceAttribute",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "DetachNetworkInterface",
    "DeleteNetworkInterface",
    "DescribeNetworkInterfaces",
    "DescribeInstances",
    "DescribeInstanceTypes",
    "DescribeSubnets",
    "CreateTags",
    // Building a world (ec2_world.rs).
    "CreateVpc",
    "DescribeVpcs",
    "AssociateVpcCidrBlock",
    "DisassociateVpcCidrBlock",
    "CreateSubnet",
    "DeleteSubnet",
    "CreateSecurityGroup",
    "RunInstances",
    "TerminateInstances",
];

/// Serves the EC2 API on `listener` until `shutdown` completes.
pub async fn serve_ec2(
    sim: SimVpc,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) {
    http::serve(listener, shutdown, move |req| {
        let sim = sim.clone();
        async move { handle(&sim, &req).await }
    })
    .await;
}

async fn handle(sim: &SimVpc, req: &HttpRequest) -> Reply {
    let rid = request_id();
    let query = Query::parse(req.query.as_deref(), &req.body);
    let caller = caller_instance(sim, req);
    let (status, body) = match run(sim, caller.as_deref(), &query, &rid).await {
        Ok(xml) => (200, xml),
        Err(e) => (e.status, error_document(&e.code, &e.message, &rid)),
    };
    let mut reply = http::reply(status, "text/xml;charset=UTF-8", body);
    if let Ok(v) = rid.parse() {
        reply.headers_mut().insert("x-amzn-requestid", v);
    }
    reply
}

/// The instance that sent `req`, known by its source address as on the fabric (a node calls
/// from its primary address); `None` on loopback, where every caller shares 127.0.0.1.
fn caller_instance(sim: &SimVpc, req: &HttpRequest) -> Option<String> {
    match req.peer.ip() {
        std::net::IpAddr::V4(ip) if !ip.is_loopback() => sim.instance_by_private_ip(ip),
        _ => None,
    }
}

async fn run(sim: &SimVpc, caller: Option<&str>, q: &Query, rid: &str) -> Result<String, ApiError> {
    let action = q.action().ok_or_else(|| {
        ApiError::new(
            "MissingAction",
            "The request must contain the parameter Action",
        )
    })?;
    if !ACTIONS.contains(&action) {
        return Err(ApiError::new(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        ));
    }
    sim.admit_from(caller, action)?;
    let latency = sim.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if q.bool("DryRun")? == Some(true) {
        return Err(ApiError {
            code: "DryRunOperation".into(),
            message: "Request would have succeeded, but DryRun flag is set.".into(),
            status: 412,
        });
    }
    let mut body = Xml::new();
    match action {
        "CreateNetworkInterface" => create_eni(sim, q, &mut body)?,
        "AttachNetworkInterface" => {
            if q.u32("NetworkCardIndex")?.is_some_and(|n| n != 0) {
                // The sim models one network card; refuse rather than pretend.
                return Err(ApiError::new(
                    "InvalidParameterValue",
                    "vpc-sim models network card 0 only",
                ));
            }
            let attachment = sim.attach_network_interface(
                q.required("NetworkInterfaceId")?,
                q.required("InstanceId")?,
                q.u32("DeviceIndex")?
                    .ok_or_else(|| ParamError::Missing("DeviceIndex".into()))?,
            )?;
            body.text("attachmentId", &attachment.id)
                .text("networkCardIndex", attachment.network_card_index);
        }
        "ModifyNetworkInterfaceAttribute" => {
            let eni = q.required("NetworkInterfaceId")?;
            let groups = q.list("SecurityGroupId");
            // EC2 changes one attribute per call.
            match (q.bool("Attachment.DeleteOnTermination")?, groups.is_empty()) {
                (Some(value), true) => sim.set_delete_on_termination(
                    eni,
                    q.required("Attachment.AttachmentId")?,
                    value,
                )?,
                (None, false) => sim.set_security_groups(eni, &groups)?,
                _ => {
                    return Err(ApiError::new(
                        "InvalidParameterCombination",
                        "give exactly one of Attachment.DeleteOnTermination and SecurityGroupId.N \
                         (the attributes vpc-sim models)",
                    ))
                }
            }
            body.text("return", true);
        }
        "AssignPrivateIpAddresses" => {
            let eni = q.required("NetworkInterfaceId")?;
            let assigned = sim.assign_private_ip_addresses(
                eni,
                AssignIps {
                    count: q.u32("SecondaryPrivateIpAddressCount")?.unwrap_or(0),
                    addresses: addresses(q, "PrivateIpAddress")?,
                    prefix_count: q.u32("Ipv4PrefixCount")?.unwrap_or(0),
                    prefixes: q.list("Ipv4Prefix"),
                    allow_reassignment: q.bool("AllowReassignment")?.unwrap_or(false),
                },
            )?;
            body.text("networkInterfaceId", eni);
            if !assigned.addresses.is_empty() {
                body.set(
                    "assignedPrivateIpAddressesSet",
                    &assigned.addresses,
                    |x, a| {
                        x.text("privateIpAddress", a);
                    },
                );
            }
            if !assigned.prefixes.is_empty() {
                body.set("assignedIpv4PrefixSet", &assigned.prefixes, |x, p| {
                    x.text("ipv4Prefix", p);
                });
            }
        }
        "UnassignPrivateIpAddresses" => {
            sim.unassign_private_ip_addresses(
                q.required("NetworkInterfaceId")?,
                &addresses(q, "PrivateIpAddress")?,
                &q.list("Ipv4Prefix"),
            )?;
            body.text("return", true);
        }
        "DetachNetworkInterface" => {
            sim.detach_network_interface(
                q.required("AttachmentId")?,
                q.bool("Force")?.unwrap_or(false),
            )?;
            body.text("return", true);
        }
        "DeleteNetworkInterface" => {
            sim.delete_network_interface(q.required("NetworkInterfaceId")?)?;
            body.text("return", true);
        }
        "DescribeNetworkInterfaces" => describe_enis(sim, q, &mut body)?,
        "DescribeInstances" => describe_instances(sim, q, &mut body)?,
        "DescribeInstanceTypes" => {
            no_filters(q)?;
            let max = q.u32("MaxResults")?;
            check_max(max, 5, 100)?;
            let types = sim.describe_instance_types(&q.list("InstanceType"))?;
            let (types, next) = page(types, |t| t.name, max, q.get("NextToken"))?;
            body.set("instanceTypeSet", &types, |x, t| {
                ec2_xml::instance_type(x, t)
            });
            next_token(&mut body, next);
        }
        "CreateTags" => {
            let ids = q.list("ResourceId");
            if ids.is_empty() {
                return Err(ParamError::Missing("ResourceId.1".into()).into());
            }
            sim.create_tags(&ids, &q.tags("Tag"))?;
            body.text("return", true);
        }
        other => match super::ec2_world::run(sim, other, q, &mut body, || group_names(sim)) {
            Some(result) => result?,
            None => {
                return Err(ApiError::new(
                    "InvalidAction",
                    format!("The action {action} is not valid for this web service."),
                ))
            }
        },
    }
    Ok(response(action, rid, body))
}

fn next_token(body: &mut Xml, next: Option<String>) {
    if let Some(t) = next {
        body.text("nextToken", t);
    }
}

fn no_filters(q: &Query) -> Result<(), ApiError> {
    match q.filters().first() {
        Some((name, _)) => Err(ApiError::new(
            "InvalidParameterValue",
            format!("The filter '{name}' is invalid"),
        )),
        None => Ok(()),
    }
}

fn addresses(q: &Query, prefix: &str) -> Result<Vec<Ipv4Addr>, ApiError> {
    q.list(prefix)
        .into_iter()
        .map(|a| {
            a.parse().map_err(|_| {
                ApiError::new(
                    "InvalidParameterValue",
                    format!("Invalid IPv4 address {a:?} in {prefix}"),
                )
            })
        })
        .collect()
}

fn group_names(sim: &SimVpc) -> GroupNames {
    GroupNames::new(sim.security_groups().into_iter().map(|g| (g.id, g.name)))
}

fn create_eni(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let mut private_ip = q
        .get("PrivateIpAddress")
        .map(|a| {
            a.parse().map_err(|_| ParamError::Invalid {
                name: "PrivateIpAddress".into(),
                value: a.into(),
            })
        })
        .transpose()?;
    // The structured form: PrivateIpAddresses.N.{PrivateIpAddress,Primary}.
    let mut secondaries = Vec::new();
    for n in q.indices("PrivateIpAddresses") {
        let key = format!("PrivateIpAddresses.{n}.PrivateIpAddress");
        let ip: Ipv4Addr = q.required(&key)?.parse().map_err(|_| ParamError::Invalid {
            name: key.clone(),
            value: q.get(&key).unwrap_or("").into(),
        })?;
        if q.bool(&format!("PrivateIpAddresses.{n}.Primary"))? == Some(true) && private_ip.is_none()
        {
            private_ip = Some(ip);
        } else {
            secondaries.push(ip);
        }
    }
    let prefixes: Vec<String> = q
        .indices("Ipv4Prefix")
        .into_iter()
        .filter_map(|n| {
            q.get(&format!("Ipv4Prefix.{n}.Ipv4Prefix"))
                .map(str::to_string)
        })
        .collect();
    let eni = sim.create_network_interface(CreateEni {
        subnet_id: q.required("SubnetId")?.to_string(),
        description: q.get("Description").unwrap_or("").to_string(),
        security_groups: q.list("SecurityGroupId"),
        tags: q.tag_specifications("network-interface"),
        private_ip,
        secondary_count: q.u32("SecondaryPrivateIpAddressCount")?.unwrap_or(0),
        prefix_count: q.u32("Ipv4PrefixCount")?.unwrap_or(0),
    })?;
    // Explicit secondaries and prefixes go on in a second step; undo the
    // create if they fail, so the call stays all-or-nothing.
    if !secondaries.is_empty() || !prefixes.is_empty() {
        let extra = AssignIps {
            addresses: secondaries,
            prefixes,
            ..AssignIps::default()
        };
        if let Err(e) = sim.assign_private_ip_addresses(&eni.id, extra) {
            let _ = sim.delete_network_interface(&eni.id);
            return Err(e.into());
        }
    }
    let filter = EniFilter {
        ids: vec![eni.id.clone()],
        ..EniFilter::default()
    };
    let fresh = sim
        .describe_network_interfaces(&filter, None, None)?
        .items
        .into_iter()
        .next()
        .unwrap_or(eni);
    let names = group_names(sim);
    body.element("networkInterface", |x| ec2_xml::eni(x, &fresh, &names));
    if let Some(token) = q.get("ClientToken") {
        body.text("clientToken", token);
    }
    Ok(())
}

/// The ids and the MaxResults of a Describe call; EC2 refuses the two together.
fn ids_and_max(q: &Query, id_param: &str) -> Result<(Vec<String>, Option<u32>), ApiError> {
    let ids = q.list(id_param);
    let max = q.u32("MaxResults")?;
    if max.is_some() && !ids.is_empty() {
        return Err(ApiError::new(
            "InvalidParameterCombination",
            format!("MaxResults cannot be combined with {id_param}"),
        ));
    }
    Ok((ids, max))
}

fn describe_enis(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let (ids, max) = ids_and_max(q, "NetworkInterfaceId")?;
    let filters = q.filters();
    let mut filter = EniFilter {
        ids,
        ..EniFilter::default()
    };
    for (name, values) in &filters {
        narrow(&mut filter, name, values);
    }
    let page = sim.describe_network_interfaces(&filter, max, q.get("NextToken"))?;
    let enis = keep(page.items, &filters, eni_matches)?;
    let names = group_names(sim);
    body.set("networkInterfaceSet", &enis, |x, e| {
        ec2_xml::eni(x, e, &names)
    });
    next_token(body, page.next_token);
    Ok(())
}

fn describe_instances(sim: &SimVpc, q: &Query, body: &mut Xml) -> Result<(), ApiError> {
    let (ids, max) = ids_and_max(q, "InstanceId")?;
    check_max(max, 5, 1000)?;
    let instances = keep(
        sim.describe_instances(&ids)?,
        &q.filters(),
        instance_matches,
    )?;
    let (instances, next) = page(instances, |i| i.id.as_str(), max, q.get("NextToken"))?;
    let names = group_names(sim);
    let mut failed = None;
    body.set("reservationSet", &instances, |x, inst| {
        if let Err(e) = super::ec2_world::reservation(sim, x, std::slice::from_ref(inst), &names) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    next_token(body, next);
    Ok(())
}

#[cfg(test)]
#[path = "ec2_prop_tests.rs"]
mod prop_tests;
