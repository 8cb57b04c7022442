//! The logs of a whole journey — magic-link and Google sign-ins, reads, a Stripe webhook,
//! Management API calls, a logout — as production writes them (JSON lines at the default
//! level), scanned for every secret and token the journey used. One test in this binary: it
//! installs the process's log subscriber.

#[allow(unused_macros)] // one scenario: it owns the process's log subscriber
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::stripe::new_subscription_event;
use common::{Backend, Deployment, GoogleProfile, link_token, unique, webhook_secret};
use reauth_actors::admin::{Admin, Caller};
use reauth_runtime::config::LogFormat;
use serde_json::Value;

/// Log lines, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_of_a_full_journey_reaches_the_logs() {
    let logs = Captured::default();
    // Production's default level, and debug for our own crates: stricter than what ships.
    reauth_http::telemetry::init_with_writer(
        "info,reauth_http=debug,reauth_actors=debug,reauth_runtime=debug,reauth::access=debug",
        LogFormat::Json,
        logs.clone(),
    );

    let dep = Deployment::new(Backend::Real).await;
    let app = dep.spawn().await;
    let p = dep.billing_project(&app).await;
    // Google configured on the same project.
    app.update_project(
        &p.id,
        reauth_actors::store::ProjectPatch {
            google_client_id: Some(Some(format!("gid-{}", p.slug))),
            google_client_secret: Some(Some(reauth_runtime::config::Secret::new(format!(
                "gsecret-{}",
                p.slug
            )))),
            ..Default::default()
        },
    )
    .await;
    let mut secrets: Vec<(String, String)> = vec![
        ("master key".into(), dep.master_key.clone()),
        ("Resend key".into(), format!("re_test_{}", p.slug)),
        ("Stripe secret key".into(), format!("sk_test_{}", p.slug)),
        ("Stripe webhook secret".into(), webhook_secret(&p)),
        ("Google client secret".into(), format!("gsecret-{}", p.slug)),
    ];

    // Magic link: the link's token, the confirmation page's nonce and form token, the session.
    let email = format!("{}@example.com", unique("logs"));
    let r = app.request_link(&p, &email, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mail = dep.resend.last_to(&email).await.expect("email sent");
    let link = link_token(&mail.link);
    let page = app
        .get(&p.host, &format!("/verify?token={link}"), &[])
        .await;
    let nonce = page.cookie_value("reauth_verify").expect("verify cookie");
    let csrf = common::form_csrf(&page.body).expect("csrf");
    let r = app
        .post_form(
            &p.host,
            "/verify",
            &[("token", &link), ("csrf", &csrf)],
            &[("cookie", format!("reauth_verify={nonce}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let session = r.cookie_value("reauth_session").expect("session");
    secrets.push(("magic-link token".into(), link));
    secrets.push(("verify nonce".into(), nonce));
    secrets.push(("verify form token".into(), csrf));
    secrets.push(("session token".into(), session.clone()));
    let v = app.user(&p.host, &session).await;
    assert_eq!(v.status, StatusCode::OK);
    let user_id = v.json()["user_id"].as_str().unwrap_or_default().to_string();
    // A read from cold (not resident) too: restart-free, via a second token's first read.
    let other = common::sign_in(&app, &dep, &p, &format!("{}@example.com", unique("o"))).await;
    assert_eq!(app.user(&p.host, &other).await.status, StatusCode::OK);
    secrets.push(("second session token".into(), other.clone()));

    // Google: the state, the browser binding, the code; the provider's access token.
    dep.google.sign_in_as(GoogleProfile {
        sub: unique("g"),
        email: format!("{}@example.com", unique("g")),
        email_verified: true,
        name: "Grace".into(),
    });
    let r = app.get(&p.host, "/login/google", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let browser = r.cookie_value("reauth_oauth").expect("oauth cookie");
    let (code, state) = dep.google.approve(r.location().expect("location")).await;
    let r = app
        .get(
            &p.host,
            &format!("/callback/google?code={code}&state={state}"),
            &[("cookie", format!("reauth_oauth={browser}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let g_session = r.cookie_value("reauth_session").expect("google session");
    secrets.push(("OAuth browser binding".into(), browser));
    secrets.push(("OAuth code".into(), code));
    secrets.push(("OAuth state".into(), state));
    secrets.push(("Google session".into(), g_session.clone()));

    // A Stripe webhook (its signature too).
    let created = reauth_runtime::now_ms() / 1000;
    let payload = new_subscription_event(created, Some(&user_id));
    let signature = common::stripe::sign(&payload, &webhook_secret(&p), created);
    let r = app
        .webhook(&p.id, &payload, &webhook_secret(&p), created)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v1 = signature
        .split("v1=")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    secrets.push(("Stripe signature".into(), v1));
    // A refused one, with a wrong signature.
    let r = app.webhook(&p.id, &payload, "whsec_wrong", created).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // The Management API with a key, and a refused wrong key.
    let admin = Admin::new(&app.handle.state.core);
    let org = admin
        .create_org("test", &unique("org"), "Org", "owner@example.com")
        .await
        .expect("org");
    let (_, key) = admin
        .create_api_key(
            &Caller::operator(Some(&org.id)),
            "logs",
            &["projects:write".to_string()],
        )
        .await
        .expect("key");
    let r = app
        .http
        .get(app.url("/api/v1/projects"))
        .header("host", "api.example.com")
        .bearer_auth(&key)
        .send()
        .await
        .expect("api");
    assert_eq!(r.status().as_u16(), 200);
    let wrong = format!("{}x", &key[..key.len() - 1]);
    let r = app
        .http
        .get(app.url("/api/v1/projects"))
        .header("host", "api.example.com")
        .bearer_auth(&wrong)
        .send()
        .await
        .expect("api");
    assert_eq!(r.status().as_u16(), 401);
    secrets.push(("API key".into(), key.clone()));
    secrets.push((
        "API key's secret part".into(),
        key["reauth_sk_".len()..].to_string(),
    ));

    // Logout, and a read with the revoked token.
    let r = app
        .post(
            &p.host,
            "/v1/logout",
            &[("authorization", format!("Bearer {session}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        app.user(&p.host, &session).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.shutdown().await;

    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    // The logs are there (the scan could not pass on nothing), as JSON, with access lines.
    assert!(lines.len() > 10, "{text}");
    assert_eq!(
        lines.len(),
        text.lines().filter(|l| !l.trim().is_empty()).count(),
        "every line is JSON"
    );
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "reauth::access")
        .collect();
    assert!(
        access.iter().any(|l| l["route"] == "/verify"
            && l["project"] == p.slug.as_str()
            && l["status"] == 303
            && l["outcome"] == "served"
            && l["request_id"]
                .as_str()
                .is_some_and(|r| r.starts_with("req_"))
            && l["duration_ms"].as_f64().is_some()),
        "an access line for the sign-in: {access:?}"
    );
    assert!(access.iter().any(|l| l["route"] == "/v1/user"));
    assert!(
        lines.iter().any(|l| l["message"] == "Stripe webhook"
            && l["project"] == p.slug.as_str()
            && l["outcome"] == "applied"),
        "the webhook's line"
    );
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is a real value: {secret:?}");
        assert!(
            !text.contains(secret.as_str()),
            "the {what} is in the logs:\n{}",
            text.lines()
                .filter(|l| l.contains(secret.as_str()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
