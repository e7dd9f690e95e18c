//! The HTTP/1.1 plumbing the three vpc-sim servers share: an accept loop that
//! stops on a shutdown future, and requests handed to handlers with their
//! body already read.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Bigger than any EC2 request this project sends; keeps a runaway client
/// from filling memory.
const MAX_BODY: usize = 1 << 20;

pub type Reply = Response<Full<Bytes>>;

/// One request, read whole.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: SocketAddr,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A reply with a status, a content type and a body.
pub fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

pub fn text(status: u16, body: impl Into<String>) -> Reply {
    reply(status, "text/plain", body.into())
}

pub fn json(status: u16, value: &serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

/// Serves `handler` on `listener` until `shutdown` completes; open
/// connections are dropped then.
pub async fn serve<H, Fut>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    handler: H,
) where
    H: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let handler = Arc::new(handler);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    eprintln!("vpc-sim: accept on {:?}: {e}", listener.local_addr().ok());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handler = Arc::clone(&handler);
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = Arc::clone(&handler);
                async move {
                    let resp = match read_request(req, peer).await {
                        Ok(req) => handler(req).await,
                        Err(msg) => text(400, msg),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            // A client hanging up mid-request is its business, not ours.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn read_request(req: Request<Incoming>, peer: SocketAddr) -> Result<HttpRequest, String> {
    let (parts, body) = req.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the request body: {e}"))?
        .to_bytes();
    Ok(HttpRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        peer,
    })
}
