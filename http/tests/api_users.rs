//! The Management API's end users, sessions, subscriptions, email log, Stripe events and audit
//! log: success, 422s naming the field, pagination across pages, tenancy between orgs, scopes,
//! keys refused; a session revoked (or a user banned) through the API is refused on every
//! instance; a banned user cannot sign in; auth events land in the audit log.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{Backend, Deployment, Resp, TestApp, TestProject, sign_in, unique};
use reauth_actors::admin::{Admin, Caller};
use reauth_runtime::now_ms;
use serde_json::{Value, json};

struct Org {
    id: String,
    key: String,
}

async fn org(app: &TestApp) -> Org {
    let admin = Admin::new(&app.handle.state.core);
    let slug = unique("org");
    let o = admin
        .create_org("test", &slug, "Test Org", "owner@example.com")
        .await
        .unwrap();
    let (_, key) = admin
        .create_api_key(&Caller::operator(Some(&o.id)), "test", &[])
        .await
        .unwrap();
    Org { id: o.id, key }
}

async fn key_with(app: &TestApp, org: &Org, scopes: &[&str]) -> (String, String) {
    let admin = Admin::new(&app.handle.state.core);
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let (k, secret) = admin
        .create_api_key(&Caller::operator(Some(&org.id)), "scoped", &scopes)
        .await
        .unwrap();
    (k.id, secret)
}

/// A project of `org` that can send magic links (the harness's project, handed to the org).
async fn project_of(dep: &Deployment, app: &TestApp, org: &Org) -> TestProject {
    let p = dep.project(app, false).await;
    sqlx::query("UPDATE projects SET org_id = $1 WHERE id = $2")
        .bind(&org.id)
        .bind(&p.id)
        .execute(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap();
    p
}

async fn call(app: &TestApp, method: &str, path: &str, key: &str, body: Option<Value>) -> Resp {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = app
        .http
        .request(m, app.url(path))
        .header("host", "api.example.com")
        .header("authorization", format!("Bearer {key}"));
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

async fn get(app: &TestApp, path: &str, key: &str) -> Resp {
    call(app, "GET", path, key, None).await
}

fn field(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "validation_failed", "{}", r.body);
    r.json()["error"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            u.get("id")
                .or_else(|| u.get("event_id"))
                .and_then(Value::as_str)
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Every page of a list, following `next_cursor`.
async fn all_pages(app: &TestApp, path: &str, key: &str, limit: usize) -> (Vec<String>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = format!("{path}{sep}limit={limit}");
    let (mut seen, mut pages) = (vec![], 0);
    loop {
        let r = get(app, &url, key).await;
        let page = ids(&r);
        assert!(page.len() <= limit);
        seen.extend(page);
        pages += 1;
        let v = r.json();
        if v["has_more"] != true {
            assert!(v["next_cursor"].is_null());
            return (seen, pages);
        }
        let cursor = v["next_cursor"].as_str().unwrap();
        url = format!("{path}{sep}limit={limit}&starting_after={cursor}");
    }
}

async fn user_id(app: &TestApp, p: &TestProject, key: &str, email: &str) -> String {
    let r = get(
        app,
        &format!("/api/v1/projects/{}/users?email={email}", p.id),
        key,
    )
    .await;
    let found = ids(&r);
    assert_eq!(found.len(), 1, "{}", r.body);
    found[0].clone()
}

async fn audit_actions(app: &TestApp, key: &str, project_id: &str) -> Vec<Value> {
    let r = get(
        app,
        &format!("/api/v1/audit_log?project_id={project_id}&limit=100"),
        key,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()["data"].as_array().unwrap().clone()
}

fn has(entries: &[Value], action: &str, pred: impl Fn(&Value) -> bool) -> bool {
    entries.iter().any(|e| e["action"] == action && pred(e))
}

async fn users_are_listed_filtered_paged_changed_and_deleted(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app).await;
    let p = project_of(&dep, &app, &o).await;
    let tag = unique("u");
    let emails: Vec<String> = (0..3).map(|i| format!("{tag}-{i}@example.com")).collect();
    let mut tokens = vec![];
    for e in &emails {
        tokens.push(sign_in(&app, &dep, &p, e).await);
    }
    let base = format!("/api/v1/projects/{}/users", p.id);

    // Pages of two across three users, nothing repeated or skipped.
    let (seen, pages) = all_pages(&app, &base, &o.key, 2).await;
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "id order, no repeats");

    // Filters: exact address (any case), prefix, creation window.
    let upper = emails[1].to_uppercase();
    let r = get(&app, &format!("{base}?email={upper}"), &o.key).await;
    assert_eq!(ids(&r).len(), 1);
    assert_eq!(r.json()["data"][0]["email"], emails[1]);
    let r = get(&app, &format!("{base}?email_prefix={tag}-"), &o.key).await;
    assert_eq!(ids(&r).len(), 3);
    let r = get(&app, &format!("{base}?email_prefix=zz{tag}"), &o.key).await;
    assert_eq!(ids(&r).len(), 0);
    let later = now_ms() + 60_000;
    let r = get(&app, &format!("{base}?created_gte={later}"), &o.key).await;
    assert_eq!(ids(&r).len(), 0);
    let r = get(&app, &format!("{base}?created_lt={later}"), &o.key).await;
    assert_eq!(ids(&r).len(), 3);

    // 422s name the field.
    assert_eq!(
        field(&get(&app, &format!("{base}?limit=0"), &o.key).await),
        "limit"
    );
    assert_eq!(
        field(&get(&app, &format!("{base}?limit=101"), &o.key).await),
        "limit"
    );
    assert_eq!(
        field(&get(&app, &format!("{base}?created_gte=yesterday"), &o.key).await),
        "created_gte"
    );
    assert_eq!(
        field(&get(&app, &format!("{base}?email=not-an-address"), &o.key).await),
        "email"
    );

    // Read, then change name and metadata; the signed-in user's view shows the name.
    let uid = user_id(&app, &p, &o.key, &emails[0]).await;
    let upath = format!("{base}/{uid}");
    let r = get(&app, &upath, &o.key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["email"], emails[0]);
    assert_eq!(r.json()["banned"], false);
    assert_eq!(app.user(&p.host, &tokens[0]).await.status, StatusCode::OK);
    let r = call(
        &app,
        "PATCH",
        &upath,
        &o.key,
        Some(json!({ "name": "Ada Lovelace", "metadata": { "tier": "gold", "seats": 3 } })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["name"], "Ada Lovelace");
    assert_eq!(r.json()["metadata"]["tier"], "gold");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = app.user(&p.host, &tokens[0]).await.json();
        if v["name"] == "Ada Lovelace" {
            break;
        }
        assert!(Instant::now() < deadline, "name not in the view: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (body, expected) in [
        (json!({ "metadata": [1, 2] }), "metadata"),
        (
            json!({ "metadata": { "blob": "x".repeat(9000) } }),
            "metadata",
        ),
        (json!({ "name": 42 }), "name"),
        (json!({ "name": "n".repeat(201) }), "name"),
    ] {
        let r = call(&app, "PATCH", &upath, &o.key, Some(body)).await;
        assert_eq!(field(&r), expected);
    }

    // Delete: signed out, gone from reads and lists, address scrubbed, audited.
    let r = call(&app, "DELETE", &upath, &o.key, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        get(&app, &upath, &o.key).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, "DELETE", &upath, &o.key, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.user(&p.host, &tokens[0]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let (left, _) = all_pages(&app, &base, &o.key, 100).await;
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&uid));
    let scrubbed: String = sqlx::query_scalar("SELECT email FROM end_users WHERE id = $1")
        .bind(&uid)
        .fetch_one(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap();
    assert_eq!(scrubbed, format!("deleted+{uid}@deleted.invalid"));
    // The address is free: signing in again makes a new user.
    sign_in(&app, &dep, &p, &emails[0]).await;
    assert_ne!(user_id(&app, &p, &o.key, &emails[0]).await, uid);

    let audit = audit_actions(&app, &o.key, &p.id).await;
    assert!(has(&audit, "user.updated", |e| e["target"] == uid.as_str()
        && e["detail"]["changed"] == json!(["name", "metadata"])));
    assert!(has(&audit, "user.deleted", |e| e["target"] == uid.as_str()));
    assert!(has(&audit, "auth.sign_in", |e| e["target"] == uid.as_str()
        && e["detail"]["method"] == "magic_link"));
    assert!(has(
        &audit,
        "auth.magic_link_sent",
        |e| e["detail"]["email"] == emails[1].as_str()
    ));
    // Never a token in the audit log.
    for t in &tokens {
        assert!(!serde_json::to_string(&audit).unwrap().contains(t.as_str()));
    }
    app.shutdown().await;
}
on_both!(users_are_listed_filtered_paged_changed_and_deleted);

async fn sessions_are_listed_and_revoked(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app).await;
    let p = project_of(&dep, &app, &o).await;
    let email = format!("{}@example.com", unique("s"));
    let mut tokens = vec![];
    for _ in 0..3 {
        tokens.push(sign_in(&app, &dep, &p, &email).await);
    }
    let other = sign_in(&app, &dep, &p, &format!("{}@example.com", unique("o"))).await;
    let uid = user_id(&app, &p, &o.key, &email).await;
    let all = format!("/api/v1/projects/{}/sessions", p.id);
    let mine = format!("/api/v1/projects/{}/users/{uid}/sessions", p.id);

    let (project_sessions, pages) = all_pages(&app, &all, &o.key, 2).await;
    assert_eq!((project_sessions.len(), pages), (4, 2));
    let r = get(&app, &mine, &o.key).await;
    let user_sessions = ids(&r);
    assert_eq!(user_sessions.len(), 3);
    let s0 = &r.json()["data"][0];
    assert_eq!(s0["user_id"], uid.as_str());
    assert!(s0["expires_at"].as_i64().unwrap() > now_ms());
    assert!(s0["revoked_at"].is_null());
    assert!(s0.get("token_hash").is_none());
    assert_eq!(
        field(&get(&app, &format!("{all}?include_revoked=maybe"), &o.key).await),
        "include_revoked"
    );

    // Revoke one: its token stops working, the others do not.
    let sid = &user_sessions[0];
    let r = call(&app, "DELETE", &format!("{all}/{sid}"), &o.key, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let statuses = {
        let mut v = vec![];
        for t in &tokens {
            v.push(app.user(&p.host, t).await.status);
        }
        v
    };
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        1
    );
    assert_eq!(ids(&get(&app, &mine, &o.key).await).len(), 2);
    let r = get(&app, &format!("{mine}?include_revoked=true"), &o.key).await;
    assert_eq!(ids(&r).len(), 3);
    assert!(
        r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == sid.as_str() && s["revoked_at"].is_i64())
    );
    assert_eq!(
        call(&app, "DELETE", &format!("{all}/ses_nope"), &o.key, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Revoke all of the user's: every token refused, another user's untouched.
    let r = call(&app, "DELETE", &mine, &o.key, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    for t in &tokens {
        assert_eq!(app.user(&p.host, t).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.user(&p.host, &other).await.status, StatusCode::OK);
    assert_eq!(ids(&get(&app, &mine, &o.key).await).len(), 0);

    let audit = audit_actions(&app, &o.key, &p.id).await;
    assert!(has(&audit, "session.revoked", |e| e["target"] == sid.as_str()));
    assert!(has(&audit, "user.sessions_revoked", |e| e["target"]
        == uid.as_str()
        && e["detail"]["sessions_revoked"] == 2));
    app.shutdown().await;
}
on_both!(sessions_are_listed_and_revoked);

async fn a_banned_user_is_signed_out_and_cannot_sign_in_until_unbanned(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app).await;
    let p = project_of(&dep, &app, &o).await;
    let email = format!("{}@example.com", unique("b"));
    let token = sign_in(&app, &dep, &p, &email).await;
    let uid = user_id(&app, &p, &o.key, &email).await;
    let upath = format!("/api/v1/projects/{}/users/{uid}", p.id);

    let r = call(&app, "POST", &format!("{upath}/ban"), &o.key, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["banned"], true);
    assert_eq!(
        app.user(&p.host, &token).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A fresh magic link is refused, with a page that says why.
    let r = app.request_link(&p, &email, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mail = dep.resend.last_to(&email).await.unwrap();
    let r = app
        .verify_link(&p.host, &common::link_token(&mail.link))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("Account suspended"), "{}", r.body);
    assert!(r.cookie_value("reauth_session").is_none());
    // The store itself refuses a session for a banned user: a sign-in that passed its ban
    // check just before the ban landed cannot create one afterwards.
    let core = &app.handle.state.core;
    let project = core.directory.project(&p.id).unwrap();
    let refused = core
        .sessions
        .create(&project, &uid, None, None, reauth_runtime::now_ms())
        .await
        .expect_err("no session for a banned user");
    assert!(
        refused
            .downcast_ref::<reauth_actors::store::UserUnavailable>()
            .is_some(),
        "{refused:#}"
    );

    // Unbanned: signing in works again.
    let r = call(&app, "POST", &format!("{upath}/unban"), &o.key, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["banned"], false);
    let token = sign_in(&app, &dep, &p, &email).await;
    assert_eq!(app.user(&p.host, &token).await.status, StatusCode::OK);

    let audit = audit_actions(&app, &o.key, &p.id).await;
    assert!(has(&audit, "user.banned", |e| e["target"] == uid.as_str()
        && e["detail"]["sessions_revoked"] == 1
        && e["actor"].as_str().unwrap().starts_with("key_")));
    assert!(has(&audit, "user.unbanned", |e| e["target"] == uid.as_str()));
    assert!(has(&audit, "auth.sign_in_failed", |e| e["target"]
        == uid.as_str()
        && e["detail"]["reason"] == "banned"
        && e["detail"]["method"] == "magic_link"));
    // Filter by action.
    let r = get(
        &app,
        &format!("/api/v1/audit_log?project_id={}&action=user.banned", p.id),
        &o.key,
    )
    .await;
    assert_eq!(ids(&r).len(), 1, "{}", r.body);
    app.shutdown().await;
}
on_both!(a_banned_user_is_signed_out_and_cannot_sign_in_until_unbanned);

async fn subscriptions_email_log_and_stripe_events_are_listed(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app).await;
    let p = project_of(&dep, &app, &o).await;
    let email = format!("{}@example.com", unique("l"));
    sign_in(&app, &dep, &p, &email).await;
    sign_in(&app, &dep, &p, &email).await;
    sign_in(&app, &dep, &p, &email).await;
    let uid = user_id(&app, &p, &o.key, &email).await;
    let db = &app.handle.state.core.svc.db.pool;
    let now = now_ms();
    for i in 0..3 {
        sqlx::query("INSERT INTO subscriptions (id, project_id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at) VALUES ($1, $2, $3, 'cus_1', 'price_x', 'active', $4, 0, $4, $4)")
            .bind(format!("sub_{i}_{}", p.slug))
            .bind(&p.id)
            .bind(&uid)
            .bind(now)
            .execute(db)
            .await
            .unwrap();
    }
    // Five events, three received in the same millisecond: the cursor keeps them apart.
    for (i, at) in [now, now, now, now - 1, now + 1].iter().enumerate() {
        sqlx::query("INSERT INTO stripe_events (project_id, event_id, event_type, created, status, error, payload, received_at) VALUES ($1, $2, 'customer.subscription.updated', $3, 'applied', NULL, '{}', $3)")
            .bind(&p.id)
            .bind(format!("evt_{i}"))
            .bind(*at)
            .execute(db)
            .await
            .unwrap();
    }
    let base = format!("/api/v1/projects/{}", p.id);

    let (subs, pages) = all_pages(&app, &format!("{base}/subscriptions"), &o.key, 2).await;
    assert_eq!((subs.len(), pages), (3, 2));
    let r = get(&app, &format!("{base}/users/{uid}/subscriptions"), &o.key).await;
    assert_eq!(ids(&r).len(), 3);
    assert_eq!(r.json()["data"][0]["status"], "active");

    let (mails, pages) = all_pages(&app, &format!("{base}/email_log"), &o.key, 2).await;
    assert_eq!((mails.len(), pages), (3, 2));
    let r = get(&app, &format!("{base}/email_log?limit=1"), &o.key).await;
    assert_eq!(r.json()["data"][0]["to"], email.as_str());
    assert_eq!(r.json()["data"][0]["kind"], "magic_link");

    let (events, pages) = all_pages(&app, &format!("{base}/stripe_events"), &o.key, 2).await;
    assert_eq!(pages, 3);
    assert_eq!(events, ["evt_4", "evt_2", "evt_1", "evt_0", "evt_3"]);
    let r = get(&app, &format!("{base}/stripe_events?limit=1"), &o.key).await;
    assert_eq!(r.json()["data"][0]["status"], "applied");
    assert_eq!(r.json()["data"][0]["type"], "customer.subscription.updated");
    assert!(r.json()["data"][0].get("payload").is_none());
    assert_eq!(
        field(
            &get(
                &app,
                &format!("{base}/stripe_events?starting_after=nope"),
                &o.key
            )
            .await
        ),
        "starting_after"
    );
    app.shutdown().await;
}
on_both!(subscriptions_email_log_and_stripe_events_are_listed);

async fn every_route_is_isolated_between_orgs_and_needs_its_scope(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app).await;
    let p = project_of(&dep, &app, &o).await;
    let email = format!("{}@example.com", unique("t"));
    let token = sign_in(&app, &dep, &p, &email).await;
    let uid = user_id(&app, &p, &o.key, &email).await;
    let sid = ids(&get(
        &app,
        &format!("/api/v1/projects/{}/users/{uid}/sessions", p.id),
        &o.key,
    )
    .await)[0]
        .clone();
    let base = format!("/api/v1/projects/{}", p.id);
    let reads = [
        format!("{base}/users"),
        format!("{base}/users/{uid}"),
        format!("{base}/users/{uid}/sessions"),
        format!("{base}/users/{uid}/subscriptions"),
        format!("{base}/sessions"),
        format!("{base}/subscriptions"),
        format!("{base}/email_log"),
        format!("{base}/stripe_events"),
    ];
    let writes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "PATCH",
            format!("{base}/users/{uid}"),
            Some(json!({ "name": "x" })),
        ),
        ("POST", format!("{base}/users/{uid}/ban"), None),
        ("POST", format!("{base}/users/{uid}/unban"), None),
        ("DELETE", format!("{base}/sessions/{sid}"), None),
        ("DELETE", format!("{base}/users/{uid}/sessions"), None),
        ("DELETE", format!("{base}/users/{uid}"), None),
    ];

    // Another org's key, with every scope: nothing of this org exists for it.
    let other = org(&app).await;
    for path in &reads {
        let r = get(&app, path, &other.key).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
    }
    for (m, path, body) in &writes {
        let r = call(&app, m, path, &other.key, body.clone()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {}", r.body);
    }
    let r = get(
        &app,
        &format!("/api/v1/audit_log?project_id={}", p.id),
        &other.key,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let theirs = audit_actions(&app, &other.key, "").await;
    assert!(theirs.iter().all(|e| e["project_id"] != p.id.as_str()));

    // A read-only key reads and is refused every write; a key without the scope reads nothing.
    let (_, reader) = key_with(&app, &o, &["*:read"]).await;
    for path in &reads {
        let r = get(&app, path, &reader).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    for (m, path, body) in &writes {
        let r = call(&app, m, path, &reader, body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {path}: {}", r.body);
    }
    let (_, projects_only) = key_with(&app, &o, &["projects:write"]).await;
    for path in reads.iter().chain([&"/api/v1/audit_log".to_string()]) {
        let r = get(&app, path, &projects_only).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
    }
    assert_eq!(app.user(&p.host, &token).await.status, StatusCode::OK);

    // Revoked, malformed and bad-checksum keys: 401 before anything else.
    let (kid, revoked) = key_with(&app, &o, &[]).await;
    Admin::new(&app.handle.state.core)
        .revoke_api_key(&Caller::operator(Some(&o.id)), &kid)
        .await
        .unwrap();
    let mut tampered = o.key.clone().into_bytes();
    let i = "reauth_sk_".len() + 3;
    tampered[i] = if tampered[i] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [revoked.as_str(), "reauth_sk_garbage", tampered.as_str()] {
        for path in &reads {
            let r = get(&app, path, bad).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.body);
        }
        for (m, path, body) in &writes {
            let r = call(&app, m, path, bad, body.clone()).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{m} {path}: {}", r.body);
        }
    }
    // Nothing was done by the refused calls.
    assert_eq!(app.user(&p.host, &token).await.status, StatusCode::OK);
    app.shutdown().await;
}
on_both!(every_route_is_isolated_between_orgs_and_needs_its_scope);

/// Two instances on PostgreSQL and Redis: a session revoked (and a user banned) through the API
/// of one is refused by the other, where it was resident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_through_the_api_is_refused_on_another_instance() {
    let dep = Deployment::new(Backend::Real).await;
    let a = dep.spawn().await;
    let b = dep.spawn().await;
    let o = org(&a).await;
    let p = project_of(&dep, &a, &o).await;
    b.wait_for_project(&p).await;
    let email = format!("{}@example.com", unique("r"));
    let t1 = sign_in(&a, &dep, &p, &email).await;
    let t2 = sign_in(&a, &dep, &p, &email).await;
    // Resident on B (its published snapshot answers without I/O from now on).
    assert_eq!(b.user(&p.host, &t1).await.status, StatusCode::OK);
    assert_eq!(b.user(&p.host, &t2).await.status, StatusCode::OK);
    let uid = user_id(&a, &p, &o.key, &email).await;
    let r = get(
        &a,
        &format!("/api/v1/projects/{}/users/{uid}/sessions", p.id),
        &o.key,
    )
    .await;
    let sessions = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    // The older session is t1's (ids sort by creation).
    let sid = sessions[0]["id"].as_str().unwrap().to_string();
    let r = call(
        &a,
        "DELETE",
        &format!("/api/v1/projects/{}/sessions/{sid}", p.id),
        &o.key,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.user(&p.host, &t1).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "B still serves the revoked session"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.user(&p.host, &t2).await.status, StatusCode::OK);

    // A ban through A: B refuses the other session too.
    let r = call(
        &a,
        "POST",
        &format!("/api/v1/projects/{}/users/{uid}/ban", p.id),
        &o.key,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.user(&p.host, &t2).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "B still serves a banned user's session"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// One Google sign-in through the hosted pages and the fake provider: the callback's answer.
async fn google_sign_in(
    app: &TestApp,
    dep: &Deployment,
    p: &TestProject,
    sub: &str,
    email: &str,
) -> Resp {
    dep.google.sign_in_as(common::GoogleProfile {
        sub: sub.into(),
        email: email.into(),
        email_verified: true,
        name: "Grace Hopper".into(),
    });
    let r = app.get(&p.host, "/login/google", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let browser = r.cookie_value("reauth_oauth").unwrap();
    let (code, state) = dep.google.approve(r.location().unwrap()).await;
    app.get(
        &p.host,
        &format!("/callback/google?code={code}&state={state}"),
        &[("cookie", format!("reauth_oauth={browser}"))],
    )
    .await
}

async fn a_banned_user_cannot_sign_in_with_google(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let o = org(&app).await;
    let p = dep.project(&app, true).await;
    sqlx::query("UPDATE projects SET org_id = $1 WHERE id = $2")
        .bind(&o.id)
        .bind(&p.id)
        .execute(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap();
    let (sub, email) = (unique("g"), format!("{}@example.com", unique("g")));
    let r = google_sign_in(&app, &dep, &p, &sub, &email).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let uid = user_id(&app, &p, &o.key, &email).await;
    let r = call(
        &app,
        "POST",
        &format!("/api/v1/projects/{}/users/{uid}/ban", p.id),
        &o.key,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let r = google_sign_in(&app, &dep, &p, &sub, &email).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("Account suspended"), "{}", r.body);
    assert!(r.cookie_value("reauth_session").is_none());

    let audit = audit_actions(&app, &o.key, &p.id).await;
    assert!(has(&audit, "auth.sign_in", |e| e["target"] == uid.as_str()
        && e["detail"]["method"] == "google"));
    assert!(has(&audit, "auth.sign_in_failed", |e| e["target"]
        == uid.as_str()
        && e["detail"]["method"] == "google"
        && e["detail"]["reason"] == "banned"));
    app.shutdown().await;
}
on_both!(a_banned_user_cannot_sign_in_with_google);
