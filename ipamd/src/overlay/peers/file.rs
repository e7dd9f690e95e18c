//! The peers file (`PEERS_FILE`): for clusters without API access, and tests.
//!
//! `{"peers":[{"name":"n2","underlayIP":"192.168.0.2","podCIDR":"10.244.2.0/24"}]}`
//!
//! A VPC-mode node of a hybrid cluster lists, instead of a `podCIDR`, the address ranges
//! its ENIs hold for pods: `"vpcPodRanges":["10.0.1.16/28","10.0.1.37/32"]` (an empty list
//! while its pool is empty).
//!
//! Polled rather than watched with inotify: no extra dependency, and a poll
//! also sees the symlink swap a mounted ConfigMap makes, which inotify on the
//! file itself misses.

use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde::Deserialize;

use tracing::warn;
use vpc_cni_proto::net::Ipv4Cidr;

use super::{check_against_own, validate, without_own, Peer, PeerSet, PeerSource};
use crate::error::IpamdError;

/// How often the file is looked at unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// File timestamps are coarse (a kernel tick, whole seconds on some file
/// systems): two writes of equal size inside one tick look identical by
/// metadata. While the mtime is this close to our last read, the contents are
/// compared too.
const RACY_WINDOW: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
struct Document {
    peers: Vec<serde_json::Value>,
}

/// Unknown fields are allowed so a newer file format does not break an older
/// ipamd during a rolling upgrade.
#[derive(Deserialize)]
struct Entry {
    name: String,
    #[serde(rename = "underlayIP")]
    underlay_ip: String,
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    #[serde(rename = "vpcPodRanges")]
    vpc_pod_ranges: Option<Vec<String>>,
    /// The largest packet the node's VXLAN device carries, when the path to it is smaller
    /// than the underlay (a VPC-mode node behind the link between the sites).
    mtu: Option<u32>,
}

/// Parses and validates the peers file's contents, then drops the node's own
/// entry (matched by name or by underlay address) and checks the others
/// against this node's underlay address and pod CIDR.
///
/// One invalid entry rejects the whole file: applying the valid part of a bad
/// edit would tear down and re-add routes for a state nobody wrote, and the
/// datapath would churn again once the edit is fixed. Keeping the last good set
/// until the file is right is both safer and simpler to reason about.
///
/// An empty file is invalid too, not an empty set: an editor that truncates and
/// then writes would otherwise briefly cut this node off from every peer.
pub fn parse_peers_file(
    path: &Path,
    contents: &[u8],
    own_name: &str,
    own_underlay: Option<Ipv4Addr>,
    own_pod_cidrs: &[Ipv4Cidr],
) -> Result<PeerSet, IpamdError> {
    let invalid = |reason: String| IpamdError::Config {
        variable: "PEERS_FILE",
        reason: format!("{}: {reason}", path.display()),
    };
    let doc: Document = serde_json::from_slice(contents).map_err(|e| {
        invalid(format!(
            "not a peers document ({{\"peers\":[{{\"name\",\"underlayIP\",\"podCIDR\"}}]}}): {e}"
        ))
    })?;
    let mut peers = Vec::with_capacity(doc.peers.len());
    for (index, value) in doc.peers.into_iter().enumerate() {
        let label = match value.get("name").and_then(serde_json::Value::as_str) {
            Some(name) => format!("entry {index} ({name:?})"),
            None => format!("entry {index}"),
        };
        let entry: Entry =
            serde_json::from_value(value).map_err(|e| invalid(format!("{label}: {e}")))?;
        let underlay: Ipv4Addr = entry.underlay_ip.parse().map_err(|_| {
            invalid(format!(
                "{label}: underlayIP {:?} is not an IPv4 address",
                entry.underlay_ip
            ))
        })?;
        let peer = match (entry.pod_cidr, entry.vpc_pod_ranges) {
            (Some(text), None) => Peer::overlay(
                entry.name,
                underlay,
                text.parse()
                    .map_err(|e| invalid(format!("{label}: podCIDR: {e}")))?,
            ),
            (None, Some(ranges)) => {
                let ranges = ranges
                    .iter()
                    .map(|text| {
                        text.parse()
                            .map_err(|e| invalid(format!("{label}: vpcPodRanges: {e}")))
                    })
                    .collect::<Result<Vec<Ipv4Cidr>, _>>()?;
                Peer::vpc(entry.name, underlay, ranges)
            }
            (Some(_), Some(_)) => {
                return Err(invalid(format!(
                    "{label}: has both podCIDR (an overlay node) and vpcPodRanges (a VPC-mode \
                     node)"
                )))
            }
            (None, None) => {
                return Err(invalid(format!(
                    "{label}: has neither podCIDR (an overlay node) nor vpcPodRanges (a \
                     VPC-mode node)"
                )))
            }
        };
        peers.push(peer.with_mtu(entry.mtu));
    }
    validate(&peers).map_err(&invalid)?;
    let set = without_own(peers, own_name, own_underlay);
    for peer in set.values() {
        check_against_own(peer, own_underlay, own_pod_cidrs).map_err(&invalid)?;
    }
    Ok(set)
}

/// What the file looked like at the last poll.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    /// Reading failed; kept as text so the same failure is reported once.
    Unreadable(io::ErrorKind, String),
    Present(Snapshot),
}

#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    stamp: Stamp,
    read_at: SystemTime,
    contents: Vec<u8>,
}

/// The metadata that changes when the file is rewritten or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

/// Peers from a JSON file, re-read when it changes.
///
/// An invalid or unreadable file is reported once (per distinct content or
/// failure) as an error, and the last good set stays in force; the watch goes
/// on. If the file is invalid from the start, no set is returned until it is
/// fixed, so a restarting node keeps what it programmed instead of tearing it
/// down. A file that disappears keeps the last good set too (a ConfigMap being
/// replaced, a file moved aside to edit it): it is not an edit to "no peers".
/// Only a file missing from the start is an empty set: no peers yet.
#[derive(Debug)]
pub struct FilePeers {
    path: PathBuf,
    own_name: String,
    own_underlay: Option<Ipv4Addr>,
    own_pod_cidrs: Vec<Ipv4Cidr>,
    interval: Duration,
    seen: Option<Seen>,
    returned: Option<PeerSet>,
}

impl FilePeers {
    /// Watches `path`; the entry named `own_name` is this node and is skipped.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>, own_name: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            own_name: own_name.into(),
            own_underlay: None,
            own_pod_cidrs: Vec::new(),
            interval: DEFAULT_POLL_INTERVAL,
            seen: None,
            returned: None,
        }
    }

    /// Also skips an entry with this underlay address, whatever its name.
    #[must_use]
    pub fn with_own_underlay(mut self, underlay: Ipv4Addr) -> Self {
        self.own_underlay = Some(underlay);
        self
    }

    /// Refuses a file in which a peer's pod CIDR overlaps this one.
    #[must_use]
    pub fn with_own_pod_cidr(mut self, pod_cidr: Ipv4Cidr) -> Self {
        self.own_pod_cidrs = vec![pod_cidr];
        self
    }

    /// How long to wait between looks at the file.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The file being watched.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks at the file once. `None` when there is nothing new to report:
    /// the file is as before, or it changed without changing the parsed set.
    pub(crate) async fn poll_once(&mut self) -> Option<Result<PeerSet, IpamdError>> {
        let outcome = match self.look().await {
            Ok(Look::Same) => return None,
            Ok(Look::Missing) => {
                self.seen = Some(Seen::Missing);
                let path = self.path.display();
                match &self.returned {
                    Some(last) => {
                        warn!(
                            "peers file {path} is gone; keeping the last good set of {} peers \
                             until it is back",
                            last.len()
                        );
                        return None;
                    }
                    None => {
                        warn!(
                            "peers file {path} does not exist: no peers yet; this node's pods \
                             reach no other node until the file lists some"
                        );
                        Ok(PeerSet::new())
                    }
                }
            }
            Ok(Look::Read(snapshot)) => {
                let parsed = parse_peers_file(
                    &self.path,
                    &snapshot.contents,
                    &self.own_name,
                    self.own_underlay,
                    &self.own_pod_cidrs,
                );
                self.seen = Some(Seen::Present(snapshot));
                parsed
            }
            Err(source) => {
                let seen = Seen::Unreadable(source.kind(), source.to_string());
                if self.seen.as_ref() == Some(&seen) {
                    return None;
                }
                self.seen = Some(seen);
                Err(IpamdError::Io {
                    context: format!("reading peers file {}", self.path.display()),
                    source,
                })
            }
        };
        match outcome {
            Ok(set) if self.returned.as_ref() == Some(&set) => None,
            Ok(set) => {
                self.returned = Some(set.clone());
                Some(Ok(set))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Stats the file and reads it only when the metadata changed or is too
    /// recent to trust.
    async fn look(&mut self) -> io::Result<Look> {
        let meta = match tokio::fs::metadata(&self.path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(self.missing()),
            Err(e) => return Err(e),
        };
        let stamp = Stamp::of(&meta);
        if let Some(Seen::Present(before)) = &self.seen {
            let settled = stamp
                .mtime
                .and_then(|m| m.checked_add(RACY_WINDOW))
                .is_some_and(|m| m < before.read_at);
            if before.stamp == stamp && settled {
                return Ok(Look::Same);
            }
        }
        let read_at = SystemTime::now();
        let contents = match tokio::fs::read(&self.path).await {
            Ok(contents) => contents,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(self.missing()),
            Err(e) => return Err(e),
        };
        if let Some(Seen::Present(before)) = &mut self.seen {
            if before.contents == contents {
                // Touched or rewritten with the same bytes: keep the new
                // metadata so later polls can take the fast path.
                before.stamp = stamp;
                before.read_at = read_at;
                return Ok(Look::Same);
            }
        }
        Ok(Look::Read(Snapshot {
            stamp,
            read_at,
            contents,
        }))
    }

    fn missing(&self) -> Look {
        if self.seen == Some(Seen::Missing) {
            Look::Same
        } else {
            Look::Missing
        }
    }
}

/// The outcome of one look at the file.
enum Look {
    /// Certainly as last seen.
    Same,
    /// Gone, and it was not gone before.
    Missing,
    /// Read, and the bytes differ from the last ones seen.
    Read(Snapshot),
}

impl PeerSource for FilePeers {
    fn next(&mut self) -> BoxFuture<'_, Result<PeerSet, IpamdError>> {
        Box::pin(async move {
            loop {
                if let Some(result) = self.poll_once().await {
                    return result;
                }
                tokio::time::sleep(self.interval).await;
            }
        })
    }
}
