//! The admin API: JSON over HTTP to build a world (VPCs, subnets, instances),
//! inspect it, reset it and set faults. Not part of EC2, never throttled.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hyper::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vpc_cni_cloud::sim::{Faults, SimError, SimVpc};

use super::http::{self, HttpRequest};
use super::imds::{serve_imds, ImdsResolver};

/// How the admin server treats instances it creates.
#[derive(Debug, Clone, Default)]
pub struct AdminOptions {
    /// Start a loopback IMDS listener (`ImdsResolver::Fixed`) for every
    /// instance created through `POST /instances`, on this address (port 0
    /// picks one per instance). `None`: the fabric serves IMDS instead.
    pub imds_per_instance: Option<IpAddr>,
}

impl AdminOptions {
    /// Per-instance IMDS on 127.0.0.1, for use without root.
    pub fn loopback_imds() -> Self {
        Self {
            imds_per_instance: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        }
    }
}

type ListenerMap = HashMap<String, (SocketAddr, JoinHandle<()>)>;

/// Per-instance IMDS listeners by instance id.
#[derive(Debug, Default)]
struct Registry {
    map: Mutex<ListenerMap>,
}

impl Drop for Registry {
    // The admin server's task may be aborted rather than shut down; the
    // listeners it started must not outlive it either way.
    fn drop(&mut self) {
        let map = self.map.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (_, (_, task)) in map.drain() {
            task.abort();
        }
    }
}

#[derive(Debug, Default, Clone)]
struct ImdsListeners {
    inner: Arc<Registry>,
}

impl ImdsListeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, ListenerMap> {
        self.inner
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn stop(&self, id: &str) {
        if let Some((_, task)) = self.lock().remove(id) {
            task.abort();
        }
    }

    fn stop_all(&self) {
        for (_, (_, task)) in self.lock().drain() {
            task.abort();
        }
    }

    fn endpoint(&self, id: &str) -> Option<String> {
        self.lock()
            .get(id)
            .map(|(addr, _)| format!("http://{addr}"))
    }
}

/// Serves the admin API on `listener` until `shutdown` completes; the
/// per-instance IMDS listeners it started stop with it.
pub async fn serve_admin(
    sim: SimVpc,
    listener: TcpListener,
    options: AdminOptions,
    shutdown: impl Future<Output = ()> + Send,
) {
    let listeners = ImdsListeners::default();
    let on_exit = listeners.clone();
    http::serve(listener, shutdown, move |req| {
        let (sim, options, listeners) = (sim.clone(), options.clone(), listeners.clone());
        async move {
            match route(&sim, &options, &listeners, &req).await {
                Ok((status, value)) => http::json(status, &value),
                Err((status, message)) => http::json(status, &json!({ "error": message })),
            }
        }
    })
    .await;
    on_exit.stop_all();
}

type Routed = Result<(u16, Value), (u16, Value)>;

fn sim_err(e: SimError) -> (u16, Value) {
    (
        e.code.http_status(),
        json!({ "code": e.code.as_str(), "message": e.message }),
    )
}

fn bad_request(msg: String) -> (u16, Value) {
    (400, json!({ "code": "BadRequest", "message": msg }))
}

fn body<T: for<'de> Deserialize<'de>>(req: &HttpRequest) -> Result<T, (u16, Value)> {
    let raw: &[u8] = if req.body.is_empty() {
        b"{}"
    } else {
        &req.body
    };
    serde_json::from_slice(raw).map_err(|e| bad_request(format!("request body: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, (u16, Value)> {
    serde_json::to_value(v).map_err(|e| {
        (
            500,
            json!({ "code": "InternalError", "message": e.to_string() }),
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewVpc {
    cidr: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSubnet {
    vpc_id: String,
    cidr: String,
    az: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewInstance {
    /// Defaults to the first subnet (by id) so `node add` needs no lookup.
    subnet_id: Option<String>,
    instance_type: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IamRole {
    role: String,
}

async fn route(
    sim: &SimVpc,
    options: &AdminOptions,
    listeners: &ImdsListeners,
    req: &HttpRequest,
) -> Routed {
    let path = req.path.trim_end_matches('/');
    match (&req.method, path) {
        (&Method::GET, "/state") => Ok((200, sim.dump())),
        (&Method::POST, "/reset") => {
            listeners.stop_all();
            sim.reset();
            Ok((200, json!({ "reset": true })))
        }
        (&Method::GET, "/faults") => Ok((200, to_json(&sim.faults())?)),
        (&Method::PUT, "/faults") | (&Method::POST, "/faults") => {
            let faults: Faults = body(req)?;
            if !(0.0..=1.0).contains(&faults.throttle_rate) {
                return Err(bad_request(format!(
                    "throttle_rate {} is not within 0.0..=1.0",
                    faults.throttle_rate
                )));
            }
            sim.set_faults(faults);
            Ok((200, to_json(&sim.faults())?))
        }
        (&Method::GET, "/counts") => Ok((200, to_json(&sim.request_counts())?)),
        (&Method::GET, "/counts/instances") => {
            Ok((200, to_json(&sim.request_counts_by_instance())?))
        }
        (&Method::GET, p) if p.starts_with("/counts/instances/") => {
            let id = &p["/counts/instances/".len()..];
            Ok((200, to_json(&sim.request_counts_of(id))?))
        }
        (&Method::PUT, "/iam-role") => {
            let r: IamRole = body(req)?;
            sim.set_iam_role(&r.role);
            Ok((200, json!({ "role": r.role })))
        }
        (&Method::POST, "/vpcs") => {
            let v: NewVpc = body(req)?;
            Ok((200, to_json(&sim.create_vpc(&v.cidr).map_err(sim_err)?)?))
        }
        (&Method::POST, "/subnets") => {
            let s: NewSubnet = body(req)?;
            let subnet = sim
                .create_subnet(&s.vpc_id, &s.cidr, &s.az)
                .map_err(sim_err)?;
            Ok((200, to_json(&subnet)?))
        }
        (&Method::GET, "/instances") => {
            let all = sim.describe_instances(&[]).map_err(sim_err)?;
            let list = all
                .iter()
                .map(|i| instance_json(i, listeners))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((200, Value::Array(list)))
        }
        (&Method::POST, "/instances") => create_instance(sim, options, listeners, req).await,
        (&Method::DELETE, p) if p.starts_with("/instances/") => {
            let id = &p["/instances/".len()..];
            sim.terminate_instance(id).map_err(sim_err)?;
            listeners.stop(id);
            Ok((200, json!({ "terminated": id })))
        }
        _ => Err((
            404,
            json!({ "code": "NotFound", "message": format!("no route {} {}", req.method, req.path) }),
        )),
    }
}

fn instance_json(
    inst: &vpc_cni_cloud::sim::Instance,
    listeners: &ImdsListeners,
) -> Result<Value, (u16, Value)> {
    let mut v = to_json(inst)?;
    if let (Some(obj), Some(ep)) = (v.as_object_mut(), listeners.endpoint(&inst.id)) {
        obj.insert("imdsEndpoint".into(), Value::String(ep));
    }
    Ok(v)
}

async fn create_instance(
    sim: &SimVpc,
    options: &AdminOptions,
    listeners: &ImdsListeners,
    req: &HttpRequest,
) -> Routed {
    let n: NewInstance = body(req)?;
    let subnet_id = match n.subnet_id {
        Some(s) => s,
        None => sim
            .describe_subnets(&[])
            .map_err(sim_err)?
            .into_iter()
            .map(|s| s.id)
            .min()
            .ok_or_else(|| {
                bad_request("no subnet exists yet: create one or pass subnetId".into())
            })?,
    };
    let inst = sim
        .run_instance(
            &subnet_id,
            n.instance_type.as_deref().unwrap_or("t3.medium"),
            n.name.as_deref().unwrap_or(""),
        )
        .map_err(sim_err)?;
    if let Some(ip) = options.imds_per_instance {
        let listener = TcpListener::bind((ip, 0)).await.map_err(|e| {
            (
                500,
                json!({ "code": "InternalError", "message": format!("binding IMDS on {ip}: {e}") }),
            )
        })?;
        let addr = listener.local_addr().map_err(|e| {
            (
                500,
                json!({ "code": "InternalError", "message": e.to_string() }),
            )
        })?;
        let task = tokio::spawn(serve_imds(
            sim.clone(),
            listener,
            ImdsResolver::Fixed(inst.id.clone()),
            std::future::pending(),
        ));
        listeners.lock().insert(inst.id.clone(), (addr, task));
    }
    Ok((200, instance_json(&inst, listeners)?))
}
