//! Settings of the EC2 client under the AWS VPC CNI's names: its endpoint and the bound on one
//! HTTP attempt. Credentials and region come from the SDK's standard chain.

use std::time::Duration;

use clap::Args;
use vpc_cni_cloud::Ec2Options;

use super::parse::{parse_duration, parse_endpoint};

#[derive(Debug, Clone, Args)]
pub struct Ec2ClientSettings {
    /// EC2 endpoint URL (e.g. a VPC endpoint); wins over the SDK's `AWS_ENDPOINT_URL_EC2`.
    #[arg(long, env = "AWS_EC2_ENDPOINT", value_name = "AWS_EC2_ENDPOINT",
          value_parser = parse_endpoint)]
    pub ec2_endpoint: Option<String>,

    /// Bound on one EC2 HTTP attempt (each retry gets a fresh one); unset: the SDK
    /// configuration's, else 10 s.
    #[arg(long, env = "HTTP_TIMEOUT", value_name = "HTTP_TIMEOUT", value_parser = parse_duration)]
    pub http_timeout: Option<Duration>,
}

impl Ec2ClientSettings {
    /// The client's options, with the token bucket's figures.
    #[must_use]
    pub fn options(&self, qps: f64, burst: u32) -> Ec2Options {
        Ec2Options {
            qps,
            burst,
            endpoint: self.ec2_endpoint.clone(),
            attempt_timeout: self.http_timeout,
        }
    }
}
