//! `Ec2` over aws-sdk-ec2: every request takes a token from one bucket,
//! is counted and reported to the call observer, and is retried by
//! `with_retries` on throttling and transient failures.
//!
//! The SDK's own retries are turned off (`RetryConfig::disabled`). Two
//! layers would multiply: the SDK's 3 attempts inside each of our N turns
//! one throttled call into 3×N requests, and the SDK's attempts would
//! bypass the bucket and the counts. Ours sees every attempt, takes a token
//! for each, classifies with `CloudError`, and is one policy for all
//! actions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, InstanceType, InstanceTypeHypervisor, NetworkInterfaceAttachmentChanges, ResourceType,
    Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use futures::TryFutureExt;

use super::convert::{eni_info, failed_attempt, sdk_error, subnet_info, to_u32};
use vpc_cni_proto::net::Ipv4Cidr;

use crate::api::{
    Assign, AssignedIps, CloudFuture, CloudResult, Ec2, EniId, EniInfo, EniQuery, InstanceLimits,
    NewEni, SubnetInfo,
};
use crate::error::CloudError;
use crate::limiter::TokenBucket;
use crate::observe::{Attempt, CallObserver, Unobserved};
use crate::retry::{with_retries, RetryPolicy};

/// Bound on one HTTP attempt when neither ipamd's settings nor the loaded configuration set
/// one: the SDK's default is to wait forever on a stalled response.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// EC2's largest page for filtered DescribeNetworkInterfaces.
const PAGE_SIZE: i32 = 1000;

/// The AWS EC2 client ipamd uses in VPC mode.
pub struct AwsEc2 {
    client: Client,
    limiter: TokenBucket,
    retry: RetryPolicy,
    limits: Mutex<HashMap<String, InstanceLimits>>,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    observer: Arc<dyn CallObserver>,
}

impl std::fmt::Debug for AwsEc2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsEc2")
            .field("limiter", &self.limiter)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What ipamd's settings choose about the EC2 client; the rest (credentials, region) comes
/// from the SDK's standard chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Ec2Options {
    /// Sustained calls per second of the one token bucket.
    pub qps: f64,
    /// Calls allowed in a burst.
    pub burst: u32,
    /// An endpoint that replaces whatever the SDK's chain would use (the AWS VPC CNI's
    /// `AWS_EC2_ENDPOINT`); `None` keeps the chain's (`AWS_ENDPOINT_URL_EC2`, ...).
    pub endpoint: Option<String>,
    /// Bound on one HTTP attempt (the AWS VPC CNI's `HTTP_TIMEOUT`); `None` keeps the
    /// loaded configuration's, or [`ATTEMPT_TIMEOUT`] when it sets none.
    pub attempt_timeout: Option<Duration>,
}

impl Ec2Options {
    /// The token bucket's figures and nothing else chosen.
    #[must_use]
    pub fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst,
            endpoint: None,
            attempt_timeout: None,
        }
    }
}

impl AwsEc2 {
    /// Configuration from the SDK's standard chain: credentials (env,
    /// profile, web identity, IMDS role), region (env, profile, IMDS) and
    /// endpoint (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`).
    pub async fn from_env(qps: f64, burst: u32) -> Self {
        Self::from_env_with(&Ec2Options::new(qps, burst)).await
    }

    /// [`AwsEc2::from_env`] with an endpoint and attempt timeout chosen by ipamd's
    /// settings, which win over the chain's.
    pub async fn from_env_with(options: &Ec2Options) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config_with(&config, options)
    }

    /// Like [`AwsEc2::from_env`], but `None` when the standard chain finds no credentials
    /// (or no region): a tool that can answer without EC2 (`ipamd max-pods`) then does.
    pub async fn from_env_with_credentials(qps: f64, burst: u32) -> Option<Self> {
        use aws_sdk_ec2::config::ProvideCredentials;
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        config.region()?;
        let provider = config.credentials_provider()?;
        provider.provide_credentials().await.ok()?;
        Some(Self::from_sdk_config(&config, qps, burst))
    }

    /// A client from an already loaded configuration, with the SDK's
    /// retries off (see the module comment) and `RetryPolicy::default()`.
    #[must_use]
    pub fn from_sdk_config(config: &SdkConfig, qps: f64, burst: u32) -> Self {
        Self::from_sdk_config_with(config, &Ec2Options::new(qps, burst))
    }

    /// [`AwsEc2::from_sdk_config`] with `options`' endpoint and attempt timeout.
    #[must_use]
    pub fn from_sdk_config_with(config: &SdkConfig, options: &Ec2Options) -> Self {
        let mut builder =
            aws_sdk_ec2::config::Builder::from(config).retry_config(RetryConfig::disabled());
        if let Some(endpoint) = &options.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let loaded_attempt_timeout = config
            .timeout_config()
            .and_then(TimeoutConfig::operation_attempt_timeout);
        let attempt_timeout = match (options.attempt_timeout, loaded_attempt_timeout) {
            (Some(chosen), _) => Some(chosen),
            // The loaded one stands as it is.
            (None, Some(_)) => None,
            (None, None) => Some(ATTEMPT_TIMEOUT),
        };
        if let Some(timeout) = attempt_timeout {
            // Merged over the loaded timeouts, not replacing them.
            builder = builder.timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(timeout)
                    .build(),
            );
        }
        Self {
            client: Client::from_conf(builder.build()),
            limiter: TokenBucket::new(options.qps, options.burst),
            retry: RetryPolicy::default(),
            limits: Mutex::new(HashMap::new()),
            counts: Arc::new(Mutex::new(BTreeMap::new())),
            observer: Arc::new(Unobserved),
        }
    }

    /// Reports every attempt, and every wait for a token, to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// Replaces the retry policy (tests use millisecond backoffs).
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Requests sent per EC2 action, every attempt included: with retries,
    /// more than the calls that succeeded.
    #[must_use]
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count(&self, action: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry(action.to_string()).or_insert(0) += 1;
    }

    /// One EC2 action: each attempt waits for a token, is counted and
    /// reported, and its failure is classified; `with_retries` decides
    /// whether to go again.
    async fn call<T, E, F, Fut>(&self, action: &'static str, f: F) -> CloudResult<T>
    where
        F: Fn(&Client) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + Error + 'static,
    {
        with_retries(&self.retry, action, || {
            // SDK futures do nothing until polled, so building the request
            // before the token is taken costs no request.
            let request = f(&self.client);
            async move {
                let asked = tokio::time::Instant::now();
                self.limiter.acquire().await;
                let sent = tokio::time::Instant::now();
                let waited = sent.saturating_duration_since(asked);
                if !waited.is_zero() {
                    self.observer.token_wait(action, waited);
                }
                self.count(action);
                let answer = request.await;
                let took = sent.elapsed();
                match &answer {
                    Ok(_) => self.observer.attempt(action, Attempt::Succeeded, took),
                    Err(e) => self.observer.attempt(action, failed_attempt(e), took),
                }
                answer.map_err(|e| sdk_error(action, e))
            }
        })
        .await
    }

    fn cached_limits(&self, instance_type: &str) -> Option<InstanceLimits> {
        self.limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(instance_type)
            .copied()
    }

    async fn describe_instance_type(&self, instance_type: &str) -> CloudResult<InstanceLimits> {
        const ACTION: &str = "DescribeInstanceTypes";
        let out = self
            .call(ACTION, |c| {
                c.describe_instance_types()
                    .instance_types(InstanceType::from(instance_type))
                    .send()
            })
            .await?;
        let info = out
            .instance_types()
            .iter()
            .find(|t| t.instance_type().map(InstanceType::as_str) == Some(instance_type))
            .ok_or_else(|| CloudError::NotFound {
                action: ACTION.to_string(),
                code: "InvalidInstanceType".to_string(),
                message: format!("EC2 does not describe instance type {instance_type:?}"),
            })?;
        let network = info.network_info().ok_or_else(|| {
            CloudError::malformed(ACTION, format!("{instance_type}: no networkInfo"))
        })?;
        Ok(InstanceLimits {
            max_enis: to_u32(
                ACTION,
                "maximumNetworkInterfaces",
                network.maximum_network_interfaces(),
            )?,
            ipv4_per_eni: to_u32(
                ACTION,
                "ipv4AddressesPerInterface",
                network.ipv4_addresses_per_interface(),
            )?,
            nitro: info.hypervisor() == Some(&InstanceTypeHypervisor::Nitro),
            vcpus: to_u32(
                ACTION,
                "defaultVCpus",
                info.v_cpu_info().and_then(|v| v.default_v_cpus()),
            )?,
        })
    }

    async fn describe_pages(&self, query: EniQuery) -> CloudResult<Vec<EniInfo>> {
        const ACTION: &str = "DescribeNetworkInterfaces";
        let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
        let (ids, filters, max_results) = match query {
            // No ids and no filter would list every ENI of the account.
            EniQuery::Ids(ids) if ids.is_empty() => return Ok(Vec::new()),
            // EC2 refuses MaxResults together with explicit ids.
            EniQuery::Ids(ids) => (
                Some(ids.iter().map(|id| id.as_str().to_owned()).collect()),
                None,
                None,
            ),
            EniQuery::AttachedTo(instance) => (
                None,
                Some(vec![filter("attachment.instance-id", &instance)]),
                Some(PAGE_SIZE),
            ),
            EniQuery::AvailableTagged(key) => (
                None,
                Some(vec![filter("status", "available"), filter("tag-key", &key)]),
                Some(PAGE_SIZE),
            ),
        };
        let mut enis = Vec::new();
        let mut cursor = Cursor::new(ACTION);
        loop {
            let page = self
                .call(ACTION, |c| {
                    c.describe_network_interfaces()
                        .set_network_interface_ids(ids.clone())
                        .set_filters(filters.clone())
                        .set_max_results(max_results)
                        .set_next_token(cursor.token())
                        .send()
                })
                .await?;
            for ni in page.network_interfaces() {
                enis.push(eni_info(ACTION, ni)?);
            }
            if !cursor.advance(page.next_token())? {
                return Ok(enis);
            }
        }
    }
}

impl AwsEc2 {
    async fn describe_subnet_pages(
        &self,
        vpc_id: &str,
        availability_zone: &str,
    ) -> CloudResult<Vec<SubnetInfo>> {
        const ACTION: &str = "DescribeSubnets";
        let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
        let filters = vec![
            filter("vpc-id", vpc_id),
            filter("availability-zone", availability_zone),
        ];
        let mut subnets = Vec::new();
        let mut cursor = Cursor::new(ACTION);
        loop {
            let page = self
                .call(ACTION, |c| {
                    c.describe_subnets()
                        .set_filters(Some(filters.clone()))
                        .max_results(PAGE_SIZE)
                        .set_next_token(cursor.token())
                        .send()
                })
                .await?;
            for subnet in page.subnets() {
                subnets.push(subnet_info(ACTION, subnet)?);
            }
            if !cursor.advance(page.next_token())? {
                return Ok(subnets);
            }
        }
    }
}

/// Where a paginated listing is: the token to send next, and every token EC2 gave so far. A
/// token EC2 already gave would list the same pages again, forever: every answer is input,
/// and a cursor that does not move must end the listing, not the node.
struct Cursor {
    action: &'static str,
    token: Option<String>,
    seen: HashSet<String>,
}

impl Cursor {
    fn new(action: &'static str) -> Self {
        Self {
            action,
            token: None,
            seen: HashSet::new(),
        }
    }

    fn token(&self) -> Option<String> {
        self.token.clone()
    }

    /// Takes a page's `nextToken`: whether another page is to be fetched.
    fn advance(&mut self, next: Option<&str>) -> CloudResult<bool> {
        match next {
            Some(next) if !next.is_empty() => {
                if !self.seen.insert(next.to_string()) {
                    return Err(CloudError::malformed(
                        self.action,
                        format!("nextToken {next:?} came back again: the listing would never end"),
                    ));
                }
                self.token = Some(next.to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A count for EC2, which takes `Integer`; absent when zero so EC2 does
/// not see a parameter it would reject as out of range.
fn count_param(count: u32) -> Option<i32> {
    (count > 0).then(|| i32::try_from(count).unwrap_or(i32::MAX))
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Every value of a reply of `action`, parsed.
fn parse_all<'v, T: std::str::FromStr>(
    action: &str,
    values: impl Iterator<Item = &'v str>,
) -> CloudResult<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    values.map(|v| CloudError::parse_reply(action, v)).collect()
}

/// A ClientToken, so that a create retried after a lost reply returns the
/// first ENI instead of making a second one.
fn client_token() -> String {
    format!(
        "vpc-cni-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

impl Ec2 for AwsEc2 {
    fn instance_limits(&self, instance_type: &str) -> CloudFuture<'_, InstanceLimits> {
        let instance_type = instance_type.to_string();
        Box::pin(async move {
            if let Some(limits) = self.cached_limits(&instance_type) {
                return Ok(limits);
            }
            // Two first callers may both ask; both get the same answer, and
            // it happens once per type per process.
            let limits = self.describe_instance_type(&instance_type).await?;
            self.limits
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(instance_type, limits);
            Ok(limits)
        })
    }

    fn create_eni(&self, eni: NewEni) -> CloudFuture<'_, EniInfo> {
        Box::pin(async move {
            const ACTION: &str = "CreateNetworkInterface";
            let token = client_token();
            let tags = (!eni.tags.is_empty()).then(|| {
                vec![TagSpecification::builder()
                    .resource_type(ResourceType::NetworkInterface)
                    .set_tags(Some(tag_list(&eni.tags)))
                    .build()]
            });
            let out = self
                .call(ACTION, |c| {
                    c.create_network_interface()
                        .subnet_id(eni.subnet_id.as_str())
                        .set_description(
                            (!eni.description.is_empty()).then(|| eni.description.clone()),
                        )
                        .set_groups(non_empty(&eni.security_groups))
                        .set_secondary_private_ip_address_count(count_param(eni.secondary_count))
                        .set_ipv4_prefix_count(count_param(eni.prefix_count))
                        .set_tag_specifications(tags.clone())
                        .client_token(&token)
                        .send()
                })
                .await?;
            let ni = out
                .network_interface()
                .ok_or_else(|| CloudError::malformed(ACTION, "reply without networkInterface"))?;
            eni_info(ACTION, ni)
        })
    }

    fn attach_eni<'a>(
        &'a self,
        eni_id: &'a EniId,
        instance_id: &'a str,
        device_index: u32,
    ) -> CloudFuture<'a, String> {
        Box::pin(async move {
            const ATTACH: &str = "AttachNetworkInterface";
            let index = i32::try_from(device_index).map_err(|_| CloudError::Fatal {
                action: ATTACH.to_string(),
                code: "InvalidParameterValue".to_string(),
                message: format!("device index {device_index} is out of range"),
            })?;
            let out = self
                .call(ATTACH, |c| {
                    c.attach_network_interface()
                        .network_interface_id(eni_id.as_str())
                        .instance_id(instance_id)
                        .device_index(index)
                        .send()
                })
                .await?;
            let attachment_id = out
                .attachment_id()
                .ok_or_else(|| CloudError::malformed(ATTACH, "reply without attachmentId"))?
                .to_string();
            // Without this an ENI outlives its instance as a leak; if it
            // fails the ENI stays attached and the error says so, and the
            // caller's reconcile finds it through describe_enis.
            let changes = NetworkInterfaceAttachmentChanges::builder()
                .attachment_id(&attachment_id)
                .delete_on_termination(true)
                .build();
            self.call("ModifyNetworkInterfaceAttribute", |c| {
                c.modify_network_interface_attribute()
                    .network_interface_id(eni_id.as_str())
                    .attachment(changes.clone())
                    .send()
            })
            .await?;
            Ok(attachment_id)
        })
    }

    fn assign<'a>(&'a self, eni_id: &'a EniId, what: Assign) -> CloudFuture<'a, AssignedIps> {
        Box::pin(async move {
            const ACTION: &str = "AssignPrivateIpAddresses";
            let (Assign::Addresses(count) | Assign::Prefixes(count)) = what;
            let Some(count) = count_param(count) else {
                return Ok(AssignedIps::default());
            };
            let out = self
                .call(ACTION, |c| {
                    let request = c
                        .assign_private_ip_addresses()
                        .network_interface_id(eni_id.as_str());
                    match what {
                        Assign::Addresses(_) => request.secondary_private_ip_address_count(count),
                        Assign::Prefixes(_) => request.ipv4_prefix_count(count),
                    }
                    .send()
                })
                .await?;
            let addresses = out.assigned_private_ip_addresses().iter();
            let prefixes = out.assigned_ipv4_prefixes().iter();
            Ok(AssignedIps {
                addresses: parse_all(ACTION, addresses.filter_map(|a| a.private_ip_address()))?,
                prefixes: parse_all(ACTION, prefixes.filter_map(|p| p.ipv4_prefix()))?,
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
            if addresses.is_empty() && prefixes.is_empty() {
                return Ok(());
            }
            let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            let prefixes: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
            self.call("UnassignPrivateIpAddresses", |c| {
                c.unassign_private_ip_addresses()
                    .network_interface_id(eni_id.as_str())
                    .set_private_ip_addresses(non_empty(&addresses))
                    .set_ipv4_prefixes(non_empty(&prefixes))
                    .send()
            })
            .await?;
            Ok(())
        })
    }

    fn detach_eni<'a>(&'a self, attachment_id: &'a str) -> CloudFuture<'a, ()> {
        Box::pin(
            self.call("DetachNetworkInterface", move |c| {
                c.detach_network_interface()
                    .attachment_id(attachment_id)
                    .send()
            })
            .map_ok(drop),
        )
    }

    fn delete_eni<'a>(&'a self, eni_id: &'a EniId) -> CloudFuture<'a, ()> {
        let eni = eni_id.as_str();
        Box::pin(
            self.call("DeleteNetworkInterface", move |c| {
                c.delete_network_interface()
                    .network_interface_id(eni)
                    .send()
            })
            .map_ok(drop),
        )
    }

    fn describe_enis(&self, query: EniQuery) -> CloudFuture<'_, Vec<EniInfo>> {
        Box::pin(self.describe_pages(query))
    }

    fn create_tags<'a>(
        &'a self,
        enis: &'a [EniId],
        tags: &'a BTreeMap<String, String>,
    ) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            if enis.is_empty() || tags.is_empty() {
                return Ok(());
            }
            let resource_ids: Vec<String> = enis.iter().map(|id| id.as_str().to_owned()).collect();
            let tags = tag_list(tags);
            self.call("CreateTags", |c| {
                c.create_tags()
                    .set_resources(Some(resource_ids.clone()))
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await?;
            Ok(())
        })
    }

    fn set_security_groups<'a>(
        &'a self,
        eni_id: &'a EniId,
        groups: &'a [String],
    ) -> CloudFuture<'a, ()> {
        Box::pin(async move {
            self.call("ModifyNetworkInterfaceAttribute", |c| {
                c.modify_network_interface_attribute()
                    .network_interface_id(eni_id.as_str())
                    .set_groups(Some(groups.to_vec()))
                    .send()
            })
            .await?;
            Ok(())
        })
    }

    fn describe_subnets<'a>(
        &'a self,
        vpc_id: &'a str,
        availability_zone: &'a str,
    ) -> CloudFuture<'a, Vec<SubnetInfo>> {
        Box::pin(self.describe_subnet_pages(vpc_id, availability_zone))
    }
}
