//! `SimCloud`: the `Ec2` and `Imds` seams served straight from the in-memory
//! model, so ipamd's VPC mode runs against `SimVpc` without HTTP.
//!
//! Every EC2 call goes through `admit` first, exactly as the `vpc-sim`
//! server does, so scripted failures, throttling and request counts apply the
//! same way in memory and over the wire.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use vpc_cni_proto::net::Ipv4Cidr;

use super::errors::SimError;
use super::types::{AssignIps, CreateEni, Eni, EniFilter, ImdsView};
use super::SimVpc;
use crate::api::{
    Assign, AssignedIps, CloudFuture, CloudResult, Ec2, EniId, EniInfo, EniQuery, Imds, ImdsEni,
    InstanceLimits, NewEni, NodeIdentity, SubnetId, SubnetInfo,
};
use crate::error::CloudError;

/// One instance's view of the simulated cloud: EC2 for the whole region, IMDS
/// as `instance_id` sees it.
#[derive(Clone, Debug)]
pub struct SimCloud {
    pub sim: SimVpc,
    pub instance_id: String,
}

impl SimCloud {
    pub fn new(sim: SimVpc, instance_id: impl Into<String>) -> Self {
        SimCloud {
            sim,
            instance_id: instance_id.into(),
        }
    }

    /// Admits one request for `action` and runs `f` on the model, after the
    /// configured latency. The cloud crate has no async runtime, so the
    /// latency is slept on a helper thread and awaited through a channel.
    async fn call<T>(
        &self,
        action: &str,
        f: impl FnOnce(&SimVpc) -> Result<T, SimError>,
    ) -> CloudResult<T> {
        let latency = self.sim.faults().latency_ms;
        if latency > 0 {
            sleep(Duration::from_millis(latency)).await;
        }
        self.sim.admit(action).map_err(|e| to_cloud(action, &e))?;
        f(&self.sim).map_err(|e| to_cloud(action, &e))
    }

    fn imds_view(&self) -> CloudResult<ImdsView> {
        self.sim
            .imds_instance(&self.instance_id)
            .ok_or_else(|| CloudError::BadMetadata {
                path: "instance-id".to_string(),
                reason: format!(
                    "instance {} is unknown to the sim or not running",
                    self.instance_id
                ),
            })
    }
}

fn to_cloud(action: &str, e: &SimError) -> CloudError {
    CloudError::from_code(action, e.code.as_str(), &e.message)
}

/// Sleeps without a runtime: a thread fires a oneshot after `d`.
async fn sleep(d: Duration) {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    // A dropped sender only means the thread died; the delay is then moot.
    let _ = rx.await;
}

/// The model's wire-format values as the seam's types. The model only holds values it made
/// or checked, so a failure here is a bug in the sim, reported like a malformed EC2 reply.
fn typed_all<T: std::str::FromStr>(action: &str, values: &[String]) -> CloudResult<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    values
        .iter()
        .map(|v| CloudError::parse_reply(action, v))
        .collect()
}

fn eni_info(action: &str, e: Eni) -> CloudResult<EniInfo> {
    let addresses = e.private_ips.iter().map(|p| p.address).collect();
    let (attachment_id, instance_id, device_index) = match e.attachment {
        Some(a) => (Some(a.id), Some(a.instance_id), Some(a.device_index)),
        None => (None, None, None),
    };
    Ok(EniInfo {
        mac: CloudError::parse_reply(action, &e.mac)?,
        prefixes: typed_all(action, &e.prefixes)?,
        id: EniId::new(e.id),
        subnet_id: SubnetId::new(e.subnet_id),
        description: e.description,
        status: e.status,
        tags: e.tags,
        addresses,
        attachment_id,
        instance_id,
        device_index,
    })
}

fn filter_of(query: EniQuery) -> EniFilter {
    match query {
        EniQuery::Ids(ids) => EniFilter {
            ids: ids.iter().map(|id| id.as_str().to_owned()).collect(),
            ..EniFilter::default()
        },
        EniQuery::AttachedTo(instance) => EniFilter {
            attachment_instance_id: Some(instance),
            ..EniFilter::default()
        },
        EniQuery::AvailableTagged(key) => EniFilter {
            status: Some("available".to_string()),
            tag_keys: vec![key],
            ..EniFilter::default()
        },
    }
}

impl Ec2 for SimCloud {
    fn instance_limits(&self, instance_type: &str) -> CloudFuture<'_, InstanceLimits> {
        let name = instance_type.to_string();
        Box::pin(async move {
            let types = self
                .call("DescribeInstanceTypes", |s| {
                    s.describe_instance_types(std::slice::from_ref(&name))
                })
                .await?;
            let t = types.first().ok_or_else(|| {
                CloudError::from_code(
                    "DescribeInstanceTypes",
                    "InvalidParameterValue",
                    &format!("no such instance type {name}"),
                )
            })?;
            Ok(InstanceLimits {
                max_enis: t.max_enis,
                ipv4_per_eni: t.ipv4_per_eni,
                nitro: t.nitro,
                vcpus: t.vcpus,
            })
        })
    }

    fn create_eni(&self, eni: NewEni) -> CloudFuture<'_, EniInfo> {
        Box::pin(async move {
            let req = CreateEni {
                subnet_id: eni.subnet_id.as_str().to_owned(),
                description: eni.description,
                security_groups: eni.security_groups,
                tags: eni.tags,
                private_ip: None,
                secondary_count: eni.secondary_count,
                prefix_count: eni.prefix_count,
            };
            let eni = self
                .call("CreateNetworkInterface", |s| {
                    s.create_network_interface(req)
                })
                .await?;
            eni_info("CreateNetworkInterface", eni)
        })
    }

    fn attach_eni<'a>(
        &'a self,
        eni_id: &'a EniId,
        instance_id: &'a str,
        device_index: u32,
    ) -> CloudFuture<'a, String> {
        Box::pin(async move {
            let att = self
                .call("AttachNetworkInterface", |s| {
                    s.attach_network_interface(eni_id.as_str(), instance_id, device_index)
                })
                .await?;
            self.call("ModifyNetworkInterfaceAttribute", |s| {
                s.set_delete_on_termination(eni_id.as_str(), &att.id, true)
            })
            .await?;
            Ok(att.id)
        })
    }

    fn assign<'a>(&'a self, eni_id: &'a EniId, what: Assign) -> CloudFuture<'a, AssignedIps> {
        Box::pin(async move {
            const ACTION: &str = "AssignPrivateIpAddresses";
            let req = match what {
                Assign::Addresses(count) => AssignIps {
                    count,
                    ..AssignIps::default()
                },
                Assign::Prefixes(prefix_count) => AssignIps {
                    prefix_count,
                    ..AssignIps::default()
                },
            };
            let assigned = self
                .call(ACTION, |s| {
                    s.assign_private_ip_addresses(eni_id.as_str(), req)
                })
                .await?;
            Ok(AssignedIps {
                addresses: assigned.addresses,
                prefixes: typed_all(ACTION, &assigned.prefixes)?,
            })
        })
    }

    fn unassign<'a>(
        &'a self,
        eni_id: &'a EniId,
        addresses: &'a [Ipv4Addr],
        prefixes: &'a [Ipv4Cidr],
    ) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            let prefixes: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
            self.call("UnassignPrivateIpAddresses", |s| {
                s.unassign_private_ip_addresses(eni_id.as_str(), addresses, &prefixes)
            })
            .await
        })
    }

    fn detach_eni<'a>(&'a self, attachment_id: &'a str) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            self.call("DetachNetworkInterface", |s| {
                s.detach_network_interface(attachment_id, false)
            })
            .await
        })
    }

    fn delete_eni<'a>(&'a self, eni_id: &'a EniId) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            self.call("DeleteNetworkInterface", |s| {
                s.delete_network_interface(eni_id.as_str())
            })
            .await
        })
    }

    fn describe_enis(&self, query: EniQuery) -> CloudFuture<'_, Vec<EniInfo>> {
        Box::pin(async move {
            let filter = filter_of(query);
            // Page like the AWS implementation does, so tokens get exercised.
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .call("DescribeNetworkInterfaces", |s| {
                        s.describe_network_interfaces(&filter, Some(1000), token.as_deref())
                    })
                    .await?;
                for eni in page.items {
                    out.push(eni_info("DescribeNetworkInterfaces", eni)?);
                }
                match page.next_token {
                    Some(t) => token = Some(t),
                    None => return Ok(out),
                }
            }
        })
    }

    fn create_tags<'a>(
        &'a self,
        enis: &'a [EniId],
        tags: &'a BTreeMap<String, String>,
    ) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            let resource_ids: Vec<String> = enis.iter().map(|id| id.as_str().to_owned()).collect();
            self.call("CreateTags", |s| s.create_tags(&resource_ids, tags))
                .await
        })
    }

    fn set_security_groups<'a>(
        &'a self,
        eni_id: &'a EniId,
        groups: &'a [String],
    ) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            self.call("ModifyNetworkInterfaceAttribute", |s| {
                s.set_security_groups(eni_id.as_str(), groups)
            })
            .await
        })
    }

    fn describe_subnets<'a>(
        &'a self,
        vpc_id: &'a str,
        availability_zone: &'a str,
    ) -> CloudFuture<'a, Vec<SubnetInfo>> {
        Box::pin(async move {
            const ACTION: &str = "DescribeSubnets";
            let subnets = self.call(ACTION, |s| s.describe_subnets(&[])).await?;
            subnets
                .into_iter()
                .filter(|s| s.vpc_id == vpc_id && s.availability_zone == availability_zone)
                .map(|s| {
                    Ok(SubnetInfo {
                        id: SubnetId::new(s.id),
                        cidr: CloudError::parse_reply(ACTION, &s.cidr)?,
                        availability_zone: s.availability_zone,
                        available_addresses: s.available_ip_count,
                        tags: s.tags,
                    })
                })
                .collect()
        })
    }
}

impl Imds for SimCloud {
    fn identity(&self) -> CloudFuture<'_, NodeIdentity> {
        Box::pin(async move {
            let v = self.imds_view()?;
            Ok(NodeIdentity {
                instance_id: v.instance_id,
                instance_type: v.instance_type,
                region: v.region,
                availability_zone: v.availability_zone,
                primary_mac: CloudError::parse_metadata("mac", &v.mac)?,
                local_ipv4: v.local_ipv4,
            })
        })
    }

    fn enis(&self) -> CloudFuture<'_, Vec<ImdsEni>> {
        Box::pin(async move {
            let v = self.imds_view()?;
            v.interfaces
                .into_iter()
                .map(|i| {
                    let path = format!("network/interfaces/macs/{}", i.mac);
                    Ok(ImdsEni {
                        mac: CloudError::parse_metadata(&path, &i.mac)?,
                        eni_id: EniId::new(i.interface_id),
                        device_number: i.device_number,
                        subnet_id: SubnetId::new(i.subnet_id),
                        vpc_id: i.vpc_id,
                        security_groups: i.security_group_ids,
                        subnet_cidr: CloudError::parse_metadata(&path, &i.subnet_cidr)?,
                        vpc_cidrs: i
                            .vpc_cidrs
                            .iter()
                            .map(|c| CloudError::parse_metadata(&path, c))
                            .collect::<CloudResult<_>>()?,
                        addresses: i.local_ipv4s,
                        prefixes: i
                            .ipv4_prefixes
                            .iter()
                            .map(|p| CloudError::parse_metadata(&path, p))
                            .collect::<CloudResult<_>>()?,
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::sim::{FailNext, Faults};

    fn world() -> SimCloud {
        let sim = SimVpc::with_seed(7);
        let vpc = sim.create_vpc("10.0.0.0/16").unwrap();
        let sub = sim
            .create_subnet(&vpc.id, "10.0.0.0/24", "us-west-2a")
            .unwrap();
        let inst = sim.run_instance(&sub.id, "m5.large", "node").unwrap();
        SimCloud::new(sim, inst.id)
    }

    /// The crate has no executor; parking the thread is enough for these
    /// futures, which only ever wait on the latency thread.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    #[test]
    fn identity_and_enis_come_from_imds() {
        let c = world();
        let id = block_on(c.identity()).unwrap();
        assert_eq!(id.instance_id, c.instance_id);
        assert_eq!(id.instance_type, "m5.large");
        assert_eq!(id.region, "us-west-2");
        let enis = block_on(c.enis()).unwrap();
        assert_eq!(enis.len(), 1);
        assert_eq!(enis[0].device_number, 0);
        assert_eq!(enis[0].mac, id.primary_mac);
        assert_eq!(enis[0].addresses, vec![id.local_ipv4]);
    }

    #[test]
    fn unknown_instance_is_bad_metadata() {
        let c = SimCloud::new(SimVpc::with_seed(1), "i-0000");
        assert!(matches!(
            block_on(c.identity()),
            Err(CloudError::BadMetadata { .. })
        ));
    }

    #[test]
    fn eni_lifecycle_is_counted_and_limits_classified() {
        let c = world();
        let limits = block_on(c.instance_limits("m5.large")).unwrap();
        assert_eq!((limits.max_enis, limits.ipv4_per_eni), (3, 10));
        let primary = block_on(c.enis()).unwrap().remove(0);
        let eni = block_on(c.create_eni(NewEni {
            subnet_id: primary.subnet_id.clone(),
            description: "d".into(),
            secondary_count: 2,
            ..NewEni::default()
        }))
        .unwrap();
        assert_eq!(eni.addresses.len(), 3);
        let att = block_on(c.attach_eni(&eni.id, &c.instance_id, 1)).unwrap();
        let more = block_on(c.assign(&eni.id, Assign::Addresses(7)))
            .unwrap()
            .addresses;
        assert_eq!(more.len(), 7);
        let over = block_on(c.assign(&eni.id, Assign::Addresses(1))).unwrap_err();
        assert!(matches!(over, CloudError::LimitExceeded { .. }), "{over}");
        let in_use = block_on(c.delete_eni(&eni.id)).unwrap_err();
        assert!(matches!(in_use, CloudError::InUse { .. }), "{in_use}");
        block_on(c.unassign(&eni.id, &more, &[])).unwrap();
        block_on(c.detach_eni(&att)).unwrap();
        block_on(c.delete_eni(&eni.id)).unwrap();
        let gone = block_on(c.describe_enis(EniQuery::Ids(vec![eni.id.clone()]))).unwrap_err();
        assert!(matches!(gone, CloudError::NotFound { .. }), "{gone}");
        let counts = c.sim.request_counts();
        assert_eq!(counts.get("AttachNetworkInterface"), Some(&1));
        assert_eq!(counts.get("ModifyNetworkInterfaceAttribute"), Some(&1));
        assert_eq!(counts.get("AssignPrivateIpAddresses"), Some(&2));
        assert_eq!(counts.get("DeleteNetworkInterface"), Some(&2));
    }

    #[test]
    fn scripted_failures_apply_before_the_action() {
        let c = world();
        c.sim.set_faults(Faults {
            fail_next: vec![FailNext {
                action: "DescribeNetworkInterfaces".into(),
                times: 1,
                code: "RequestLimitExceeded".into(),
            }],
            ..Faults::default()
        });
        let q = EniQuery::AttachedTo(c.instance_id.clone());
        let e = block_on(c.describe_enis(q.clone())).unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert_eq!(block_on(c.describe_enis(q)).unwrap().len(), 1);
    }

    #[test]
    fn latency_is_applied() {
        let c = world();
        c.sim.set_faults(Faults {
            latency_ms: 20,
            ..Faults::default()
        });
        let started = std::time::Instant::now();
        block_on(c.identity()).unwrap();
        block_on(c.instance_limits("m5.large")).unwrap();
        // Only EC2 calls sleep; IMDS answers at once.
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
