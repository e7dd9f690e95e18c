//! The hybrid cluster's connectivity matrix: a TCP connection from every pod and from a VPC
//! host (the ALB's place) to every pod, to that host and to the internet, each judged by the
//! source address the listener saw. The same code makes the demo's table and the end-to-end
//! test's assertion.
//!
//! What each listener must see: a pod, the connecting pod's own address (whatever the node
//! kinds); the VPC host, a VPC pod's own address and, for an on-prem pod, its node's address
//! (the VPC has no route back to on-prem pod CIDRs); the internet, a VPC pod's node primary
//! address and, for an on-prem pod, the site's NAT. The VPC host does not reach on-prem pods
//! (nothing in the VPC routes their CIDRs) nor the internet (no public address).

use std::net::{IpAddr, Ipv4Addr};

use super::{HybridCluster, HybridPod, NodeKind};
use crate::fabric::{INTERNET_ADDR, SITE_NAT_ADDR};
use crate::vpc_cluster::tcp_peer;
use vpc_cni_testkit::netns::Netns;

/// The VPC host's column and row name.
const HOST: &str = "alb";
const INTERNET: &str = "internet";

/// The result of one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pair is not a path of the cluster (the source itself, or one the design rules out).
    NotAPath,
    /// Connected, and the listener saw the expected source.
    Ok { seen: Ipv4Addr },
    /// Connected, but seen from the wrong address.
    WrongSource { seen: IpAddr, expected: Ipv4Addr },
    /// No connection.
    Failed(String),
}

/// Rows (sources) by columns (targets).
pub struct Matrix {
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<Outcome>)>,
}

impl Matrix {
    /// Cells that are paths, and those of them that passed.
    #[must_use]
    pub fn counts(&self) -> (usize, usize) {
        let cells = self.rows.iter().flat_map(|(_, cells)| cells);
        let paths = cells.clone().filter(|c| **c != Outcome::NotAPath).count();
        let ok = cells.filter(|c| matches!(c, Outcome::Ok { .. })).count();
        (ok, paths)
    }

    /// `"<from> -> <to>: <what went wrong>"` for every failed cell.
    #[must_use]
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for (from, cells) in &self.rows {
            for (to, cell) in self.columns.iter().zip(cells) {
                match cell {
                    Outcome::WrongSource { seen, expected } => failures.push(format!(
                        "{from} -> {to}: seen as {seen}, expected {expected}"
                    )),
                    Outcome::Failed(error) => failures.push(format!("{from} -> {to}: {error}")),
                    Outcome::NotAPath | Outcome::Ok { .. } => {}
                }
            }
        }
        failures
    }
}

/// A source of connections: a pod or the VPC host.
struct Source<'a> {
    name: &'a str,
    netns: &'a Netns,
    /// What a pod (or the host) sees it as: its own address.
    own: Ipv4Addr,
    /// What the VPC host sees (None: not a path), then the internet.
    to_host: Option<Ipv4Addr>,
    to_internet: Option<Ipv4Addr>,
}

/// Checks every cell: `pods` (with addresses) and the VPC host `host` at `host_ip`.
pub fn check_matrix(
    cluster: &HybridCluster,
    pods: &[HybridPod],
    host: &Netns,
    host_ip: Ipv4Addr,
) -> std::io::Result<Matrix> {
    let mut sources = Vec::with_capacity(pods.len() + 1);
    for pod in pods {
        let own = pod.ip()?;
        let node_ip = cluster.node_ip(&pod.node)?;
        let (to_host, to_internet) = match pod.kind {
            NodeKind::Vpc => (own, node_ip),
            NodeKind::Onprem => (node_ip, SITE_NAT_ADDR),
        };
        sources.push(Source {
            name: &pod.name,
            netns: &pod.netns,
            own,
            to_host: Some(to_host),
            to_internet: Some(to_internet),
        });
    }
    sources.push(Source {
        name: HOST,
        netns: host,
        own: host_ip,
        to_host: None,
        to_internet: None,
    });
    let mut columns: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    columns.extend([HOST.to_string(), INTERNET.to_string()]);
    let internet = cluster.vpc().fabric().internet();
    let rows = sources
        .iter()
        .map(|source| {
            let mut cells = Vec::with_capacity(columns.len());
            for (pod, target) in pods.iter().zip(&sources) {
                let reaches =
                    source.name != pod.name && (source.name != HOST || pod.kind == NodeKind::Vpc);
                cells.push(if reaches {
                    probe(&pod.netns, target.own, source, source.own)
                } else {
                    Outcome::NotAPath
                });
            }
            cells.push(match source.to_host {
                Some(expected) => probe(host, host_ip, source, expected),
                None => Outcome::NotAPath,
            });
            cells.push(match source.to_internet {
                Some(expected) => probe(internet, INTERNET_ADDR, source, expected),
                None => Outcome::NotAPath,
            });
            (source.name.to_string(), cells)
        })
        .collect();
    Ok(Matrix { columns, rows })
}

/// One TCP connection from `source` to a listener on `ip` in `target`.
fn probe(target: &Netns, ip: Ipv4Addr, source: &Source, expected: Ipv4Addr) -> Outcome {
    match tcp_peer(target, ip, source.netns) {
        Ok(peer) if peer.ip() == IpAddr::V4(expected) => Outcome::Ok { seen: expected },
        Ok(peer) => Outcome::WrongSource {
            seen: peer.ip(),
            expected,
        },
        Err(error) => Outcome::Failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(cells: Vec<Outcome>) -> Matrix {
        Matrix {
            columns: vec!["p1".into(), "p2".into(), "alb".into()],
            rows: vec![("p1".into(), cells)],
        }
    }

    #[test]
    fn counts_leave_out_cells_that_are_not_paths_and_failures_name_both_ends() {
        let seen = Ipv4Addr::new(10, 0, 0, 5);
        let m = matrix(vec![
            Outcome::NotAPath,
            Outcome::Ok { seen },
            Outcome::WrongSource {
                seen: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
                expected: seen,
            },
        ]);
        assert_eq!(m.counts(), (1, 2));
        assert_eq!(
            m.failures(),
            vec!["p1 -> alb: seen as 10.0.0.9, expected 10.0.0.5".to_string()]
        );
        let failed = matrix(vec![Outcome::Failed("refused".into()); 3]);
        assert_eq!(failed.counts(), (0, 3));
        assert_eq!(failed.failures().len(), 3);
    }
}
