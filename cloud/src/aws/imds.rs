//! `Imds` over aws-config's IMDS client, which speaks IMDSv2 only (it
//! fetches a session token before every read and has no v1 fallback) and
//! retries 5xx and token expiry itself. The node's identity and its
//! attached ENIs, read path by path.

use std::net::Ipv4Addr;
use std::time::Duration;

use aws_config::imds::client::error::ImdsError;
use aws_config::imds::Client;
use aws_sdk_ec2::error::DisplayErrorContext;
use vpc_cni_proto::net::{Ipv4Cidr, MacAddr};

use crate::api::{CloudFuture, CloudResult, EniId, Imds, ImdsEni, NodeIdentity, SubnetId};
use crate::error::CloudError;

const PREFIX: &str = "/latest/meta-data/";

/// The instance metadata service of this node.
#[derive(Debug, Clone)]
pub struct AwsImds {
    client: Client,
    /// Set when built for an explicit endpoint, so `probe` asks the same one.
    endpoint: Option<String>,
}

impl Default for AwsImds {
    fn default() -> Self {
        Self::new()
    }
}

impl AwsImds {
    /// The standard endpoint: `AWS_EC2_METADATA_SERVICE_ENDPOINT` (or the
    /// profile's) when set, else 169.254.169.254.
    #[must_use]
    pub fn new() -> Self {
        Self {
            client: Client::builder().build(),
            endpoint: None,
        }
    }

    /// An explicit endpoint such as `http://127.0.0.1:8111`.
    pub fn with_endpoint(url: &str) -> CloudResult<Self> {
        let client = Client::builder()
            .endpoint(url)
            .map_err(|e| CloudError::Fatal {
                action: "IMDS".to_string(),
                code: "InvalidEndpoint".to_string(),
                message: format!("{url:?}: {e}"),
            })?
            .build();
        Ok(Self {
            client,
            endpoint: Some(url.to_string()),
        })
    }

    /// A client built elsewhere (the property tests' fake IMDS).
    #[cfg(test)]
    pub(super) fn from_client(client: Client) -> Self {
        Self {
            client,
            endpoint: None,
        }
    }

    /// Whether IMDS hands out a token and answers a read within `timeout`,
    /// one attempt, no retries: how `VPC_CNI_MODE=auto` tells an EC2
    /// instance from anything else.
    pub async fn probe(&self, timeout: Duration) -> bool {
        let builder = Client::builder()
            .max_attempts(1)
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .operation_attempt_timeout(timeout)
            .operation_timeout(timeout);
        let builder = match &self.endpoint {
            Some(url) => match builder.endpoint(url) {
                Ok(b) => b,
                Err(_) => return false,
            },
            None => builder,
        };
        let client = builder.build();
        // The outer bound covers the token request and the read together.
        let read = client.get(format!("{PREFIX}instance-id"));
        matches!(tokio::time::timeout(timeout, read).await, Ok(Ok(_)))
    }

    async fn get(&self, path: &str) -> CloudResult<String> {
        match self.client.get(format!("{PREFIX}{path}")).await {
            Ok(v) => Ok(v.as_ref().trim().to_string()),
            Err(e) => Err(imds_error(path, &e)),
        }
    }

    /// A path that may legitimately be absent (404), such as `ipv4-prefix`
    /// on an ENI without prefixes.
    async fn get_optional(&self, path: &str) -> CloudResult<Option<String>> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(CloudError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_lines(&self, path: &str) -> CloudResult<Vec<String>> {
        Ok(lines(&self.get(path).await?))
    }

    /// One value parsed as `T`; a value that does not parse is `BadMetadata` naming the path.
    async fn get_parsed<T: std::str::FromStr>(&self, path: &str) -> CloudResult<T>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.get(path).await?;
        CloudError::parse_metadata(path, &value)
    }

    async fn eni(&self, mac: &str) -> CloudResult<ImdsEni> {
        let base = format!("network/interfaces/macs/{mac}");
        // The listing is IMDS's answer too: parse the MAC before it goes into a path, as
        // aws-config's client panics on a path that is not a valid URI ("a b", "é").
        let parsed_mac = CloudError::parse_metadata(&base, mac)?;
        let prefixes_path = format!("{base}/ipv4-prefix");
        let prefixes = self.get_optional(&prefixes_path).await?.unwrap_or_default();
        let cidrs_path = format!("{base}/vpc-ipv4-cidr-blocks");
        let addresses_path = format!("{base}/local-ipv4s");
        Ok(ImdsEni {
            mac: parsed_mac,
            eni_id: EniId::new(self.get(&format!("{base}/interface-id")).await?),
            device_number: self.get_parsed(&format!("{base}/device-number")).await?,
            subnet_id: SubnetId::new(self.get(&format!("{base}/subnet-id")).await?),
            vpc_id: self.get(&format!("{base}/vpc-id")).await?,
            security_groups: self
                .get_lines(&format!("{base}/security-group-ids"))
                .await?,
            subnet_cidr: self
                .get_parsed(&format!("{base}/subnet-ipv4-cidr-block"))
                .await?,
            vpc_cidrs: parse_lines(&cidrs_path, &self.get(&cidrs_path).await?)?,
            addresses: parse_lines(&addresses_path, &self.get(&addresses_path).await?)?,
            prefixes: parse_lines::<Ipv4Cidr>(&prefixes_path, &prefixes)?,
        })
    }
}

/// Every line of a value read from `path`, parsed as `T`.
pub(super) fn parse_lines<T: std::str::FromStr>(path: &str, value: &str) -> CloudResult<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    lines(value)
        .iter()
        .map(|line| CloudError::parse_metadata(path, line))
        .collect()
}

pub(super) fn lines(value: &str) -> Vec<String> {
    value
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// 404 is `NotFound` (the path does not exist, or no longer: an ENI
/// detached while being read); 5xx, 429 and I/O are transient; a refused
/// token (IMDSv2 disabled, hop limit too low) and other 4xx are fatal.
fn imds_error(path: &str, err: &ImdsError) -> CloudError {
    let action = format!("IMDS GET {PREFIX}{path}");
    let message = DisplayErrorContext(err).to_string();
    match err {
        ImdsError::ErrorResponse(r) => {
            let status = r.response().status();
            let code = format!("HTTP {}", status.as_u16());
            match status.as_u16() {
                404 => CloudError::NotFound {
                    action,
                    code,
                    message,
                },
                429 => CloudError::Transient { action, message },
                _ if status.is_server_error() => CloudError::Transient { action, message },
                _ => CloudError::Fatal {
                    action,
                    code,
                    message,
                },
            }
        }
        ImdsError::FailedToLoadToken(t) if !t.is_dispatch_failure() => CloudError::Fatal {
            action,
            code: "TokenRefused".to_string(),
            message,
        },
        _ => CloudError::Transient { action, message },
    }
}

impl Imds for AwsImds {
    fn identity(&self) -> CloudFuture<'_, NodeIdentity> {
        Box::pin(async move {
            Ok(NodeIdentity {
                instance_id: self.get("instance-id").await?,
                instance_type: self.get("instance-type").await?,
                region: self.get("placement/region").await?,
                availability_zone: self.get("placement/availability-zone").await?,
                primary_mac: self.get_parsed::<MacAddr>("mac").await?,
                local_ipv4: self.get_parsed::<Ipv4Addr>("local-ipv4").await?,
            })
        })
    }

    fn enis(&self) -> CloudFuture<'_, Vec<ImdsEni>> {
        Box::pin(async move {
            let macs = self.get_lines("network/interfaces/macs/").await?;
            let mut enis = Vec::new();
            for mac in macs {
                let mac = mac.trim_end_matches('/');
                match self.eni(mac).await {
                    Ok(eni) => enis.push(eni),
                    // Listed, then detached before we read it all: it is
                    // gone, which the next read shows consistently.
                    Err(CloudError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            enis.sort_by_key(|e| e.device_number);
            Ok(enis)
        })
    }
}
