//! Signing in to the dashboard: an email form, a magic link from the console project (through
//! the same login machinery, rate limits and outbox as every project's), a confirmation page
//! that consumes nothing until its button is pressed, and sign-out.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use reauth_actors::admin::Admin;
use reauth_actors::login::{self, LoginError, MagicLinkRequest};
use reauth_actors::model::Email;
use reauth_actors::ratelimit;
use reauth_runtime::crypto::{ct_eq, hash_token, random_token};
use reauth_runtime::now_ms;
use serde::Deserialize;

use super::{
    NONCE_COOKIE, Req, console_id, form, message, on_origin, origin, render, req_info, same_origin,
    session_cookie, unavailable, unconfigured,
};
use crate::app::{AppState, Mode};
use crate::extract;

fn login_csrf(nonce: &str) -> String {
    hash_token(&format!("dashboard-login:{nonce}"))
}

fn verify_csrf(nonce: &str, token: &str) -> String {
    hash_token(&format!("dashboard-verify:{nonce}:{token}"))
}

/// The pre-sign-in nonce: the request's, or a new one to set.
fn nonce(r: &Req) -> (String, bool) {
    match extract::cookie(&r.headers, NONCE_COOKIE).filter(|n| n.len() >= 20) {
        Some(n) => (n.to_string(), false),
        None => (random_token(), true),
    }
}

fn set_nonce(res: &mut Response, origin: &str, nonce: &str) {
    let c = format!(
        "{NONCE_COOKIE}={nonce}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        if super::secure(origin) {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The origin, or the page saying the dashboard is not configured / the move to its host.
fn origin_or(st: &AppState, r: &Req, path: &str) -> Result<String, Response> {
    let Some(o) = origin(st) else {
        return Err(unconfigured());
    };
    if !on_origin(&o, &r.headers) {
        return Err(Redirect::temporary(&format!("{o}{path}")).into_response());
    }
    Ok(o)
}

async fn login_form(
    st: &AppState,
    origin: &str,
    nonce: (String, bool),
    email: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let dev = st.mode == Mode::Dev;
    let google = google_enabled(st).await;
    let mut res = render(
        status,
        "auth.html",
        context! {
            step => "login",
            csrf => login_csrf(&nonce.0),
            email => email.or(dev.then_some(super::DEV_OWNER)),
            error,
            dev,
            google,
        },
    );
    if nonce.1 {
        set_nonce(&mut res, origin, &nonce.0);
    }
    res
}

pub async fn login_page(State(st): State<AppState>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let origin = match origin_or(&st, &r, "/dashboard/login") {
        Ok(o) => o,
        Err(res) => return res,
    };
    if super::session(&st, &r).await.is_ok() {
        return Redirect::to("/dashboard").into_response();
    }
    // The console project exists from the first visit, so an operator can give it a Resend key.
    if let Err(e) = console_id(&st).await {
        return unavailable(&e);
    }
    login_form(&st, &origin, nonce(&r), None, None, StatusCode::OK).await
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(State(st): State<AppState>, req: Request) -> Response {
    let (r, f): (Req, LoginForm) = form(&st, req).await;
    let origin = match origin(&st) {
        Some(o) => o,
        None => return unconfigured(),
    };
    let n = nonce(&r);
    if n.1
        || !same_origin(&origin, &r.headers)
        || !ct_eq(f.csrf.as_bytes(), login_csrf(&n.0).as_bytes())
    {
        return login_form(
            &st,
            &origin,
            (random_token(), true),
            Some(&f.email),
            Some("This form expired or did not come from this page. Please try again."),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let Some(email) = Email::parse(&f.email) else {
        return login_form(
            &st,
            &origin,
            n,
            Some(&f.email),
            Some("That doesn't look like an email address."),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let console = match console_id(&st).await {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    let cache = &st.core.svc.cache;
    let limited = match &r.ip {
        Some(ip) => {
            ratelimit::hit(
                cache,
                "dash_ml_ip",
                &console,
                ip,
                ratelimit::MAGIC_LINK_PER_IP,
            )
            .await
        }
        None => Ok(()),
    };
    let limited = match limited {
        Ok(()) => {
            ratelimit::hit(
                cache,
                "dash_ml_email",
                &console,
                email.as_str(),
                ratelimit::MAGIC_LINK_PER_EMAIL,
            )
            .await
        }
        Err(d) => Err(d),
    };
    if let Err(retry) = limited {
        let mut res = message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            &format!(
                "Please wait {} minutes before asking for another link.",
                retry.as_secs().div_ceil(60).max(1)
            ),
            ("/dashboard/login", "Back to sign in"),
            None,
        );
        if let Ok(v) = HeaderValue::from_str(&retry.as_secs().max(1).to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let admin = Admin::new(&st.core);
    let member = match admin.memberships(email.as_str()).await {
        Ok(m) => !m.is_empty(),
        Err(e) => return unavailable(&e),
    };
    // Only members get a link; everyone sees the same page, so membership does not leak.
    if member && let Err(e) = send_link(&st, &console, &origin, email.clone()).await {
        return link_error(&e);
    }
    let dev = st.mode == Mode::Dev;
    render(
        StatusCode::OK,
        "auth.html",
        context! { step => "sent", email => email.as_str(), dev },
    )
}

/// A dashboard sign-in link for `email`, through the console project (its Resend key, or the
/// dev outbox).
pub(crate) async fn send_link(
    st: &AppState,
    console: &str,
    origin: &str,
    email: Email,
) -> Result<(), LoginError> {
    let req = MagicLinkRequest {
        email,
        redirect_to: None,
        now: now_ms(),
        link_base: Some(format!("{origin}/dashboard/verify")),
    };
    st.core.tenants.send_magic_link(console, req).await
}

/// The console project's snapshot, or the page saying the store is unavailable.
async fn console_project(st: &AppState) -> Result<reauth_actors::model::ProjectRef, Response> {
    let id = console_id(st).await.map_err(|e| unavailable(&e))?;
    st.core.directory.project(&id).ok_or_else(|| {
        unavailable(&reauth_actors::admin::AdminError::NotFound(
            "console project",
        ))
    })
}

fn link_error(e: &LoginError) -> Response {
    let (status, heading, text) = match e {
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
            "Email sign-in is not set up",
            "The dashboard cannot send email yet: give the console project a Resend key (reauth project update _console --resend-api-key …).",
        ),
        LoginError::EmailFailed => (
            StatusCode::BAD_GATEWAY,
            "Email not sent",
            "We could not send the email just now. Please try again.",
        ),
        LoginError::Banned { .. } => (
            StatusCode::FORBIDDEN,
            "Account suspended",
            "This address may not sign in to the dashboard.",
        ),
        LoginError::BadState => (
            StatusCode::BAD_REQUEST,
            "Sign-in not recognised",
            "This Google sign-in expired or was started in another browser. Please start again.",
        ),
        LoginError::EmailUnverified => (
            StatusCode::FORBIDDEN,
            "Email not verified",
            "Google has not verified this account's email address, so it cannot sign in.",
        ),
        LoginError::Provider(_) => (
            StatusCode::BAD_GATEWAY,
            "Google did not answer",
            "Google could not complete the sign-in just now. Please try again.",
        ),
        LoginError::GoogleNotConfigured => return google_off(),
        _ => {
            tracing::error!(error = %e, "dashboard sign-in failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "We could not complete the sign-in. Please try again in a moment.",
            )
        }
    };
    message(
        status,
        heading,
        text,
        ("/dashboard/login", "Back to sign in"),
        None,
    )
}

#[derive(Deserialize, Default)]
struct VerifyQuery {
    token: Option<String>,
}

/// `GET /dashboard/verify?token=`: consumes nothing; shows whose sign-in it is and a button.
pub async fn verify_page(State(st): State<AppState>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let path = req
        .uri()
        .path_and_query()
        .map_or("/dashboard/verify", |p| p.as_str());
    let origin = match origin_or(&st, &r, path) {
        Ok(o) => o,
        Err(res) => return res,
    };
    let project = match console_project(&st).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let console = project.id.clone();
    if let Some(ip) = &r.ip
        && ratelimit::hit(
            &st.core.svc.cache,
            "dash_verify_ip",
            &console,
            ip,
            ratelimit::VERIFY_PER_IP,
        )
        .await
        .is_err()
    {
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Please wait a few minutes and try again.",
            ("/dashboard/login", "Back to sign in"),
            None,
        );
    }
    let q: VerifyQuery = r.query();
    let token = q.token.unwrap_or_default();
    let email = match login::peek_magic_link(&st.core.svc, &project, &token, now_ms()).await {
        Ok(e) => e,
        Err(e) => return link_error(&e),
    };
    let n = nonce(&r);
    let mut res = render(
        StatusCode::OK,
        "auth.html",
        context! {
            step => "verify",
            email => login::masked_email(&email),
            token => token.as_str(),
            csrf => verify_csrf(&n.0, &token),
        },
    );
    if n.1 {
        set_nonce(&mut res, &origin, &n.0);
    }
    res
}

#[derive(Deserialize, Default)]
pub struct VerifyForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /dashboard/verify`: the click. The link is used once; the member gets a dashboard
/// session (a console session under the dashboard's own cookie).
pub async fn verify(State(st): State<AppState>, req: Request) -> Response {
    let (r, f): (Req, VerifyForm) = form(&st, req).await;
    let Some(origin) = origin(&st) else {
        return unconfigured();
    };
    let n = nonce(&r);
    if n.1
        || !same_origin(&origin, &r.headers)
        || !ct_eq(f.csrf.as_bytes(), verify_csrf(&n.0, &f.token).as_bytes())
    {
        return message(
            StatusCode::FORBIDDEN,
            "Sign-in not confirmed",
            "This sign-in was not confirmed from the page of the link. Open the link from your email again and press Continue.",
            ("/dashboard/login", "Back to sign in"),
            None,
        );
    }
    let project = match console_project(&st).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let now = now_ms();
    let token = match login::verify_magic_link(
        &st.core.svc,
        &st.core.sessions,
        &project,
        &f.token,
        r.user_agent.as_deref(),
        r.ip.as_deref(),
        now,
    )
    .await
    {
        Ok((token, _)) => token,
        Err(e) => return link_error(&e),
    };
    member_signed_in(&st, &origin, &project, &token, r.ip.clone(), now)
        .await
        .unwrap_or_else(|| link_error(&LoginError::LinkUnknown))
}

/// A console session was just made (magic link or Google): keep it only for an org member,
/// and give it the dashboard cookie. `None` when the session cannot be read back.
async fn member_signed_in(
    st: &AppState,
    origin: &str,
    project: &reauth_actors::model::ProjectRef,
    token: &str,
    ip: Option<String>,
    now: i64,
) -> Option<Response> {
    let console = &project.id;
    let email = match st.core.sessions.lookup(console, token, now).await {
        Ok(Some(v)) => v.email.clone(),
        _ => return None,
    };
    let admin = Admin::new(&st.core);
    // Removed from every org since the link was sent: no session.
    if admin
        .memberships(&email)
        .await
        .map(|m| m.is_empty())
        .unwrap_or(true)
    {
        let _ = st.core.sessions.sign_out(console, token, now).await;
        return Some(message(
            StatusCode::FORBIDDEN,
            "Not a member",
            "This address is not a member of any organization.",
            ("/dashboard/login", "Back to sign in"),
            None,
        ));
    }
    admin.record_member_sign_in(&email, ip).await;
    let mut res = Redirect::to("/dashboard").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        session_cookie(origin, token, project.session_ttl_secs),
    );
    Some(res)
}

/// Binds a Google attempt to the browser that started it (Lax: the callback is a top-level
/// navigation from Google).
const OAUTH_COOKIE: &str = "reauth_dashboard_oauth";

fn oauth_cookie(origin: &str, value: &str, max_age: i64) -> HeaderValue {
    let c = format!(
        "{OAUTH_COOKIE}={value}; Path=/dashboard; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if super::secure(origin) {
            "; Secure"
        } else {
            ""
        }
    );
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether members may sign in with Google: the console project has a Google client.
pub(crate) async fn google_enabled(st: &AppState) -> bool {
    console_project(st)
        .await
        .is_ok_and(|p| p.google_client_id.is_some() && p.google_client_secret.is_some())
}

fn google_off() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Google sign-in is not enabled",
        "Give the console project a Google client (reauth project update _console --google-client-id … --google-client-secret …), with this redirect URI: <dashboard URL>/dashboard/callback/google.",
        ("/dashboard/login", "Sign in with an email link"),
        None,
    )
}

/// `GET /dashboard/login/google`: to Google, with the dashboard's own callback.
pub async fn google_start(State(st): State<AppState>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let origin = match origin_or(&st, &r, "/dashboard/login/google") {
        Ok(o) => o,
        Err(res) => return res,
    };
    let console = match console_id(&st).await {
        Ok(c) => c,
        Err(e) => return unavailable(&e),
    };
    if !google_enabled(&st).await {
        return google_off();
    }
    if let Some(ip) = &r.ip
        && ratelimit::hit(
            &st.core.svc.cache,
            "dash_google_ip",
            &console,
            ip,
            ratelimit::GOOGLE_START_PER_IP,
        )
        .await
        .is_err()
    {
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many sign-in attempts from your network. Please wait a few minutes.",
            ("/dashboard/login", "Back to sign in"),
            None,
        );
    }
    let browser = random_token();
    match st
        .core
        .tenants
        .google_start(
            &console,
            None,
            hash_token(&browser),
            Some(format!("{origin}/dashboard/callback/google")),
        )
        .await
    {
        Ok(url) => {
            let mut res = Redirect::to(&url).into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, oauth_cookie(&origin, &browser, 600));
            res
        }
        Err(LoginError::GoogleNotConfigured) => google_off(),
        Err(e) => link_error(&e),
    }
}

#[derive(Deserialize, Default)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /dashboard/callback/google`: the state must be this browser's; the Google account's
/// verified email must be a member's.
pub async fn google_callback(State(st): State<AppState>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let origin = match origin_or(&st, &r, "/dashboard/login") {
        Ok(o) => o,
        Err(res) => return res,
    };
    let q: CallbackQuery = r.query();
    let (Some(code), Some(state), None) = (q.code, q.state, q.error) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Google sign-in cancelled",
            "The sign-in with Google was cancelled or refused.",
            ("/dashboard/login", "Back to sign in"),
            None,
        );
    };
    let project = match console_project(&st).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let console = project.id.clone();
    let browser = extract::cookie(&r.headers, OAUTH_COOKIE).unwrap_or_default();
    let now = now_ms();
    let cb = login::GoogleCallback {
        code,
        state,
        browser_hash: hash_token(browser),
        user_agent: r.user_agent.clone(),
        ip: r.ip.clone(),
        request_id: r.request_id.clone(),
        now,
        callback: Some(format!("{origin}/dashboard/callback/google")),
    };
    let mut res = match st.core.tenants.google_finish(&console, cb).await {
        Ok((token, _)) => member_signed_in(&st, &origin, &project, &token, r.ip.clone(), now)
            .await
            .unwrap_or_else(|| link_error(&LoginError::BadState)),
        Err(e) => link_error(&e),
    };
    res.headers_mut()
        .append(header::SET_COOKIE, oauth_cookie(&origin, "", 0));
    res
}

pub async fn logout(State(st): State<AppState>, req: Request) -> Response {
    let (r, f): (Req, super::CsrfForm) = form(&st, req).await;
    let s = match super::session(&st, &r).await {
        Ok(s) => s,
        Err(_) => return Redirect::to("/dashboard/login").into_response(),
    };
    if let Err(res) = super::check_post(&st, &s, &r, &f.csrf) {
        return res;
    }
    if let Err(e) = st
        .core
        .sessions
        .sign_out(&s.console, &s.token, now_ms())
        .await
    {
        tracing::error!(error = %e, "dashboard sign-out failed");
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Something went wrong",
            "We could not sign you out just now. Please try again.",
            ("/dashboard", "Back"),
            None,
        );
    }
    let origin = origin(&st).unwrap_or_default();
    let mut res = Redirect::to("/dashboard/login").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, super::clear_cookie(&origin));
    res
}
