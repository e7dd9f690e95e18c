//! The CNI requests the gRPC service answers: the AWS VPC CNI's add and delete counts and its
//! count of ADDs that found no address, and ours: how long each request took, and how long an
//! ADD waited for the pool.

use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::kinds::PlainCounter;
use super::{seconds, seconds_buckets};

/// `awscni_del_ip_req_count`'s reason for a DEL: what the AWS VPC CNI's plugin sends with every
/// DEL.
pub const DEL_REASON_POD_DELETED: &str = "PodDeleted";

/// Its reason for an address a CNI GC released (a runtime's garbage collection).
pub const DEL_REASON_GC: &str = "GarbageCollected";

/// A CNI command; the request-duration label spells it as the spec does.
pub use vpc_cni::spec::Command;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(seconds_buckets())
}

/// Counters and histograms of the CNI requests; cheap to clone (all clones count together).
/// A default one counts into series nobody serves (a backend built without metrics).
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    add: PlainCounter,
    del: Family<ReasonLabels, PlainCounter>,
    no_address: PlainCounter,
    add_wait: Histogram,
    duration: Family<CommandLabels, Histogram, fn() -> Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            add: PlainCounter::default(),
            del: Family::default(),
            no_address: PlainCounter::default(),
            add_wait: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        }
    }
}

impl RequestMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "awscni_add_ip_req_count",
            "The number of add IP address requests",
            self.add.clone(),
        );
        registry.register(
            "awscni_del_ip_req_count",
            "The number of delete IP address requests",
            self.del.clone(),
        );
        registry.register(
            "awscni_no_available_ip_addresses",
            "The number of pod IP assignments that fail due to no available IP addresses",
            self.no_address.clone(),
        );
        registry.register(
            "vpc_cni_add_wait_seconds",
            "How long an ADD that found the pool empty waited for an address (whether one \
             came or not)",
            self.add_wait.clone(),
        );
        registry.register(
            "vpc_cni_request_duration_seconds",
            "Time ipamd took to answer a CNI request, by command",
            self.duration.clone(),
        );
    }

    /// An AddNetwork request arrived.
    pub fn add_requested(&self) {
        self.add.inc();
    }

    /// `n` addresses were released for `reason` (one per DEL; a GC may release many).
    pub fn released(&self, reason: &str, n: usize) {
        self.del
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// A DelNetwork request arrived.
    pub fn del_requested(&self) {
        self.released(DEL_REASON_POD_DELETED, 1);
    }

    /// An ADD was answered that no address is free.
    pub fn no_address(&self) {
        self.no_address.inc();
    }

    /// An ADD found the pool empty and waited `waited` (for an address, or in vain).
    pub fn waited(&self, waited: Duration) {
        self.add_wait.observe(seconds(waited));
    }

    /// Times a request of `command` until the guard drops.
    #[must_use]
    pub fn timer(&self, command: Command) -> RequestTimer {
        RequestTimer {
            histogram: self.duration.get_or_create_owned(&CommandLabels {
                command: command.as_str().to_owned(),
            }),
            started: Instant::now(),
        }
    }
}

/// Observes the time from its creation to its drop.
#[derive(Debug)]
pub struct RequestTimer {
    histogram: Histogram,
    started: Instant,
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.histogram.observe(seconds(self.started.elapsed()));
    }
}
