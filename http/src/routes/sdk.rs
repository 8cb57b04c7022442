//! SDK endpoints: who is this user (and what plan), the session, logout. Authenticated by the
//! session cookie or `Authorization: Bearer`. CORS only for the project's allowed origins.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
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
    Ok(Json(crate::edge::session_json(&v)))
}

async fn logout(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let headers = req.headers();
    let p = project(&st, headers)?;
    let token = extract::token(headers).ok_or_else(ApiError::unauthenticated)?;
    // Authenticated by the cookie (not a bearer header): clear it, so later requests don't
    // each pay a round trip that answers 401.
    let by_cookie = extract::cookie(headers, extract::SESSION_COOKIE) == Some(token)
        && headers.get(axum::http::header::AUTHORIZATION).is_none();
    let rec = st
        .core
        .sessions
        .sign_out(&p.id, token, now_ms())
        .await
        .map_err(ApiError::unavailable)?;
    if let Some(rec) = rec {
        let rid = req
            .extensions()
            .get::<crate::edge::RequestId>()
            .map(|r| r.0.clone());
        reauth_actors::login::audit_auth(
            &st.core.svc,
            &p.id,
            "auth.logout",
            Some(&rec.user_id),
            extract::client(&st, &req).ip.as_deref(),
            rid.as_deref(),
            serde_json::json!({ "session_id": rec.id, "via": "sdk" }),
        )
        .await;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    if by_cookie {
        res.headers_mut().append(
            axum::http::header::SET_COOKIE,
            crate::routes::hosted::session_cookie(&p, req.headers(), "", 0),
        );
    }
    Ok(res)
}
