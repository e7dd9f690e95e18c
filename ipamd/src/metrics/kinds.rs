//! The one metric kind prometheus-client lacks for us: a counter exposed under exactly the name
//! it was registered with.
//!
//! prometheus-client writes OpenMetrics, where a counter's sample is named `<name>_total`. The
//! AWS VPC CNI serves Prometheus's text format 0.0.4 (client_golang's default), where the
//! sample carries the name as registered: `awscni_add_ip_req_count`, not
//! `awscni_add_ip_req_count_total`. Dashboards and alerts query those names, so ipamd serves
//! the text format too (see `server.rs`) and every counter goes through this type: `# TYPE`
//! says counter, the sample line carries the registered name. Our own counters are registered
//! with `_total` already, as that format's convention asks.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A monotonic count, exposed as a counter named exactly as registered.
#[derive(Debug, Clone, Default)]
pub struct PlainCounter {
    // Gauge storage for its `set`: totals kept elsewhere (the pool controller's) are copied in
    // at each scrape. Only ever moves up.
    value: Gauge<u64, AtomicU64>,
}

impl PlainCounter {
    pub fn inc(&self) {
        self.value.inc();
    }

    pub fn inc_by(&self, n: u64) {
        self.value.inc_by(n);
    }

    #[must_use]
    pub fn get(&self) -> u64 {
        self.value.get()
    }

    /// Takes a total counted elsewhere; a smaller one is ignored, so the series never goes
    /// back.
    pub fn set_total(&self, total: u64) {
        if total > self.value.get() {
            self.value.set(total);
        }
    }
}

impl TypedMetric for PlainCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for PlainCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // A gauge's sample line is `<name>{labels} <value>`: the line text format 0.0.4 wants
        // for a counter. The `# TYPE` line comes from `metric_type`.
        encoder.encode_gauge(&self.value.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}
