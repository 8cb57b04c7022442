//! The Management API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` and the view types' `ToSchema`; served at `GET /api/v1/openapi.json`
//! (public: no API key) and committed as `http/openapi.json`, which `tests/openapi.rs` keeps
//! equal to what the code generates (`REAUTH_UPDATE_OPENAPI=1` rewrites it).
//!
//! A handler's annotation names its success answer and the errors only it has (a 409 for a
//! taken name). [`Conventions`] adds what every operation shares, so the document cannot
//! forget them: the bearer key and its 401/403, 503 when the store is unreachable, 404 on a
//! path naming a resource, 422 wherever there is input to validate, and on POST the
//! `Idempotency-Key` header with its 409. [`LINKS`] says how a created resource's id feeds
//! the operations on it (OpenAPI links: clients and the schemathesis run follow them).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{logs, projects, sessions, users};
use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "reauth Management API",
        version = "1",
        description = "Manage an organization's projects, their credentials and domains, end users, \
sessions, subscriptions and logs. Authenticate with an organization API key: \
`Authorization: Bearer reauth_sk_…`. Lists are cursor-paginated (`limit`, `starting_after`; \
answers carry `has_more` and `next_cursor`). A POST with an `Idempotency-Key` is answered once \
and replayed for 24 hours. Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}` with a \
stable `code`.",
        license(name = "MIT"),
    ),
    paths(
        spec,
        projects::list,
        projects::create,
        projects::show,
        projects::update,
        projects::remove,
        projects::credentials,
        projects::put_credentials,
        projects::domains,
        projects::add_domain,
        projects::remove_domain,
        projects::verify_domain,
        projects::set_primary_domain,
        users::list,
        users::show,
        users::update,
        users::remove,
        users::ban,
        users::unban,
        users::sessions,
        users::revoke_sessions,
        users::subscriptions,
        sessions::list,
        sessions::revoke,
        logs::subscriptions,
        logs::email_log,
        logs::stripe_events,
        logs::audit_log,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Conventions),
    security(("api_key" = [])),
    tags(
        (name = "projects", description = "Projects, their credentials (write-only) and domains"),
        (name = "users", description = "A project's end users: list, get, update, ban, unban, delete"),
        (name = "sessions", description = "Sessions: list, revoke one, revoke a user's"),
        (name = "subscriptions", description = "Stripe subscriptions as reauth knows them"),
        (name = "logs", description = "The email log, the Stripe event ledger and the audit log"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// The document as committed: pretty-printed, keys in a stable order, a final newline.
pub fn pretty_json() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json().map(|s| s + "\n")
}

/// `GET /api/v1/openapi.json`, outside the API-key layer.
pub fn router() -> Router<AppState> {
    Router::new().route(SPEC_PATH, get(spec))
}

const SPEC_PATH: &str = "/api/v1/openapi.json";

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
async fn spec() -> Result<Response, ApiError> {
    let doc = pretty_json().map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], doc).into_response())
}

/// What every operation shares (see the module documentation).
struct Conventions;

const SHARED: &[(&str, &str, &str)] = &[
    (
        "401",
        "Unauthorized",
        "No API key, or one that is malformed, unknown or revoked (`invalid_api_key`)",
    ),
    (
        "403",
        "Forbidden",
        "The API key lacks the scope this operation needs (`forbidden`)",
    ),
    (
        "404",
        "NotFound",
        "No such resource for this organization (`not_found`); another organization's is the same answer",
    ),
    (
        "409",
        "Conflict",
        "A conflict with the current state (`conflict`), or an `Idempotency-Key` reused for another request (`idempotency_conflict`)",
    ),
    (
        "422",
        "ValidationFailed",
        "Input that does not validate (`validation_failed`); `field` names it",
    ),
    (
        "503",
        "Unavailable",
        "A dependency (the database) is unreachable (`unavailable`); retry shortly",
    ),
];

/// (operation, status, the operations its answer's ids feed, with runtime expressions).
type Link = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static [(&'static str, &'static str)])],
);

const PROJECT: &[(&str, &str)] = &[("project_id", "$response.body#/id")];
const DOMAIN: &[(&str, &str)] = &[
    ("project_id", "$response.body#/project_id"),
    ("domain_id", "$response.body#/id"),
];

pub const LINKS: &[Link] = &[
    (
        "create_project",
        "201",
        &[
            ("get_project", PROJECT),
            ("update_project", PROJECT),
            ("delete_project", PROJECT),
            ("get_credentials", PROJECT),
            ("put_credentials", PROJECT),
            ("list_domains", PROJECT),
            ("add_domain", PROJECT),
        ],
    ),
    (
        "add_domain",
        "201",
        &[
            ("remove_domain", DOMAIN),
            ("verify_domain", DOMAIN),
            ("set_primary_domain", DOMAIN),
        ],
    ),
];

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("reauth_sk_…")
                    .description(Some(
                        "An organization API key (`reauth api-key create`), scoped to resources",
                    ))
                    .build(),
            ),
        );
        for (_, name, description) in SHARED {
            components.responses.insert(
                (*name).to_string(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Error")))
                                .build(),
                        )
                        .build(),
                ),
            );
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            if path == SPEC_PATH {
                continue;
            }
            let named = path.contains('{');
            for (method, op) in [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Put, item.put.as_mut()),
                (HttpMethod::Patch, item.patch.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
            ] {
                if let Some(op) = op {
                    shared_answers(op, method, named);
                    links(op);
                }
            }
        }
    }
}

fn shared_answers(op: &mut Operation, method: HttpMethod, named: bool) {
    let post = matches!(method, HttpMethod::Post);
    if post {
        op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Any unique string (a UUID): the first complete answer is replayed for 24 \
                     hours to a retry with the same key and the same request",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[\\x21-\\x7E]+$")),
                ))
                .build(),
        ));
    }
    let has_input = op.request_body.is_some()
        || op.parameters.as_ref().is_some_and(|ps| {
            ps.iter()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query))
        });
    let wanted = |status: &str| match status {
        "401" | "403" | "503" => true,
        "404" => named,
        "409" => post,
        "422" => has_input || post,
        _ => false,
    };
    for (status, name, _) in SHARED {
        if wanted(status) && !op.responses.responses.contains_key(*status) {
            op.responses.responses.insert(
                (*status).to_string(),
                RefOr::Ref(Ref::from_response_name(*name)),
            );
        }
    }
}

fn links(op: &mut Operation) {
    let Some(id) = op.operation_id.clone() else {
        return;
    };
    for (from, status, to) in LINKS {
        if *from != id {
            continue;
        }
        let Some(RefOr::T(res)) = op.responses.responses.get_mut(*status) else {
            continue;
        };
        for (target, params) in *to {
            let link = params
                .iter()
                .fold(LinkBuilder::new().operation_id(*target), |l, (n, v)| {
                    l.parameter(*n, *v)
                });
            res.links
                .insert((*target).to_string(), RefOr::T(link.build()));
        }
    }
}
