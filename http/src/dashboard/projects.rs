//! Project pages: the overview (numbers and a sign-ins chart), branding with a live preview of
//! the hosted login page, domains (the records to create, verify now, status and reason) and
//! the email log.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use minijinja::context;
use minijinja::value::{Serde, Value};
use reauth_actors::admin::projects::{ProjectUpdate, ProjectView, patch_of};
use reauth_actors::admin::{AdminError, PageReq};
use reauth_actors::model::valid_color;
use reauth_runtime::now_ms;
use serde::Deserialize;

use super::{
    Me, Req, chart, check_post, form, me_for_project, notice, render, req_info, see_other, session,
};
use crate::app::AppState;

const DEFAULT_ACCENT: &str = "#4f46e5";

/// The member and the project (theirs), or the page to show instead.
pub(crate) async fn load(st: &AppState, r: &Req, pid: &str) -> Result<(Me, ProjectView), Response> {
    let s = session(st, r).await?;
    let me = me_for_project(st, &s, r, pid).await?;
    let p = me
        .admin
        .get_project(&me.caller, pid)
        .await
        .map_err(|e| me.error(e, "/dashboard"))?;
    Ok((me, p))
}

/// The same for a form's POST: its CSRF token checked first, then write access to `writes`
/// (`None`: a POST that changes nothing, such as the branding preview).
pub(crate) async fn load_post(
    st: &AppState,
    r: &Req,
    pid: &str,
    csrf: &str,
    writes: Option<&str>,
) -> Result<(Me, ProjectView), Response> {
    let s = session(st, r).await?;
    check_post(st, &s, r, csrf)?;
    let me = me_for_project(st, &s, r, pid).await?;
    if let Some(resource) = writes {
        me.need_write(resource)?;
    }
    let p = me
        .admin
        .get_project(&me.caller, pid)
        .await
        .map_err(|e| me.error(e, "/dashboard"))?;
    Ok((me, p))
}

/// What the project's page header needs: name, id, the hosted login page's address.
pub(crate) fn project_view(st: &AppState, p: &ProjectView, tab: &str) -> Value {
    let hosted = st
        .core
        .directory
        .project(&p.id)
        .and_then(|x| x.origin.as_ref().map(|o| format!("{}/login", o.url())));
    context! {
        id => p.id.clone(), slug => p.slug.clone(), name => p.name.clone(),
        hosted, tab,
        webhook_path => p.webhook_path.clone(),
    }
}

fn accent_of(p: Option<&str>) -> String {
    p.filter(|c| valid_color(c))
        .unwrap_or(DEFAULT_ACCENT)
        .to_string()
}

pub async fn overview(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let (me, p) = tri!(load(&st, &r, &pid).await);
    let stats = match me.admin.project_stats(&me.caller, &pid, 14, now_ms()).await {
        Ok(s) => s,
        Err(e) => return me.error(e, "/dashboard"),
    };
    let svg = chart::sign_ins(&stats.sign_ins, &accent_of(p.accent_color.as_deref()));
    render(
        StatusCode::OK,
        "overview.html",
        context! {
            me => me.view(),
            project => project_view(&st, &p, "overview"),
            notice => notice(&r),
            stats => Serde(&stats),
            chart => Value::from_safe_string(svg),
            days => stats.sign_ins.iter().map(|d| context! {
                day => chrono::DateTime::from_timestamp_millis(d.day).map(|t| t.format("%b %-d").to_string()).unwrap_or_default(),
                count => d.count,
            }).collect::<Vec<_>>(),
            origins => p.allowed_origins.clone(),
        },
    )
}

#[derive(Deserialize, Default, Clone)]
pub struct BrandForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    logo_url: String,
    #[serde(default)]
    accent_color: String,
}

impl BrandForm {
    fn of(p: &ProjectView) -> Self {
        Self {
            csrf: String::new(),
            name: p.name.clone(),
            logo_url: p.logo_url.clone().unwrap_or_default(),
            accent_color: p.accent_color.clone().unwrap_or_default(),
        }
    }

    fn update(&self) -> ProjectUpdate {
        let opt = |s: &str| Some(Some(s.trim().to_string()).filter(|s| !s.is_empty()));
        ProjectUpdate {
            name: Some(self.name.trim().to_string()),
            logo_url: opt(&self.logo_url),
            accent_color: opt(&self.accent_color),
            ..Default::default()
        }
    }

    /// The preview's values: valid ones as typed, the rest as saved defaults.
    fn preview(&self) -> Value {
        let name = self.name.trim();
        let logo = self.logo_url.trim();
        context! {
            name => if name.is_empty() { "Your app" } else { name },
            logo_url => (logo.starts_with("https://") && logo.len() <= 2000).then_some(logo),
            accent => accent_of(Some(self.accent_color.trim())),
        }
    }
}

fn field_label(field: &str) -> &str {
    match field {
        "name" => "Name",
        "logo_url" => "Logo URL",
        "accent_color" => "Accent colour",
        other => other,
    }
}

fn branding_page(
    st: &AppState,
    me: &Me,
    r: &Req,
    p: &ProjectView,
    f: &BrandForm,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    render(
        status,
        "branding.html",
        context! {
            me => me.view(),
            project => project_view(st, p, "branding"),
            notice => notice(r),
            form => context! { name => f.name.clone(), logo_url => f.logo_url.clone(), accent_color => f.accent_color.clone() },
            preview => f.preview(),
            error,
        },
    )
}

pub async fn branding(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let (me, p) = tri!(load(&st, &r, &pid).await);
    branding_page(&st, &me, &r, &p, &BrandForm::of(&p), None, StatusCode::OK)
}

pub async fn save_branding(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let (r, f): (Req, BrandForm) = form(&st, req).await;
    let (me, p) = tri!(load_post(&st, &r, &pid, &f.csrf, Some("projects")).await);
    match me.admin.update_project(&me.caller, &pid, &f.update()).await {
        Ok(_) => see_other(&format!("/dashboard/projects/{pid}/branding?ok=saved")),
        Err(AdminError::Invalid { field, message }) => branding_page(
            &st,
            &me,
            &r,
            &p,
            &f,
            Some(format!("{}: {message}.", field_label(&field))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => me.error(e, &format!("/dashboard/projects/{pid}/branding")),
    }
}

fn is_htmx(h: &HeaderMap) -> bool {
    h.get("hx-request").is_some()
}

/// The preview of unsaved values: the preview fragment for htmx (as the form is typed in), the
/// whole page for the form's Preview button without JavaScript. Changes nothing, so viewers
/// may use it too.
pub async fn preview(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let (r, f): (Req, BrandForm) = form(&st, req).await;
    let (me, p) = tri!(load_post(&st, &r, &pid, &f.csrf, None).await);
    let error = patch_of(&f.update()).err().and_then(|e| match e {
        AdminError::Invalid { field, message } => {
            Some(format!("{}: {message}.", field_label(&field)))
        }
        _ => None,
    });
    if is_htmx(&r.headers) {
        return render(
            StatusCode::OK,
            "preview.html",
            context! { preview => f.preview(), error },
        );
    }
    branding_page(&st, &me, &r, &p, &f, error, StatusCode::OK)
}

// ------------------------------------------------------------------ domains

async fn domains_page(
    st: &AppState,
    me: &Me,
    r: &Req,
    p: &ProjectView,
    error: Option<String>,
    hostname: Option<&str>,
    status: StatusCode,
) -> Response {
    let list = match me.admin.list_domains(&me.caller, &p.id).await {
        Ok(l) => l,
        Err(e) => return me.error(e, "/dashboard"),
    };
    render(
        status,
        "domains.html",
        context! {
            me => me.view(),
            project => project_view(st, p, "domains"),
            notice => notice(r),
            domains => list.iter().map(|d| context! {
                id => d.id.clone(), hostname => d.hostname.clone(), primary => d.primary,
                status => d.status.clone(), reason => d.reason.clone(),
                records => Serde(&d.records),
                google_redirect_uri => d.google_redirect_uri.clone(),
                checked => d.checked_at.map(super::when),
            }).collect::<Vec<_>>(),
            error, hostname,
        },
    )
}

pub async fn domains(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let (me, p) = tri!(load(&st, &r, &pid).await);
    domains_page(&st, &me, &r, &p, None, None, StatusCode::OK).await
}

#[derive(Deserialize, Default)]
pub struct DomainForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    hostname: String,
}

pub async fn add_domain(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let (r, f): (Req, DomainForm) = form(&st, req).await;
    let (me, p) = tri!(load_post(&st, &r, &pid, &f.csrf, Some("domains")).await);
    match me.admin.add_domain(&me.caller, &pid, &f.hostname).await {
        Ok(_) => see_other(&format!("/dashboard/projects/{pid}/domains?ok=created")),
        Err(e @ (AdminError::Invalid { .. } | AdminError::Conflict(_))) => {
            let text = match &e {
                AdminError::Invalid { message, .. } => format!("Domain: {message}."),
                other => format!("{other}."),
            };
            domains_page(
                &st,
                &me,
                &r,
                &p,
                Some(text),
                Some(&f.hostname),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => me.error(e, &format!("/dashboard/projects/{pid}/domains")),
    }
}

pub async fn verify_domain(
    State(st): State<AppState>,
    Path((pid, did)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (r, f): (Req, super::CsrfForm) = form(&st, req).await;
    let (me, _) = tri!(load_post(&st, &r, &pid, &f.csrf, Some("domains")).await);
    match me.admin.verify_domain(&me.caller, &pid, &did).await {
        Ok(_) => see_other(&format!("/dashboard/projects/{pid}/domains?ok=verified")),
        Err(e) => me.error(e, &format!("/dashboard/projects/{pid}/domains")),
    }
}

// ------------------------------------------------------------------ email log

#[derive(Deserialize, Default)]
struct PageQuery {
    starting_after: Option<String>,
}

pub async fn emails(State(st): State<AppState>, Path(pid): Path<String>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let (me, p) = tri!(load(&st, &r, &pid).await);
    let q: PageQuery = r.query();
    let page = PageReq {
        limit: Some(50),
        starting_after: q.starting_after.filter(|s| !s.is_empty()),
    };
    match me.admin.list_email_log(&me.caller, &pid, &page).await {
        Ok(list) => render(
            StatusCode::OK,
            "emails.html",
            context! {
                me => me.view(),
                project => project_view(&st, &p, "emails"),
                emails => list.data.iter().map(|e| context! {
                    when => super::when(e.created_at), to => e.to.clone(), subject => e.subject.clone(),
                    kind => e.kind.clone(), status => e.status.clone(), error => e.error.clone(),
                }).collect::<Vec<_>>(),
                next => list.next_cursor,
            },
        ),
        Err(e) => me.error(e, "/dashboard"),
    }
}

// ------------------------------------------------------------------ settings

#[derive(Deserialize, Default)]
pub struct SettingsForm {
    #[serde(default)]
    csrf: String,
    /// One origin per line.
    #[serde(default)]
    origins: String,
    #[serde(default)]
    magic_link_minutes: String,
    #[serde(default)]
    session_days: String,
}

impl SettingsForm {
    fn of(p: &ProjectView) -> Self {
        Self {
            csrf: String::new(),
            origins: p.allowed_origins.join("\n"),
            magic_link_minutes: (p.magic_link_ttl_secs / 60).to_string(),
            session_days: format!("{}", p.session_ttl_secs as f64 / 86_400.0),
        }
    }

    fn view(&self) -> Value {
        context! {
            origins => self.origins.clone(),
            magic_link_minutes => self.magic_link_minutes.clone(),
            session_days => self.session_days.clone(),
        }
    }

    /// The update, or the field that is not a number.
    fn update(&self) -> Result<ProjectUpdate, String> {
        let origins: Vec<String> = self
            .origins
            .split(['\n', ',', ' '])
            .map(|o| o.trim().trim_end_matches('/'))
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect();
        let minutes: f64 = self
            .magic_link_minutes
            .trim()
            .parse()
            .map_err(|_| "Sign-in link lifetime: a number of minutes.".to_string())?;
        let days: f64 = self
            .session_days
            .trim()
            .parse()
            .map_err(|_| "Session lifetime: a number of days.".to_string())?;
        if !minutes.is_finite() || !days.is_finite() {
            return Err("Lifetimes must be numbers.".into());
        }
        Ok(ProjectUpdate {
            allowed_origins: Some(origins),
            magic_link_ttl_secs: Some((minutes * 60.0).round() as i64),
            session_ttl_secs: Some((days * 86_400.0).round() as i64),
            ..Default::default()
        })
    }
}

fn settings_label(field: &str) -> &str {
    match field {
        "allowed_origins" => "Allowed origins",
        "magic_link_ttl_secs" => "Sign-in link lifetime (1 minute to 24 hours)",
        "session_ttl_secs" => "Session lifetime (5 minutes to 365 days)",
        other => other,
    }
}

fn settings_page(
    st: &AppState,
    me: &Me,
    r: &Req,
    p: &ProjectView,
    f: &SettingsForm,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    render(
        status,
        "settings.html",
        context! {
            me => me.view(),
            project => project_view(st, p, "settings"),
            notice => notice(r),
            form => f.view(),
            error,
        },
    )
}

pub async fn settings(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let (me, p) = tri!(load(&st, &r, &pid).await);
    settings_page(
        &st,
        &me,
        &r,
        &p,
        &SettingsForm::of(&p),
        None,
        StatusCode::OK,
    )
}

pub async fn save_settings(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let (r, f): (Req, SettingsForm) = form(&st, req).await;
    let (me, p) = tri!(load_post(&st, &r, &pid, &f.csrf, Some("projects")).await);
    let update = match f.update() {
        Ok(u) => u,
        Err(msg) => {
            return settings_page(
                &st,
                &me,
                &r,
                &p,
                &f,
                Some(msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    match me.admin.update_project(&me.caller, &pid, &update).await {
        Ok(_) => see_other(&format!("/dashboard/projects/{pid}/settings?ok=saved")),
        Err(AdminError::Invalid { field, message }) => settings_page(
            &st,
            &me,
            &r,
            &p,
            &f,
            Some(format!("{}: {message}.", settings_label(&field))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => me.error(e, &format!("/dashboard/projects/{pid}/settings")),
    }
}
