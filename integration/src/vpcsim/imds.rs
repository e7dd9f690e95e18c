//! IMDSv2 over the sim: `PUT /latest/api/token` for a session token, then
//! GETs that carry it. Version 1 (token-less) reads are refused, as on an
//! instance configured with `HttpTokens=required`.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::net::TcpListener;
use vpc_cni_cloud::sim::SimVpc;

use super::http::{self, HttpRequest, Reply};
use super::imds_tree::lookup;
use super::stamp::token;

pub const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MAX_TTL_SECS: u64 = 21_600;
const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// How an IMDS server decides which instance is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImdsResolver {
    /// Every caller is this instance: one loopback listener per instance,
    /// for tests and hand use without root.
    Fixed(String),
    /// The caller's source address names the instance (the fabric's
    /// 169.254.169.254, reached from each node namespace).
    BySourceIp,
}

/// Tokens issued by one server: token -> (instance it was issued to, expiry).
#[derive(Debug, Default, Clone)]
struct Tokens {
    inner: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl Tokens {
    fn issue(&self, instance: &str, ttl: Duration) -> String {
        let t = token(56, TOKEN_CHARS);
        let now = Instant::now();
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Expired tokens are dropped here so the map stays as small as the
        // set of live sessions.
        map.retain(|_, (_, exp)| *exp > now);
        map.insert(t.clone(), (instance.to_string(), now + ttl));
        t
    }

    fn valid(&self, token: &str, instance: &str) -> bool {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(token)
            .is_some_and(|(owner, exp)| owner == instance && *exp > Instant::now())
    }
}

/// Serves IMDS on `listener` until `shutdown` completes.
pub async fn serve_imds(
    sim: SimVpc,
    listener: TcpListener,
    resolver: ImdsResolver,
    shutdown: impl Future<Output = ()> + Send,
) {
    let tokens = Tokens::default();
    http::serve(listener, shutdown, move |req| {
        let reply = handle(&sim, &resolver, &tokens, &req);
        async move { reply }
    })
    .await;
}

fn handle(sim: &SimVpc, resolver: &ImdsResolver, tokens: &Tokens, req: &HttpRequest) -> Reply {
    let instance = match resolver {
        ImdsResolver::Fixed(id) => Some(id.clone()),
        ImdsResolver::BySourceIp => match req.peer.ip() {
            IpAddr::V4(ip) => sim.instance_by_private_ip(ip),
            IpAddr::V6(ip) => ip
                .to_ipv4_mapped()
                .and_then(|ip| sim.instance_by_private_ip(ip)),
        },
    };
    let Some(instance) = instance else {
        return http::text(404, format!("no instance owns {}", req.peer.ip()));
    };
    if req.path == "/latest/api/token" {
        if req.method != Method::PUT {
            return http::text(405, "Method Not Allowed");
        }
        // IMDS refuses proxied token requests so a misconfigured proxy cannot
        // leak sessions.
        if req.header("x-forwarded-for").is_some() {
            return http::text(403, "Forbidden");
        }
        let ttl = req
            .header(TTL_HEADER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|t| (1..=MAX_TTL_SECS).contains(t));
        let Some(ttl) = ttl else {
            return http::text(400, "Bad Request");
        };
        let t = tokens.issue(&instance, Duration::from_secs(ttl));
        let mut reply = http::text(200, t);
        if let Ok(v) = ttl.to_string().parse() {
            reply.headers_mut().insert(TTL_HEADER, v);
        }
        return reply;
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        return http::text(405, "Method Not Allowed");
    }
    let authorized = req
        .header(TOKEN_HEADER)
        .is_some_and(|t| tokens.valid(t, &instance));
    if !authorized {
        return http::text(401, "Unauthorized");
    }
    let Some(rest) = req
        .path
        .strip_prefix("/latest")
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        return http::text(404, "Not Found");
    };
    let Some(view) = sim.imds_instance(&instance) else {
        return http::text(404, "Not Found");
    };
    match lookup(&view, rest) {
        Some(node) => http::text(200, node.body()),
        None => http::text(404, "Not Found"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_instance_and_expire() {
        let tokens = Tokens::default();
        let t = tokens.issue("i-1", Duration::from_secs(60));
        assert!(tokens.valid(&t, "i-1"));
        assert!(!tokens.valid(&t, "i-2"));
        assert!(!tokens.valid("forged", "i-1"));
        let gone = tokens.issue("i-1", Duration::ZERO);
        assert!(!tokens.valid(&gone, "i-1"));
    }
}
