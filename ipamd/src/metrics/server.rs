//! `/metrics` over HTTP, in Prometheus's text format 0.0.4: what the AWS VPC CNI serves, so its
//! series keep their names when Prometheus parses ours (see `kinds`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Metrics;
use crate::introspect::NodeView;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Served = State<(Arc<Metrics>, Arc<NodeView>)>;

async fn scrape(State((metrics, view)): Served) -> Response {
    let figures = view.figures().await;
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        metrics.render(&figures),
    )
        .into_response()
}

/// `/metrics` with the pool figures read from `view` at each scrape.
pub fn router(metrics: Arc<Metrics>, view: Arc<NodeView>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((metrics, view))
}
