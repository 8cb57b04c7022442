//! Routes by resource: hosted pages, SDK endpoints, operator endpoints, dev extras.

pub mod billing;
pub mod dev;
pub mod hosted;
pub mod ops;
pub mod sdk;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::{ApiError, Code};
use crate::pages::Brand;

/// JSON for API paths, a page for people.
pub fn wants_json(path: &str) -> bool {
    path.starts_with("/v1/")
        || path.starts_with("/webhooks/")
        || path.starts_with("/api/")
        || path.starts_with("/ops/")
        || matches!(path, "/metrics" | "/healthz" | "/readyz")
}

pub async fn not_found(State(st): State<AppState>, uri: Uri) -> Response {
    if wants_json(uri.path()) {
        return ApiError::new(Code::NotFound, "no such endpoint").into_response();
    }
    st.pages.message(
        StatusCode::NOT_FOUND,
        &Brand::neutral(),
        "Page not found",
        "There is nothing at this address.",
        Some(("/login", "Go to sign in")),
    )
}

/// 405 with the JSON error shape (axum's default has an empty body).
pub async fn method_not_allowed() -> Response {
    ApiError::new(Code::MethodNotAllowed, "this method is not allowed here").into_response()
}
