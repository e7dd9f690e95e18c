//! Every EC2 request ipamd sends, counted where the cloud seam sends it (one report per
//! attempt, retries included, so the counts match what EC2 sees): the AWS VPC CNI's request,
//! error and latency series, and our token-bucket waits.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use vpc_cni_cloud::{Attempt, CallObserver};

use super::kinds::PlainCounter;
use super::{seconds, FnLabels};

/// `awscni_aws_api_latency_ms`'s labels: the action, whether it failed (`"true"`/`"false"`, as
/// Go prints a bool) and the HTTP status EC2 answered (empty without an answer).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    api: String,
    error: String,
    status: String,
}

/// `awscni_aws_api_error_count`'s labels: the action and EC2's error code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiErrorLabels {
    api: String,
    error: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
    ])
}

/// The EC2 series; the AWS client of the VPC mode reports to it.
#[derive(Debug)]
pub struct Ec2Metrics {
    latency_ms: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    api_errors: Family<ApiErrorLabels, PlainCounter>,
    requests: Family<FnLabels, PlainCounter>,
    request_errors: Family<FnLabels, PlainCounter>,
    token_wait: Histogram,
}

impl Ec2Metrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            latency_ms: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            api_errors: Family::default(),
            requests: Family::default(),
            request_errors: Family::default(),
            token_wait: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        };
        // The AWS VPC CNI exposes a summary without quantiles (only _sum and _count);
        // prometheus-client has no summary, and a histogram of the same name and labels
        // exposes the same _sum and _count series, plus buckets.
        registry.register(
            "awscni_aws_api_latency_ms",
            "AWS API call latency in ms",
            m.latency_ms.clone(),
        );
        registry.register(
            "awscni_aws_api_error_count",
            "The number of times AWS API returns an error",
            m.api_errors.clone(),
        );
        registry.register(
            "awscni_ec2api_req_count",
            "The number of requests made to EC2 APIs by CNI",
            m.requests.clone(),
        );
        registry.register(
            "awscni_ec2api_error_count",
            "The number of failed EC2 APIs requests",
            m.request_errors.clone(),
        );
        registry.register(
            "vpc_cni_ec2_token_wait_seconds",
            "How long EC2 requests waited for the node's token bucket (EC2_API_QPS, \
             EC2_API_BURST), for those that had to wait",
            m.token_wait.clone(),
        );
        m
    }
}

impl CallObserver for Ec2Metrics {
    fn attempt(&self, action: &'static str, outcome: Attempt<'_>, took: Duration) {
        let labels = FnLabels {
            r#fn: action.to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
        if outcome.failed() {
            self.request_errors.get_or_create(&labels).inc();
        }
        if let Some(code) = outcome.code() {
            self.api_errors
                .get_or_create(&ApiErrorLabels {
                    api: action.to_owned(),
                    error: code.to_owned(),
                })
                .inc();
        }
        self.latency_ms
            .get_or_create(&LatencyLabels {
                api: action.to_owned(),
                error: outcome.failed().to_string(),
                status: outcome.status().map(|s| s.to_string()).unwrap_or_default(),
            })
            .observe(seconds(took) * 1_000.0);
    }

    fn token_wait(&self, _action: &'static str, waited: Duration) {
        self.token_wait.observe(seconds(waited));
    }
}
