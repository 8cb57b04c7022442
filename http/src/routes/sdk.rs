//! SDK endpoints: who is this user (and what plan), the session, logout. Authenticated by the
//! session cookie or `Authorization: Bearer`. CORS only for the project's allowed origins.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reauth_actors::model::{ProjectRef, UserView};
use reauth_runtime::now_ms;
use std::sync::Arc;

use crate::app::AppState;
use crate::error::{ApiError, Code};
use crate::extract;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/user", get(user))
        .route("/v1/session", get(session))
        .route("/v1/logout", post(logout))
}

fn project(st: &AppState, headers: &HeaderMap) -> Result<ProjectRef, ApiError> {
    extract::project(st, headers)
        .ok_or_else(|| ApiError::new(Code::ProjectNotFound, "no project is served on this host"))
}

/// The project of the host and the signed-in user's view, or a 401/404 error.
pub async fn resolve(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<(ProjectRef, Arc<UserView>), ApiError> {
    let p = project(st, headers)?;
    let token = extract::token(headers).ok_or_else(ApiError::unauthenticated)?;
    let view = st
        .core
        .sessions
        .lookup(&p.id, token, now_ms())
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok((p, view))
}

async fn user(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Arc<UserView>>, ApiError> {
    resolve(&st, &headers).await.map(|(_, v)| Json(v))
}

async fn session(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (_, v) = resolve(&st, &headers).await?;
    Ok(Json(serde_json::json!({
        "id": v.session.id,
        "user_id": v.user_id,
        "created_at": v.session.created_at,
        "expires_at": v.session.expires_at,
    })))
}

async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let p = project(&st, &headers)?;
    let token = extract::token(&headers).ok_or_else(ApiError::unauthenticated)?;
    st.core
        .sessions
        .revoke(&p.id, token, now_ms())
        .await
        .map_err(ApiError::unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// CORS for `/v1/*`: only origins on the project's allow-list, with credentials.
pub async fn cors(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|origin| {
            let p = extract::project(&st, req.headers())?;
            p.allowed_origins
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
                .then(|| HeaderValue::from_str(origin).ok())
                .flatten()
        });
    let preflight = req.method() == Method::OPTIONS;
    let mut res = if preflight {
        if allowed.is_some() {
            StatusCode::NO_CONTENT.into_response()
        } else {
            ApiError::new(Code::Forbidden, "origin not allowed").into_response()
        }
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    res
}
