//! Read-only lists: a project's subscriptions, email log and Stripe event ledger; the
//! organization's audit log.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use reauth_actors::admin::audit::{AuditEntry, AuditFilter};
use reauth_actors::admin::logs::{EmailLogEntry, StripeEvent, Subscription};
use reauth_actors::admin::{Access, Page, PageReq};
use serde::Deserialize;

use super::users::PageQuery;
use super::{Api, Query422};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects/{project_id}/subscriptions",
            get(subscriptions),
        )
        .route("/api/v1/projects/{project_id}/email_log", get(email_log))
        .route(
            "/api/v1/projects/{project_id}/stripe_events",
            get(stripe_events),
        )
        .route("/api/v1/audit_log", get(audit_log))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/subscriptions",
    operation_id = "list_subscriptions",
    tag = "subscriptions",
    params(("project_id" = String, Path, description = "The project (`prj_…`)"), PageReq),
    responses((status = 200, description = "A page of the project's subscriptions", body = Page<Subscription>))
)]
pub(super) async fn subscriptions(
    api: Api,
    Path(project_id): Path<String>,
    Query422(q): Query422<PageQuery>,
) -> Result<Response, ApiError> {
    api.require("subscriptions", Access::Read)?;
    let page = q.page()?;
    Ok(Json(
        api.admin
            .list_subscriptions(&api.caller, &project_id, None, &page)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/email_log",
    operation_id = "list_email_log",
    tag = "logs",
    params(("project_id" = String, Path, description = "The project (`prj_…`)"), PageReq),
    responses((status = 200, description = "A page of the project's sent emails, newest first", body = Page<EmailLogEntry>))
)]
pub(super) async fn email_log(
    api: Api,
    Path(project_id): Path<String>,
    Query422(q): Query422<PageQuery>,
) -> Result<Response, ApiError> {
    api.require("email_log", Access::Read)?;
    let page = q.page()?;
    Ok(Json(
        api.admin
            .list_email_log(&api.caller, &project_id, &page)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/stripe_events",
    operation_id = "list_stripe_events",
    tag = "logs",
    params(("project_id" = String, Path, description = "The project (`prj_…`)"), PageReq),
    responses((status = 200, description = "A page of the Stripe events received, newest first, with their outcome", body = Page<StripeEvent>))
)]
pub(super) async fn stripe_events(
    api: Api,
    Path(project_id): Path<String>,
    Query422(q): Query422<PageQuery>,
) -> Result<Response, ApiError> {
    api.require("stripe_events", Access::Read)?;
    let page = q.page()?;
    Ok(Json(
        api.admin
            .list_stripe_events(&api.caller, &project_id, &page)
            .await?,
    )
    .into_response())
}

#[derive(Deserialize, Default)]
pub(super) struct AuditQuery {
    #[serde(flatten)]
    page: PageQuery,
    project_id: Option<String>,
    action: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/audit_log",
    operation_id = "list_audit_log",
    tag = "logs",
    params(
        PageReq,
        ("project_id" = Option<String>, Query, description = "Only this project's entries"),
        ("action" = Option<String>, Query, description = "Only this action (`user.banned`, `auth.sign_in`, …)"),
    ),
    responses(
        (status = 200, description = "A page of the organization's audit log and its projects' auth events, newest first", body = Page<AuditEntry>),
        (status = 404, description = "`project_id` names no project of this organization", body = ErrorBody),
    )
)]
pub(super) async fn audit_log(
    api: Api,
    Query422(q): Query422<AuditQuery>,
) -> Result<Response, ApiError> {
    api.require("audit_log", Access::Read)?;
    let page = q.page.page()?;
    let filter = AuditFilter {
        project_id: q.project_id.filter(|s| !s.is_empty()),
        action: q.action.filter(|s| !s.is_empty()),
    };
    Ok(Json(api.admin.list_audit(&api.caller, &filter, &page).await?).into_response())
}
