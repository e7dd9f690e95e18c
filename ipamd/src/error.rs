//! The one error type of the `ipamd` library.
//!
//! Variants are grouped by the part of ipamd that raises them; new parts add their own group.
//! Every message names the input or file that was at fault, so a log line is enough to act on.

use std::path::PathBuf;

use vpc_cni_proto::net::MacAddr;

/// Everything that can go wrong inside ipamd.
#[derive(Debug, thiserror::Error)]
pub enum IpamdError {
    // --- store: address pool ---
    /// No address can be handed out: every one is assigned or still in its cooldown.
    #[error(
        "no free address in {pool}: {total} in the pool, {assigned} assigned, {cooling} cooling down"
    )]
    PoolExhausted {
        pool: String,
        total: usize,
        assigned: usize,
        cooling: usize,
    },

    // --- store: checkpoint file ---
    /// The checkpoint exists but could not be read (permissions, I/O error).
    #[error("cannot read checkpoint {path}")]
    CheckpointRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The checkpoint was read but is not valid JSON of the expected shape.
    #[error("checkpoint {path} is corrupt")]
    CheckpointCorrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The checkpoint was written by an ipamd with another format version; refusing to guess
    /// at its contents is safer than handing out an address a pod still holds.
    #[error("checkpoint {path} has format version {found:?}, this ipamd reads {expected:?}")]
    CheckpointVersion {
        path: PathBuf,
        found: String,
        expected: String,
    },

    /// The checkpoint was replaced, but syncing its directory failed: the new file is in
    /// place and is what a restart reads, unless the machine crashes before the kernel
    /// writes the directory back. Memory must keep what the file holds.
    #[error("checkpoint {path} was replaced, but the fsync of its directory failed")]
    CheckpointDirSync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// One step of the durable write (temp file, fsync, rename) failed; the old file stands.
    #[error("cannot write checkpoint {path}: {step} failed")]
    CheckpointWrite {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The in-memory state could not be turned into JSON.
    #[error("cannot encode checkpoint {path}")]
    CheckpointEncode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// The blocking task that writes the checkpoint panicked or was cancelled.
    #[error("checkpoint writer task failed")]
    CheckpointTask {
        #[source]
        source: tokio::task::JoinError,
    },

    // --- daemon: configuration and start-up ---
    /// A setting is missing, malformed or inconsistent; names the variable.
    #[error("invalid {variable}: {reason}")]
    Config {
        variable: &'static str,
        reason: String,
    },

    /// An AWS VPC CNI setting we do not implement is set to something we
    /// do not do.
    #[error("{variable}={value:?} is not supported: {reason}")]
    Unsupported {
        variable: &'static str,
        value: String,
        reason: String,
    },

    /// Another ipamd owns the socket or the state directory.
    #[error("another ipamd is running: it holds the {what}")]
    AlreadyRunning { what: String },

    /// Something that is not a socket sits where ipamd's socket goes (`IPAMD_SOCKET`);
    /// ipamd never removes what it did not create.
    #[error(
        "{path} (IPAMD_SOCKET) is {found}; refusing to remove it: move it away or pick another path"
    )]
    SocketPathTaken { path: PathBuf, found: &'static str },

    /// A file or kernel interface could not be used.
    #[error("I/O failure while {context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The gRPC server stopped with an error.
    #[error("gRPC server failed: {0}")]
    Serve(String),

    /// Netlink or namespace work shared with the plugin failed.
    #[error(transparent)]
    Dataplane(#[from] vpc_cni::CniError),

    // --- node datapath ---
    /// A netlink request of ipamd's own node wiring failed; `operation` says which.
    #[error("netlink: {operation} failed")]
    Netlink {
        operation: String,
        #[source]
        source: vpc_cni::netlink::Error,
    },

    /// `nft` refused or failed to apply a batch to our table; `detail` is what it said.
    #[error("{action}: {detail}")]
    Nft { action: String, detail: String },

    /// A batch for `nft` could not be turned into JSON.
    #[error("cannot encode an nftables batch")]
    NftEncode {
        #[source]
        source: serde_json::Error,
    },

    /// A `/proc/sys` value could not be read or written.
    #[error("{action} {path} failed")]
    Sysctl {
        path: String,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// An ENI EC2 attached has no link with its MAC in the node (yet).
    #[error("no link has the MAC {mac} of the ENI at device index {device} (yet)")]
    EniLinkMissing { device: u32, mac: MacAddr },

    /// No netlink socket could be opened in the node's namespace.
    #[error("cannot open a netlink socket in the node's network namespace")]
    NetlinkSocket {
        #[source]
        source: std::io::Error,
    },

    /// A should-not-happen condition, reported rather than panicking.
    #[error("internal error: {0}")]
    Internal(String),

    // --- subcommands and the files ipamd installs on the node ---
    /// A health check (`ipamd health`, or ipamd's own before it installs the network
    /// configuration) did not find ipamd SERVING; `reason` says what it found instead.
    #[error("ipamd at {socket} is not serving: {reason}")]
    NotServing { socket: PathBuf, reason: String },

    /// `ipamd inspect` got no usable answer from a running ipamd's introspection API.
    #[error("asking ipamd's introspection API at {addr} for {path}: {reason}")]
    Introspection {
        addr: std::net::SocketAddr,
        path: &'static str,
        reason: String,
    },

    /// The introspection API answered JSON this `ipamd inspect` does not read.
    #[error("{path} answered with JSON this ipamd inspect does not read (another version?)")]
    IntrospectionJson {
        path: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// A file ipamd installs for the runtime (the plugin binary, the network configuration)
    /// could not be put in place; `step` says which step failed. What stood there before is
    /// left as it was.
    #[error("installing {path}: {step} failed")]
    Install {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    // --- VPC mode: pool controller ---
    /// An EC2 or IMDS call failed (already classified by the cloud crate).
    #[error("{context}: {source}")]
    Cloud {
        context: String,
        #[source]
        source: vpc_cni_cloud::CloudError,
    },

    /// `ipamd max-pods`: the shipped table does not list the type.
    #[error(
        "instance type {name:?} is not in ipamd's instance-type table (give AWS credentials \
         to ask EC2's DescribeInstanceTypes)"
    )]
    UnknownInstanceType { name: String },

    /// `ipamd max-pods --source ec2` without AWS credentials.
    #[error("no AWS credentials or region found (environment, profile, web identity or IMDS)")]
    NoAwsCredentials,

    /// IMDS never showed what EC2 acknowledged, within the bounded wait.
    #[error("ENI {eni_id} did not show {what} in IMDS after {waited_ms} ms")]
    NotVisible {
        eni_id: vpc_cni_cloud::EniId,
        what: String,
        waited_ms: u64,
    },

    /// `ENABLE_POD_FAST_PATH` is on but the node cannot run it: the kernel lacks netdev
    /// egress hooks (before 5.16) or `nft` refused the tables; `detail` says which.
    #[error(
        "ENABLE_POD_FAST_PATH=true, but the fast path cannot be set up (it needs Linux 5.16 \
         or later with nftables netdev ingress and egress hooks and fwd): {detail}"
    )]
    FastPathUnavailable { detail: String },

    /// IMDS lists no interface at device 0 with the primary MAC.
    #[error("IMDS shows no primary ENI (MAC {mac})")]
    NoPrimaryEni { mac: MacAddr },

    /// The pool kept changing without settling; a bug or a fight with
    /// another actor over the same ENIs.
    #[error("pool did not settle after {steps} steps (last decision: {last})")]
    NoProgress { steps: usize, last: String },

    // --- Overlay mode: the peer loop ---
    /// The task that follows the peer source ended; the overlay no longer sees peer changes.
    #[error("the peer source stopped: {reason}")]
    PeerSourceEnded { reason: String },

    // --- Overlay mode: peers from Kubernetes ---
    /// A Kubernetes API call failed; `action` says which (e.g. "patching Node n1").
    #[error("Kubernetes API: {action}: {reason}")]
    Kubernetes { action: String, reason: String },
}

impl IpamdError {
    /// Wraps a netlink failure with the operation that failed.
    pub fn netlink(operation: impl Into<String>) -> impl FnOnce(vpc_cni::netlink::Error) -> Self {
        let operation = operation.into();
        move |source| Self::Netlink { operation, source }
    }

    /// Wraps a cloud failure with what was being done.
    pub fn cloud(context: impl Into<String>) -> impl FnOnce(vpc_cni_cloud::CloudError) -> Self {
        let context = context.into();
        move |source| Self::Cloud { context, source }
    }

    /// The cloud error behind this one, if any (callers back off on
    /// throttling and pause growth on a full subnet).
    #[must_use]
    pub fn cloud_error(&self) -> Option<&vpc_cni_cloud::CloudError> {
        match self {
            Self::Cloud { source, .. } => Some(source),
            _ => None,
        }
    }
}
