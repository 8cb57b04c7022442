//! The developer dashboard at `/dashboard` on the public listener (chosen by path, like
//! `/api/v1`): server-rendered pages over the [`Admin`] façade for org members, signed in with
//! reauth's own magic links through the internal console project. Its own cookie
//! (`reauth_dashboard`, a console session: hashed at rest, `Path=/dashboard`), CSRF on every
//! form (a token bound to the session, or before sign-in to a same-site nonce cookie, plus a
//! present `Origin` must be the dashboard's), roles enforced here on every write (viewers read,
//! admins write, owners also manage members and API keys). Every URL and cookie comes from the
//! configured origin ([`origin`]), never from a request. htmx is vendored and optional: every
//! action is a plain form.

// Handlers return early with a finished page; boxing every `Response` would only add noise.
#![allow(clippy::result_large_err)]

/// The value, or return the page already made.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(res) => return res,
        }
    };
}

mod auth;
mod billing;
mod chart;
mod org;
mod projects;
mod users;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use dashmap::DashMap;
use minijinja::{Environment, Value, context};
use reauth_actors::admin::orgs::Org;
use reauth_actors::admin::{Access, Admin, AdminError, Caller, Membership, Role};
use reauth_runtime::crypto::{ct_eq, hash_token};
use reauth_runtime::now_ms;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::app::{AppState, Mode};
use crate::extract;

/// The dashboard's session cookie (a console-project session token).
pub const COOKIE: &str = "reauth_dashboard";
/// Before sign-in: a random nonce the login and verify forms' tokens are bound to.
const NONCE_COOKIE: &str = "reauth_dashboard_nonce";
/// `reauth dev`: the owner of the `dev` org, who signs in through the dev outbox.
pub const DEV_OWNER: &str = "dev@reauth.localhost";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static HTMX: &str = include_str!("../assets/htmx.min.js");
static SCRIPT: &str = include_str!("../assets/dashboard.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(org::home))
        .route("/dashboard/", get(org::home))
        .route("/dashboard/assets/htmx.min.js", get(|| script(HTMX)))
        .route("/dashboard/assets/dashboard.js", get(|| script(SCRIPT)))
        .route("/dashboard/login", get(auth::login_page).post(auth::login))
        .route("/dashboard/login/google", get(auth::google_start))
        .route("/dashboard/callback/google", get(auth::google_callback))
        .route("/dashboard/{*rest}", get(missing))
        .route(
            "/dashboard/verify",
            get(auth::verify_page).post(auth::verify),
        )
        .route("/dashboard/logout", post(auth::logout))
        .route("/dashboard/orgs/{org}", get(org::projects))
        .route("/dashboard/orgs/{org}/projects", post(org::create_project))
        .route(
            "/dashboard/orgs/{org}/keys",
            get(org::keys).post(org::create_key),
        )
        .route(
            "/dashboard/orgs/{org}/keys/{key}/revoke",
            post(org::revoke_key),
        )
        .route(
            "/dashboard/orgs/{org}/members",
            get(org::members).post(org::invite),
        )
        .route(
            "/dashboard/orgs/{org}/members/{member}/role",
            post(org::set_role),
        )
        .route(
            "/dashboard/orgs/{org}/members/{member}/remove",
            post(org::remove_member),
        )
        .route("/dashboard/orgs/{org}/audit", get(org::audit))
        .route("/dashboard/projects/{project}", get(projects::overview))
        .route(
            "/dashboard/projects/{project}/branding",
            get(projects::branding).post(projects::save_branding),
        )
        .route(
            "/dashboard/projects/{project}/branding/preview",
            post(projects::preview),
        )
        .route(
            "/dashboard/projects/{project}/domains",
            get(projects::domains).post(projects::add_domain),
        )
        .route(
            "/dashboard/projects/{project}/domains/{domain}/verify",
            post(projects::verify_domain),
        )
        .route(
            "/dashboard/projects/{project}/settings",
            get(projects::settings).post(projects::save_settings),
        )
        .route(
            "/dashboard/projects/{project}/credentials",
            get(billing::credentials).post(billing::save_credentials),
        )
        .route(
            "/dashboard/projects/{project}/billing",
            get(billing::billing).post(billing::save_billing),
        )
        .route(
            "/dashboard/projects/{project}/emails",
            get(projects::emails),
        )
        .route("/dashboard/projects/{project}/users", get(users::list))
        .route(
            "/dashboard/projects/{project}/users/{user}",
            get(users::detail),
        )
        .route(
            "/dashboard/projects/{project}/users/{user}/ban",
            post(users::ban),
        )
        .route(
            "/dashboard/projects/{project}/users/{user}/unban",
            post(users::unban),
        )
        .route(
            "/dashboard/projects/{project}/users/{user}/delete",
            post(users::delete),
        )
        .route(
            "/dashboard/projects/{project}/sessions/{session}/revoke",
            post(users::revoke_session),
        )
        .route_layer(axum::middleware::from_fn(no_nul_in_path))
}

/// No id holds a NUL (and PostgreSQL text cannot): such an address is "not found" before any
/// id reaches SQL. A NUL can only arrive percent-encoded.
async fn no_nul_in_path(req: Request, next: axum::middleware::Next) -> Response {
    if req.uri().path().contains("%00") {
        return missing().await;
    }
    next.run(req).await
}

/// An unknown dashboard address: a dashboard page with the way back (not the hosted one).
async fn missing() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address in the dashboard.",
        ("/dashboard", "Go to the dashboard"),
        None,
    )
}

async fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// `reauth dev`: the `dev` org owned by [`DEV_OWNER`] owning the demo project, so the dashboard
/// is ready at startup. Returns the owner's address.
pub async fn prepare_dev(st: &AppState) -> anyhow::Result<&'static str> {
    let admin = Admin::new(&st.core);
    admin
        .ensure_dev_org(DEV_OWNER, "demo")
        .await
        .map_err(|e| anyhow::anyhow!("preparing the dev org: {e}"))?;
    // The console project itself comes with the first dashboard request.
    Ok(DEV_OWNER)
}

// ------------------------------------------------------------------ origin

/// The dashboard's origin (`scheme://host[:port]`): `REAUTH_DASHBOARD_URL`, else in dev the demo
/// project's origin. Never derived from a request.
pub fn origin(st: &AppState) -> Option<String> {
    if let Some(u) = &st.settings.dashboard_url {
        return Some(u.clone());
    }
    if st.mode != Mode::Dev {
        return None;
    }
    st.core
        .directory
        .projects()
        .into_iter()
        .find(|p| p.slug == "demo")
        .and_then(|p| p.origin.as_ref().map(|o| o.url()))
}

fn host_of(origin: &str) -> &str {
    origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/')
}

fn secure(origin: &str) -> bool {
    origin.starts_with("https://")
}

/// Whether the request came to the dashboard's own host (port included).
fn on_origin(origin: &str, headers: &HeaderMap) -> bool {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case(host_of(origin)))
}

/// A present `Origin` header is the dashboard's (browsers send one on every form POST).
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(o) => o.eq_ignore_ascii_case(origin),
    }
}

// ------------------------------------------------------------------ console project

/// The console project's id, per instance (looked up or created once, then remembered).
async fn console_id(st: &AppState) -> Result<String, AdminError> {
    static IDS: OnceLock<DashMap<String, String>> = OnceLock::new();
    let ids = IDS.get_or_init(DashMap::new);
    let key = st.core.svc.instance_id.clone();
    if let Some(id) = ids.get(&key) {
        return Ok(id.clone());
    }
    let id = Admin::new(&st.core).console_project().await?;
    if st.core.directory.project(&id).is_none() {
        st.core
            .project_changed(&id)
            .await
            .map_err(AdminError::Store)?;
    }
    ids.insert(key, id.clone());
    Ok(id)
}

// ------------------------------------------------------------------ templates

fn env() -> &'static Result<Environment<'static>, minijinja::Error> {
    static ENV: OnceLock<Result<Environment<'static>, minijinja::Error>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        macro_rules! t {
            ($($name:literal),*) => {
                $(env.add_template(
                    concat!("dashboard/", $name),
                    include_str!(concat!("../../templates/dashboard/", $name)),
                )?;)*
            };
        }
        t!(
            "layout.html",
            "auth.html",
            "message.html",
            "home.html",
            "projects.html",
            "overview.html",
            "branding.html",
            "preview.html",
            "domains.html",
            "credentials.html",
            "settings.html",
            "billing.html",
            "emails.html",
            "users.html",
            "user.html",
            "keys.html",
            "members.html",
            "audit.html"
        );
        Ok(env)
    })
}

/// Headers every dashboard page carries: its CSP (scripts from itself only), no caching, no
/// framing.
fn page_headers(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

pub(crate) fn render(status: StatusCode, name: &str, ctx: Value) -> Response {
    let html = env().as_ref().map_err(|e| e.to_string()).and_then(|env| {
        env.get_template(&format!("dashboard/{name}"))
            .and_then(|t| t.render(ctx))
            .map_err(|e| format!("{e:#}"))
    });
    let mut res = match html {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template = name, "dashboard template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><html lang=\"en\"><title>Error</title><p>Something went wrong. Please try again.</p></html>"),
            )
                .into_response()
        }
    };
    page_headers(&mut res);
    res
}

/// A form that carries only its CSRF token (actions with nothing else to say).
#[derive(Deserialize, Default)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A message page with one way forward.
pub(crate) fn message(
    status: StatusCode,
    heading: &str,
    text: &str,
    back: (&str, &str),
    me: Option<&Me>,
) -> Response {
    render(
        status,
        "message.html",
        context! {
            heading, text, back_href => back.0, back_label => back.1,
            me => me.map(Me::view),
        },
    )
}

fn unconfigured() -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "The dashboard is not set up",
        "Set REAUTH_DASHBOARD_URL to the address the dashboard is served at (for example https://console.example.com) and restart reauth.",
        ("/", "Home"),
        None,
    )
}

// ------------------------------------------------------------------ requests

/// What handlers need from a request besides its form.
pub(crate) struct Req {
    pub headers: HeaderMap,
    /// The form held a NUL character (which no field may hold, and PostgreSQL text cannot).
    pub nul: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub query: Option<String>,
}

pub(crate) fn req_info(st: &AppState, req: &Request) -> Req {
    let c = extract::client(st, req);
    Req {
        headers: req.headers().clone(),
        nul: false,
        ip: c.ip,
        user_agent: c.user_agent,
        request_id: req
            .extensions()
            .get::<crate::edge::RequestId>()
            .map(|r| r.0.clone()),
        query: req.uri().query().map(str::to_string),
    }
}

impl Req {
    /// The query string, leniently: a malformed one reads as absent.
    pub fn query<T: DeserializeOwned + Default>(&self) -> T {
        self.query
            .as_deref()
            .filter(|q| !q.contains("%00"))
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default()
    }
}

/// The request's info and its url-encoded form (a body that cannot be read is an empty form,
/// which then fails the CSRF check or the field validation with a readable page).
pub(crate) async fn form<T: DeserializeOwned + Default>(st: &AppState, req: Request) -> (Req, T) {
    let mut info = req_info(st, &req);
    let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    // A NUL can only arrive percent-encoded.
    if body.windows(3).any(|w| w == b"%00") {
        info.nul = true;
        return (info, T::default());
    }
    let f = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    (info, f)
}

// ------------------------------------------------------------------ the signed-in member

/// A signed-in member (their console session), before choosing an org.
pub(crate) struct Session {
    pub email: String,
    pub token: String,
    pub console: String,
}

impl Session {
    /// The form token of this session: unguessable without the cookie.
    pub fn csrf(&self) -> String {
        csrf_of_session(&self.token)
    }
}

fn csrf_of_session(token: &str) -> String {
    hash_token(&format!("dashboard-csrf:{token}"))
}

/// The signed-in member, or the answer to give instead: the sign-in page (a redirect), or the
/// move to the dashboard's own origin for a page opened on another host.
pub(crate) async fn session(st: &AppState, r: &Req) -> Result<Session, Response> {
    let Some(origin) = origin(st) else {
        return Err(unconfigured());
    };
    if !on_origin(&origin, &r.headers) {
        return Err(Redirect::temporary(&format!("{origin}/dashboard")).into_response());
    }
    let Some(token) = extract::cookie(&r.headers, COOKIE).filter(|t| !t.is_empty()) else {
        return Err(Redirect::to("/dashboard/login").into_response());
    };
    let console = console_id(st).await.map_err(|e| unavailable(&e))?;
    match st.core.sessions.lookup(&console, token, now_ms()).await {
        Ok(Some(view)) => Ok(Session {
            email: view.email.clone(),
            token: token.to_string(),
            console,
        }),
        Ok(None) => {
            let mut res = Redirect::to("/dashboard/login").into_response();
            res.headers_mut()
                .append(header::SET_COOKIE, clear_cookie(&origin));
            Err(res)
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard session lookup failed");
            Err(message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "We could not check your sign-in just now. Please try again in a moment.",
                ("/dashboard", "Try again"),
                None,
            ))
        }
    }
}

pub(crate) fn session_cookie(origin: &str, token: &str, max_age: i64) -> HeaderValue {
    let c = format!(
        "{COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure(origin) { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn clear_cookie(origin: &str) -> HeaderValue {
    session_cookie(origin, "", 0)
}

/// Refuse a POST that is not from the dashboard's own pages: a present `Origin` must be the
/// dashboard's and the form's token must match the session.
pub(crate) fn check_post(st: &AppState, s: &Session, r: &Req, csrf: &str) -> Result<(), Response> {
    if r.nul {
        return Err(message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please check the form",
            "The form held a NUL character, which no field may contain. Nothing was changed.",
            ("/dashboard", "Back to the dashboard"),
            None,
        ));
    }
    let origin = origin(st).unwrap_or_default();
    if same_origin(&origin, &r.headers) && ct_eq(csrf.as_bytes(), s.csrf().as_bytes()) {
        return Ok(());
    }
    Err(message(
        StatusCode::FORBIDDEN,
        "Request not confirmed",
        "This change did not come from a dashboard page (its form token is missing or wrong). Reload the page and try again.",
        ("/dashboard", "Back to the dashboard"),
        None,
    ))
}

/// A member acting in one org: the caller (role scopes) the façade checks tenancy with.
pub(crate) struct Me {
    pub admin: Admin,
    pub caller: Caller,
    pub role: Role,
    pub email: String,
    pub csrf: String,
    pub org: Org,
    pub orgs: Vec<Membership>,
}

impl Me {
    /// What every page's header and forms need.
    pub fn view(&self) -> Value {
        context! {
            email => self.email.clone(),
            csrf => self.csrf.clone(),
            role => self.role.as_str(),
            can_write => self.role.can_write(),
            can_manage => self.role.can_manage(),
            org => minijinja::value::Serde(&self.org),
            orgs => self.orgs.iter().map(|m| context! { id => m.org.id.clone(), name => m.org.name.clone(), role => m.role.as_str() }).collect::<Vec<_>>(),
        }
    }

    /// Refuse unless the role may write `resource` (viewers never).
    pub fn need_write(&self, resource: &str) -> Result<(), Response> {
        if self.role.can_write() && self.caller.may(resource, Access::Write) {
            return Ok(());
        }
        Err(self.refused("change anything"))
    }

    /// Refuse unless an owner (members and API keys).
    pub fn need_owner(&self) -> Result<(), Response> {
        if self.role.can_manage() {
            return Ok(());
        }
        Err(self.refused("manage members or API keys"))
    }

    fn refused(&self, what: &str) -> Response {
        message(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!(
                "Your role in {} is {}, which cannot {what}. Ask an owner to change your role.",
                self.org.name,
                self.role.as_str()
            ),
            (&format!("/dashboard/orgs/{}", self.org.id), "Back"),
            Some(self),
        )
    }

    /// The answer for an error of the façade.
    pub fn error(&self, e: AdminError, back: &str) -> Response {
        admin_error(e, back, Some(self))
    }
}

pub(crate) fn unavailable(e: &AdminError) -> Response {
    tracing::error!(error = %e, "dashboard: store unavailable");
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Something went wrong",
        "We could not load this just now. Please try again in a moment.",
        ("/dashboard", "Try again"),
        None,
    )
}

pub(crate) fn admin_error(e: AdminError, back: &str, me: Option<&Me>) -> Response {
    let (status, heading, text) = match &e {
        AdminError::NotFound(what) => (
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no such {what} here."),
        ),
        AdminError::Invalid { field, message } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please check the form",
            format!("{}: {message}.", field.replace('_', " ")),
        ),
        AdminError::Conflict(m) => (StatusCode::CONFLICT, "Not done", format!("{m}.")),
        AdminError::Forbidden(_) => (
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Your role cannot do this.".to_string(),
        ),
        AdminError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, "Sign in", m.clone()),
        AdminError::Store(_) => return unavailable(&e),
    };
    message(status, heading, &text, (back, "Back"), me)
}

/// The member in org `org_id` ("not found" for an org they are not in: existence does not
/// leak).
pub(crate) async fn me_in_org(
    st: &AppState,
    s: &Session,
    r: &Req,
    org_id: &str,
) -> Result<Me, Response> {
    let admin = Admin::new(&st.core);
    let (caller, role) = admin
        .member_caller(&s.email, org_id, r.ip.clone(), r.request_id.clone())
        .await
        .map_err(|e| admin_error(e, "/dashboard", None))?;
    let orgs = admin
        .memberships(&s.email)
        .await
        .map_err(|e| unavailable(&e))?;
    let org = orgs
        .iter()
        .find(|m| m.org.id == org_id)
        .map(|m| m.org.clone())
        .ok_or_else(|| admin_error(AdminError::NotFound("organization"), "/dashboard", None))?;
    Ok(Me {
        admin,
        caller,
        role,
        email: s.email.clone(),
        csrf: s.csrf(),
        org,
        orgs,
    })
}

/// The member in the org owning `project_id` ("not found" for anyone else's project).
pub(crate) async fn me_for_project(
    st: &AppState,
    s: &Session,
    r: &Req,
    project_id: &str,
) -> Result<Me, Response> {
    let org = Admin::new(&st.core)
        .project_org(project_id)
        .await
        .map_err(|e| admin_error(e, "/dashboard", None))?;
    me_in_org(st, s, r, &org).await
}

/// `?ok=<key>` after a redirect: a fixed message per key (the text is never echoed).
pub(crate) fn notice(r: &Req) -> Option<&'static str> {
    #[derive(serde::Deserialize, Default)]
    struct Q {
        ok: Option<String>,
    }
    let q: Q = r.query();
    Some(match q.ok.as_deref()? {
        "created" => "Created.",
        "saved" => "Saved.",
        "revoked" => "Revoked.",
        "banned" => "The user is banned and signed out everywhere.",
        "unbanned" => "The user may sign in again.",
        "deleted" => "Deleted.",
        "invited" => "Invited: we emailed them a sign-in link.",
        "invited_no_email" => {
            "Invited. No email could be sent: they can sign in at /dashboard/login with that address."
        }
        "role" => "Role changed.",
        "removed" => "Removed.",
        "verified" => "Checked.",
        _ => return None,
    })
}

/// 303 to `to` (after a successful POST).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `2026-12-04 09:30 UTC` for a time in ms.
pub(crate) fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}
