//! Prometheus metrics at `/metrics` on `METRICS_ADDR` (prometheus-client).
//!
//! The AWS VPC CNI's `awscni_*` series keep its names, types and label names where ipamd has the
//! same thing, so dashboards and alerts carry over; ours are `vpc_cni_*`. Figures of the pool
//! are read at each scrape from the same reports `ipamd inspect` shows; events (requests, EC2
//! calls, checkpoint writes) are counted as they happen. Labels never name a pod or a
//! container: the label sets are small and fixed (EC2 actions, error codes, CNI commands).
//!
//! - `kinds`: the counter that keeps the AWS names exactly.
//! - `requests`: the CNI requests the gRPC service answers.
//! - `ec2`: every EC2 request, as the cloud seam reports it.
//! - `server`: the HTTP side.

mod ec2;
mod kinds;
mod requests;
mod server;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use vpc_cni_proto::Mode;

pub use ec2::Ec2Metrics;
pub use kinds::PlainCounter;
pub use requests::{Command, RequestMetrics, RequestTimer, DEL_REASON_GC, DEL_REASON_POD_DELETED};
pub use server::{router, CONTENT_TYPE};

use crate::introspect::Figures;
use crate::store::{WriteObserver, WriteReport};

/// Build revision, when the build sets `VPC_CNI_REVISION` (the image build does).
const REVISION: &str = match option_env!("VPC_CNI_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
    /// The AWS VPC CNI's label; empty here (not a Go program), kept so queries on it work.
    goversion: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FnLabels {
    r#fn: String,
}

/// Pool figures, set from the reports at each scrape.
#[derive(Debug, Default)]
struct PoolGauges {
    total: Gauge,
    assigned: Gauge,
    available: Gauge,
    cooling: Gauge,
    outside_pool: Gauge,
}

/// VPC mode's ENI figures and reconcile counts, set at each scrape.
#[derive(Debug, Default)]
struct EniGauges {
    allocated: Gauge,
    max: Gauge,
    ip_max: Gauge,
    prefixes: Gauge,
    free_prefixes: Gauge,
    max_pods: Gauge,
    unmanaged: Gauge,
    reconciled: Family<FnLabels, PlainCounter>,
    leaked_deleted: PlainCounter,
    fast_path_pods: Gauge,
    fast_path_waiting: Gauge,
    fast_path_updates: PlainCounter,
    fast_path_errors: PlainCounter,
}

#[derive(Debug, Default)]
struct OverlayGauges {
    peers: Gauge,
    failures: PlainCounter,
}

#[derive(Debug, Clone)]
struct CheckpointMetrics {
    write_seconds: Histogram,
    group_size: Histogram,
    write_errors: PlainCounter,
}

/// Every series ipamd serves, registered for the mode it runs in.
pub struct Metrics {
    registry: Registry,
    pool: PoolGauges,
    enis: Option<EniGauges>,
    overlay: Option<OverlayGauges>,
    requests: RequestMetrics,
    ec2: Option<Arc<Ec2Metrics>>,
    checkpoint: CheckpointMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The `awscni_reconcile_count` `fn` values, as the AWS VPC CNI names the same events.
pub const RECONCILE_ENI_ADDED: &str = "eniReconcileAdd";
pub const RECONCILE_ENI_REMOVED: &str = "eniReconcileDel";
pub const RECONCILE_ADDRESS_ADDED: &str = "eniDataStorePoolReconcileAdd";
pub const RECONCILE_ADDRESS_REMOVED: &str = "eniIPPoolReconcileDel";

fn gauge_value(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl Metrics {
    /// The series of a node in `mode`.
    #[must_use]
    pub fn new(mode: Mode) -> Self {
        let mut registry = Registry::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                revision: REVISION.to_owned(),
                goversion: String::new(),
            })
            .set(1);
        registry.register(
            "awscni_build_info",
            "A metric with a constant '1' value labeled by the version and revision ipamd was \
             built from",
            build,
        );

        let pool = PoolGauges::default();
        registry.register(
            "awscni_total_ip_addresses",
            "The total number of IP addresses",
            pool.total.clone(),
        );
        registry.register(
            "awscni_assigned_ip_addresses",
            "The number of IP addresses assigned to pods",
            pool.assigned.clone(),
        );
        registry.register(
            "vpc_cni_pool_available_addresses",
            "Addresses an ADD can have now (not assigned, not cooling)",
            pool.available.clone(),
        );
        registry.register(
            "vpc_cni_pool_cooling_addresses",
            "Released addresses resting before reuse (IP_COOLDOWN_PERIOD)",
            pool.cooling.clone(),
        );
        registry.register(
            "vpc_cni_pool_outside_addresses",
            "Assigned addresses the latest look at the node did not show in the pool",
            pool.outside_pool.clone(),
        );

        let requests = RequestMetrics::default();
        requests.register(&mut registry);

        let checkpoint = CheckpointMetrics {
            write_seconds: Histogram::new([
                0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            group_size: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
            write_errors: PlainCounter::default(),
        };
        registry.register(
            "vpc_cni_checkpoint_write_seconds",
            "Time of one durable checkpoint write (temp file, fsync, rename, fsync of the \
             directory)",
            checkpoint.write_seconds.clone(),
        );
        registry.register(
            "vpc_cni_checkpoint_group_size",
            "Changes one checkpoint write made durable together (group commit)",
            checkpoint.group_size.clone(),
        );
        registry.register(
            "vpc_cni_checkpoint_write_errors_total",
            "Checkpoint writes that failed",
            checkpoint.write_errors.clone(),
        );

        let (enis, overlay, ec2) = match mode {
            Mode::Vpc => (
                Some(Self::register_enis(&mut registry)),
                None,
                Some(Arc::new(Ec2Metrics::register(&mut registry))),
            ),
            Mode::Overlay | Mode::Unspecified => {
                (None, Some(Self::register_overlay(&mut registry)), None)
            }
        };
        Self {
            registry,
            pool,
            enis,
            overlay,
            requests,
            ec2,
            checkpoint,
        }
    }

    fn register_enis(registry: &mut Registry) -> EniGauges {
        let g = EniGauges::default();
        registry.register(
            "awscni_eni_allocated",
            "The number of ENIs allocated",
            g.allocated.clone(),
        );
        registry.register(
            "awscni_eni_max",
            "The maximum number of ENIs that can be attached to the instance, accounting for \
             unmanaged ENIs",
            g.max.clone(),
        );
        registry.register(
            "awscni_ip_max",
            "The maximum number of IP addresses that can be allocated to the instance",
            g.ip_max.clone(),
        );
        registry.register(
            "awscni_total_ipv4_prefixes",
            "The total number of IPv4 prefixes",
            g.prefixes.clone(),
        );
        registry.register(
            "awscni_reconcile_count",
            "The number of times ipamd reconciles on ENIs and IP/Prefix addresses",
            g.reconciled.clone(),
        );
        registry.register(
            "vpc_cni_free_ipv4_prefixes",
            "Delegated /28s none of whose addresses is assigned or cooling",
            g.free_prefixes.clone(),
        );
        registry.register(
            "vpc_cni_max_pods",
            "Most pods the pool plans for",
            g.max_pods.clone(),
        );
        registry.register(
            "vpc_cni_unmanaged_enis",
            "Attached ENIs tagged node.k8s.amazonaws.com/no_manage=true",
            g.unmanaged.clone(),
        );
        registry.register(
            "vpc_cni_leaked_enis_deleted_total",
            "ENIs of ours found left available (leaked) and deleted",
            g.leaked_deleted.clone(),
        );
        registry.register(
            "vpc_cni_fast_path_pods",
            "Pods whose established TCP flows take the fast path (ENABLE_POD_FAST_PATH; 0 when \
             it is off)",
            g.fast_path_pods.clone(),
        );
        registry.register(
            "vpc_cni_fast_path_waiting_pods",
            "Pods the fast path does not carry yet because their veth was missing at its \
             latest look",
            g.fast_path_waiting.clone(),
        );
        registry.register(
            "vpc_cni_fast_path_updates_total",
            "Times the fast path's nftables tables were replaced",
            g.fast_path_updates.clone(),
        );
        registry.register(
            "vpc_cni_fast_path_errors_total",
            "Fast path updates that failed (each is retried)",
            g.fast_path_errors.clone(),
        );
        g
    }

    /// The same, plus the overlay's series: a VPC-mode node with `ENABLE_HYBRID_OVERLAY` has
    /// overlay peers too.
    #[must_use]
    pub fn with_overlay_series(mut self) -> Self {
        if self.overlay.is_none() {
            self.overlay = Some(Self::register_overlay(&mut self.registry));
        }
        self
    }

    fn register_overlay(registry: &mut Registry) -> OverlayGauges {
        let g = OverlayGauges::default();
        registry.register(
            "vpc_cni_overlay_peers",
            "Overlay peers whose VXLAN entries are programmed",
            g.peers.clone(),
        );
        registry.register(
            "vpc_cni_overlay_reconcile_errors_total",
            "Peer changes and resyncs of the overlay that failed (each is retried)",
            g.failures.clone(),
        );
        g
    }

    /// The counters the gRPC service feeds.
    #[must_use]
    pub fn requests(&self) -> RequestMetrics {
        self.requests.clone()
    }

    /// What the EC2 client reports to (VPC mode).
    #[must_use]
    pub fn ec2(&self) -> Option<Arc<Ec2Metrics>> {
        self.ec2.clone()
    }

    /// What the store reports each checkpoint write to.
    #[must_use]
    pub fn checkpoint_observer(&self) -> WriteObserver {
        let m = self.checkpoint.clone();
        Arc::new(move |report: WriteReport| {
            m.write_seconds.observe(report.took.as_secs_f64());
            #[allow(clippy::cast_precision_loss)] // a group is far below 2^52 changes
            m.group_size.observe(report.changes as f64);
            if !report.ok {
                m.write_errors.inc();
            }
        })
    }

    /// ENIs the leaked-ENI cleanup deleted.
    pub fn leaked_enis_deleted(&self, n: usize) {
        if let Some(enis) = &self.enis {
            enis.leaked_deleted
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    fn set(&self, figures: &Figures) {
        let p = &figures.pool;
        self.pool.total.set(gauge_value(p.total));
        self.pool.assigned.set(gauge_value(p.assigned));
        self.pool.available.set(gauge_value(p.available));
        self.pool.cooling.set(gauge_value(p.cooling));
        self.pool.outside_pool.set(gauge_value(p.outside_pool));
        if let (Some(g), Some(vpc)) = (&self.enis, &p.vpc) {
            g.allocated.set(gauge_value(vpc.enis));
            g.max.set(gauge_value(vpc.max_enis));
            g.ip_max.set(gauge_value(vpc.ip_max));
            g.prefixes.set(gauge_value(vpc.prefixes));
            g.free_prefixes.set(gauge_value(vpc.free_prefixes));
            g.max_pods.set(gauge_value(vpc.max_pods));
            g.unmanaged.set(gauge_value(vpc.unmanaged_enis));
        }
        if let Some(g) = &self.enis {
            let fast = figures.fast_path.unwrap_or_default();
            g.fast_path_pods.set(gauge_value(fast.pods));
            g.fast_path_waiting.set(gauge_value(fast.waiting));
            g.fast_path_updates.set_total(fast.updates);
            g.fast_path_errors.set_total(fast.errors);
        }
        if let (Some(g), Some(counts)) = (&self.enis, &figures.reconciled) {
            for (name, total) in [
                (RECONCILE_ENI_ADDED, counts.enis_added),
                (RECONCILE_ENI_REMOVED, counts.enis_removed),
                (RECONCILE_ADDRESS_ADDED, counts.addresses_added),
                (RECONCILE_ADDRESS_REMOVED, counts.addresses_removed),
            ] {
                g.reconciled
                    .get_or_create(&FnLabels {
                        r#fn: name.to_owned(),
                    })
                    .set_total(total);
            }
        }
        if let Some(g) = &self.overlay {
            g.peers.set(gauge_value(figures.peers.unwrap_or(0)));
            g.failures.set_total(figures.overlay_failures.unwrap_or(0));
        }
    }

    /// The exposition of every series, with the pool figures of `figures`, in Prometheus's
    /// text format 0.0.4 (see `kinds`).
    #[must_use]
    pub fn render(&self, figures: &Figures) -> String {
        self.set(figures);
        let mut text = String::new();
        // Writing to a String cannot fail, and every metric here encodes infallibly.
        if let Err(e) =
            prometheus_client::encoding::text::encode_registry(&mut text, &self.registry)
        {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        text
    }
}

/// Buckets of a duration histogram in seconds, from 1 ms to 10 s.
fn seconds_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

/// A duration as the histograms take it.
fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
