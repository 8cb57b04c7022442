//! Test harness: `spawn_app()` starts the real server on port 0 against the machine's real
//! PostgreSQL (a fresh database per test binary) and Redis (a key prefix per app), or against
//! the embedded backends; third parties (Resend, Google) are real HTTP servers on loopback
//! speaking their documented wire formats, reached through the configurable base URLs.

#![allow(dead_code)]

/// Run one scenario against both backends.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn real_postgres_and_redis() {
                super::$name(super::Backend::Real).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded_sqlite_and_in_process() {
                super::$name(super::Backend::Embedded).await;
            }
        }
    };
}

pub mod proxy;
pub mod stripe;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use reauth_actors::store;
use reauth_http::{AppHandle, Mode};
use reauth_runtime::crypto::MasterKey;
use reauth_runtime::{Settings, now_ms};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::sync::OnceCell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL + Redis of this machine.
    Real,
    /// SQLite file + in-process cache and bus.
    Embedded,
}

pub const BASE_DOMAIN: &str = "test.local";

static PG_URL: OnceCell<String> = OnceCell::const_new();

/// One master key per test binary: deployments of a binary share its Postgres database.
fn master_key() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| MasterKey::generate().1).clone()
}

/// One fresh Postgres database per test binary.
pub async fn pg_url() -> String {
    PG_URL
        .get_or_init(|| async {
            reauth_runtime::db::testing::fresh_postgres()
                .await
                .expect("fresh postgres database")
        })
        .await
        .clone()
}

pub fn redis_url() -> String {
    std::env::var("REAUTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &reauth_runtime::ids::new_id("x")[2..][20..])
}

/// Settings shared by instances of one "deployment" (same database, same Redis prefix).
pub struct Deployment {
    pub backend: Backend,
    pub database_url: String,
    pub redis_prefix: String,
    pub master_key: String,
    pub resend: FakeResend,
    pub google: FakeGoogle,
    pub stripe: stripe::FakeStripe,
    pub data_dir: std::path::PathBuf,
}

impl Deployment {
    pub async fn new(backend: Backend) -> Self {
        let database_url = match backend {
            Backend::Real => pg_url().await,
            Backend::Embedded => reauth_runtime::db::testing::fresh_sqlite(),
        };
        let master_key = master_key();
        Self {
            backend,
            database_url,
            redis_prefix: format!("{}:", unique("reauth_t_")),
            master_key,
            resend: FakeResend::start().await,
            google: FakeGoogle::start().await,
            stripe: stripe::FakeStripe::start().await,
            data_dir: std::env::temp_dir().join(unique("reauth-data-")),
        }
    }

    pub fn settings(&self) -> Settings {
        let mut s = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..Settings::default()
        };
        s.database_url = Some(reauth_runtime::config::Secret::new(
            self.database_url.clone(),
        ));
        if self.backend == Backend::Real {
            s.redis_url = Some(reauth_runtime::config::Secret::new(redis_url()));
        }
        s.redis_prefix = self.redis_prefix.clone();
        s.master_key = Some(reauth_runtime::config::Secret::new(self.master_key.clone()));
        s.base_domain = Some(BASE_DOMAIN.into());
        s.data_dir = self.data_dir.clone();
        s.resend_api_url = self.resend.url.clone();
        s.google_auth_url = format!("{}/authorize", self.google.url);
        s.google_token_url = format!("{}/token", self.google.url);
        s.google_userinfo_url = format!("{}/userinfo", self.google.url);
        s.stripe_api_url = self.stripe.url.clone();
        s.log_level = "warn".into();
        s.ops_listen = Some("127.0.0.1:0".parse().expect("addr"));
        s
    }

    /// Start one instance of this deployment.
    pub async fn spawn(&self) -> TestApp {
        self.spawn_with(self.settings()).await
    }

    /// Start one instance with these settings (from [`Deployment::settings`], changed).
    pub async fn spawn_with(&self, settings: Settings) -> TestApp {
        let handle = reauth_http::start(settings, Mode::Serve)
            .await
            .expect("app starts");
        TestApp::new(handle)
    }

    /// Create a project with a Resend key, Google client and allowed origin; returns its slug.
    pub async fn project(&self, app: &TestApp, with_google: bool) -> TestProject {
        let slug = unique("p");
        let core = &app.handle.state.core;
        let db = &core.svc.db;
        let origin = format!("https://app-{slug}.example.com");
        let id = store::create_project(
            db,
            &slug,
            &format!("Project {slug}"),
            &[],
            std::slice::from_ref(&origin),
            now_ms(),
        )
        .await
        .expect("create project");
        let patch = store::ProjectPatch {
            email_from: Some(Some(format!("Login <login@{slug}.example.com>"))),
            resend_api_key: Some(Some(reauth_runtime::config::Secret::new(format!(
                "re_test_{slug}"
            )))),
            google_client_id: with_google.then(|| Some(format!("gid-{slug}"))),
            google_client_secret: with_google.then(|| {
                Some(reauth_runtime::config::Secret::new(format!(
                    "gsecret-{slug}"
                )))
            }),
            ..Default::default()
        };
        app.update_project(&id, patch).await;
        let host = format!("{slug}.{BASE_DOMAIN}");
        let p = TestProject {
            id,
            slug,
            host,
            origin,
        };
        app.wait_for_project(&p).await;
        p
    }
}

impl Deployment {
    /// A project with Stripe keys and a plan mapping: `price_basic` -> basic [export],
    /// `price_pro` -> pro [export, api].
    pub async fn billing_project(&self, app: &TestApp) -> TestProject {
        let p = self.project(app, false).await;
        let core = &app.handle.state.core;
        let patch = store::ProjectPatch {
            stripe_secret_key: Some(Some(reauth_runtime::config::Secret::new(format!(
                "sk_test_{}",
                p.slug
            )))),
            stripe_webhook_secret: Some(Some(reauth_runtime::config::Secret::new(webhook_secret(
                &p,
            )))),
            plans: Some(vec![
                reauth_actors::model::PlanMapping {
                    price_id: "price_basic".into(),
                    plan: "basic".into(),
                    features: vec!["export".into()],
                },
                reauth_actors::model::PlanMapping {
                    price_id: "price_pro".into(),
                    plan: "pro".into(),
                    features: vec!["export".into(), "api".into()],
                },
            ]),
            ..Default::default()
        };
        app.update_project(&p.id, patch).await;
        let dir = core.directory.clone();
        let id = p.id.clone();
        eventually("billing config loaded", Duration::from_secs(10), || {
            dir.project(&id)
                .is_some_and(|x| x.stripe_webhook_secret.is_some() && !x.plans.is_empty())
        })
        .await;
        p
    }
}

pub fn webhook_secret(p: &TestProject) -> String {
    format!("whsec_{}", p.slug)
}

#[derive(Clone, Debug)]
pub struct TestProject {
    pub id: String,
    pub slug: String,
    pub host: String,
    pub origin: String,
}

pub struct TestApp {
    pub handle: AppHandle,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
    /// The value of a cookie set by this response.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(String::from)
    }
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        self.set_cookie(name).and_then(|c| {
            c.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .map(|(_, v)| v.to_string())
        })
    }
}

impl TestApp {
    fn new(handle: AppHandle) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            addr: handle.addr,
            handle,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn wait_for_project(&self, p: &TestProject) {
        let dir = self.handle.state.core.directory.clone();
        let host = p.host.clone();
        eventually("project served", Duration::from_secs(10), || {
            dir.by_host(&host).is_some()
        })
        .await;
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let res = rb.send().await.expect("request");
        Resp {
            status: StatusCode::from_u16(res.status().as_u16()).expect("status"),
            headers: res.headers().clone(),
            body: res.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&self, host: &str, path: &str, headers: &[(&str, String)]) -> Resp {
        let mut rb = self.http.get(self.url(path)).header("host", host);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        self.send(rb).await
    }

    pub async fn post_form(
        &self,
        host: &str,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, String)],
    ) -> Resp {
        let body = serde_urlencoded::to_string(form).expect("form");
        let mut rb = self
            .http
            .post(self.url(path))
            .header("host", host)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        self.send(rb).await
    }

    pub async fn post(&self, host: &str, path: &str, headers: &[(&str, String)]) -> Resp {
        let mut rb = self.http.post(self.url(path)).header("host", host);
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        self.send(rb).await
    }

    /// GET /v1/user with a bearer token.
    pub async fn user(&self, host: &str, token: &str) -> Resp {
        self.get(
            host,
            "/v1/user",
            &[("authorization", format!("Bearer {token}"))],
        )
        .await
    }

    /// Ask for a magic link; returns the response of POST /login/email.
    pub async fn request_link(
        &self,
        p: &TestProject,
        email: &str,
        redirect_to: Option<&str>,
    ) -> Resp {
        let mut form = vec![("email", email)];
        if let Some(r) = redirect_to {
            form.push(("redirect_to", r));
        }
        self.post_form(&p.host, "/login/email", &form, &[]).await
    }

    /// POST a Stripe webhook, signed with `secret` at time `t`.
    pub async fn webhook(&self, project_id: &str, payload: &str, secret: &str, t: i64) -> Resp {
        let rb = self
            .http
            .post(self.url(&format!("/webhooks/stripe/{project_id}")))
            .header("content-type", "application/json")
            .header("stripe-signature", stripe::sign(payload, secret, t))
            .body(payload.to_string());
        self.send(rb).await
    }

    pub async fn send_raw_webhook(
        &self,
        project_id: &str,
        payload: &str,
        signature: Option<&str>,
    ) -> Resp {
        let mut rb = self
            .http
            .post(self.url(&format!("/webhooks/stripe/{project_id}")))
            .body(payload.to_string());
        if let Some(s) = signature {
            rb = rb.header("stripe-signature", s);
        }
        self.send(rb).await
    }

    pub async fn post_json(&self, host: &str, path: &str, token: &str, body: Value) -> Resp {
        let rb = self
            .http
            .post(self.url(path))
            .header("host", host)
            .bearer_auth(token)
            .json(&body);
        self.send(rb).await
    }

    /// Open a magic link as a person does: `GET /verify` (the confirmation page, which uses
    /// nothing), then the button's `POST /verify` with the page's cookie and form token.
    pub async fn verify_link(&self, host: &str, token: &str) -> Resp {
        let page = self.get(host, &format!("/verify?token={token}"), &[]).await;
        if page.status != StatusCode::OK {
            return page;
        }
        let nonce = page.cookie_value("reauth_verify").expect("verify cookie");
        let csrf = form_csrf(&page.body).expect("csrf field");
        self.post_form(
            host,
            "/verify",
            &[("token", token), ("csrf", &csrf)],
            &[("cookie", format!("reauth_verify={nonce}"))],
        )
        .await
    }

    /// Change a project's stored configuration, then reload it here and tell the other
    /// instances (as the CLI does).
    pub async fn update_project(&self, project_id: &str, patch: store::ProjectPatch) {
        let core = &self.handle.state.core;
        store::update_project(
            &core.svc.db,
            &core.svc.master_key,
            project_id,
            &patch,
            now_ms(),
        )
        .await
        .expect("update project");
        core.project_changed(project_id).await.expect("reload");
    }

    /// GET on the operator listener.
    pub async fn ops_get(&self, path: &str) -> Resp {
        let addr = self.handle.ops_addr.expect("ops listener");
        self.send(self.http.get(format!("http://{addr}{path}")))
            .await
    }

    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}

/// The token in a magic link URL.
pub fn link_token(link: &str) -> String {
    link.split("token=").nth(1).unwrap_or_default().to_string()
}

/// Full magic-link sign-in through HTTP and the fake Resend; returns the session token.
pub async fn sign_in(app: &TestApp, dep: &Deployment, p: &TestProject, email: &str) -> String {
    let r = app.request_link(p, email, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mail = dep.resend.last_to(email).await.expect("email sent");
    let r = app.verify_link(&p.host, &link_token(&mail.link)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r.cookie_value("reauth_session").expect("session cookie")
}

/// The hidden `csrf` field of the `/verify` confirmation page.
pub fn form_csrf(page: &str) -> Option<String> {
    let at = page.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(page[at..].split('"').next()?.to_string())
}

/// Poll `cond` until it holds or the deadline passes (no fixed sleeps).
pub async fn eventually(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------- fake Resend

#[derive(Clone, Debug)]
pub struct SentEmail {
    pub api_key: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: String,
    pub text: String,
    pub link: String,
}

/// POST /emails with `Authorization: Bearer re_…`, JSON {from, to, subject, html, text}
/// -> 200 {"id": "…"} (Resend's documented send-email API). Keys starting `re_fail` get 422.
#[derive(Clone)]
pub struct FakeResend {
    pub url: String,
    pub sent: Arc<Mutex<Vec<SentEmail>>>,
}

impl FakeResend {
    pub async fn start() -> Self {
        let sent: Arc<Mutex<Vec<SentEmail>>> = Arc::default();
        let app = Router::new()
            .route("/emails", post(resend_send))
            .with_state(sent.clone());
        let url = serve(app).await;
        Self { url, sent }
    }

    pub async fn last_to(&self, to: &str) -> Option<SentEmail> {
        let start = Instant::now();
        loop {
            if let Some(e) = self
                .sent
                .lock()
                .expect("lock")
                .iter()
                .rev()
                .find(|e| e.to.iter().any(|t| t == to))
                .cloned()
            {
                return Some(e);
            }
            if start.elapsed() > Duration::from_secs(5) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn count(&self) -> usize {
        self.sent.lock().expect("lock").len()
    }
}

async fn resend_send(
    State(sent): State<Arc<Mutex<Vec<SentEmail>>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    if !key.starts_with("re_") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                json!({"statusCode": 401, "name": "missing_api_key", "message": "Missing API key"}),
            ),
        )
            .into_response();
    }
    if key.starts_with("re_fail") {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"statusCode": 422, "name": "validation_error", "message": "domain not verified"}))).into_response();
    }
    let s = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let to: Vec<String> = body
        .get("to")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let text = s("text");
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/verify?token="))
        .unwrap_or_default()
        .to_string();
    sent.lock().expect("lock").push(SentEmail {
        api_key: key,
        from: s("from"),
        to,
        subject: s("subject"),
        html: s("html"),
        text,
        link,
    });
    Json(json!({ "id": reauth_runtime::ids::new_id("email") })).into_response()
}

// ---------------------------------------------------------------- fake Google

#[derive(Clone, Debug)]
pub struct GoogleProfile {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

#[derive(Clone)]
struct Grant {
    challenge: String,
    client_id: String,
    redirect_uri: String,
    profile: GoogleProfile,
}

#[derive(Default)]
struct GoogleState {
    /// The profile the next /authorize will sign in as.
    next: Option<GoogleProfile>,
    codes: std::collections::HashMap<String, Grant>,
    tokens: std::collections::HashMap<String, GoogleProfile>,
    token_requests: Vec<Value>,
}

/// An OAuth 2.0 + OIDC-userinfo provider on loopback, like Google's: `/authorize` (code flow with
/// PKCE S256), `/token` (form post, checks client credentials, redirect_uri and the PKCE
/// verifier), `/userinfo` (bearer token -> {sub, email, email_verified, name, picture}).
#[derive(Clone)]
pub struct FakeGoogle {
    pub url: String,
    state: Arc<Mutex<GoogleState>>,
}

impl FakeGoogle {
    pub async fn start() -> Self {
        let state: Arc<Mutex<GoogleState>> = Arc::default();
        let app = Router::new()
            .route("/authorize", get(g_authorize))
            .route("/oidc/authorize", get(g_authorize))
            .route("/token", post(g_token))
            .route("/oidc/token", post(g_token))
            .route("/oidc/userinfo", get(g_userinfo))
            .route("/userinfo", get(g_userinfo))
            .route("/.well-known/openid-configuration", get(g_discovery))
            // A document that names another issuer than the one it is served for.
            .route(
                "/imposter/.well-known/openid-configuration",
                get(g_discovery),
            )
            .with_state(state.clone());
        let url = serve(app).await;
        Self { url, state }
    }

    pub fn sign_in_as(&self, p: GoogleProfile) {
        self.state.lock().expect("lock").next = Some(p);
    }

    /// The browser at the provider's authorization `url`: the user approves, and the redirect
    /// back carries `(code, state)`.
    pub async fn approve(&self, url: String) -> (String, String) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let r = http.get(url).send().await.expect("authorize");
        assert_eq!(r.status().as_u16(), 303);
        let loc = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        let (_, query) = loc.split_once('?').expect("query on the redirect");
        let q: std::collections::HashMap<String, String> =
            serde_urlencoded::from_str(query).expect("redirect query");
        (q["code"].clone(), q["state"].clone())
    }

    pub fn token_requests(&self) -> Vec<Value> {
        self.state.lock().expect("lock").token_requests.clone()
    }
}

/// OpenID Connect discovery, naming this server (`http://<Host>`) as the issuer. The endpoints
/// live under `/oidc/…` aliases so a test can tell discovered URLs from configured ones.
async fn g_discovery(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let base = format!("http://{host}");
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oidc/authorize"),
        "token_endpoint": format!("{base}/oidc/token"),
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn g_authorize(
    State(st): State<Arc<Mutex<GoogleState>>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut st = st.lock().expect("lock");
    let (Some(redirect), Some(state), Some(challenge)) = (
        q.get("redirect_uri"),
        q.get("state"),
        q.get("code_challenge"),
    ) else {
        return (StatusCode::BAD_REQUEST, "missing parameters").into_response();
    };
    if q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (
            StatusCode::BAD_REQUEST,
            "PKCE S256 and response_type=code required",
        )
            .into_response();
    }
    let Some(profile) = st.next.clone() else {
        return (StatusCode::BAD_REQUEST, "no test profile").into_response();
    };
    let code = reauth_runtime::crypto::random_token();
    st.codes.insert(
        code.clone(),
        Grant {
            challenge: challenge.clone(),
            client_id: q.get("client_id").cloned().unwrap_or_default(),
            redirect_uri: redirect.clone(),
            profile,
        },
    );
    let sep = if redirect.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{redirect}{sep}code={code}&state={state}")).into_response()
}

async fn g_token(
    State(st): State<Arc<Mutex<GoogleState>>>,
    Form(f): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let mut st = st.lock().expect("lock");
    st.token_requests.push(json!(f));
    let err = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return err("unsupported_grant_type");
    }
    let Some(grant) = f.get("code").and_then(|c| st.codes.remove(c)) else {
        return err("invalid_grant");
    };
    let client_ok = f.get("client_id") == Some(&grant.client_id)
        && f.get("client_secret")
            .is_some_and(|s| s.starts_with("gsecret-"));
    if !client_ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if f.get("redirect_uri") != Some(&grant.redirect_uri) {
        return err("redirect_uri_mismatch");
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    if computed != grant.challenge {
        return err("invalid_grant");
    }
    let access = reauth_runtime::crypto::random_token();
    st.tokens.insert(access.clone(), grant.profile);
    Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": 3599, "scope": "openid email profile"})).into_response()
}

async fn g_userinfo(State(st): State<Arc<Mutex<GoogleState>>>, headers: HeaderMap) -> Response {
    let st = st.lock().expect("lock");
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match st.tokens.get(token) {
        Some(p) => Json(json!({
            "sub": p.sub, "email": p.email, "email_verified": p.email_verified,
            "name": p.name, "picture": "https://lh3.example.com/a.png",
        }))
        .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_token"})),
        )
            .into_response(),
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}
