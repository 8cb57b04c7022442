//! Operator endpoints: liveness and readiness (both listeners), Prometheus metrics, the
//! operator console (`/ops`, and `/ops/supervision` — the same data as JSON), drills, and the
//! on-demand TLS `ask` check (the ops listener only).

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

mod console;

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
        .route("/ops", get(console::page))
        .route("/ops/supervision", get(console::json))
        .route("/ops/drills/project-failure", post(console::drill))
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
    let view = console::gather(&st, false).await;
    metrics::gauge!("reauth_sessions_resident").set(st.core.sessions.resident() as f64);
    metrics::gauge!("reauth_projects_loaded").set(st.core.directory.projects().len() as f64);
    metrics::gauge!("reauth_tenants_up").set(f64::from(u8::from(view.process.tree_up)));
    metrics::gauge!("reauth_database_up").set(f64::from(u8::from(view.process.database.up)));
    metrics::gauge!("reauth_cache_up").set(f64::from(u8::from(view.process.cache.up)));
    metrics::gauge!("reauth_bus_connected").set(f64::from(u8::from(view.bus.connected)));
    if let Some(ms) = view.process.database.latency_ms {
        metrics::gauge!("reauth_database_ping_seconds").set(ms / 1000.0);
    }
    if let Some(ms) = view.process.cache.latency_ms {
        metrics::gauge!("reauth_cache_ping_seconds").set(ms / 1000.0);
    }
    let mut text = st.metrics.render();
    text.push_str(&console::project_series(&st, &view));
    text.push_str(&format!(
        "# HELP reauth_build_info The running build.\n# TYPE reauth_build_info gauge\nreauth_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    ));
    reauth_runtime::process::render(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
