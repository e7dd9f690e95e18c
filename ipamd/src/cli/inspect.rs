//! `ipamd inspect enis|pods|pool|peers|config [--json] [--address A]`: a client of a running
//! ipamd's introspection API, printing readable tables, or with `--json` the API's JSON as it
//! came (for scripts).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use crate::config::{parse_listen_addr, DEFAULT_INTROSPECTION_ADDR};
use crate::error::IpamdError;
use crate::introspect::{
    ConfigReport, EniRow, EnisReport, PeersReport, PodsReport, PoolReport, SlotStatus,
};
use vpc_cni_proto::time::now_ms;

use super::table::{pairs, table};

/// Bound on connecting and on the whole answer: the API answers from memory.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// What to show.
    #[arg(value_enum)]
    what: What,

    /// Print the API's JSON instead of tables.
    #[arg(long)]
    json: bool,

    /// The introspection API to ask (the INTROSPECTION_BIND_ADDRESS of that ipamd; inside its
    /// container the variable is already set).
    #[arg(long, env = "INTROSPECTION_BIND_ADDRESS", default_value = DEFAULT_INTROSPECTION_ADDR,
          value_parser = parse_listen_addr)]
    address: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// Attached ENIs and the state of every address (VPC mode).
    Enis,
    /// Every attachment holding an address.
    Pods,
    /// The pool's figures.
    Pool,
    /// The overlay's peers as programmed (overlay mode).
    Peers,
    /// Every setting, its value and where it came from.
    Config,
}

impl What {
    fn path(self) -> &'static str {
        match self {
            Self::Enis => "/v1/enis",
            Self::Pods => "/v1/pods",
            Self::Pool => "/v1/pool",
            Self::Peers => "/v1/peers",
            Self::Config => "/v1/config",
        }
    }
}

/// Runs `ipamd inspect`: the tables (or JSON) on stdout and exit 0, or one line saying what
/// went wrong on stderr and exit 1.
#[must_use]
pub fn main(args: &InspectArgs) -> ExitCode {
    super::finish(shown(args))
}

fn shown(args: &InspectArgs) -> Result<String, IpamdError> {
    let body = super::block_on("ipamd inspect", get(args.address, args.what.path()))?;
    if args.json {
        Ok(String::from_utf8_lossy(&body).into_owned())
    } else {
        render(args.what, &body, now_ms())
    }
}

/// One GET of `path` from the API at `addr`; its body, or an error saying what went wrong.
async fn get(addr: SocketAddr, path: &'static str) -> Result<Bytes, IpamdError> {
    let failed = |reason: String| IpamdError::Introspection { addr, path, reason };
    let answer = tokio::time::timeout(TIMEOUT, async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            failed(format!(
                "cannot connect ({e}): is ipamd running here, with DISABLE_INTROSPECTION unset? \
                 --address or INTROSPECTION_BIND_ADDRESS picks another"
            ))
        })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(e.to_string()))?;
        tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(failed(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        Ok(body)
    })
    .await
    .map_err(|_| failed(format!("no answer within {TIMEOUT:?}")))??;
    Ok(answer)
}

fn parse<T: DeserializeOwned>(what: What, body: &[u8]) -> Result<T, IpamdError> {
    serde_json::from_slice(body).map_err(|source| IpamdError::IntrospectionJson {
        path: what.path(),
        source,
    })
}

/// The tables for `what` from the API's JSON `body`; `now_ms` dates the pods.
fn render(what: What, body: &[u8], now_ms: u64) -> Result<String, IpamdError> {
    Ok(match what {
        What::Pool => pool_text(&parse(what, body)?),
        What::Enis => enis_text(&parse(what, body)?),
        What::Pods => pods_text(&parse(what, body)?, now_ms),
        What::Peers => peers_text(&parse(what, body)?),
        What::Config => config_text(&parse(what, body)?),
    })
}

fn pool_text(p: &PoolReport) -> String {
    let mut rows = vec![
        ("MODE", p.mode.clone()),
        ("POOL", p.pool.clone()),
        ("TOTAL", p.total.to_string()),
        ("ASSIGNED", p.assigned.to_string()),
        ("AVAILABLE", p.available.to_string()),
        ("COOLING", p.cooling.to_string()),
        ("OUTSIDE POOL", p.outside_pool.to_string()),
    ];
    if let Some(v) = &p.vpc {
        rows.extend([
            (
                "INSTANCE",
                format!("{} ({})", v.instance_id, v.instance_type),
            ),
            (
                "ENIS",
                format!(
                    "{} of {} ({} unmanaged, {} not wired yet)",
                    v.enis, v.max_enis, v.unmanaged_enis, v.unwired_enis
                ),
            ),
            ("ADDRESSES PER ENI", v.addresses_per_eni.to_string()),
            ("IP MAX", v.ip_max.to_string()),
            ("MAX PODS", v.max_pods.to_string()),
        ]);
        if v.prefix_mode {
            rows.push((
                "PREFIXES",
                format!("{} ({} wholly free)", v.prefixes, v.free_prefixes),
            ));
        }
    }
    pairs(&rows)
}

/// Addresses of `eni` in `state`, its prefixes' included.
fn in_state(eni: &EniRow, state: SlotStatus) -> u64 {
    let singles = eni.addresses.iter().filter(|a| a.state == state).count();
    let in_prefixes: u32 = eni
        .prefixes
        .iter()
        .map(|p| match state {
            SlotStatus::Free => p.free,
            SlotStatus::Assigned => p.assigned,
            SlotStatus::Cooling => p.cooling,
            SlotStatus::Unavailable => 0,
        })
        .sum();
    u64::try_from(singles).unwrap_or(u64::MAX) + u64::from(in_prefixes)
}

fn enis_text(r: &EnisReport) -> String {
    if r.enis.is_empty() {
        return format!("no ENIs ({} mode)\n", r.mode);
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let enis: Vec<Vec<String>> = r
        .enis
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.device_number.to_string(),
                e.primary_ip.clone(),
                e.subnet_cidr.clone(),
                yes_no(e.managed),
                yes_no(e.wired),
                in_state(e, SlotStatus::Assigned).to_string(),
                in_state(e, SlotStatus::Free).to_string(),
                in_state(e, SlotStatus::Cooling).to_string(),
                e.prefixes.len().to_string(),
            ]
        })
        .collect();
    let addresses: Vec<Vec<String>> = r
        .enis
        .iter()
        .flat_map(|e| {
            let singles = e.addresses.iter().map(|a| {
                vec![
                    e.id.clone(),
                    a.ip.clone(),
                    a.state.name().to_owned(),
                    a.pod.clone().unwrap_or_default(),
                ]
            });
            let prefixes = e.prefixes.iter().map(|p| {
                vec![
                    e.id.clone(),
                    p.prefix.clone(),
                    format!(
                        "{} assigned, {} free, {} cooling",
                        p.assigned, p.free, p.cooling
                    ),
                    String::new(),
                ]
            });
            singles.chain(prefixes).collect::<Vec<_>>()
        })
        .collect();
    let mut text = table(
        &[
            "ENI",
            "DEVICE",
            "PRIMARY IP",
            "SUBNET",
            "MANAGED",
            "WIRED",
            "ASSIGNED",
            "FREE",
            "COOLING",
            "PREFIXES",
        ],
        &enis,
    );
    text.push('\n');
    text.push_str(&table(&["ENI", "ADDRESS", "STATE", "POD"], &addresses));
    text
}

fn age(now_ms: u64, then_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

fn pods_text(r: &PodsReport, now_ms: u64) -> String {
    if r.pods.is_empty() {
        return "no pod holds an address\n".to_owned();
    }
    let rows: Vec<Vec<String>> = r
        .pods
        .iter()
        .map(|p| {
            vec![
                p.namespace.clone(),
                p.name.clone(),
                p.ip.clone(),
                p.device_number.to_string(),
                p.route_table.to_string(),
                p.host_veth.clone(),
                p.container_id.chars().take(12).collect(),
                p.ifname.clone(),
                age(now_ms, p.assigned_at_ms),
            ]
        })
        .collect();
    table(
        &[
            "NAMESPACE",
            "NAME",
            "IP",
            "DEVICE",
            "TABLE",
            "HOST VETH",
            "CONTAINER",
            "IFNAME",
            "AGE",
        ],
        &rows,
    )
}

fn peers_text(r: &PeersReport) -> String {
    if !r.applied {
        return format!("no peer set applied ({} mode)\n", r.mode);
    }
    if r.peers.is_empty() {
        return "no peers\n".to_owned();
    }
    let rows: Vec<Vec<String>> = r
        .peers
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.underlay_ip.clone(),
                p.pod_cidr.clone(),
                p.vtep_mac.clone(),
            ]
        })
        .collect();
    table(&["NAME", "UNDERLAY IP", "POD CIDR", "VTEP MAC"], &rows)
}

fn config_text(r: &ConfigReport) -> String {
    let rows: Vec<Vec<String>> = r
        .settings
        .iter()
        .map(|s| {
            vec![
                s.variable.clone(),
                s.value.clone().unwrap_or_else(|| "-".to_owned()),
                s.source.clone(),
            ]
        })
        .collect();
    let mut text = pairs(&[("MODE", r.mode.clone()), ("POOL", r.pool.clone())]);
    text.push('\n');
    text.push_str(&table(&["VARIABLE", "VALUE", "SOURCE"], &rows));
    text
}

#[cfg(test)]
#[path = "inspect_tests.rs"]
mod tests;
