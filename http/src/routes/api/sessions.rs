//! `/api/v1/projects/{project_id}/sessions`: the project's sessions; revoke one.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use reauth_actors::admin::sessions::SessionInfo;
use reauth_actors::admin::{Access, Page, PageReq};

use super::users::SessionQuery;
use super::{Api, Query422};
use crate::app::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{project_id}/sessions", get(list))
        .route(
            "/api/v1/projects/{project_id}/sessions/{session_id}",
            delete(revoke),
        )
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/sessions",
    operation_id = "list_sessions",
    tag = "sessions",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        PageReq,
        ("include_revoked" = Option<bool>, Query, description = "Also revoked and expired sessions"),
    ),
    responses((status = 200, description = "A page of the project's sessions (live ones unless `include_revoked`)", body = Page<SessionInfo>))
)]
pub(super) async fn list(
    api: Api,
    Path(project_id): Path<String>,
    Query422(q): Query422<SessionQuery>,
) -> Result<Response, ApiError> {
    api.require("sessions", Access::Read)?;
    let (filter, page) = (q.filter()?, q.page.page()?);
    Ok(Json(
        api.admin
            .list_sessions(&api.caller, &project_id, None, &filter, &page)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project_id}/sessions/{session_id}",
    operation_id = "revoke_session",
    tag = "sessions",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("session_id" = String, Path, description = "The session (`ses_…`)"),
    ),
    responses((status = 204, description = "Revoked on every instance (already revoked is the same answer)"))
)]
pub(super) async fn revoke(
    api: Api,
    Path((project_id, session_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("sessions", Access::Write)?;
    api.admin
        .revoke_session(&api.caller, &project_id, &session_id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
