//! Login flows: magic links (sent through the project's own Resend key, or the dev outbox) and
//! Google OAuth (authorization code + PKCE + a state bound to the browser). These functions run
//! in tasks spawned by the ProjectActor, with a snapshot of the project's configuration.

use std::sync::OnceLock;

use anyhow::Context;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use reauth_runtime::crypto::{ct_eq, hash_token, is_token_shaped, random_token};
use reauth_runtime::now_ms;
use serde::Deserialize;

use crate::model::{Email, Project};
use crate::services::{OutboxEmail, Svc};
use crate::session::Sessions;
use crate::store::{self, LinkProblem};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("this sign-in link is not valid")]
    LinkUnknown,
    #[error("this sign-in link was already used")]
    LinkUsed,
    #[error("this sign-in link has expired")]
    LinkExpired,
    #[error("email delivery is not configured for this project")]
    EmailNotConfigured,
    #[error("the email could not be sent")]
    EmailFailed,
    #[error("Google sign-in is not configured for this project")]
    GoogleNotConfigured,
    #[error("the sign-in attempt is invalid or has expired; please start again")]
    BadState,
    #[error("Google did not accept the sign-in: {0}")]
    Provider(String),
    #[error("your Google account's email address is not verified")]
    EmailUnverified,
    #[error("the project is not available")]
    ProjectUnavailable,
    /// The project banned this user (Management API); unbanning lifts it.
    #[error("this account is suspended")]
    Banned { user_id: Option<String> },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl LoginError {
    /// A short stable reason for the audit log (never a token or a provider's message).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::LinkUnknown => "link_unknown",
            Self::LinkUsed => "link_used",
            Self::LinkExpired => "link_expired",
            Self::EmailNotConfigured => "email_not_configured",
            Self::EmailFailed => "email_failed",
            Self::GoogleNotConfigured => "google_not_configured",
            Self::BadState => "bad_state",
            Self::Provider(_) => "provider_refused",
            Self::EmailUnverified => "email_unverified",
            Self::ProjectUnavailable => "project_unavailable",
            Self::Banned { .. } => "banned",
            Self::Internal(_) => "internal",
        }
    }
}

/// An auth event in the audit log (written without an org: the org's listing includes its
/// projects' events). Summaries only: a method, a reason, an address — never a token.
pub async fn audit_auth(
    svc: &Svc,
    project_id: &str,
    action: &str,
    user_id: Option<&str>,
    ip: Option<&str>,
    request_id: Option<&str>,
    detail: serde_json::Value,
) {
    crate::admin::audit::write(
        &svc.db,
        None,
        user_id.unwrap_or("anonymous"),
        ip,
        request_id,
        crate::admin::audit::Record {
            project_id: Some(project_id),
            action,
            target: user_id,
            detail,
        },
    )
    .await;
}

impl From<LinkProblem> for LoginError {
    fn from(p: LinkProblem) -> Self {
        match p {
            LinkProblem::Unknown => Self::LinkUnknown,
            LinkProblem::Used => Self::LinkUsed,
            LinkProblem::Expired => Self::LinkExpired,
        }
    }
}

pub struct MagicLinkRequest {
    pub email: Email,
    /// Already checked against the project's allowed origins.
    pub redirect_to: Option<String>,
    pub now: i64,
    /// Where the link points instead of `<origin>/verify` (the dashboard's own confirmation
    /// page, built from its configured origin).
    pub link_base: Option<String>,
}

fn email_env() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        // Templates are compiled into the binary; a broken one fails the test suite.
        let _ = env.add_template(
            "magic_link.html",
            include_str!("../../templates/email/magic_link.html"),
        );
        let _ = env.add_template(
            "magic_link.txt",
            include_str!("../../templates/email/magic_link.txt"),
        );
        env
    })
}

fn render(name: &str, ctx: minijinja::Value) -> anyhow::Result<String> {
    Ok(email_env().get_template(name)?.render(ctx)?)
}

pub async fn send_magic_link(
    svc: &Svc,
    project: &Project,
    req: MagicLinkRequest,
) -> Result<(), LoginError> {
    let has_resend = project.resend_api_key.is_some();
    if !has_resend && svc.outbox.is_none() {
        return Err(LoginError::EmailNotConfigured);
    }
    let token = random_token();
    let expires = req.now + project.magic_link_ttl_secs * 1000;
    store::insert_magic_link(
        &svc.db,
        &hash_token(&token),
        &project.id,
        req.email.as_str(),
        req.redirect_to.as_deref(),
        req.now,
        expires,
    )
    .await?;
    let base = match &req.link_base {
        Some(b) => b.clone(),
        None => format!("{}/verify", origin_url(project)?),
    };
    let link = format!("{base}?token={token}");
    let ctx = minijinja::context! {
        project_name => project.name.clone(),
        logo_url => project.logo_url.clone(),
        accent => project.accent_color.clone().unwrap_or_else(|| "#4f46e5".into()),
        link => link.clone(),
        ttl_minutes => (project.magic_link_ttl_secs + 59) / 60,
    };
    let html = render("magic_link.html", ctx.clone())?;
    let text = render("magic_link.txt", ctx)?;
    let subject = format!("Sign in to {}", project.name);
    let from = project
        .email_from
        .clone()
        .unwrap_or_else(|| format!("{} <onboarding@resend.dev>", project.name));
    let to = req.email.as_str();

    let (status, provider_id, error) = match &project.resend_api_key {
        Some(key) => {
            match resend_send(svc, key.expose(), &from, to, &subject, &html, &text).await {
                Ok(id) => ("accepted", Some(id), None),
                Err(e) => ("failed", None, Some(e)),
            }
        }
        None => {
            if let Some(outbox) = &svc.outbox {
                tracing::info!(to, %link, "dev outbox: magic link (no Resend key configured)");
                outbox.push(OutboxEmail {
                    project_id: project.id.clone(),
                    to: to.to_string(),
                    from: from.clone(),
                    subject: subject.clone(),
                    text: text.clone(),
                    html: html.clone(),
                    link: Some(link.clone()),
                    created_at: crate::model::rfc3339(req.now),
                });
            }
            ("outbox", None, None)
        }
    };
    let entry = store::EmailLogEntry {
        project_id: &project.id,
        to,
        from: &from,
        subject: &subject,
        kind: "magic_link",
        status,
        provider_id: provider_id.as_deref(),
        error: error.as_deref(),
    };
    if let Err(e) = store::log_email(&svc.db, &entry, now_ms()).await {
        tracing::error!(error = %e, "email log write failed");
    }
    project.stats.magic_link(error.is_none());
    match error {
        Some(e) => {
            tracing::warn!(project = %project.slug, error = %e, "Resend rejected the email");
            Err(LoginError::EmailFailed)
        }
        None => Ok(()),
    }
}

/// POST {resend_api_url}/emails; returns Resend's message id.
async fn resend_send(
    svc: &Svc,
    key: &str,
    from: &str,
    to: &str,
    subject: &str,
    html: &str,
    text: &str,
) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Sent {
        id: String,
    }
    let res = svc
        .http
        .post(format!("{}/emails", svc.settings.resend_api_url))
        .bearer_auth(key)
        .json(&serde_json::json!({
            "from": from, "to": [to], "subject": subject, "html": html, "text": text,
        }))
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = res.status();
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        return Err(format!(
            "HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        ));
    }
    res.json::<Sent>()
        .await
        .map(|s| s.id)
        .map_err(|e| format!("unreadable response: {e}"))
}

/// Which address a magic link would sign in, consuming nothing: `GET /verify` shows it and asks
/// for a click, so a mail scanner that prefetches the link burns nothing, and a person sent
/// someone else's link sees whose account it opens.
pub async fn peek_magic_link(
    svc: &Svc,
    project: &Project,
    token: &str,
    now: i64,
) -> Result<String, LoginError> {
    if !is_token_shaped(token) {
        return Err(LoginError::LinkUnknown);
    }
    Ok(store::peek_magic_link(&svc.db, &project.id, &hash_token(token), now).await??)
}

/// `ada.lovelace@example.com` -> `a…@example.com`: enough to recognise, not to harvest.
pub fn masked_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}…@{domain}")
        }
        None => "…".into(),
    }
}

/// Redeem a magic link: single use, within its lifetime, at its own project only.
/// Returns the new session token and where to send the browser.
pub async fn verify_magic_link(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    token: &str,
    user_agent: Option<&str>,
    ip: Option<&str>,
    now: i64,
) -> Result<(String, Option<String>), LoginError> {
    let res = async {
        if !is_token_shaped(token) {
            return Err(LoginError::LinkUnknown);
        }
        let (email, redirect) =
            store::consume_magic_link(&svc.db, &project.id, &hash_token(token), now).await??;
        if let Some(id) = store::banned_user(&svc.db, &project.id, &email, None).await? {
            return Err(LoginError::Banned { user_id: Some(id) });
        }
        let user = store::upsert_user_by_email(&svc.db, &project.id, &email, now).await?;
        let (session_token, _) = sessions
            .create(project, &user.id, user_agent, ip, now)
            .await
            .map_err(|e| refused_or(e, &user.id))?;
        Ok((session_token, redirect, user.id))
    }
    .await;
    signed_in_or_not(svc, project, "magic_link", ip, None, res).await
}

/// Audit a sign-in's outcome, then answer with it.
async fn signed_in_or_not<T>(
    svc: &Svc,
    project: &Project,
    method: &str,
    ip: Option<&str>,
    request_id: Option<&str>,
    res: Result<(String, T, String), LoginError>,
) -> Result<(String, T), LoginError> {
    let m = if method == "google" {
        crate::stats::Method::Google
    } else {
        crate::stats::Method::Email
    };
    project.stats.sign_in(m, res.is_ok());
    match res {
        Ok((token, redirect, user_id)) => {
            audit_auth(
                svc,
                &project.id,
                "auth.sign_in",
                Some(&user_id),
                ip,
                request_id,
                serde_json::json!({ "method": method }),
            )
            .await;
            Ok((token, redirect))
        }
        Err(e) => {
            let user_id = match &e {
                LoginError::Banned { user_id } => user_id.as_deref(),
                _ => None,
            };
            audit_auth(
                svc,
                &project.id,
                "auth.sign_in_failed",
                user_id,
                ip,
                request_id,
                serde_json::json!({ "method": method, "reason": e.reason() }),
            )
            .await;
            Err(e)
        }
    }
}

// ---- Google ----

type GoogleClient = BasicClient<
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// The endpoints an OpenID Connect issuer publishes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OidcEndpoints {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
}

/// OpenID Connect discovery: `{issuer}/.well-known/openid-configuration`, which must name the
/// same issuer (OpenID Connect Discovery 1.0, section 4.3) and give the three endpoints.
pub async fn discover_oidc(issuer: &str) -> anyhow::Result<OidcEndpoints> {
    let issuer = issuer.trim_end_matches('/');
    let url = format!("{issuer}/.well-known/openid-configuration");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let res = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("fetching {url}"))?;
    anyhow::ensure!(res.status().is_success(), "{url} returned {}", res.status());
    let e: OidcEndpoints = res
        .json()
        .await
        .with_context(|| format!("{url} is not a discovery document with the three endpoints"))?;
    anyhow::ensure!(
        e.issuer.trim_end_matches('/') == issuer,
        "{url} names issuer {:?}, not {issuer:?}",
        e.issuer
    );
    Ok(e)
}

/// The project's canonical origin: every link and redirect URI starts with it, whatever host
/// the request came in on.
fn origin_url(project: &Project) -> Result<String, LoginError> {
    project
        .origin
        .as_ref()
        .map(crate::model::Origin::url)
        .ok_or_else(|| {
            LoginError::Internal(anyhow::anyhow!("project {} has no origin", project.id))
        })
}

/// The OAuth client of the project; `callback` replaces `<origin>/callback/google` (the
/// dashboard's own, built from its configured origin — never from a request).
fn google_client(
    svc: &Svc,
    project: &Project,
    callback: Option<&str>,
) -> Result<GoogleClient, LoginError> {
    let (Some(id), Some(secret)) = (&project.google_client_id, &project.google_client_secret)
    else {
        return Err(LoginError::GoogleNotConfigured);
    };
    let s = &svc.settings;
    let bad =
        |e: oauth2::url::ParseError| LoginError::Internal(anyhow::anyhow!("bad OAuth URL: {e}"));
    Ok(BasicClient::new(ClientId::new(id.clone()))
        .set_client_secret(ClientSecret::new(secret.expose().to_string()))
        .set_auth_uri(AuthUrl::new(s.google_auth_url.clone()).map_err(bad)?)
        .set_token_uri(TokenUrl::new(s.google_token_url.clone()).map_err(bad)?)
        .set_redirect_uri(
            RedirectUrl::new(match callback {
                Some(c) => c.to_string(),
                None => format!("{}/callback/google", origin_url(project)?),
            })
            .map_err(bad)?,
        )
        .set_auth_type(AuthType::RequestBody))
}

const OAUTH_STATE_TTL_MS: i64 = 10 * 60 * 1000;

/// Build the Google authorization URL and remember (state -> PKCE verifier, browser binding).
pub async fn google_start(
    svc: &Svc,
    project: &Project,
    redirect_to: Option<String>,
    browser_hash: String,
    callback: Option<String>,
) -> Result<String, LoginError> {
    let client = google_client(svc, project, callback.as_deref())?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(|| CsrfToken::new(random_token()))
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let now = now_ms();
    store::insert_oauth_state(
        &svc.db,
        &hash_token(csrf.secret()),
        &project.id,
        &store::OAuthState {
            browser_hash,
            pkce_verifier: verifier.secret().clone(),
            redirect_to,
            expires_at: now + OAUTH_STATE_TTL_MS,
        },
        now,
    )
    .await?;
    Ok(url.to_string())
}

pub struct GoogleCallback {
    pub code: String,
    pub state: String,
    /// Hash of the browser-binding cookie set by `/login/google`.
    pub browser_hash: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The request's id, for the audit log.
    pub request_id: Option<String>,
    pub now: i64,
    /// The redirect URI the flow started with, when not the project's own.
    pub callback: Option<String>,
}

#[derive(Deserialize)]
struct GoogleUser {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: serde_json::Value,
    name: Option<String>,
    picture: Option<String>,
}

/// Finish the Google flow: check state + browser binding, exchange the code (PKCE), read the
/// user, require a verified email, then find by Google subject, else link by email, else create.
/// Returns (session token, redirect target or empty for the project default).
pub async fn google_finish(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    cb: GoogleCallback,
) -> Result<(String, String), LoginError> {
    let (ip, request_id) = (cb.ip.clone(), cb.request_id.clone());
    let res = google_finish_inner(svc, sessions, project, cb).await;
    signed_in_or_not(
        svc,
        project,
        "google",
        ip.as_deref(),
        request_id.as_deref(),
        res,
    )
    .await
}

async fn google_finish_inner(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    cb: GoogleCallback,
) -> Result<(String, String, String), LoginError> {
    let client = google_client(svc, project, cb.callback.as_deref())?;
    if !is_token_shaped(&cb.state) {
        return Err(LoginError::BadState);
    }
    let st = store::take_oauth_state(&svc.db, &project.id, &hash_token(&cb.state))
        .await?
        .ok_or(LoginError::BadState)?;
    if st.expires_at <= cb.now || !ct_eq(st.browser_hash.as_bytes(), cb.browser_hash.as_bytes()) {
        return Err(LoginError::BadState);
    }
    let http = svc.http.clone();
    let adapter = move |req: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let req = reqwest::Request::try_from(req)?;
            let res = http.execute(req).await?;
            let mut out = oauth2::http::Response::builder().status(res.status());
            for (k, v) in res.headers() {
                out = out.header(k, v);
            }
            let body = res.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(out.body(body).unwrap_or_default())
        }
    };
    let tok = client
        .exchange_code(AuthorizationCode::new(cb.code))
        .set_pkce_verifier(PkceCodeVerifier::new(st.pkce_verifier))
        .request_async(&adapter)
        .await
        .map_err(|e| LoginError::Provider(token_error(&e)))?;
    let res = svc
        .http
        .get(&svc.settings.google_userinfo_url)
        .bearer_auth(tok.access_token().secret())
        .send()
        .await
        .map_err(|e| LoginError::Provider(format!("userinfo request failed: {e}")))?;
    if !res.status().is_success() {
        return Err(LoginError::Provider(format!(
            "userinfo returned {}",
            res.status()
        )));
    }
    let gu: GoogleUser = res
        .json()
        .await
        .map_err(|e| LoginError::Provider(format!("unreadable userinfo: {e}")))?;
    let verified = matches!(&gu.email_verified, serde_json::Value::Bool(true))
        || matches!(&gu.email_verified, serde_json::Value::String(s) if s == "true");
    let email = gu
        .email
        .as_deref()
        .and_then(Email::parse)
        .ok_or(LoginError::EmailUnverified)?;
    if !verified {
        return Err(LoginError::EmailUnverified);
    }
    if let Some(id) =
        store::banned_user(&svc.db, &project.id, email.as_str(), Some(&gu.sub)).await?
    {
        return Err(LoginError::Banned { user_id: Some(id) });
    }
    let user = match store::find_user_by_google_sub(&svc.db, &project.id, &gu.sub).await? {
        Some(u) => u,
        None => {
            let u =
                store::upsert_user_by_email(&svc.db, &project.id, email.as_str(), cb.now).await?;
            store::link_google(
                &svc.db,
                &u.id,
                &gu.sub,
                gu.name.as_deref(),
                gu.picture.as_deref(),
                cb.now,
            )
            .await?
        }
    };
    sessions.user_changed(&project.id, &user.id).await?;
    let (token, _) = sessions
        .create(
            project,
            &user.id,
            cb.user_agent.as_deref(),
            cb.ip.as_deref(),
            cb.now,
        )
        .await
        .map_err(|e| refused_or(e, &user.id))?;
    Ok((token, st.redirect_to.unwrap_or_default(), user.id))
}

/// A session the store refused because the user was banned (or deleted) while signing in is
/// the ban's answer, not a store failure.
fn refused_or(e: anyhow::Error, user_id: &str) -> LoginError {
    if e.downcast_ref::<store::UserUnavailable>().is_some() {
        LoginError::Banned {
            user_id: Some(user_id.to_string()),
        }
    } else {
        LoginError::from(e)
    }
}

fn token_error<RE, T>(e: &oauth2::RequestTokenError<RE, T>) -> String
where
    RE: std::error::Error + 'static,
    T: oauth2::ErrorResponse + 'static,
{
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => format!("token endpoint refused: {r}"),
        other => format!("token exchange failed: {other}"),
    }
}
