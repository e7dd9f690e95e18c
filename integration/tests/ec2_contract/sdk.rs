//! The real aws-sdk-ec2 client as ipamd will build it, pointed at a test
//! endpoint through the standard endpoint override.

use std::time::Duration;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::error::ProvideErrorMetadata;

/// A client with test credentials and fast retries (tests must not wait
/// EC2-sized backoffs, but must retry like the real thing).
pub fn ec2_client(endpoint: &str, max_attempts: u32) -> aws_sdk_ec2::Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .retry_config(
            aws_sdk_ec2::config::retry::RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// The EC2 error code of a failed call ("" when it failed without one).
pub fn code_of<E: ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or_default().to_string()
}
