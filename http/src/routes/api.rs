//! The Management API under `/api/v1`, chosen by path on any host: `Authorization: Bearer
//! reauth_sk_…` (an organization's API key), every resource of the org through the
//! application service ([`reauth_actors::admin::Admin`]), cursor pagination, `Idempotency-Key`
//! on POST, errors from the one registry (422s name the field).

pub mod logs;
pub mod openapi;
pub mod projects;
pub mod sessions;
pub mod users;

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use reauth_actors::admin::idempotency::Begin;
use reauth_actors::admin::{Access, Admin, AdminError, Caller};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::edge::RequestId;
use crate::error::{ApiError, Code};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(projects::router())
        .merge(users::router())
        .merge(sessions::router())
        .merge(logs::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), idempotency))
        .route_layer(middleware::from_fn_with_state(state, authenticate))
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(what) => {
                ApiError::new(Code::NotFound, format!("{what} not found"))
            }
            AdminError::Invalid { field, message } => ApiError::validation(field, message),
            AdminError::Conflict(m) => ApiError::new(Code::Conflict, m),
            AdminError::Forbidden(scope) => ApiError::new(
                Code::Forbidden,
                format!("this API key lacks the {scope} scope"),
            ),
            AdminError::Unauthenticated(m) => ApiError::new(Code::InvalidApiKey, m),
            AdminError::Store(e) => ApiError::unavailable(format!("{e:#}")),
        }
    }
}

/// The org's caller, put in the request by [`authenticate`].
pub struct Api {
    pub admin: Admin,
    pub caller: Caller,
}

impl Api {
    /// Refuse unless the key has `resource:<access>`.
    pub fn require(&self, resource: &str, access: Access) -> Result<(), ApiError> {
        if self.caller.may(resource, access) {
            return Ok(());
        }
        let scope = match access {
            Access::Read => format!("{resource}:read"),
            Access::Write => format!("{resource}:write"),
        };
        Err(AdminError::Forbidden(scope).into())
    }
}

impl FromRequestParts<AppState> for Api {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        // No id holds a NUL, and PostgreSQL text cannot: answer before one reaches SQL (as a
        // 503). A NUL can only arrive percent-encoded.
        if parts.uri.path().contains("%00") {
            return Err(ApiError::new(Code::NotFound, "no such resource"));
        }
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new(Code::InvalidApiKey, "an API key is required"))?;
        Ok(Self {
            admin: Admin::new(&st.core),
            caller,
        })
    }
}

/// Every `/api/v1` request carries an org API key.
async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(String::from);
    let Some(presented) = presented else {
        return ApiError::new(
            Code::InvalidApiKey,
            "send an API key: Authorization: Bearer reauth_sk_…",
        )
        .into_response();
    };
    let ip = crate::extract::client(&st, &req).ip;
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    match Admin::new(&st.core)
        .authenticate(&presented, ip, request_id)
        .await
    {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `Idempotency-Key` on POST: replay a stored answer, refuse a reused key, store a 2xx.
async fn idempotency(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(String::from))
    else {
        return next.run(req).await;
    };
    let Ok(key) = key else {
        return ApiError::validation("Idempotency-Key", "must be visible ASCII").into_response();
    };
    let Some(org) = req.extensions().get::<Caller>().map(|c| c.org_id.clone()) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, 64 * 1024).await else {
        return ApiError::new(Code::PayloadTooLarge, "the request body is too large")
            .into_response();
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str().as_bytes());
    h.update(b" ");
    h.update(parts.uri.path().as_bytes());
    h.update(b"\n");
    h.update(&bytes);
    let fingerprint: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let admin = Admin::new(&st.core);
    match admin.idempotency_begin(&org, &key, &fingerprint).await {
        Ok(Begin::Replay { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut res =
                (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            res.headers_mut().insert(
                "idempotent-replayed",
                axum::http::HeaderValue::from_static("true"),
            );
            return res;
        }
        Ok(Begin::Fresh) => {}
        Err(AdminError::Conflict(m)) => {
            return ApiError::new(Code::IdempotencyConflict, m).into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (rparts, rbody) = res.into_parts();
    let Ok(out) = to_bytes(rbody, 4 * 1024 * 1024).await else {
        admin.idempotency_finish(&org, &key, 500, "").await;
        return ApiError::internal("response body unreadable").into_response();
    };
    admin
        .idempotency_finish(
            &org,
            &key,
            rparts.status.as_u16(),
            &String::from_utf8_lossy(&out),
        )
        .await;
    Response::from_parts(rparts, Body::from(out))
}

/// JSON body with errors from the registry: a field that does not parse is a 422 naming it.
pub struct Body422<T>(pub T);

impl<T: DeserializeOwned> axum::extract::FromRequest<AppState> for Body422<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &AppState) -> Result<Self, ApiError> {
        let bytes = to_bytes(req.into_body(), 64 * 1024)
            .await
            .map_err(|_| ApiError::new(Code::PayloadTooLarge, "the request body is too large"))?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            axum::body::Bytes::from_static(b"{}")
        } else {
            bytes
        };
        if let Some(field) = nul_in_json(&bytes) {
            return Err(ApiError::validation(
                field,
                "must not contain NUL characters",
            ));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(Body422)
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "body".to_string()
                } else {
                    path
                };
                ApiError::validation(field, e.inner().to_string())
            })
    }
}

/// Where a JSON body holds a NUL (in a string or a key), as a field path. PostgreSQL text and
/// jsonb cannot store one (SQLite can): refuse it as input, alike on both stores, rather than
/// as a 503 from the database. A NUL can only arrive escaped, so most bodies skip the walk.
fn nul_in_json(bytes: &[u8]) -> Option<String> {
    fn walk(v: &serde_json::Value, at: String) -> Option<String> {
        match v {
            serde_json::Value::String(s) => s.contains('\0').then_some(at),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, x)| walk(x, format!("{at}[{i}]"))),
            serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
                let here = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                if k.contains('\0') {
                    Some(at.clone())
                } else {
                    walk(x, here)
                }
            }),
            _ => None,
        }
    }
    let escaped = bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"));
    if !escaped {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&value, String::new()).map(|f| if f.is_empty() { "body".into() } else { f })
}

/// Query parameters with the same 422 treatment.
pub struct Query422<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for Query422<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or_default();
        if q.contains("%00")
            && let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            && let Some((name, _)) = pairs
                .iter()
                .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let field = if name.contains('\0') { "query" } else { name };
            return Err(ApiError::validation(
                field,
                "must not contain NUL characters",
            ));
        }
        serde_urlencoded::from_str(q)
            .map(Query422)
            .map_err(|e| ApiError::validation("query", e.to_string()))
    }
}

/// `201 Created` with the JSON of what was made.
pub fn created<T: serde::Serialize>(v: T) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}
