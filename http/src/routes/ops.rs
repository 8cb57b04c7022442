//! Operator endpoints: liveness and readiness (both listeners), Prometheus metrics, the
//! supervision tree and the on-demand TLS `ask` check (the ops listener only).

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;

/// Liveness and readiness: on both listeners (load balancers probe the public one).
pub fn health() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Operators only: mounted on the ops listener, never on tenant hosts.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/ops/supervision", get(supervision))
        .route("/ops/tls/ask", get(tls_ask))
}

#[derive(serde::Deserialize)]
struct Ask {
    domain: Option<String>,
}

/// Caddy's on-demand TLS `ask`: 200 exactly when `domain` is a routed custom domain of some
/// project or a `<slug>.<base domain>`, else 404 — from the directory in memory, so a flood
/// of TLS handshakes for random names never reaches the database.
async fn tls_ask(State(st): State<AppState>, Query(q): Query<Ask>) -> StatusCode {
    let host = q
        .domain
        .as_deref()
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default();
    if !host.is_empty()
        && st
            .core
            .directory
            .tls_allowed(&host, st.settings.base_domain.as_deref())
    {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(st): State<AppState>) -> Response {
    let db = st.core.svc.db.ping().await;
    let cache = st.core.svc.cache.ping().await;
    let tenants = st.core.tenants.is_up();
    let body = json!({
        "database": if db.is_ok() { "ok" } else { "unreachable" },
        "cache": if cache.is_ok() { "ok" } else { "unreachable" },
        "tenants": if tenants { "ok" } else { "down" },
    });
    let status = if db.is_ok() && cache.is_ok() && tenants {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn prometheus(State(st): State<AppState>) -> Response {
    // Gauges that are cheaper to read on scrape than to maintain on every change.
    metrics::gauge!("reauth_sessions_resident").set(st.core.sessions.resident() as f64);
    metrics::gauge!("reauth_projects_loaded").set(st.core.directory.projects().len() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

async fn supervision(State(st): State<AppState>) -> Json<serde_json::Value> {
    let projects = st.core.tenants.children().await;
    Json(json!({
        "runtime": {
            "root": { "strategy": "one_for_one", "children": ["tenants"], "tree_up": st.core.tenants.is_up() },
            "tenants": { "strategy": "one_for_one", "children": projects },
            "sessions": { "resident": st.core.sessions.resident(), "passivate_after_secs": st.settings.session_idle_secs },
            "bus_bridge": { "backend": st.core.svc.cache.kind() },
            "janitor": { "every_secs": 300 },
        }
    }))
}
