//! The Management API's OpenAPI document: the committed `http/openapi.json` is what the code
//! generates (regenerate with `REAUTH_UPDATE_OPENAPI=1 cargo test -p reauth-http --test
//! openapi`), and the server serves it, without an API key, at `GET /api/v1/openapi.json`.

#[macro_use]
mod common;

use common::{Backend, Deployment};
use reauth_http::routes::api::openapi;
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

#[test]
fn committed_openapi_json_matches_the_code() {
    let generated = openapi::pretty_json().expect("the document serializes");
    if std::env::var_os("REAUTH_UPDATE_OPENAPI").is_some_and(|v| v != "0" && !v.is_empty()) {
        std::fs::write(COMMITTED, &generated).expect("write http/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        let show = |s: &str| {
            s.lines()
                .skip(line.saturating_sub(2))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "http/openapi.json is out of date with the code (first difference at line {}).\n\
             committed:\n{}\n\ngenerated:\n{}\n\n\
             Regenerate it and commit the result:\n\
             \tREAUTH_UPDATE_OPENAPI=1 cargo test -p reauth-http --test openapi\n",
            line + 1,
            show(&committed),
            show(&generated),
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_with_a_bearer_scheme_and_the_error_envelope() {
    let doc: Value = serde_json::from_str(&openapi::pretty_json().expect("serializes"))
        .expect("the document is JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let codes = doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
        .as_array()
        .expect("the error code is an enum of the registry")
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>();
    assert_eq!(codes, reauth_http::error::CODES);
    // Every operation but this document's needs the key and says what a missing one gets.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let responses = op["responses"].as_object().expect("responses");
            if path == "/api/v1/openapi.json" {
                assert_eq!(op["security"], serde_json::json!([{}]));
                continue;
            }
            assert!(
                op.get("operationId").is_some(),
                "{method} {path} has no operationId"
            );
            for status in ["401", "403", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            if method == "post" {
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "POST {path} lacks Idempotency-Key"
                );
            }
        }
    }
}

async fn serves_the_document_without_an_api_key(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;

    let res = app
        .get(&app.addr.to_string(), "/api/v1/openapi.json", &[])
        .await;

    assert_eq!(res.status, 200, "{}", res.body);
    let content_type = res.headers[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(res.body, openapi::pretty_json().expect("serializes"));
    let version = res.json()["openapi"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    app.shutdown().await;
}
on_both!(serves_the_document_without_an_api_key);

/// What schemathesis found (scripts/schemathesis): PostgreSQL text cannot hold a NUL, so one in
/// a body, a query or a path answered 503 there (SQLite stored it); and credentials that are
/// not visible ASCII were stored, then broke the Stripe client. Now: 422 naming the field (404
/// for a path), alike on both stores.
async fn input_the_stores_cannot_hold_is_refused_as_input(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let admin = reauth_actors::admin::Admin::new(&app.handle.state.core);
    let org = admin
        .create_org("test", &common::unique("org"), "Org", "owner@example.com")
        .await
        .expect("org");
    let (_, key) = admin
        .create_api_key(
            &reauth_actors::admin::Caller::operator(Some(&org.id)),
            "test",
            &["*:write".to_string()],
        )
        .await
        .expect("key");
    let send = |method: reqwest::Method, path: &str, body: Option<&str>| {
        let mut rb = app
            .http
            .request(method, app.url(path))
            .header("authorization", format!("Bearer {key}"));
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        async move {
            let res = rb.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    let (status, p) = send(
        reqwest::Method::POST,
        "/api/v1/projects",
        Some(r#"{"slug":"nul-free"}"#),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    let id = p["id"].as_str().unwrap_or_default().to_string();

    for (method, path, body, field) in [
        (
            reqwest::Method::POST,
            "/api/v1/projects".to_string(),
            Some(r#"{"slug":"nul","name":"a\u0000b"}"#),
            "name",
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/projects/{id}"),
            Some(r#"{"plans":[{"price_id":"price_1","plan":"p\u0000"}]}"#),
            "plans[0].plan",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/projects?starting_after=prj_%00".to_string(),
            None,
            "starting_after",
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/projects/{id}/credentials"),
            Some(r#"{"stripe_secret_key":"sk_test_\u00e9t\u00e9"}"#),
            "stripe_secret_key",
        ),
        (
            reqwest::Method::PUT,
            format!("/api/v1/projects/{id}/credentials"),
            Some(r#"{"resend_api_key":"re_a b"}"#),
            "resend_api_key",
        ),
    ] {
        let (status, body) = send(method.clone(), &path, body).await;
        assert_eq!(status, 422, "{method} {path}: {body}");
        assert_eq!(body["error"]["field"], field, "{method} {path}: {body}");
    }
    let (status, body) = send(reqwest::Method::GET, "/api/v1/projects/prj_%00", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    app.shutdown().await;
}
on_both!(input_the_stores_cannot_hold_is_refused_as_input);
