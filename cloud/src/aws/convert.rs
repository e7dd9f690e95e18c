//! From the SDK's types to the seam's: errors classified once, the way
//! `CloudError::from_code` says, ENIs flattened to `EniInfo` and subnets to `SubnetInfo`.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::Ipv4Addr;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{NetworkInterface, Subnet};
use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};

use crate::api::{CloudResult, EniId, EniInfo, SubnetId, SubnetInfo};
use crate::error::CloudError;
use crate::observe::Attempt;

/// What the wire showed of a failed attempt, for the call observer: EC2's status and code
/// when it answered, nothing when it did not.
pub(crate) fn failed_attempt<E>(err: &SdkError<E>) -> Attempt<'_>
where
    E: ProvideErrorMetadata + Error + 'static,
{
    match err {
        SdkError::ServiceError(ctx) => Attempt::Refused {
            status: ctx.raw().status().as_u16(),
            code: ctx.err().code(),
        },
        SdkError::ResponseError(ctx) => Attempt::NoAnswer {
            status: Some(ctx.raw().status().as_u16()),
        },
        _ => Attempt::NoAnswer { status: None },
    }
}

/// Classifies a failed SDK call. EC2's error code decides when there is
/// one; otherwise a 5xx, a timeout or a broken connection is transient and
/// anything else (a request the SDK could not even build, a 4xx without a
/// code) is fatal.
pub(crate) fn sdk_error<E>(action: &str, err: SdkError<E>) -> CloudError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let transient = |err: &SdkError<E>| CloudError::Transient {
        action: action.to_string(),
        message: DisplayErrorContext(err).to_string(),
    };
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status();
            match ctx.err().code() {
                Some(code) => {
                    CloudError::from_code(action, code, ctx.err().message().unwrap_or_default())
                }
                None if status.is_server_error() => transient(&err),
                None => CloudError::Fatal {
                    action: action.to_string(),
                    code: format!("HTTP {}", status.as_u16()),
                    message: DisplayErrorContext(&err).to_string(),
                },
            }
        }
        // A user error here is a bad endpoint or missing credentials:
        // retrying cannot fix configuration.
        SdkError::DispatchFailure(d) if d.is_user() => CloudError::Fatal {
            action: action.to_string(),
            code: "DispatchFailure".to_string(),
            message: DisplayErrorContext(&err).to_string(),
        },
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            transient(&err)
        }
        _ => CloudError::Fatal {
            action: action.to_string(),
            code: "ConstructionFailure".to_string(),
            message: DisplayErrorContext(&err).to_string(),
        },
    }
}

pub(crate) fn to_u32(action: &str, field: &str, v: Option<i32>) -> CloudResult<u32> {
    v.and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| CloudError::malformed(action, format!("{field} missing or negative: {v:?}")))
}

/// One subnet as the seam describes it.
pub(crate) fn subnet_info(action: &str, subnet: &Subnet) -> CloudResult<SubnetInfo> {
    let id = subnet
        .subnet_id()
        .ok_or_else(|| CloudError::malformed(action, "subnet without an id"))?;
    let cidr = subnet.cidr_block().ok_or_else(|| {
        CloudError::malformed(action, format!("subnet {id} without a CIDR block"))
    })?;
    Ok(SubnetInfo {
        id: SubnetId::new(id),
        cidr: CloudError::parse_reply(action, cidr)?,
        availability_zone: subnet.availability_zone().unwrap_or_default().to_string(),
        available_addresses: to_u32(
            action,
            "availableIpAddressCount",
            subnet.available_ip_address_count(),
        )?,
        tags: subnet
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
    })
}

/// One ENI as the seam describes it; addresses primary first.
pub(crate) fn eni_info(action: &str, ni: &NetworkInterface) -> CloudResult<EniInfo> {
    let id = ni
        .network_interface_id()
        .ok_or_else(|| CloudError::malformed(action, "network interface without an id"))?;
    let mac = ni.mac_address().ok_or_else(|| {
        CloudError::malformed(action, format!("network interface {id} without a MAC"))
    })?;
    let mac: MacAddr = CloudError::parse_reply(action, mac)?;
    let mut ips: Vec<(bool, Ipv4Addr)> = Vec::new();
    for p in ni.private_ip_addresses() {
        if let Some(addr) = p.private_ip_address() {
            ips.push((
                p.primary().unwrap_or(false),
                CloudError::parse_reply(action, addr)?,
            ));
        }
    }
    // Stable: secondaries keep EC2's order behind the primary.
    ips.sort_by_key(|(primary, _)| !primary);
    let tags: BTreeMap<String, String> = ni
        .tag_set()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    let attachment = ni.attachment();
    let prefixes = ni
        .ipv4_prefixes()
        .iter()
        .filter_map(|p| p.ipv4_prefix())
        .map(|p| CloudError::parse_reply::<Ipv4Cidr>(action, p))
        .collect::<CloudResult<Vec<_>>>()?;
    Ok(EniInfo {
        id: EniId::new(id),
        mac,
        subnet_id: SubnetId::new(ni.subnet_id().unwrap_or_default()),
        description: ni.description().unwrap_or_default().to_string(),
        status: ni
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        tags,
        addresses: ips.into_iter().map(|(_, ip)| ip).collect(),
        prefixes,
        attachment_id: attachment
            .and_then(|a| a.attachment_id())
            .map(str::to_string),
        instance_id: attachment.and_then(|a| a.instance_id()).map(str::to_string),
        device_index: attachment
            .and_then(|a| a.device_index())
            .and_then(|d| u32::try_from(d).ok()),
    })
}
