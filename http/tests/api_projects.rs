//! The Management API's projects, credentials and domains; API keys (format, checksum,
//! revocation on every instance, scopes); Idempotency-Key; tenancy between organizations;
//! the audit log. On both backends.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{Backend, Deployment, Resp, TestApp, unique};
use reauth_actors::admin::{Admin, Caller};
use serde_json::{Value, json};

struct Org {
    id: String,
    key: String,
}

async fn org(app: &TestApp, scopes: &[&str]) -> Org {
    let admin = Admin::new(&app.handle.state.core);
    let slug = unique("org");
    let o = admin
        .create_org("test", &slug, "Test Org", "owner@example.com")
        .await
        .unwrap();
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let (_, key) = admin
        .create_api_key(&Caller::operator(Some(&o.id)), "test", &scopes)
        .await
        .unwrap();
    Org { id: o.id, key }
}

async fn extra_key(app: &TestApp, org: &Org, scopes: &[&str]) -> (String, String) {
    let admin = Admin::new(&app.handle.state.core);
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let (k, secret) = admin
        .create_api_key(&Caller::operator(Some(&org.id)), "extra", &scopes)
        .await
        .unwrap();
    (k.id, secret)
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
    idem: Option<&str>,
) -> Resp {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = app
        .http
        .request(m, app.url(path))
        .header("host", "api.example.com");
    if let Some(k) = key {
        rb = rb.header("authorization", format!("Bearer {k}"));
    }
    if let Some(i) = idem {
        rb = rb.header("idempotency-key", i);
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let res = rb.send().await.unwrap();
    Resp {
        status: StatusCode::from_u16(res.status().as_u16()).unwrap(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap_or_default(),
    }
}

fn code(r: &Resp) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn new_project(app: &TestApp, key: &str) -> Value {
    let slug = unique("api");
    let r = call(
        app,
        "POST",
        "/api/v1/projects",
        Some(key),
        Some(json!({ "slug": slug, "name": "API project", "allowed_origins": ["https://app.example.com"] })),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.json()
}

async fn keys_are_checked_before_anything_else(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app, &[]).await;
    let ok = call(&app, "GET", "/api/v1/projects", Some(&o.key), None, None).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    let none = call(&app, "GET", "/api/v1/projects", None, None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&none), "invalid_api_key");
    for bad in [
        "garbage".to_string(),
        "reauth_sk_short".to_string(),
        // One character changed: the checksum refuses it without a database hit.
        {
            let mut b = o.key.clone().into_bytes();
            let i = "reauth_sk_".len() + 3;
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            String::from_utf8(b).unwrap()
        },
    ] {
        let r = call(&app, "GET", "/api/v1/projects", Some(&bad), None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(code(&r), "invalid_api_key");
    }
    // A well-formed key (valid checksum) nobody issued.
    let (forged, _) = reauth_runtime::apikey::generate();
    let r = call(&app, "GET", "/api/v1/projects", Some(&forged), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Revoked: refused at once here (it was cached as verified a moment ago).
    let (kid, k2) = extra_key(&app, &o, &[]).await;
    assert_eq!(
        call(&app, "GET", "/api/v1/projects", Some(&k2), None, None)
            .await
            .status,
        StatusCode::OK
    );
    let admin = Admin::new(&app.handle.state.core);
    admin
        .revoke_api_key(&Caller::operator(Some(&o.id)), &kid)
        .await
        .unwrap();
    let r = call(&app, "GET", "/api/v1/projects", Some(&k2), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The API is chosen by path: never a hosted page, whatever the host.
    let r = call(
        &app,
        "GET",
        "/api/v1/nothing-here",
        Some(&o.key),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.starts_with('{'), "{}", r.body);
    app.shutdown().await;
}
on_both!(keys_are_checked_before_anything_else);

async fn projects_are_created_listed_changed_and_deleted(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app, &[]).await;
    let mut ids = vec![];
    for _ in 0..3 {
        ids.push(
            new_project(&app, &o.key).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Pages of two, in id order.
    let p1 = call(
        &app,
        "GET",
        "/api/v1/projects?limit=2",
        Some(&o.key),
        None,
        None,
    )
    .await;
    let v1 = p1.json();
    assert_eq!(v1["data"].as_array().unwrap().len(), 2);
    assert_eq!(v1["has_more"], true);
    let cursor = v1["next_cursor"].as_str().unwrap().to_string();
    let p2 = call(
        &app,
        "GET",
        &format!("/api/v1/projects?limit=2&starting_after={cursor}"),
        Some(&o.key),
        None,
        None,
    )
    .await;
    let v2 = p2.json();
    assert_eq!(v2["data"].as_array().unwrap().len(), 1);
    assert_eq!(v2["has_more"], false);
    let mut seen: Vec<String> = v1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v2["data"].as_array().unwrap())
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    let bad = call(
        &app,
        "GET",
        "/api/v1/projects?limit=500",
        Some(&o.key),
        None,
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["error"]["field"], "limit");

    let id = &ids[0];
    let path = format!("/api/v1/projects/{id}");
    let r = call(
        &app,
        "PATCH",
        &path,
        Some(&o.key),
        Some(json!({ "name": "Renamed", "accent_color": "#0f766e", "plans": [{"price_id": "price_1", "plan": "pro", "features": ["api"]}] })),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["name"], "Renamed");
    assert_eq!(r.json()["plans"][0]["plan"], "pro");
    // The running instance serves the change.
    let core = app.handle.state.core.clone();
    let pid = id.clone();
    common::eventually(
        "renamed in the directory",
        std::time::Duration::from_secs(5),
        || {
            core.directory
                .project(&pid)
                .is_some_and(|p| p.name == "Renamed")
        },
    )
    .await;
    // Validation names the field.
    for (body, field) in [
        (json!({ "accent_color": "red" }), "accent_color"),
        (json!({ "name": 5 }), "name"),
        (
            json!({ "allowed_origins": ["https://x.example.com/path"] }),
            "allowed_origins",
        ),
        (json!({ "session_ttl_secs": 1 }), "session_ttl_secs"),
    ] {
        let r = call(&app, "PATCH", &path, Some(&o.key), Some(body.clone()), None).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.body
        );
        assert_eq!(r.json()["error"]["code"], "validation_failed");
        assert_eq!(r.json()["error"]["field"], field, "{body}");
    }
    let r = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&o.key),
        Some(json!({ "slug": "-bad" })),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error"]["field"], "slug");

    // Credentials are write-only.
    let r = call(
        &app,
        "PUT",
        &format!("{path}/credentials"),
        Some(&o.key),
        Some(json!({ "resend_api_key": "re_supersecret1234", "stripe_secret_key": "sk_test_abcd9876" })),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &app,
        "GET",
        &format!("{path}/credentials"),
        Some(&o.key),
        None,
        None,
    )
    .await;
    assert_eq!(r.json()["resend_api_key"]["set"], true);
    assert_eq!(r.json()["resend_api_key"]["last4"], "1234");
    assert_eq!(r.json()["stripe_secret_key"]["last4"], "9876");
    assert_eq!(r.json()["stripe_webhook_secret"]["set"], false);
    assert!(!r.body.contains("supersecret") && !r.body.contains("abcd9876"));
    let r = call(
        &app,
        "PUT",
        &format!("{path}/credentials"),
        Some(&o.key),
        Some(json!({ "stripe_webhook_secret": "nope" })),
        None,
    )
    .await;
    assert_eq!(r.json()["error"]["field"], "stripe_webhook_secret");

    // Domains: added pending with the record to create; one host per project; never the base.
    let r = call(
        &app,
        "POST",
        &format!("{path}/domains"),
        Some(&o.key),
        Some(json!({ "hostname": format!("auth.{}.example.com", unique("d")) })),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let d = r.json();
    assert_eq!(d["status"], "pending");
    assert!(
        d["records"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("_reauth-challenge.")
    );
    let dup = call(
        &app,
        "POST",
        &format!("/api/v1/projects/{}/domains", ids[1]),
        Some(&o.key),
        Some(json!({ "hostname": d["hostname"] })),
        None,
    )
    .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let base = call(
        &app,
        "POST",
        &format!("{path}/domains"),
        Some(&o.key),
        Some(json!({ "hostname": format!("x.{}", common::BASE_DOMAIN) })),
        None,
    )
    .await;
    assert_eq!(base.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(
        &app,
        "DELETE",
        &format!("{path}/domains/{}", d["id"].as_str().unwrap()),
        Some(&o.key),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Delete: gone from the API and from the hosts it served.
    let slug = call(&app, "GET", &path, Some(&o.key), None, None)
        .await
        .json()["slug"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(&app, "DELETE", &path, Some(&o.key), None, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        call(&app, "GET", &path, Some(&o.key), None, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let core = app.handle.state.core.clone();
    let host = format!("{slug}.{}", common::BASE_DOMAIN);
    common::eventually(
        "no longer served",
        std::time::Duration::from_secs(5),
        || core.directory.by_host(&host).is_none(),
    )
    .await;

    // The audit log has it all, with who and which request.
    let r = call(
        &app,
        "GET",
        "/api/v1/audit_log?limit=100",
        Some(&o.key),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    {
        let actions: Vec<String> = r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap_or_default().to_string())
            .collect();
        for a in [
            "project.created",
            "project.updated",
            "project.credentials_updated",
            "domain.added",
            "domain.removed",
            "project.deleted",
        ] {
            assert!(
                actions.iter().any(|x| x == a),
                "{a} missing from {actions:?}"
            );
        }
        assert!(!r.body.contains("supersecret"));
    }
    let admin = Admin::new(&app.handle.state.core);
    let entries = admin
        .list_audit(
            &Caller::operator(Some(&o.id)),
            &Default::default(),
            &reauth_actors::admin::PageReq {
                limit: Some(100),
                starting_after: None,
            },
        )
        .await
        .unwrap();
    let created = entries
        .data
        .iter()
        .find(|e| e.action == "project.created")
        .expect("audited");
    assert!(created.actor.starts_with("key_"));
    assert!(
        created
            .request_id
            .as_deref()
            .is_some_and(|r| r.starts_with("req_"))
    );
    assert!(
        !serde_json::to_string(&entries.data)
            .unwrap()
            .contains("supersecret")
    );
    app.shutdown().await;
}
on_both!(projects_are_created_listed_changed_and_deleted);

async fn idempotency_keys_replay_and_refuse(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app, &[]).await;
    let slug = unique("idem");
    let body = json!({ "slug": slug });
    let first = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&o.key),
        Some(body.clone()),
        Some("k-1"),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&o.key),
        Some(body.clone()),
        Some("k-1"),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(
        again.json()["id"],
        first.json()["id"],
        "the stored answer, not a second project"
    );
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    let other = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&o.key),
        Some(json!({ "slug": unique("idem2") })),
        Some("k-1"),
    )
    .await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(code(&other), "idempotency_conflict");
    // A failed validation is not stored: the same key then works for the corrected request.
    let bad = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&o.key),
        Some(json!({ "slug": "X" })),
        Some("k-2"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fixed = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&o.key),
        Some(json!({ "slug": "X" })),
        Some("k-2"),
    )
    .await;
    assert_eq!(
        fixed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the same bad request fails again, it is not replayed as stored"
    );
    let good_slug = unique("idem3");
    let fixed = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&o.key),
        Some(json!({ "slug": good_slug })),
        Some("k-2"),
    )
    .await;
    assert_eq!(fixed.status, StatusCode::CREATED, "{}", fixed.body);
    // Keys are per organization.
    let o2 = org(&app, &[]).await;
    let theirs = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&o2.key),
        Some(json!({ "slug": unique("idem4") })),
        Some("k-1"),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    app.shutdown().await;
}
on_both!(idempotency_keys_replay_and_refuse);

async fn another_orgs_projects_do_not_exist_and_scopes_hold(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let a = org(&app, &[]).await;
    let b = org(&app, &[]).await;
    let p = new_project(&app, &a.key).await;
    let id = p["id"].as_str().unwrap();
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/projects/{id}"), None),
        (
            "PATCH",
            format!("/api/v1/projects/{id}"),
            Some(json!({ "name": "x" })),
        ),
        ("DELETE", format!("/api/v1/projects/{id}"), None),
        ("GET", format!("/api/v1/projects/{id}/credentials"), None),
        (
            "PUT",
            format!("/api/v1/projects/{id}/credentials"),
            Some(json!({ "resend_api_key": "re_x" })),
        ),
        ("GET", format!("/api/v1/projects/{id}/domains"), None),
        (
            "POST",
            format!("/api/v1/projects/{id}/domains"),
            Some(json!({ "hostname": "auth.b-steals.example.com" })),
        ),
        (
            "DELETE",
            format!("/api/v1/projects/{id}/domains/dom_x"),
            None,
        ),
    ];
    for (m, path, body) in &routes {
        let r = call(&app, m, path, Some(&b.key), body.clone(), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {}", r.body);
    }
    let list = call(&app, "GET", "/api/v1/projects", Some(&b.key), None, None).await;
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 0);
    // Still there for its owner.
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/api/v1/projects/{id}"),
            Some(&a.key),
            None,
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    // A read-only key reads and cannot write.
    let (_, ro) = extra_key(&app, &a, &["*:read"]).await;
    for (m, path, body) in &routes {
        let r = call(&app, m, path, Some(&ro), body.clone(), None).await;
        if *m == "GET" {
            assert_eq!(r.status, StatusCode::OK, "{m} {path}: {}", r.body);
        } else {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {path}: {}", r.body);
            assert_eq!(code(&r), "forbidden");
        }
    }
    let r = call(
        &app,
        "POST",
        "/api/v1/projects",
        Some(&ro),
        Some(json!({ "slug": unique("ro") })),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A key scoped to projects cannot read credentials.
    let (_, pk) = extra_key(&app, &a, &["projects:write"]).await;
    let r = call(
        &app,
        "GET",
        &format!("/api/v1/projects/{id}/credentials"),
        Some(&pk),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    app.shutdown().await;
}
on_both!(another_orgs_projects_do_not_exist_and_scopes_hold);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_on_every_instance() {
    let dep = Deployment::new(Backend::Real).await;
    let a = dep.spawn().await;
    let b = dep.spawn().await;
    let o = org(&a, &[]).await;
    let (kid, k) = extra_key(&a, &o, &[]).await;
    // Both instances have verified (and cached) it.
    for app in [&a, &b] {
        assert_eq!(
            call(app, "GET", "/api/v1/projects", Some(&k), None, None)
                .await
                .status,
            StatusCode::OK
        );
    }
    Admin::new(&a.handle.state.core)
        .revoke_api_key(&Caller::operator(Some(&o.id)), &kid)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let r = call(&b, "GET", "/api/v1/projects", Some(&k), None, None).await;
        if r.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "B still accepts the key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}
