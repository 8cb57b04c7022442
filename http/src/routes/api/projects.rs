//! `/api/v1/projects`: list, create, get, update, delete; credentials (write-only); domains.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use reauth_actors::admin::Access;
use reauth_actors::admin::projects::{
    Credentials, CredentialsView, Domain, NewProject, ProjectUpdate, ProjectView,
};
use reauth_actors::admin::{Page, PageReq};
use serde::Deserialize;

use super::{Api, Body422, Query422, created};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/projects", get(list).post(create))
        .route(
            "/api/v1/projects/{project_id}",
            get(show).patch(update).delete(remove),
        )
        .route(
            "/api/v1/projects/{project_id}/credentials",
            get(credentials).put(put_credentials),
        )
        .route(
            "/api/v1/projects/{project_id}/domains",
            get(domains).post(add_domain),
        )
        .route(
            "/api/v1/projects/{project_id}/domains/{domain_id}",
            delete(remove_domain),
        )
        .route(
            "/api/v1/projects/{project_id}/domains/{domain_id}/verify",
            post(verify_domain),
        )
        .route(
            "/api/v1/projects/{project_id}/domains/{domain_id}/primary",
            post(set_primary_domain),
        )
}

#[utoipa::path(
    get,
    path = "/api/v1/projects",
    operation_id = "list_projects",
    tag = "projects",
    params(PageReq),
    responses((status = 200, description = "A page of the organization's projects", body = Page<ProjectView>))
)]
pub(super) async fn list(
    api: Api,
    Query422(page): Query422<PageReq>,
) -> Result<Response, ApiError> {
    api.require("projects", Access::Read)?;
    Ok(Json(api.admin.list_projects(&api.caller, &page).await?).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/projects",
    operation_id = "create_project",
    tag = "projects",
    request_body = NewProject,
    responses(
        (status = 201, description = "The new project", body = ProjectView),
        (status = 409, description = "A project with this slug exists, or an `Idempotency-Key` was reused for another request", body = ErrorBody),
    )
)]
pub(super) async fn create(
    api: Api,
    Body422(new): Body422<NewProject>,
) -> Result<Response, ApiError> {
    api.require("projects", Access::Write)?;
    Ok(created(api.admin.create_project(&api.caller, &new).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}",
    operation_id = "get_project",
    tag = "projects",
    params(("project_id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 200, description = "The project", body = ProjectView))
)]
pub(super) async fn show(api: Api, Path(project_id): Path<String>) -> Result<Response, ApiError> {
    api.require("projects", Access::Read)?;
    Ok(Json(api.admin.get_project(&api.caller, &project_id).await?).into_response())
}

#[utoipa::path(
    patch,
    path = "/api/v1/projects/{project_id}",
    operation_id = "update_project",
    tag = "projects",
    params(("project_id" = String, Path, description = "The project (`prj_…`)")),
    request_body = ProjectUpdate,
    responses((status = 200, description = "The project as changed", body = ProjectView))
)]
pub(super) async fn update(
    api: Api,
    Path(project_id): Path<String>,
    Body422(u): Body422<ProjectUpdate>,
) -> Result<Response, ApiError> {
    api.require("projects", Access::Write)?;
    Ok(Json(
        api.admin
            .update_project(&api.caller, &project_id, &u)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project_id}",
    operation_id = "delete_project",
    tag = "projects",
    params(("project_id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 204, description = "Deleted, with its users, sessions, subscriptions and logs"))
)]
pub(super) async fn remove(api: Api, Path(project_id): Path<String>) -> Result<Response, ApiError> {
    api.require("projects", Access::Write)?;
    api.admin.delete_project(&api.caller, &project_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/credentials",
    operation_id = "get_credentials",
    tag = "projects",
    params(("project_id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 200, description = "Which credentials are set (secrets by their last four characters only)", body = CredentialsView))
)]
pub(super) async fn credentials(
    api: Api,
    Path(project_id): Path<String>,
) -> Result<Response, ApiError> {
    api.require("credentials", Access::Read)?;
    Ok(Json(api.admin.get_credentials(&api.caller, &project_id).await?).into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/projects/{project_id}/credentials",
    operation_id = "put_credentials",
    tag = "projects",
    params(("project_id" = String, Path, description = "The project (`prj_…`)")),
    request_body = Credentials,
    responses((status = 200, description = "Which credentials are set now", body = CredentialsView))
)]
pub(super) async fn put_credentials(
    api: Api,
    Path(project_id): Path<String>,
    Body422(c): Body422<Credentials>,
) -> Result<Response, ApiError> {
    api.require("credentials", Access::Write)?;
    Ok(Json(
        api.admin
            .put_credentials(&api.caller, &project_id, &c)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{project_id}/domains",
    operation_id = "list_domains",
    tag = "projects",
    params(("project_id" = String, Path, description = "The project (`prj_…`)")),
    responses((status = 200, description = "The project's domains (one page)", body = Page<Domain>))
)]
pub(super) async fn domains(
    api: Api,
    Path(project_id): Path<String>,
) -> Result<Response, ApiError> {
    api.require("domains", Access::Read)?;
    let data = api.admin.list_domains(&api.caller, &project_id).await?;
    Ok(Json(Page {
        data,
        has_more: false,
        next_cursor: None,
    })
    .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewDomain {
    /// A DNS name such as `auth.example.com`; case-insensitive, and an internationalized name
    /// (`auth.bücher.example`) is stored in its punycode form (`auth.xn--bcher-kva.example`).
    #[schema(min_length = 3, max_length = 253)]
    hostname: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project_id}/domains",
    operation_id = "add_domain",
    tag = "projects",
    params(("project_id" = String, Path, description = "The project (`prj_…`)")),
    request_body = NewDomain,
    responses(
        (status = 201, description = "The domain, pending until its DNS record is seen", body = Domain),
        (status = 409, description = "Another project has claimed this host name, or an `Idempotency-Key` was reused for another request", body = ErrorBody),
    )
)]
pub(super) async fn add_domain(
    api: Api,
    Path(project_id): Path<String>,
    Body422(d): Body422<NewDomain>,
) -> Result<Response, ApiError> {
    api.require("domains", Access::Write)?;
    Ok(created(
        api.admin
            .add_domain(&api.caller, &project_id, &d.hostname)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{project_id}/domains/{domain_id}",
    operation_id = "remove_domain",
    tag = "projects",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("domain_id" = String, Path, description = "The domain (`dom_…`)"),
    ),
    responses((status = 204, description = "Removed"))
)]
pub(super) async fn remove_domain(
    api: Api,
    Path((project_id, domain_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("domains", Access::Write)?;
    api.admin
        .remove_domain(&api.caller, &project_id, &domain_id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project_id}/domains/{domain_id}/verify",
    operation_id = "verify_domain",
    tag = "projects",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("domain_id" = String, Path, description = "The domain (`dom_…`)"),
    ),
    responses((status = 200, description = "The domain after a DNS check now: `verified`, or why not in `reason`", body = Domain))
)]
pub(super) async fn verify_domain(
    api: Api,
    Path((project_id, domain_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("domains", Access::Write)?;
    Ok(Json(
        api.admin
            .verify_domain(&api.caller, &project_id, &domain_id)
            .await?,
    )
    .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{project_id}/domains/{domain_id}/primary",
    operation_id = "set_primary_domain",
    tag = "projects",
    params(
        ("project_id" = String, Path, description = "The project (`prj_…`)"),
        ("domain_id" = String, Path, description = "The domain (`dom_…`)"),
    ),
    responses((status = 200, description = "The domain, now the primary: once verified, the canonical origin (the project's other hosts redirect to it)", body = Domain))
)]
pub(super) async fn set_primary_domain(
    api: Api,
    Path((project_id, domain_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("domains", Access::Write)?;
    Ok(Json(
        api.admin
            .set_primary_domain(&api.caller, &project_id, &domain_id)
            .await?,
    )
    .into_response())
}
