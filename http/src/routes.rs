//! Routes by resource: hosted pages, SDK endpoints, operator endpoints, dev extras.

pub mod api;
pub mod billing;
pub mod dev;
pub mod hosted;
pub mod ops;
pub mod sdk;

use axum::http::StatusCode;

/// JSON for API paths, a page for people.
pub fn wants_json(path: &str) -> bool {
    path.starts_with("/v1/")
        || path.starts_with("/webhooks/")
        || path.starts_with("/api/")
        || path.starts_with("/ops/")
        || matches!(path, "/metrics" | "/healthz" | "/readyz")
}

/// Bare 404 and 405: the edge gives every error the envelope (JSON on API paths, a page
/// elsewhere), so the fallbacks only say which.
pub async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

pub async fn method_not_allowed() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}
