//! Dev-mode extras (never mounted by `serve`): the outbox of emails that would have been sent.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/dev/outbox", get(outbox))
}

async fn outbox(State(st): State<AppState>) -> Json<serde_json::Value> {
    let emails = st
        .core
        .svc
        .outbox
        .as_ref()
        .map(|o| o.list())
        .unwrap_or_default();
    Json(json!({ "emails": emails }))
}
