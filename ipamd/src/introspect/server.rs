//! The introspection API over HTTP: GET only (anything else is 405 Method Not Allowed, so
//! nothing here can change ipamd), JSON answers, no authentication: it listens on loopback
//! unless the operator binds it elsewhere.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::settings::NETWORKING_VARIABLES;
use super::NodeView;

/// Every path, for the index at `/` and the docs.
pub const PATHS: &[(&str, &str)] = &[
    ("/v1/pool", "the pool's figures"),
    (
        "/v1/enis",
        "attached ENIs and the state of each address (VPC mode)",
    ),
    ("/v1/pods", "every attachment holding an address"),
    (
        "/v1/peers",
        "the overlay's peers as programmed (overlay mode)",
    ),
    (
        "/v1/config",
        "every setting, its value and where it came from",
    ),
    (
        "/v1/ipamd-env-settings",
        "variable -> value of every setting",
    ),
    (
        "/v1/networkutils-env-settings",
        "variable -> value of the node networking settings",
    ),
];

type View = State<Arc<NodeView>>;

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec_pretty(value) {
        Ok(mut body) => {
            body.push(b'\n');
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}\n"),
        )
            .into_response(),
    }
}

/// The AWS VPC CNI's answer at `/`: `{"AvailableCommands": [paths]}`.
async fn index() -> Response {
    let paths: Vec<&str> = PATHS.iter().map(|(path, _)| *path).collect();
    json(&serde_json::json!({ "AvailableCommands": paths }))
}

async fn pool(State(view): View) -> Response {
    json(&view.pool())
}

async fn enis(State(view): View) -> Response {
    json(&view.enis())
}

async fn pods(State(view): View) -> Response {
    json(&view.pods())
}

async fn peers(State(view): View) -> Response {
    json(&view.peers().await)
}

async fn config(State(view): View) -> Response {
    json(&view.config())
}

async fn ipamd_env(State(view): View) -> Response {
    json(&view.env_settings(None))
}

async fn networkutils_env(State(view): View) -> Response {
    json(&view.env_settings(Some(NETWORKING_VARIABLES)))
}

async fn not_found() -> Response {
    let known: Vec<&str> = PATHS.iter().map(|(path, _)| *path).collect();
    (
        StatusCode::NOT_FOUND,
        format!("no such path; try one of {}\n", known.join(", ")),
    )
        .into_response()
}

/// The introspection routes over `view`.
pub fn router(view: Arc<NodeView>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/v1/pool", get(pool))
        .route("/v1/enis", get(enis))
        .route("/v1/pods", get(pods))
        .route("/v1/peers", get(peers))
        .route("/v1/config", get(config))
        .route("/v1/ipamd-env-settings", get(ipamd_env))
        .route("/v1/networkutils-env-settings", get(networkutils_env))
        .fallback(not_found)
        .with_state(view)
}
