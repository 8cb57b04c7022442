//! End users log in: magic links through (fake) Resend, Google through a (fake) OAuth provider,
//! sessions resolved by the SDK endpoints — on the real PostgreSQL + Redis and on the embedded
//! backends.

#[macro_use]
mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{
    Backend, Deployment, GoogleProfile, TestApp, TestProject, eventually, link_token, sign_in,
    unique,
};
use reauth_runtime::now_ms;

async fn setup(backend: Backend, google: bool) -> (Deployment, TestApp, TestProject) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let p = dep.project(&app, google).await;
    (dep, app, p)
}

on_both!(magic_link_journey_end_to_end);
async fn magic_link_journey_end_to_end(backend: Backend) {
    let (dep, app, p) = setup(backend, false).await;
    let email = format!("{}@example.com", unique("ada"));
    let target = format!("{}/dashboard?tab=1", p.origin);

    let r = app.request_link(&p, &email, Some(&target)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Check your email"), "{}", r.body);

    // The email went through the project's own Resend key, from/to/subject right, working link.
    let mail = dep.resend.last_to(&email).await.expect("email received");
    assert_eq!(mail.api_key, format!("re_test_{}", p.slug));
    assert_eq!(mail.from, format!("Login <login@{}.example.com>", p.slug));
    assert_eq!(mail.to, vec![email.clone()]);
    assert_eq!(mail.subject, format!("Sign in to Project {}", p.slug));
    assert!(
        mail.html.replace("&#x2f;", "/").contains(&mail.link),
        "html body carries the link"
    );
    assert!(
        mail.link
            .starts_with(&format!("https://{}/verify?token=", p.host)),
        "{}",
        mail.link
    );
    let token = link_token(&mail.link);
    assert_eq!(token.len(), 43);

    // Only the hash is stored.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM magic_links WHERE token_hash = $1")
        .bind(reauth_runtime::crypto::hash_token(&token))
        .fetch_one(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    let clear: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM magic_links WHERE token_hash = $1")
        .bind(&token)
        .fetch_one(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap();
    assert_eq!(clear, 0);

    let r = app.verify_link(&p.host, &token).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location().as_deref(), Some(target.as_str()));
    let cookie = r.set_cookie("reauth_session").expect("cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(
        !cookie.contains("Domain="),
        "no Domain on <slug>.<base> hosts: {cookie}"
    );
    let session = r.cookie_value("reauth_session").unwrap();

    // The SDK call, by bearer and by cookie.
    let r = app.user(&p.host, &session).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    assert_eq!(v["email"], email);
    assert_eq!(v["plan"], "free");
    assert!(v["user_id"].as_str().unwrap().starts_with("usr_"));
    assert!(v["session"]["id"].as_str().unwrap().starts_with("ses_"));
    let r = app
        .get(
            &p.host,
            "/v1/session",
            &[("cookie", format!("reauth_session={session}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["user_id"], v["user_id"]);

    // Second use refused.
    let r = app
        .get(&p.host, &format!("/verify?token={token}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(
        r.body.contains("already been used") && r.body.contains("Request a new link"),
        "{}",
        r.body
    );

    // An expired link is refused: time passed in, not slept.
    app.request_link(&p, &email, None).await;
    let mail2 = dep.resend.last_to(&email).await.unwrap();
    assert_ne!(mail2.link, mail.link);
    let core = &app.handle.state.core;
    let project = core.directory.project(&p.id).unwrap();
    let later = now_ms() + 16 * 60 * 1000;
    let err = reauth_actors::login::verify_magic_link(
        &core.svc,
        &core.sessions,
        &project,
        &link_token(&mail2.link),
        None,
        None,
        later,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, reauth_actors::login::LoginError::LinkExpired),
        "{err}"
    );

    // Every send is in the email log.
    let logged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM email_log WHERE project_id = $1 AND status = 'accepted' AND provider_id IS NOT NULL")
        .bind(&p.id)
        .fetch_one(&core.svc.db.pool)
        .await
        .unwrap();
    assert_eq!(logged, 2);
    app.shutdown().await;
}

on_both!(google_journey_links_accounts_and_refuses_bad_attempts);
async fn google_journey_links_accounts_and_refuses_bad_attempts(backend: Backend) {
    let (dep, app, p) = setup(backend, true).await;
    let email = format!("{}@example.com", unique("grace"));
    // Existing magic-link user with this email.
    let ml_session = sign_in(&app, &dep, &p, &email).await;
    let ml_user = app.user(&p.host, &ml_session).await.json()["user_id"].clone();

    let start = || {
        let host = p.host.clone();
        let target = format!("{}/after", p.origin);
        let app = &app;
        async move {
            let r = app
                .get(
                    &host,
                    &format!("/login/google?redirect_to={}", urlencode(&target)),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
            (
                r.location().unwrap(),
                r.cookie_value("reauth_oauth").unwrap(),
            )
        }
    };
    let authorize = |url: String| dep.google.approve(url);
    let callback = |code: &str, state: &str, browser: &str| {
        let path = format!("/callback/google?code={code}&state={state}");
        let cookie = format!("reauth_oauth={browser}");
        let host = p.host.clone();
        let app = &app;
        async move { app.get(&host, &path, &[("cookie", cookie)]).await }
    };

    // Success + linking by verified email.
    dep.google.sign_in_as(GoogleProfile {
        sub: unique("g"),
        email: email.clone(),
        email_verified: true,
        name: "Grace Hopper".into(),
    });
    let (url, browser) = start().await;
    assert!(url.starts_with(&dep.google.url), "{url}");
    assert!(url.contains("code_challenge_method=S256"));
    let (code, state) = authorize(url).await;
    let r = callback(&code, &state, &browser).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location().unwrap(), format!("{}/after", p.origin));
    let g_session = r.cookie_value("reauth_session").unwrap();
    let v = app.user(&p.host, &g_session).await.json();
    assert_eq!(
        v["user_id"], ml_user,
        "linked to the existing user by verified email"
    );
    assert_eq!(v["name"], "Grace Hopper");
    let reqs = dep.google.token_requests();
    assert!(
        reqs.last().unwrap().get("code_verifier").is_some(),
        "PKCE verifier sent"
    );

    // State mismatch: a state we never issued.
    let (url, browser) = start().await;
    let (code, _) = authorize(url).await;
    let r = callback(&code, &reauth_runtime::crypto::random_token(), &browser).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.set_cookie("reauth_session").is_none());

    // State bound to another browser.
    let (url, _browser) = start().await;
    let (code, state) = authorize(url).await;
    let r = callback(&code, &state, "someone-elses-cookie").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.set_cookie("reauth_session").is_none());

    // PKCE mismatch: the code of attempt A presented with attempt B's state (B's verifier).
    let (url_a, _) = start().await;
    let (url_b, browser_b) = start().await;
    let (code_a, _) = authorize(url_a).await;
    let (_, state_b) = authorize(url_b).await;
    let r = callback(&code_a, &state_b, &browser_b).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.set_cookie("reauth_session").is_none());

    // Unverified email refused, no user created.
    let unverified = format!("{}@example.com", unique("mallory"));
    dep.google.sign_in_as(GoogleProfile {
        sub: unique("g"),
        email: unverified.clone(),
        email_verified: false,
        name: "M".into(),
    });
    let (url, browser) = start().await;
    let (code, state) = authorize(url).await;
    let r = callback(&code, &state, &browser).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("not verified"));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM end_users WHERE email = $1")
        .bind(&unverified)
        .fetch_one(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // The same Google subject signs in again: found by subject.
    let sub = unique("g");
    dep.google.sign_in_as(GoogleProfile {
        sub: sub.clone(),
        email: format!("{}@example.com", unique("new")),
        email_verified: true,
        name: "New".into(),
    });
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (url, browser) = start().await;
        let (code, state) = authorize(url).await;
        let r = callback(&code, &state, &browser).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let s = r.cookie_value("reauth_session").unwrap();
        ids.push(app.user(&p.host, &s).await.json()["user_id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    app.shutdown().await;
}

on_both!(google_endpoints_come_from_an_oidc_issuer);
async fn google_endpoints_come_from_an_oidc_issuer(backend: Backend) {
    let dep = Deployment::new(backend).await;
    // Configured endpoints that would fail: only discovery can make the journey work.
    let mut s = dep.settings();
    s.google_auth_url = "http://127.0.0.1:9/unused".into();
    s.google_token_url = "http://127.0.0.1:9/unused".into();
    s.google_userinfo_url = "http://127.0.0.1:9/unused".into();
    s.google_issuer = Some(format!("{}/", dep.google.url));
    let app = dep.spawn_with(s.clone()).await;
    let p = dep.project(&app, true).await;
    let email = format!("{}@example.com", unique("oidc"));
    dep.google.sign_in_as(GoogleProfile {
        sub: unique("g"),
        email: email.clone(),
        email_verified: true,
        name: "Ada".into(),
    });
    let r = app.get(&p.host, "/login/google", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let url = r.location().unwrap();
    assert!(
        url.starts_with(&format!("{}/oidc/authorize?", dep.google.url)),
        "{url}"
    );
    let browser = r.cookie_value("reauth_oauth").unwrap();
    let (code, state) = dep.google.approve(url).await;
    let r = app
        .get(
            &p.host,
            &format!("/callback/google?code={code}&state={state}"),
            &[("cookie", format!("reauth_oauth={browser}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let session = r.cookie_value("reauth_session").unwrap();
    assert_eq!(app.user(&p.host, &session).await.json()["email"], email);
    app.shutdown().await;

    // An issuer without a discovery document, or whose document names another issuer, stops
    // the start with an error that says so.
    for (issuer, expect) in [
        (format!("{}/nothing-here", dep.google.url), "404"),
        (format!("{}/imposter", dep.google.url), "names issuer"),
    ] {
        s.google_issuer = Some(issuer.clone());
        let err = match reauth_http::start(s.clone(), reauth_http::Mode::Serve).await {
            Ok(_) => panic!("started with issuer {issuer}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("REAUTH_GOOGLE_ISSUER"), "{err}");
        assert!(err.contains(expect), "{err}");
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

on_both!(tenants_are_isolated);
async fn tenants_are_isolated(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let a = dep.project(&app, false).await;
    let b = dep.project(&app, false).await;
    let email = format!("{}@example.com", unique("iso"));
    let session_a = sign_in(&app, &dep, &a, &email).await;
    assert_eq!(app.user(&a.host, &session_a).await.status, StatusCode::OK);
    // The same token at project B: 401 (resident actor path and cold path alike).
    let r = app.user(&b.host, &session_a).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "unauthenticated");

    // A magic link of A cannot be used at B.
    app.request_link(&a, &email, None).await;
    let mail = dep.resend.last_to(&email).await.unwrap();
    let r = app.verify_link(&b.host, &link_token(&mail.link)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.set_cookie("reauth_session").is_none());
    // ... and it still works at A (B's attempt did not burn it).
    let r = app.verify_link(&a.host, &link_token(&mail.link)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_seen_by_another() {
    let dep = Deployment::new(Backend::Real).await;
    let one = dep.spawn().await;
    let two = dep.spawn().await;
    let p = dep.project(&one, false).await;
    two.wait_for_project(&p).await;
    let s1 = sign_in(&one, &dep, &p, &format!("{}@example.com", unique("multi"))).await;
    let s2 = sign_in(&one, &dep, &p, &format!("{}@example.com", unique("multi2"))).await;
    // Warm the session actor on instance two.
    assert_eq!(two.user(&p.host, &s1).await.status, StatusCode::OK);
    assert_eq!(two.user(&p.host, &s2).await.status, StatusCode::OK);

    let r = one
        .post(
            &p.host,
            "/v1/logout",
            &[("authorization", format!("Bearer {s1}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if two.user(&p.host, &s1).await.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "instance two still accepts the revoked session"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        one.user(&p.host, &s1).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The other session (another device) is unaffected.
    assert_eq!(two.user(&p.host, &s2).await.status, StatusCode::OK);
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_state_logs_nobody_out() {
    let dep = Deployment::new(Backend::Real).await;
    let app = dep.spawn().await;
    let p = dep.project(&app, false).await;
    let s = sign_in(&app, &dep, &p, &format!("{}@example.com", unique("flush"))).await;
    assert_eq!(app.user(&p.host, &s).await.status, StatusCode::OK);
    // Wipe every Redis key of this deployment, and start a second instance with a cold cache.
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", dep.redis_prefix))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the session was cached in Redis");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut con)
        .await
        .unwrap();
    let fresh = dep.spawn().await;
    fresh.wait_for_project(&p).await;
    let r = fresh.user(&p.host, &s).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "SQL is the source of truth: {}",
        r.body
    );
    app.shutdown().await;
    fresh.shutdown().await;
}

on_both!(logout_page_is_csrf_safe_and_devices_are_independent);
async fn logout_page_is_csrf_safe_and_devices_are_independent(backend: Backend) {
    let (dep, app, p) = setup(backend, false).await;
    let email = format!("{}@example.com", unique("dev"));
    let phone = sign_in(&app, &dep, &p, &email).await;
    let laptop = sign_in(&app, &dep, &p, &email).await;
    let cookie = format!("reauth_session={phone}");

    // A cross-site form post without the CSRF token is refused.
    let r = app
        .post_form(
            &p.host,
            "/logout",
            &[("csrf", "forged")],
            &[
                ("cookie", cookie.clone()),
                ("origin", "https://evil.com".into()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.user(&p.host, &phone).await.status, StatusCode::OK);

    // The account page carries the token; posting it signs this device out.
    let page = app.get(&p.host, "/", &[("cookie", cookie.clone())]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&email));
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let r = app
        .post_form(
            &p.host,
            "/logout",
            &[("csrf", &csrf)],
            &[("cookie", cookie)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.set_cookie("reauth_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        app.user(&p.host, &phone).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.user(&p.host, &laptop).await.status,
        StatusCode::OK,
        "other device still signed in"
    );
    app.shutdown().await;
}

on_both!(abuse_and_bad_input_get_clear_4xx);
async fn abuse_and_bad_input_get_clear_4xx(backend: Backend) {
    let (dep, app, p) = setup(backend, false).await;

    // Open-redirect attempts fall back to the project's default URL.
    let email = format!("{}@example.com", unique("redir"));
    app.request_link(&p, &email, Some("https://evil.com/steal"))
        .await;
    let mail = dep.resend.last_to(&email).await.unwrap();
    let r = app.verify_link(&p.host, &link_token(&mail.link)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location().unwrap(), p.origin);
    let r = app
        .get(&p.host, "/login?redirect_to=https%3A%2F%2Fevil.com", &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains("evil.com"));

    // Magic-link sends per email are limited: 429 with Retry-After and a readable page.
    let victim = format!("{}@example.com", unique("limit"));
    for _ in 0..5 {
        assert_eq!(
            app.request_link(&p, &victim, None).await.status,
            StatusCode::OK
        );
    }
    let r = app.request_link(&p, &victim, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    assert!(r.body.contains("Too many attempts"));

    // Malformed input: 4xx, never a 500.
    let cases: Vec<(&str, String, StatusCode)> = vec![
        ("unknown.example", "/login".into(), StatusCode::NOT_FOUND),
        ("bad_host,x", "/login".into(), StatusCode::BAD_REQUEST),
        (&p.host, "/verify".into(), StatusCode::BAD_REQUEST),
        (
            &p.host,
            "/verify?token=%ZZ%".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            &p.host,
            "/verify?token=short".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            &p.host,
            "/verify?token=a&token=b".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            &p.host,
            "/callback/google?code=x".into(),
            StatusCode::BAD_REQUEST,
        ),
        (&p.host, "/login/google".into(), StatusCode::NOT_FOUND),
        (&p.host, "/nope".into(), StatusCode::NOT_FOUND),
    ];
    for (host, path, want) in cases {
        let r = app.get(host, &path, &[]).await;
        assert_eq!(r.status, want, "{host} {path}: {}", r.body);
        assert!(r.body.contains("<h1>"), "{path} is a readable page");
    }
    let r = app.request_link(&p, "not-an-email", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("doesn&#x27;t look like an email") || r.body.contains("look like an email"),
        "{}",
        r.body
    );
    let r = app.post_form(&p.host, "/login/email", &[], &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // SDK endpoints: malformed tokens and cookies are 401 JSON; unknown hosts 404 JSON.
    for auth in [
        "Bearer",
        "Bearer x",
        "Basic abc",
        "Bearer ../../etc/passwd",
        "Bearer aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let r = app
            .get(&p.host, "/v1/user", &[("authorization", auth.to_string())])
            .await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::BAD_REQUEST,
            "{auth}: {}",
            r.status
        );
    }
    let r = app
        .get(
            &p.host,
            "/v1/user",
            &[("cookie", "reauth_session=; other=1".into())],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "unauthenticated");
    let r = app.get("nobody.example", "/v1/user", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "project_not_found");
    let r = app.get(&p.host, "/v1/nothing", &[]).await;
    assert_eq!(r.json()["error"]["code"], "not_found");

    // Security headers on every page.
    let r = app.get(&p.host, "/login", &[]).await;
    for h in [
        "strict-transport-security",
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "x-request-id",
    ] {
        assert!(r.headers.contains_key(h), "missing {h}");
    }
    app.shutdown().await;
}

on_both!(cors_allows_only_the_projects_origins);
async fn cors_allows_only_the_projects_origins(backend: Backend) {
    let (_dep, app, p) = setup(backend, false).await;
    let r = app
        .get(&p.host, "/v1/user", &[("origin", p.origin.clone())])
        .await;
    assert_eq!(r.headers["access-control-allow-origin"], p.origin.as_str());
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    let r = app
        .get(
            &p.host,
            "/v1/user",
            &[("origin", "https://evil.com".into())],
        )
        .await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_email_provider_gets_a_clear_page_and_a_log_entry() {
    let dep = Deployment::new(Backend::Real).await;
    let app = dep.spawn().await;
    let p = dep.project(&app, false).await;
    let core = &app.handle.state.core;
    let patch = reauth_actors::store::ProjectPatch {
        resend_api_key: Some(Some(reauth_runtime::config::Secret::new("re_fail_key"))),
        ..Default::default()
    };
    app.update_project(&p.id, patch).await;
    let dir = core.directory.clone();
    let pid = p.id.clone();
    eventually("new key loaded", Duration::from_secs(5), || {
        dir.project(&pid).is_some_and(|x| {
            x.resend_api_key
                .as_ref()
                .is_some_and(|k| k.expose() == "re_fail_key")
        })
    })
    .await;
    let r = app.request_link(&p, "x@example.com", None).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.body.contains("could not send"));
    let (status, error): (String, Option<String>) = {
        use sqlx::Row;
        let row = sqlx::query("SELECT status, error FROM email_log WHERE project_id = $1")
            .bind(&p.id)
            .fetch_one(&core.svc.db.pool)
            .await
            .unwrap();
        (
            row.try_get("status").unwrap(),
            row.try_get("error").unwrap(),
        )
    };
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("422"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_gone_gives_503_not_a_crash() {
    let dep = Deployment::new(Backend::Embedded).await;
    let app = dep.spawn().await;
    let p = dep.project(&app, false).await;
    let r = app.get(&p.host, "/readyz", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    app.handle.state.core.svc.db.pool.close().await;
    let r = app.get(&p.host, "/readyz", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["database"], "unreachable");
    let r = app
        .user(&p.host, &reauth_runtime::crypto::random_token())
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["code"], "unavailable");
    let r = app.request_link(&p, "y@example.com", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("try again"), "{}", r.body);
    assert_eq!(
        app.get(&p.host, "/healthz", &[]).await.status,
        StatusCode::OK
    );
}

on_both!(sessions_slide_at_most_hourly_and_expire);
async fn sessions_slide_at_most_hourly_and_expire(backend: Backend) {
    let (dep, app, p) = setup(backend, false).await;
    let token = sign_in(&app, &dep, &p, &format!("{}@example.com", unique("slide"))).await;
    let core = &app.handle.state.core;
    let db = core.svc.db.clone();
    let hash = reauth_runtime::crypto::hash_token(&token);
    let stored = |db: reauth_runtime::Db, hash: String| async move {
        use sqlx::Row;
        let r = sqlx::query("SELECT expires_at, last_seen_at FROM sessions WHERE token_hash = $1")
            .bind(hash)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (
            r.get::<i64, _>("expires_at"),
            r.get::<i64, _>("last_seen_at"),
        )
    };
    let (exp0, seen0) = stored(db.clone(), hash.clone()).await;
    assert!(
        core.sessions
            .lookup(&p.id, &token, now_ms())
            .await
            .unwrap()
            .is_some()
    );

    // Within the hour: nothing written.
    let soon = seen0 + 30 * 60 * 1000;
    assert!(
        core.sessions
            .lookup(&p.id, &token, soon)
            .await
            .unwrap()
            .is_some()
    );
    // Two hours later (time passed in): the expiry slides, written once.
    let later = seen0 + 2 * 3600 * 1000;
    assert!(
        core.sessions
            .lookup(&p.id, &token, later)
            .await
            .unwrap()
            .is_some()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (exp, seen) = stored(db.clone(), hash.clone()).await;
        if seen == later {
            assert_eq!(
                exp,
                later + 30 * 24 * 3600 * 1000,
                "expiry = renewal time + session TTL"
            );
            assert!(exp > exp0);
            break;
        }
        assert_eq!(seen, seen0, "nothing but the renewal writes last_seen_at");
        assert!(
            std::time::Instant::now() < deadline,
            "renewal never written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Past its (renewed) expiry the session is refused.
    let (exp, _) = stored(db.clone(), hash.clone()).await;
    assert!(
        core.sessions
            .lookup(&p.id, &token, exp + 1)
            .await
            .unwrap()
            .is_none()
    );
    app.shutdown().await;
}

async fn logout_clears_the_cookie_it_was_authenticated_with(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let p = dep.project(&app, false).await;
    let token = sign_in(&app, &dep, &p, &format!("{}@example.com", unique("lo1"))).await;
    let r = app
        .post(
            &p.host,
            "/v1/logout",
            &[("cookie", format!("reauth_session={token}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let cleared = r.set_cookie("reauth_session").expect("cookie cleared");
    assert!(cleared.starts_with("reauth_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // A bearer logout has no cookie to clear.
    let other = sign_in(&app, &dep, &p, &format!("{}@example.com", unique("lo2"))).await;
    let r = app
        .post(
            &p.host,
            "/v1/logout",
            &[("authorization", format!("Bearer {other}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.set_cookie("reauth_session").is_none());
    app.shutdown().await;
}
on_both!(logout_clears_the_cookie_it_was_authenticated_with);

async fn the_dev_project_accepts_any_local_app_as_a_redirect_target(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let core = app.handle.state.core.clone();
    let slug = unique("dev");
    let id = reauth_actors::admin::Admin::new(&core)
        .ensure_dev_project(
            &slug,
            "Dev",
            &[format!("{slug}.localhost:8080")],
            &["http://localhost:8080".to_string()],
        )
        .await
        .unwrap();
    let pid = id.clone();
    common::eventually("dev project loaded", Duration::from_secs(5), || {
        core.directory
            .project(&pid)
            .is_some_and(|p| p.allowed_origins.iter().any(|o| o == "http://localhost:*"))
    })
    .await;
    let p = core.directory.project(&id).unwrap();
    assert_eq!(
        p.allowed_origins[0], "http://localhost:8080",
        "its own origin stays first"
    );
    for ok in ["http://localhost:5173/app", "http://127.0.0.1:3001/"] {
        assert!(p.allowed_redirect(ok).is_some(), "{ok}");
    }
    for bad in [
        "https://evil.example/",
        "http://localhost.evil.example:3000/",
    ] {
        assert!(p.allowed_redirect(bad).is_none(), "{bad}");
    }
    app.shutdown().await;
}
on_both!(the_dev_project_accepts_any_local_app_as_a_redirect_target);

async fn the_confirmation_page_lets_its_form_redirect_to_the_app(backend: Backend) {
    let (dep, app, p) = setup(backend, false).await;
    let email = format!("{}@example.com", unique("csp"));
    let target = format!("{}/dashboard", p.origin);
    app.request_link(&p, &email, Some(&target)).await;
    let mail = dep.resend.last_to(&email).await.expect("email received");
    let token = link_token(&mail.link);

    // Chromium checks `form-action` on the 303 that follows the button's POST: the app's
    // origin must be a form target of the confirmation page, or the browser stops there.
    let page = app
        .get(&p.host, &format!("/verify?token={token}"), &[])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    let form_action = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("form-action "))
        .expect("a form-action directive");
    assert!(
        form_action.split(' ').any(|s| s == p.origin),
        "{form_action} lacks {}",
        p.origin
    );
    // Otherwise the edge's policy for every page, unchanged.
    let login = app.get(&p.host, "/login", &[]).await;
    let default = login.headers["content-security-policy"].to_str().unwrap();
    assert_eq!(csp.replace(&format!(" {}", p.origin), ""), default);
    app.shutdown().await;
}
on_both!(the_confirmation_page_lets_its_form_redirect_to_the_app);
