//! The metrics and introspection endpoints: bound at start, before the node is touched, so a
//! port ipamd cannot have stops it naming the knob; served once the pool exists.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use super::supervise::{task, Lifetime, Supervisor};
use crate::config::ObserveSettings;
use crate::error::IpamdError;
use crate::introspect::NodeView;
use crate::metrics::Metrics;

/// The listeners of the endpoints that are not turned off.
pub(super) struct Listeners {
    metrics: Option<TcpListener>,
    introspection: Option<TcpListener>,
}

async fn listen(variable: &'static str, addr: SocketAddr) -> Result<TcpListener, IpamdError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| IpamdError::Config {
            variable,
            reason: format!("cannot listen on {addr}: {e}"),
        })
}

/// Binds `METRICS_ADDR` and `INTROSPECTION_BIND_ADDRESS` unless `DISABLE_METRICS` or
/// `DISABLE_INTROSPECTION` turns them off.
pub(super) async fn bind(settings: &ObserveSettings) -> Result<Listeners, IpamdError> {
    let metrics = if settings.disable_metrics {
        None
    } else {
        Some(listen("METRICS_ADDR", settings.metrics_addr).await?)
    };
    let introspection = if settings.disable_introspection {
        None
    } else {
        Some(
            listen(
                "INTROSPECTION_BIND_ADDRESS",
                settings.introspection_bind_address,
            )
            .await?,
        )
    };
    Ok(Listeners {
        metrics,
        introspection,
    })
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn serve_on(
    supervisor: &Supervisor,
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
) {
    let stop = stopped(supervisor.stop_signal());
    let addr = listener
        .local_addr()
        .map_or_else(|e| format!("? ({e})"), |a| a.to_string());
    info!(endpoint = name, %addr, "serving");
    supervisor.spawn(name, Lifetime::UntilStop, async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|source| IpamdError::Io {
                context: format!("running the {name} on {addr}"),
                source,
            })
    });
}

/// Serves the bound endpoints until ipamd stops, under the supervisor (an endpoint that ends
/// early is a death, like any background task's).
pub(super) fn serve(
    listeners: Listeners,
    supervisor: &Supervisor,
    metrics: Arc<Metrics>,
    view: Arc<NodeView>,
) {
    if let Some(listener) = listeners.metrics {
        let router = crate::metrics::router(metrics, Arc::clone(&view));
        serve_on(supervisor, task::METRICS_SERVER, listener, router);
    }
    if let Some(listener) = listeners.introspection {
        let router = crate::introspect::router(view);
        serve_on(supervisor, task::INTROSPECTION_SERVER, listener, router);
    }
}
