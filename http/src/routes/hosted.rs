//! Hosted pages on the project's host: login (Google + magic link), verify, Google callback,
//! logout, and a small account page. No JavaScript; every failure is a readable page.

// Handlers return early with a finished page; boxing every `Response` would only add noise.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use minijinja::value::Serde;
use reauth_actors::login::{self, GoogleCallback, LoginError, MagicLinkRequest};
use reauth_actors::model::{Email, ProjectRef};
use reauth_actors::ratelimit::{self, Limit};
use reauth_runtime::crypto::{ct_eq, hash_token, random_token};
use reauth_runtime::now_ms;
use serde::Deserialize;

use crate::app::AppState;
use crate::extract::{self, OAUTH_COOKIE, SESSION_COOKIE};
use crate::pages::Brand;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page))
        .route("/login/email", post(login_email))
        .route("/verify", get(verify_page).post(verify))
        .route("/login/google", get(google_start))
        .route("/callback/google", get(google_callback))
        .route("/logout", post(logout))
}

/// Query strings are parsed leniently: a malformed one is treated as absent, never a 500.
fn query<T: for<'de> Deserialize<'de> + Default>(req: &Request) -> T {
    req.uri()
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

fn unknown_host(st: &AppState) -> Response {
    st.pages.message(
        StatusCode::NOT_FOUND,
        &Brand::neutral(),
        "Unknown site",
        "No application is set up to sign in on this address. Check the link you followed.",
        None,
    )
}

/// The project for this request's host, or the "unknown site" page.
fn project_of(st: &AppState, headers: &HeaderMap) -> Result<ProjectRef, Response> {
    extract::project(st, headers).ok_or_else(|| unknown_host(st))
}

/// The redirect target if it is on the allow-list; otherwise `None` (callers fall back).
fn checked_redirect(p: &ProjectRef, target: Option<&str>) -> Option<String> {
    target
        .filter(|t| !t.is_empty())
        .and_then(|t| p.allowed_redirect(t))
}

fn default_target(p: &ProjectRef) -> String {
    p.default_redirect().unwrap_or("/").to_string()
}

fn login_href(redirect_to: Option<&str>) -> String {
    match redirect_to {
        Some(r) => format!(
            "/login?redirect_to={}",
            url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
        ),
        None => "/login".into(),
    }
}

fn csrf_for(token: &str) -> String {
    hash_token(&format!("csrf:{token}"))
}

/// `; Secure` when the project's canonical origin is https.
fn secure_attr(p: &ProjectRef) -> &'static str {
    if extract::origin(p).is_none_or(|o| o.secure()) {
        "; Secure"
    } else {
        ""
    }
}

pub(crate) fn session_cookie(
    p: &ProjectRef,
    headers: &HeaderMap,
    token: &str,
    max_age: i64,
) -> HeaderValue {
    let mut c = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        secure_attr(p)
    );
    if let Some(d) = extract::cookie_domain(p, headers) {
        c.push_str(&format!("; Domain={d}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Pages a person opens on an alias host (`127.0.0.1` for `localhost`, `<slug>.<base>` for a
/// verified custom domain) move to the canonical origin first, so the cookies they set are the
/// ones later requests carry.
fn to_canonical(p: &ProjectRef, req: &Request) -> Option<Response> {
    if extract::on_canonical_host(p, req.headers()) {
        return None;
    }
    let o = extract::origin(p)?;
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Some(Redirect::temporary(&format!("{}{path}", o.url())).into_response())
}

fn too_many(st: &AppState, p: &ProjectRef, retry: Duration, back: &str) -> Response {
    let secs = retry.as_secs().max(1);
    let mut res = st.pages.message(
        StatusCode::TOO_MANY_REQUESTS,
        &Brand::of(p),
        "Too many attempts",
        &format!("Please wait {} before trying again.", human(secs)),
        Some((back, "Back to sign in")),
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn human(secs: u64) -> String {
    if secs < 90 {
        format!("{secs} seconds")
    } else {
        format!("{} minutes", secs.div_ceil(60))
    }
}

async fn limit(
    st: &AppState,
    p: &ProjectRef,
    bucket: &str,
    subject: &str,
    l: Limit,
) -> Result<(), Response> {
    ratelimit::hit(&st.core.svc.cache, bucket, &p.id, subject, l)
        .await
        .map_err(|retry| too_many(st, p, retry, "/login"))
}

/// The per-IP budget of `bucket`: a 429 page past it. No IP known (no peer address), no limit.
async fn limit_ip(
    st: &AppState,
    p: &ProjectRef,
    client: &extract::Client,
    bucket: &str,
    l: Limit,
) -> Result<(), Response> {
    match &client.ip {
        Some(ip) => limit(st, p, bucket, ip, l).await,
        None => Ok(()),
    }
}

/// The request's id (set by the edge), for the audit log.
fn request_id(req: &Request) -> Option<String> {
    req.extensions()
        .get::<crate::edge::RequestId>()
        .map(|r| r.0.clone())
}

fn login_error_page(st: &AppState, p: &ProjectRef, e: &LoginError, back: &str) -> Response {
    let brand = Brand::of(p);
    let (status, heading, message) = match e {
        LoginError::LinkUnknown => (
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "This sign-in link is not valid. It may have been copied incompletely.",
        ),
        LoginError::LinkUsed => (
            StatusCode::GONE,
            "Link already used",
            "This sign-in link has already been used. Each link works once.",
        ),
        LoginError::LinkExpired => (
            StatusCode::GONE,
            "Link expired",
            "This sign-in link has expired.",
        ),
        LoginError::EmailNotConfigured => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Email sign-in unavailable",
            "This application has not set up email delivery yet.",
        ),
        LoginError::EmailFailed => (
            StatusCode::BAD_GATEWAY,
            "Email not sent",
            "We could not send the email just now. Please try again.",
        ),
        LoginError::GoogleNotConfigured => (
            StatusCode::NOT_FOUND,
            "Google sign-in is not enabled",
            "Google sign-in is not enabled for this project. Sign in with your email instead.",
        ),
        LoginError::BadState => (
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in attempt is invalid or has expired. Please start again from this browser.",
        ),
        LoginError::Provider(_) => (
            StatusCode::BAD_GATEWAY,
            "Google sign-in failed",
            "Google did not complete the sign-in. Please try again.",
        ),
        LoginError::EmailUnverified => (
            StatusCode::FORBIDDEN,
            "Email not verified",
            "Your Google account's email address is not verified, so we cannot sign you in with it.",
        ),
        LoginError::Banned { .. } => (
            StatusCode::FORBIDDEN,
            "Account suspended",
            "This account has been suspended, so it cannot sign in. Contact the application's support if you think this is a mistake.",
        ),
        LoginError::ProjectUnavailable | LoginError::Internal(_) => {
            tracing::error!(error = %e, "login failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "We could not complete the sign-in. Please try again in a moment.",
            )
        }
    };
    if let LoginError::Provider(detail) = e {
        tracing::warn!(detail, "Google sign-in failed");
    }
    let label = match e {
        LoginError::LinkUnknown | LoginError::LinkUsed | LoginError::LinkExpired => {
            "Request a new link"
        }
        _ => "Back to sign in",
    };
    st.pages
        .message(status, &brand, heading, message, Some((back, label)))
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    redirect_to: Option<String>,
}

async fn login_page(State(st): State<AppState>, req: Request) -> Response {
    let p = match project_of(&st, req.headers()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = to_canonical(&p, &req) {
        return r;
    }
    let q: LoginQuery = query(&req);
    let redirect_to = checked_redirect(&p, q.redirect_to.as_deref());
    render_login(&st, &p, redirect_to.as_deref(), None, None, StatusCode::OK)
}

fn render_login(
    st: &AppState,
    p: &ProjectRef,
    redirect_to: Option<&str>,
    email: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    st.pages.render(
        status,
        "login.html",
        context! {
            project => Serde(Brand::of(p)),
            google => p.google_enabled(),
            redirect_to, email, error,
        },
    )
}

#[derive(Deserialize, Default)]
struct EmailForm {
    #[serde(default)]
    email: String,
    redirect_to: Option<String>,
}

async fn login_email(State(st): State<AppState>, req: Request) -> Response {
    let p = match project_of(&st, req.headers()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client = extract::client(&st, &req);
    let rid = request_id(&req);
    let form: EmailForm = match Form::<EmailForm>::from_request(req, &st).await {
        Ok(Form(f)) => f,
        Err(_) => {
            return render_login(
                &st,
                &p,
                None,
                None,
                Some("Please enter your email address."),
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let redirect_to = checked_redirect(&p, form.redirect_to.as_deref());
    let Some(email) = Email::parse(&form.email) else {
        return render_login(
            &st,
            &p,
            redirect_to.as_deref(),
            Some(&form.email),
            Some("That doesn't look like an email address."),
            StatusCode::BAD_REQUEST,
        );
    };
    if let Err(r) = limit_ip(&st, &p, &client, "ml_ip", ratelimit::MAGIC_LINK_PER_IP).await {
        return r;
    }
    if let Err(r) = limit(
        &st,
        &p,
        "ml_email",
        email.as_str(),
        ratelimit::MAGIC_LINK_PER_EMAIL,
    )
    .await
    {
        return r;
    }
    let req = MagicLinkRequest {
        email: email.clone(),
        redirect_to: redirect_to.clone(),
        now: now_ms(),
        link_base: None,
    };
    match st.core.tenants.send_magic_link(&p.id, req).await {
        Ok(()) => {
            login::audit_auth(
                &st.core.svc,
                &p.id,
                "auth.magic_link_sent",
                None,
                client.ip.as_deref(),
                rid.as_deref(),
                serde_json::json!({ "email": email.as_str() }),
            )
            .await;
            st.pages.render(
                StatusCode::OK,
                "check_email.html",
                context! {
                    project => Serde(Brand::of(&p)),
                    email => email.as_str(),
                    ttl_minutes => (p.magic_link_ttl_secs + 59) / 60,
                    redirect_to,
                    dev => st.core.svc.outbox.is_some() && p.resend_api_key.is_none(),
                },
            )
        }
        Err(e) => login_error_page(&st, &p, &e, &login_href(redirect_to.as_deref())),
    }
}

use axum::extract::FromRequest;

#[derive(Deserialize, Default)]
struct VerifyQuery {
    token: Option<String>,
}

const VERIFY_COOKIE: &str = "reauth_verify";

fn verify_csrf(nonce: &str, token: &str) -> String {
    hash_token(&format!("verify:{nonce}:{token}"))
}

/// `GET /verify?token=`: consumes nothing. Shows whose account the link opens and a button that
/// POSTs it. A mail scanner's prefetch, a link preview or a cross-site GET burns no link.
async fn verify_page(State(st): State<AppState>, req: Request) -> Response {
    let p = match project_of(&st, req.headers()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client = extract::client(&st, &req);
    if let Err(r) = limit_ip(&st, &p, &client, "verify_ip", ratelimit::VERIFY_PER_IP).await {
        return r;
    }
    let q: VerifyQuery = query(&req);
    let token = q.token.unwrap_or_default();
    let email = match login::peek_magic_link(&st.core.svc, &p, &token, now_ms()).await {
        Ok(e) => e,
        Err(e) => return login_error_page(&st, &p, &e, "/login"),
    };
    // Double-submit: the form's token is bound to a same-site cookie set here, so a page on
    // another site cannot make a browser POST a link (its own, or a victim's).
    let nonce = random_token();
    let mut res = st.pages.render(
        StatusCode::OK,
        "verify.html",
        context! {
            project => Serde(Brand::of(&p)),
            email => login::masked_email(&email),
            token => token.as_str(),
            csrf => verify_csrf(&nonce, &token),
        },
    );
    let cookie = format!(
        "{VERIFY_COOKIE}={nonce}; Path=/verify; HttpOnly; SameSite=Strict; Max-Age=900{}",
        secure_attr(&p)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(csp) = verify_csp(&p) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    // The token is in this page's URL: keep it out of Referer headers to other sites.
    // (`no-referrer` would also make browsers send `Origin: null` on the form's POST.)
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// The pages' content policy (the edge's) with the project's allowed origins among the form
/// targets: browsers (Chromium) apply `form-action` to the redirect that follows a form's POST,
/// so without them the 303 from `POST /verify` to the app's own origin is blocked.
fn verify_csp(p: &ProjectRef) -> Option<HeaderValue> {
    let mut targets = String::new();
    for o in &p.allowed_origins {
        // Validated on write; nothing that could end the directive gets in regardless.
        if o.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:/[]*".contains(&b))
        {
            targets.push(' ');
            targets.push_str(o.trim_end_matches('/'));
        }
    }
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; \
         form-action 'self' https://accounts.google.com{targets}; frame-ancestors 'none'; \
         base-uri 'none'"
    ))
    .ok()
}

#[derive(Deserialize, Default)]
struct VerifyForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /verify`: the click. Same-site only (the cookie from the page, the form's token bound
/// to it, and a present `Origin` must be the project's); then the link is used, once.
async fn verify(State(st): State<AppState>, req: Request) -> Response {
    let p = match project_of(&st, req.headers()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client = extract::client(&st, &req);
    if let Err(r) = limit_ip(&st, &p, &client, "verify_ip", ratelimit::VERIFY_PER_IP).await {
        return r;
    }
    let headers = req.headers().clone();
    let form: VerifyForm = match Form::<VerifyForm>::from_request(req, &st).await {
        Ok(Form(f)) => f,
        Err(_) => VerifyForm::default(),
    };
    let nonce = extract::cookie(&headers, VERIFY_COOKIE).unwrap_or_default();
    if !same_origin(&p, &headers)
        || nonce.is_empty()
        || !ct_eq(
            form.csrf.as_bytes(),
            verify_csrf(nonce, &form.token).as_bytes(),
        )
    {
        return st.pages.message(
            StatusCode::FORBIDDEN,
            &Brand::of(&p),
            "Sign-in not confirmed",
            "This sign-in was not confirmed from the page of the link. Open the link from your email again and press Continue.",
            Some(("/login", "Back to sign in")),
        );
    }
    match login::verify_magic_link(
        &st.core.svc,
        &st.core.sessions,
        &p,
        &form.token,
        client.user_agent.as_deref(),
        client.ip.as_deref(),
        now_ms(),
    )
    .await
    {
        Ok((session_token, redirect)) => {
            let target =
                checked_redirect(&p, redirect.as_deref()).unwrap_or_else(|| default_target(&p));
            let mut res = signed_in(&p, &headers, &session_token, &target);
            res.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static("reauth_verify=; Path=/verify; HttpOnly; Max-Age=0"),
            );
            res
        }
        Err(e) => login_error_page(&st, &p, &e, "/login"),
    }
}

/// A present `Origin` is the project's canonical origin (browsers send it on every POST).
fn same_origin(p: &ProjectRef, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    extract::origin(p).is_some_and(|o| o.url().eq_ignore_ascii_case(origin))
}

/// 303 to `target` with the session cookie set.
fn signed_in(p: &ProjectRef, headers: &HeaderMap, token: &str, target: &str) -> Response {
    let mut res = Redirect::to(target).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(p, headers, token, p.session_ttl_secs),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn google_start(State(st): State<AppState>, req: Request) -> Response {
    let p = match project_of(&st, req.headers()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !p.google_enabled() {
        return st.pages.message(
            StatusCode::NOT_FOUND,
            &Brand::of(&p),
            "Google sign-in is not enabled",
            "Google sign-in is not enabled for this project. Sign in with your email instead.",
            Some(("/login", "Back to sign in")),
        );
    }
    if let Some(r) = to_canonical(&p, &req) {
        return r;
    }
    // Each start writes a row: strangers get a budget per IP.
    let client = extract::client(&st, &req);
    if let Err(r) = limit_ip(
        &st,
        &p,
        &client,
        "google_ip",
        ratelimit::GOOGLE_START_PER_IP,
    )
    .await
    {
        return r;
    }
    let q: LoginQuery = query(&req);
    let redirect_to = checked_redirect(&p, q.redirect_to.as_deref());
    // Bind the attempt to this browser: the callback must present the same cookie.
    let nonce = random_token();
    match st
        .core
        .tenants
        .google_start(&p.id, redirect_to.clone(), hash_token(&nonce), None)
        .await
    {
        Ok(url) => {
            let cookie = format!(
                "{OAUTH_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600{}",
                secure_attr(&p)
            );
            let mut res = Redirect::to(&url).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => login_error_page(&st, &p, &e, &login_href(redirect_to.as_deref())),
    }
}

#[derive(Deserialize, Default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn google_callback(State(st): State<AppState>, req: Request) -> Response {
    let p = match project_of(&st, req.headers()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client = extract::client(&st, &req);
    if let Err(r) = limit_ip(&st, &p, &client, "callback_ip", ratelimit::CALLBACK_PER_IP).await {
        return r;
    }
    let q: CallbackQuery = query(&req);
    if q.error.is_some() {
        return st.pages.message(
            StatusCode::BAD_REQUEST,
            &Brand::of(&p),
            "Google sign-in cancelled",
            "The sign-in with Google was cancelled or refused.",
            Some(("/login", "Back to sign in")),
        );
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return login_error_page(&st, &p, &LoginError::BadState, "/login");
    };
    let browser = extract::cookie(req.headers(), OAUTH_COOKIE).unwrap_or_default();
    let cb = GoogleCallback {
        code,
        state,
        browser_hash: hash_token(browser),
        user_agent: client.user_agent,
        ip: client.ip,
        request_id: request_id(&req),
        now: now_ms(),
        callback: None,
    };
    match st.core.tenants.google_finish(&p.id, cb).await {
        Ok((token, redirect)) => {
            let target =
                checked_redirect(&p, Some(&redirect)).unwrap_or_else(|| default_target(&p));
            let mut res = signed_in(&p, req.headers(), &token, &target);
            res.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "reauth_oauth=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
                ),
            );
            res
        }
        Err(e) => login_error_page(&st, &p, &e, "/login"),
    }
}

async fn home(State(st): State<AppState>, req: Request) -> Response {
    let p = match project_of(&st, req.headers()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(r) = to_canonical(&p, &req) {
        return r;
    }
    let Some(token) = extract::token(req.headers()) else {
        return Redirect::to("/login").into_response();
    };
    match st.core.sessions.lookup(&p.id, token, now_ms()).await {
        Ok(Some(view)) => st.pages.render(
            StatusCode::OK,
            "account.html",
            context! {
                project => Serde(Brand::of(&p)),
                user => Serde(&*view),
                csrf => csrf_for(token),
            },
        ),
        Ok(None) => Redirect::to("/login").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            st.pages.message(
                StatusCode::SERVICE_UNAVAILABLE,
                &Brand::of(&p),
                "Something went wrong",
                "We could not load your account just now. Please try again in a moment.",
                Some(("/", "Try again")),
            )
        }
    }
}

#[derive(Deserialize, Default)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
    redirect_to: Option<String>,
}

/// CSRF-safe: the form must carry a token derived from the session (which a cross-site page
/// cannot read), and a present `Origin` must be this host.
async fn logout(State(st): State<AppState>, req: Request) -> Response {
    let p = match project_of(&st, req.headers()) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let headers = req.headers().clone();
    let (ip, rid) = (extract::client(&st, &req).ip, request_id(&req));
    let origin_ok = same_origin(&p, &headers);
    let token = extract::cookie(&headers, SESSION_COOKIE).map(str::to_string);
    let form: LogoutForm = match Form::<LogoutForm>::from_request(req, &st).await {
        Ok(Form(f)) => f,
        Err(_) => LogoutForm::default(),
    };
    let Some(token) = token else {
        return Redirect::to("/login").into_response();
    };
    if !origin_ok || !ct_eq(form.csrf.as_bytes(), csrf_for(&token).as_bytes()) {
        return st.pages.message(
            StatusCode::FORBIDDEN,
            &Brand::of(&p),
            "Sign-out not confirmed",
            "This sign-out request did not come from this site. Use the sign-out button on your account page.",
            Some(("/", "Go to my account")),
        );
    }
    let signed_out = st.core.sessions.sign_out(&p.id, &token, now_ms()).await;
    if let Ok(Some(rec)) = &signed_out {
        login::audit_auth(
            &st.core.svc,
            &p.id,
            "auth.logout",
            Some(&rec.user_id),
            ip.as_deref(),
            rid.as_deref(),
            serde_json::json!({ "session_id": rec.id, "via": "hosted" }),
        )
        .await;
    }
    if let Err(e) = signed_out {
        tracing::error!(error = %e, "logout failed");
        return st.pages.message(
            StatusCode::SERVICE_UNAVAILABLE,
            &Brand::of(&p),
            "Something went wrong",
            "We could not sign you out just now. Please try again.",
            Some(("/", "Back")),
        );
    }
    let target =
        checked_redirect(&p, form.redirect_to.as_deref()).unwrap_or_else(|| "/login".into());
    let mut res = Redirect::to(&target).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, session_cookie(&p, &headers, "", 0));
    res
}
