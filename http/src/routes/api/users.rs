//! `/api/v1/projects/{project_id}/users`: list (filters), get, update (name, metadata), ban,
//! unban, delete; a user's sessions (list, revoke all) and subscriptions.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reauth_actors::admin::logs::Subscription;
use reauth_actors::admin::sessions::{SessionFilter, SessionInfo};
use reauth_actors::admin::users::{EndUser, UserFilter, UserUpdate};
use reauth_actors::admin::{Access, Page, PageReq};
use serde::Deserialize;

use super::{Api, Body422, Query422};
use crate::app::AppState;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects/{project_id}/users", get(list))
        .route(
            "/api/v1/projects/{project_id}/users/{user_id}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/api/v1/projects/{project_id}/users/{user_id}/ban",
            post(ban),
        )
        .route(
            "/api/v1/projects/{project_id}/users/{user_id}/unban",
            post(unban),
        )
        .route(
            "/api/v1/projects/{project_id}/users/{user_id}/sessions",
            get(sessions).delete(revoke_sessions),
        )
        .route(
            "/api/v1/projects/{project_id}/users/{user_id}/subscriptions",
            get(subscriptions),
        )
}

/// Query values arrive as text so a bad one is a 422 naming its parameter (a typed field
/// would fail the whole query string with a message that names nothing).
pub(super) fn int(field: &str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::validation(field, "must be an integer")),
    }
}

pub(super) fn flag(field: &str, v: Option<&str>) -> Result<bool, ApiError> {
    match v.map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::validation(field, "must be true or false")),
    }
}

/// `limit` and `starting_after`, checked.
#[derive(Deserialize, Default)]
pub(super) struct PageQuery {
    limit: Option<String>,
    starting_after: Option<String>,
}

impl PageQuery {
    pub(super) fn page(&self) -> Result<PageReq, ApiError> {
        let page = PageReq {
            limit: int("limit", self.limit.as_deref())?,
            starting_after: self.starting_after.clone().filter(|s| !s.is_empty()),
        };
        page.limit()?;
        Ok(page)
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    #[serde(flatten)]
    page: PageQuery,
    email: Option<String>,
    email_prefix: Option<String>,
    created_gte: Option<String>,
    created_lt: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/users",
    operation_id = "list_users",
    tag = "users",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        PageReq,
        ("email" = Option<String>, Query, description = "Exactly this address (case-insensitive)"),
        ("email_prefix" = Option<String>, Query, description = "Addresses starting with this (case-insensitive)"),
        ("created_gte" = Option<i64>, Query, description = "Created at or after (ms since the epoch)"),
        ("created_lt" = Option<i64>, Query, description = "Created before (ms since the epoch)"),
    ),
    responses((status = 200, description = "A page of the project's users (deleted ones never appear)", body = Page<EndUser>))
)]
pub(super) async fn list(
    api: Api,
    Path(project_id): Path<String>,
    Query422(q): Query422<ListQuery>,
) -> Result<Response, ApiError> {
    api.require("users", Access::Read)?;
    let filter = UserFilter {
        email: q.email,
        email_prefix: q.email_prefix,
        created_gte: int("created_gte", q.created_gte.as_deref())?,
        created_lt: int("created_lt", q.created_lt.as_deref())?,
    };
    let page = q.page.page()?;
    Ok(Json(
        api.admin
            .list_users(&api.caller, &project_id, &filter, &page)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/users/{user_id}",
    operation_id = "get_user",
    tag = "users",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("user_id" = String, Path, description = "The user (`usr_…`)"),
    ),
    responses((status = 200, description = "The user", body = EndUser))
)]
pub(super) async fn show(
    api: Api,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("users", Access::Read)?;
    Ok(Json(
        api.admin
            .get_user(&api.caller, &project_id, &user_id)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/projects/{project_id}/users/{user_id}",
    operation_id = "update_user",
    tag = "users",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("user_id" = String, Path, description = "The user (`usr_…`)"),
    ),
    request_body = UserUpdate,
    responses((status = 200, description = "The user as changed", body = EndUser))
)]
pub(super) async fn update(
    api: Api,
    Path((project_id, user_id)): Path<(String, String)>,
    Body422(u): Body422<UserUpdate>,
) -> Result<Response, ApiError> {
    api.require("users", Access::Write)?;
    Ok(Json(
        api.admin
            .update_user(&api.caller, &project_id, &user_id, &u)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project_id}/users/{user_id}",
    operation_id = "delete_user",
    tag = "users",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("user_id" = String, Path, description = "The user (`usr_…`)"),
    ),
    responses((status = 204, description = "Deleted: signed out everywhere, personal data scrubbed"))
)]
pub(super) async fn remove(
    api: Api,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("users", Access::Write)?;
    api.admin
        .delete_user(&api.caller, &project_id, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project_id}/users/{user_id}/ban",
    operation_id = "ban_user",
    tag = "users",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("user_id" = String, Path, description = "The user (`usr_…`)"),
    ),
    responses((status = 200, description = "The user, banned: signed out everywhere and refused sign-in", body = EndUser))
)]
pub(super) async fn ban(
    api: Api,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("users", Access::Write)?;
    Ok(Json(
        api.admin
            .ban_user(&api.caller, &project_id, &user_id)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project_id}/users/{user_id}/unban",
    operation_id = "unban_user",
    tag = "users",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("user_id" = String, Path, description = "The user (`usr_…`)"),
    ),
    responses((status = 200, description = "The user, free to sign in again", body = EndUser))
)]
pub(super) async fn unban(
    api: Api,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("users", Access::Write)?;
    Ok(Json(
        api.admin
            .unban_user(&api.caller, &project_id, &user_id)
            .await?,
    )
    .into_response())
}

#[derive(Deserialize, Default)]
pub(super) struct SessionQuery {
    #[serde(flatten)]
    pub(super) page: PageQuery,
    pub(super) include_revoked: Option<String>,
}

impl SessionQuery {
    pub(super) fn filter(&self) -> Result<SessionFilter, ApiError> {
        Ok(SessionFilter {
            include_revoked: flag("include_revoked", self.include_revoked.as_deref())?,
        })
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/users/{user_id}/sessions",
    operation_id = "list_user_sessions",
    tag = "sessions",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("user_id" = String, Path, description = "The user (`usr_…`)"),
        PageReq,
        ("include_revoked" = Option<bool>, Query, description = "Also revoked and expired sessions"),
    ),
    responses((status = 200, description = "A page of the user's sessions (live ones unless `include_revoked`)", body = Page<SessionInfo>))
)]
pub(super) async fn sessions(
    api: Api,
    Path((project_id, user_id)): Path<(String, String)>,
    Query422(q): Query422<SessionQuery>,
) -> Result<Response, ApiError> {
    api.require("sessions", Access::Read)?;
    let (filter, page) = (q.filter()?, q.page.page()?);
    Ok(Json(
        api.admin
            .list_sessions(&api.caller, &project_id, Some(&user_id), &filter, &page)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project_id}/users/{user_id}/sessions",
    operation_id = "revoke_user_sessions",
    tag = "sessions",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("user_id" = String, Path, description = "The user (`usr_…`)"),
    ),
    responses((status = 204, description = "Every session of the user revoked, on every instance"))
)]
pub(super) async fn revoke_sessions(
    api: Api,
    Path((project_id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("sessions", Access::Write)?;
    api.admin
        .revoke_all_sessions(&api.caller, &project_id, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/users/{user_id}/subscriptions",
    operation_id = "list_user_subscriptions",
    tag = "subscriptions",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("user_id" = String, Path, description = "The user (`usr_…`)"),
        PageReq,
    ),
    responses((status = 200, description = "A page of the user's subscriptions", body = Page<Subscription>))
)]
pub(super) async fn subscriptions(
    api: Api,
    Path((project_id, user_id)): Path<(String, String)>,
    Query422(q): Query422<PageQuery>,
) -> Result<Response, ApiError> {
    api.require("subscriptions", Access::Read)?;
    let page = q.page()?;
    Ok(Json(
        api.admin
            .list_subscriptions(&api.caller, &project_id, Some(&user_id), &page)
            .await?,
    )
    .into_response())
}
