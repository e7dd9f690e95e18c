//! An HTTP client for the AWS SDK that answers from a function instead of the network, so
//! properties can hand the EC2 and IMDS clients any reply, thousands of times a second.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region, SharedCredentialsProvider};

use crate::aws::AwsEc2;
use crate::retry::RetryPolicy;

/// What the fake server answers: a status and a body.
pub type Answer = (u16, Vec<u8>);

/// One request as the fake server sees it.
pub struct Seen<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The EC2 Query API's `Action` parameter of a form-encoded body, if any.
    pub action: Option<String>,
}

type Respond = dyn Fn(&Seen<'_>) -> Answer + Send + Sync;

/// Answers each request with `respond(method, path)`, and counts the requests (and records
/// the EC2 actions they named).
#[derive(Clone)]
pub struct FakeHttp {
    respond: Arc<Respond>,
    requests: Arc<AtomicUsize>,
    actions: Arc<Mutex<Vec<String>>>,
    /// Hands out IMDSv2 session tokens itself (they are not the input under test).
    imds_tokens: bool,
    max_requests: usize,
}

impl fmt::Debug for FakeHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeHttp")
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

impl FakeHttp {
    pub fn new(respond: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> Self {
        Self::seeing(move |seen| respond(seen.method, seen.path))
    }

    /// Answers each request with `respond(seen)`, which sees the EC2 action too.
    pub fn seeing(respond: impl Fn(&Seen<'_>) -> Answer + Send + Sync + 'static) -> Self {
        Self {
            respond: Arc::new(respond),
            requests: Arc::new(AtomicUsize::new(0)),
            actions: Arc::new(Mutex::new(Vec::new())),
            imds_tokens: false,
            max_requests: MAX_REQUESTS,
        }
    }

    /// An IMDS: session tokens are handed out, reads answered by `respond(path)`. A listing
    /// of many lines legitimately costs a read per line, so the bound is higher.
    pub fn imds(respond: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Self {
        Self {
            imds_tokens: true,
            max_requests: 1_000,
            ..Self::new(move |_, path| respond(path))
        }
    }

    /// Every request gets the same answer.
    pub fn always(answer: Answer) -> Self {
        Self::new(move |_, _| answer.clone())
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// The EC2 actions of the requests so far, in order.
    pub fn actions(&self) -> Vec<String> {
        self.actions.lock().expect("actions lock").clone()
    }
}

/// More requests than any one EC2 call of ours makes: past it the client is looping (a reply it
/// keeps asking again for), which fails the case rather than hanging the suite (the fake's
/// futures are always ready, so no timer would ever get to fire).
pub const MAX_REQUESTS: usize = 50;

impl HttpConnector for FakeHttp {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let made = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(
            made <= self.max_requests,
            "{made} requests for one call: the client loops on this reply"
        );
        let path = request
            .uri()
            .split_once("://")
            .map_or(request.uri(), |(_, rest)| {
                rest.find('/').map_or("/", |at| &rest[at..])
            })
            .to_owned();
        if self.imds_tokens && request.method() == "PUT" && path == "/latest/api/token" {
            let mut response = HttpResponse::new(
                StatusCode::try_from(200).expect("200 is a status"),
                SdkBody::from("prop-token"),
            );
            response
                .headers_mut()
                .insert("x-aws-ec2-metadata-token-ttl-seconds", "21600");
            return HttpConnectorFuture::ready(Ok(response));
        }
        let action = request.body().bytes().and_then(query_action);
        if let Some(action) = &action {
            self.actions
                .lock()
                .expect("actions lock")
                .push(action.clone());
        }
        let seen = Seen {
            method: request.method(),
            path: &path,
            action,
        };
        let (status, body) = (self.respond)(&seen);
        let response = StatusCode::try_from(status)
            .map(|status| HttpResponse::new(status, SdkBody::from(body)))
            .map_err(|e| ConnectorError::other(e.into(), None));
        HttpConnectorFuture::ready(response)
    }
}

impl HttpClient for FakeHttp {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// The `Action` of a form-encoded EC2 Query API body.
fn query_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

/// A client whose every request `http` answers; one attempt per call, no token bucket.
pub fn ec2_client(http: FakeHttp) -> AwsEc2 {
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDFAKE", "secret", None, None, "fake",
        )))
        .endpoint_url("http://ec2.fake.invalid")
        .http_client(http)
        .build();
    AwsEc2::from_sdk_config(&config, 0.0, 1).with_retry_policy(RetryPolicy {
        max_attempts: 1,
        base: Duration::ZERO,
        cap: Duration::ZERO,
    })
}
