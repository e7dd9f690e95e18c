//! An HTTP client for the AWS SDK that answers from a function instead of the network, so
//! properties can hand the EC2 and IMDS clients any reply, thousands of times a second.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// What the fake server answers: a status and a body.
pub type Answer = (u16, Vec<u8>);

type Respond = dyn Fn(&str, &str) -> Answer + Send + Sync;

/// Answers each request with `respond(method, path)`, and counts the requests.
#[derive(Clone)]
pub struct FakeHttp {
    respond: Arc<Respond>,
    requests: Arc<AtomicUsize>,
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
        Self {
            respond: Arc::new(respond),
            requests: Arc::new(AtomicUsize::new(0)),
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
        let (status, body) = (self.respond)(request.method(), &path);
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
