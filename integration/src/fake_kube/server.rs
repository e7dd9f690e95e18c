//! The HTTP side of the fake API server: the requests kube's client and
//! watcher send for Nodes, and core/v1 Events (create, list), answered from [`KubeApi`]; watches stream events
//! as newline-delimited JSON until their timeout or shutdown.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use super::api::{Call, KubeApi, Refused};

/// Bigger than any patch ipamd sends.
const MAX_BODY: usize = 1 << 20;
/// The API server's default watch timeout, as kube asks for it.
const DEFAULT_WATCH_SECONDS: u64 = 290;
const NODES: &str = "/api/v1/nodes";
/// How long open connections get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// What the handlers need: the state, the token to expect, and the signal
/// that ends every open watch.
pub(super) struct Server {
    pub api: KubeApi,
    pub token: String,
    pub shutdown: watch::Receiver<bool>,
}

/// Accepts connections until shutdown, then lets open ones finish their
/// response (watches end at shutdown) before returning.
pub(super) async fn serve(listener: TcpListener, server: Server) {
    let server = Arc::new(server);
    let mut shutdown = server.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        // Reap finished connections so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: back off, do not spin.
                    eprintln!("fake kube API: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let server = Arc::clone(&server);
        conns.spawn(async move {
            let mut shutdown = server.shutdown.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let server = Arc::clone(&server);
                async move { Ok::<_, Infallible>(server.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            // A client hanging up mid-watch is normal (ipamd stopped).
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped(&mut shutdown) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    // Bounded: a client that never reads its last bytes must not hold up
    // the test's drop; the runtime's end cuts such connections.
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
}

impl Server {
    async fn handle(&self, req: Request<Incoming>) -> Reply {
        let (parts, body) = req.into_parts();
        let uri = parts.uri.to_string();
        let query = query_pairs(parts.uri.query());
        let path = parts.uri.path();
        let authorized = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", self.token));
        let call = classify(&parts.method, path, &query);
        let (call, reply) = if authorized {
            let body = match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    let reply = status(400, "BadRequest", &format!("reading the body: {e}"));
                    return self.done(Call::Other, &parts.method, &uri, reply);
                }
            };
            let content_type = parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let reply = self.route(&call, &query, content_type, &body);
            (call, reply)
        } else {
            let reply = status(401, "Unauthorized", "Unauthorized");
            (Call::Other, reply)
        };
        self.done(call, &parts.method, &uri, reply)
    }

    fn done(&self, call: Call, method: &Method, uri: &str, reply: Reply) -> Reply {
        self.api.record(
            call,
            format!("{method} {uri} -> {}", reply.status().as_u16()),
        );
        reply
    }

    fn route(
        &self,
        call: &Call,
        query: &[(String, String)],
        content_type: &str,
        body: &[u8],
    ) -> Reply {
        match call {
            Call::List => {
                let (version, items) = self.api.list();
                json_reply(
                    200,
                    &json!({
                        "kind": "NodeList",
                        "apiVersion": "v1",
                        "metadata": { "resourceVersion": version.to_string() },
                        "items": items,
                    }),
                )
            }
            Call::Watch => self.watch(query),
            Call::Get(name) => match self.api.node(name) {
                Some(node) => json_reply(200, &node),
                None => not_found(name),
            },
            Call::Patch(name) => self.patch(name, content_type, body),
            Call::CreateEvent(ns) => self.create_event(ns, body),
            Call::ListEvents(ns) => json_reply(
                200,
                &json!({
                    "kind": "EventList",
                    "apiVersion": "v1",
                    "metadata": { "resourceVersion": self.api.events_version().to_string() },
                    "items": self.api.events(ns.as_deref()),
                }),
            ),
            Call::Other => status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        }
    }

    fn create_event(&self, namespace: &str, body: &[u8]) -> Reply {
        let event: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => return status(400, "BadRequest", &format!("not a JSON object: {other}")),
            Err(e) => return status(400, "BadRequest", &format!("invalid JSON: {e}")),
        };
        match self.api.create_event(namespace, event) {
            Ok(stored) => json_reply(201, &stored),
            Err(Refused::Mismatch(why)) => status(400, "BadRequest", &why),
            Err(Refused::Exists(name)) => status(
                409,
                "AlreadyExists",
                &format!("events \"{name}\" already exists"),
            ),
            Err(Refused::Invalid(why)) => {
                status(422, "Invalid", &format!("Event is invalid: {why}"))
            }
            Err(Refused::NotFound | Refused::Conflict) => {
                status(500, "InternalError", "unexpected refusal")
            }
        }
    }

    fn patch(&self, name: &str, content_type: &str, body: &[u8]) -> Reply {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media != "application/merge-patch+json" {
            return status(
                415,
                "UnsupportedMediaType",
                &format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (got {media:?})"),
            );
        }
        let patch: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => return status(400, "BadRequest", &format!("not a JSON object: {other}")),
            Err(e) => return status(400, "BadRequest", &format!("invalid JSON: {e}")),
        };
        match self.api.client_patch(name, &patch) {
            Ok(node) => json_reply(200, &node),
            Err(Refused::NotFound) => not_found(name),
            Err(Refused::Conflict) => status(
                409,
                "Conflict",
                &format!("Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
            ),
            Err(Refused::Invalid(why)) => status(422, "Invalid", &why),
            Err(Refused::Mismatch(why) | Refused::Exists(why)) => status(400, "BadRequest", &why),
        }
    }

    /// Streams events after the requested version, then live ones, until
    /// the watch's timeout or shutdown; the client re-watches from the last
    /// version it saw, as against a real API server.
    fn watch(&self, query: &[(String, String)]) -> Reply {
        let get = |key: &str| {
            query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let from = match get("resourceVersion").filter(|v| !v.is_empty()) {
            None => 0,
            Some(text) => match text.parse::<u64>() {
                Ok(v) => v,
                Err(_) => {
                    return status(
                        400,
                        "BadRequest",
                        &format!("invalid resourceVersion {text:?}"),
                    )
                }
            },
        };
        let seconds = get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_WATCH_SECONDS);
        let (backlog, live) = self.api.subscribe(from);
        let (tx, rx) = mpsc::channel(64);
        let guard = self.api.watch_opened();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _open = guard;
            stream_events(
                backlog,
                live,
                from,
                tx,
                Duration::from_secs(seconds),
                shutdown,
            )
            .await;
        });
        let mut reply = Response::new(WatchBody(rx).boxed());
        reply.headers_mut().insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        reply
    }
}

async fn stream_events(
    backlog: Vec<super::api::WatchEvent>,
    mut live: broadcast::Receiver<super::api::WatchEvent>,
    from: u64,
    tx: mpsc::Sender<Bytes>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = from;
    for event in backlog {
        last = last.max(event.version);
        if tx.send(Bytes::from(event.line())).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        let event = tokio::select! {
            () = &mut deadline => return,
            () = stopped(&mut shutdown) => return,
            event = live.recv() => event,
        };
        match event {
            // Already sent from the backlog.
            Ok(event) if event.version <= last => {}
            Ok(event) => {
                last = event.version;
                if tx.send(Bytes::from(event.line())).await.is_err() {
                    return;
                }
            }
            // Fell behind or closing: end the watch; the client resumes
            // from `last` and gets the rest from the history.
            Err(_) => return,
        }
    }
}

/// A response body fed by a channel; it ends when the sender goes.
struct WatchBody(mpsc::Receiver<Bytes>);

impl Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Resolves once shutdown is signalled (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn classify(method: &Method, path: &str, query: &[(String, String)]) -> Call {
    let watching = query
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    if path == NODES && method == Method::GET {
        return if watching { Call::Watch } else { Call::List };
    }
    if path == "/api/v1/events" && method == Method::GET {
        return Call::ListEvents(None);
    }
    if let Some(ns) = path
        .strip_prefix("/api/v1/namespaces/")
        .and_then(|rest| rest.strip_suffix("/events"))
        .filter(|ns| !ns.is_empty() && !ns.contains('/'))
    {
        match *method {
            Method::POST => return Call::CreateEvent(ns.to_owned()),
            Method::GET if !watching => return Call::ListEvents(Some(ns.to_owned())),
            _ => return Call::Other,
        }
    }
    let name = path
        .strip_prefix(NODES)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|name| !name.is_empty() && !name.contains('/'));
    match (name, method) {
        (Some(name), &Method::GET) => Call::Get(name.to_string()),
        (Some(name), &Method::PATCH) => Call::Patch(name.to_string()),
        _ => Call::Other,
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn json_reply(code: u16, body: &Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *reply.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    reply
}

/// A `Status` object, as the API server answers every failure.
fn status(code: u16, reason: &str, message: &str) -> Reply {
    json_reply(code, &status_object(code, reason, message))
}

fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn not_found(name: &str) -> Reply {
    let mut body = status_object(404, "NotFound", &format!("nodes \"{name}\" not found"));
    body["details"] = json!({ "name": name, "kind": "nodes" });
    json_reply(404, &body)
}
