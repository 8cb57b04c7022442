//! `/api/v1/projects`: list, create, get, update, delete; credentials (write-only); domains.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use reauth_actors::admin::Access;
use reauth_actors::admin::PageReq;
use reauth_actors::admin::projects::{Credentials, NewProject, ProjectUpdate};
use serde::Deserialize;

use super::{Api, Body422, Query422, created};
use crate::app::AppState;
use crate::error::ApiError;

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
}

async fn list(api: Api, Query422(page): Query422<PageReq>) -> Result<Response, ApiError> {
    api.require("projects", Access::Read)?;
    Ok(Json(api.admin.list_projects(&api.caller, &page).await?).into_response())
}

async fn create(api: Api, Body422(new): Body422<NewProject>) -> Result<Response, ApiError> {
    api.require("projects", Access::Write)?;
    Ok(created(api.admin.create_project(&api.caller, &new).await?))
}

async fn show(api: Api, Path(project_id): Path<String>) -> Result<Response, ApiError> {
    api.require("projects", Access::Read)?;
    Ok(Json(api.admin.get_project(&api.caller, &project_id).await?).into_response())
}

async fn update(
    api: Api,
    Path(project_id): Path<String>,
    Body422(u): Body422<ProjectUpdate>,
) -> Result<Response, ApiError> {
    api.require("projects", Access::Write)?;
    Ok(Json(api.admin.update_project(&api.caller, &project_id, &u).await?).into_response())
}

async fn remove(api: Api, Path(project_id): Path<String>) -> Result<Response, ApiError> {
    api.require("projects", Access::Write)?;
    api.admin.delete_project(&api.caller, &project_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn credentials(api: Api, Path(project_id): Path<String>) -> Result<Response, ApiError> {
    api.require("credentials", Access::Read)?;
    Ok(Json(api.admin.get_credentials(&api.caller, &project_id).await?).into_response())
}

async fn put_credentials(
    api: Api,
    Path(project_id): Path<String>,
    Body422(c): Body422<Credentials>,
) -> Result<Response, ApiError> {
    api.require("credentials", Access::Write)?;
    Ok(Json(api.admin.put_credentials(&api.caller, &project_id, &c).await?).into_response())
}

async fn domains(api: Api, Path(project_id): Path<String>) -> Result<Response, ApiError> {
    api.require("domains", Access::Read)?;
    let list = api.admin.list_domains(&api.caller, &project_id).await?;
    Ok(Json(serde_json::json!({ "data": list, "has_more": false, "next_cursor": null }))
        .into_response())
}

#[derive(Deserialize)]
struct NewDomain {
    hostname: String,
}

async fn add_domain(
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

async fn remove_domain(
    api: Api,
    Path((project_id, domain_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    api.require("domains", Access::Write)?;
    api.admin
        .remove_domain(&api.caller, &project_id, &domain_id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
