//! Org pages: the home (which org), the projects list and creation, API keys (created — shown
//! once — and revoked, owners only), members (invited by email, roles; owners only) and the
//! org's audit log.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use minijinja::value::Serde;
use reauth_actors::admin::audit::AuditFilter;
use reauth_actors::admin::projects::NewProject;
use reauth_actors::admin::{Admin, AdminError, PageReq};
use serde::Deserialize;

use super::{
    Me, Req, Session, check_post, form, me_in_org, notice, render, req_info, see_other, session,
    unavailable,
};
use crate::app::AppState;

/// `/dashboard`: straight to the only org, else a choice.
pub async fn home(State(st): State<AppState>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let s = match session(&st, &r).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let orgs = match Admin::new(&st.core).memberships(&s.email).await {
        Ok(o) => o,
        Err(e) => return unavailable(&e),
    };
    if let [only] = orgs.as_slice() {
        return Redirect::to(&format!("/dashboard/orgs/{}", only.org.id)).into_response();
    }
    render(
        StatusCode::OK,
        "home.html",
        context! {
            email => s.email.clone(),
            signed_in => s.email.clone(),
            csrf => s.csrf(),
            orgs => orgs.iter().map(|m| context! { id => m.org.id.clone(), name => m.org.name.clone(), role => m.role.as_str() }).collect::<Vec<_>>(),
        },
    )
}

/// The signed-in member in the path's org, or the page to show instead.
async fn me(st: &AppState, r: &Req, org: &str) -> Result<(Session, Me), Response> {
    let s = session(st, r).await?;
    let me = me_in_org(st, &s, r, org).await?;
    Ok((s, me))
}

/// A POST's member, with the form's CSRF token checked.
async fn me_post(st: &AppState, r: &Req, org: &str, csrf: &str) -> Result<Me, Response> {
    let (s, me) = me(st, r, org).await?;
    check_post(st, &s, r, csrf)?;
    Ok(me)
}

#[derive(Deserialize, Default)]
pub struct NewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    origin: String,
}

async fn projects_page(
    me: &Me,
    r: &Req,
    new: Option<&NewForm>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let page = PageReq {
        limit: Some(100),
        starting_after: None,
    };
    let list = match me.admin.list_projects(&me.caller, &page).await {
        Ok(l) => l,
        Err(e) => return me.error(e, "/dashboard"),
    };
    render(
        status,
        "projects.html",
        context! {
            section => "projects",
            me => me.view(),
            projects => Serde(&list.data),
            notice => notice(r),
            error,
            new => new.map(|n| context! { slug => n.slug.clone(), name => n.name.clone(), origin => n.origin.clone() }),
        },
    )
}

pub async fn projects(
    State(st): State<AppState>,
    Path(org): Path<String>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let (_, me) = tri!(me(&st, &r, &org).await);
    projects_page(&me, &r, None, None, StatusCode::OK).await
}

pub async fn create_project(
    State(st): State<AppState>,
    Path(org): Path<String>,
    req: Request,
) -> Response {
    let (r, f): (Req, NewForm) = form(&st, req).await;
    let me = tri!(me_post(&st, &r, &org, &f.csrf).await);
    tri!(me.need_write("projects"));
    let new = NewProject {
        slug: f.slug.trim().to_ascii_lowercase(),
        name: Some(f.name.trim().to_string()).filter(|n| !n.is_empty()),
        allowed_origins: Some(f.origin.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .into_iter()
            .collect(),
    };
    match me.admin.create_project(&me.caller, &new).await {
        Ok(p) => {
            dev_host(&st, &me, &p.id, &p.slug).await;
            see_other(&format!("/dashboard/projects/{}?ok=created", p.id))
        }
        Err(e @ (AdminError::Invalid { .. } | AdminError::Conflict(_))) => {
            let text = match &e {
                AdminError::Invalid { field, message } => {
                    let field = match field.as_str() {
                        "allowed_origins" => "App origin",
                        "slug" => "Slug",
                        "name" => "Name",
                        other => other,
                    };
                    format!("{field}: {message}.")
                }
                other => format!("{other}."),
            };
            projects_page(
                &me,
                &r,
                Some(&f),
                Some(text),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => me.error(e, &format!("/dashboard/orgs/{org}")),
    }
}

/// `reauth dev` has no base domain: a new project's login page is served at
/// `<slug>.localhost:<port>` (browsers resolve `*.localhost` to this machine).
async fn dev_host(st: &AppState, me: &Me, id: &str, slug: &str) {
    if st.mode != crate::app::Mode::Dev || st.settings.base_domain.is_some() {
        return;
    }
    let Some(port) = super::origin(st).and_then(|o| {
        super::host_of(&o)
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
    }) else {
        return;
    };
    let update = reauth_actors::admin::projects::ProjectUpdate {
        dev_hosts: Some(vec![format!("{slug}.localhost:{port}")]),
        ..Default::default()
    };
    if let Err(e) = me.admin.update_project(&me.caller, id, &update).await {
        tracing::warn!(error = %e, project = id, "dev host not set");
    }
}

// ------------------------------------------------------------------ API keys

async fn keys_page(me: &Me, r: &Req, created: Option<(String, String)>) -> Response {
    let keys = match me.admin.list_api_keys(&me.caller).await {
        Ok(k) => k,
        Err(e) => return me.error(e, "/dashboard"),
    };
    render(
        StatusCode::OK,
        "keys.html",
        context! {
            section => "keys",
            me => me.view(),
            keys => Serde(&keys),
            notice => notice(r),
            created => created.map(|(name, secret)| context! { name, secret }),
        },
    )
}

pub async fn keys(State(st): State<AppState>, Path(org): Path<String>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let (_, me) = tri!(me(&st, &r, &org).await);
    tri!(me.need_owner());
    keys_page(&me, &r, None).await
}

#[derive(Deserialize, Default)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    access: String,
}

pub async fn create_key(
    State(st): State<AppState>,
    Path(org): Path<String>,
    req: Request,
) -> Response {
    let (r, f): (Req, KeyForm) = form(&st, req).await;
    let me = tri!(me_post(&st, &r, &org, &f.csrf).await);
    tri!(me.need_owner());
    let scopes = match f.access.as_str() {
        "read" => vec!["*:read".to_string()],
        _ => vec!["*:write".to_string()],
    };
    match me.admin.create_api_key(&me.caller, &f.name, &scopes).await {
        // Shown once, on this answer only (never stored in clear, never in a URL).
        Ok((key, secret)) => keys_page(&me, &r, Some((key.name, secret))).await,
        Err(e) => me.error(e, &format!("/dashboard/orgs/{org}/keys")),
    }
}

pub async fn revoke_key(
    State(st): State<AppState>,
    Path((org, key)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (r, f): (Req, super::CsrfForm) = form(&st, req).await;
    let me = tri!(me_post(&st, &r, &org, &f.csrf).await);
    tri!(me.need_owner());
    match me.admin.revoke_api_key(&me.caller, &key).await {
        Ok(_) => see_other(&format!("/dashboard/orgs/{org}/keys?ok=revoked")),
        Err(e) => me.error(e, &format!("/dashboard/orgs/{org}/keys")),
    }
}

// ------------------------------------------------------------------ members

async fn members_page(
    me: &Me,
    r: &Req,
    error: Option<String>,
    invite: Option<(&str, &str)>,
    status: StatusCode,
) -> Response {
    let members = match me.admin.list_members(&me.caller).await {
        Ok(m) => m,
        Err(e) => return me.error(e, "/dashboard"),
    };
    render(
        status,
        "members.html",
        context! {
            section => "members",
            me => me.view(),
            members => Serde(&members),
            notice => notice(r),
            error,
            invite => invite.map(|(email, role)| context! { email, role }),
            roles => ["viewer", "admin", "owner"],
        },
    )
}

pub async fn members(
    State(st): State<AppState>,
    Path(org): Path<String>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let (_, me) = tri!(me(&st, &r, &org).await);
    members_page(&me, &r, None, None, StatusCode::OK).await
}

#[derive(Deserialize, Default)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

pub async fn invite(State(st): State<AppState>, Path(org): Path<String>, req: Request) -> Response {
    let (r, f): (Req, InviteForm) = form(&st, req).await;
    let me = tri!(me_post(&st, &r, &org, &f.csrf).await);
    tri!(me.need_owner());
    match me.admin.invite_member(&me.caller, &f.email, &f.role).await {
        Ok(m) => {
            // A sign-in link with the invitation; the member can also ask for one later.
            let sent = match (
                super::console_id(&st).await,
                super::origin(&st),
                reauth_actors::model::Email::parse(&m.email),
            ) {
                (Ok(console), Some(origin), Some(email)) => {
                    super::auth::send_link(&st, &console, &origin, email)
                        .await
                        .map_err(|e| tracing::warn!(error = %e, "invitation email not sent"))
                        .is_ok()
                }
                _ => false,
            };
            let ok = if sent { "invited" } else { "invited_no_email" };
            see_other(&format!("/dashboard/orgs/{org}/members?ok={ok}"))
        }
        Err(e @ (AdminError::Invalid { .. } | AdminError::Conflict(_))) => {
            let text = match &e {
                AdminError::Invalid { field, message } => {
                    format!(
                        "{}: {message}.",
                        if field == "email" { "Email" } else { "Role" }
                    )
                }
                other => format!("{other}."),
            };
            members_page(
                &me,
                &r,
                Some(text),
                Some((&f.email, &f.role)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => me.error(e, &format!("/dashboard/orgs/{org}/members")),
    }
}

#[derive(Deserialize, Default)]
pub struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

pub async fn set_role(
    State(st): State<AppState>,
    Path((org, member)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (r, f): (Req, RoleForm) = form(&st, req).await;
    let me = tri!(me_post(&st, &r, &org, &f.csrf).await);
    tri!(me.need_owner());
    match me.admin.set_member_role(&me.caller, &member, &f.role).await {
        Ok(_) => see_other(&format!("/dashboard/orgs/{org}/members?ok=role")),
        Err(e) => me.error(e, &format!("/dashboard/orgs/{org}/members")),
    }
}

pub async fn remove_member(
    State(st): State<AppState>,
    Path((org, member)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (r, f): (Req, super::CsrfForm) = form(&st, req).await;
    let me = tri!(me_post(&st, &r, &org, &f.csrf).await);
    tri!(me.need_owner());
    match me.admin.remove_member(&me.caller, &member).await {
        Ok(()) => see_other(&format!("/dashboard/orgs/{org}/members?ok=removed")),
        Err(e) => me.error(e, &format!("/dashboard/orgs/{org}/members")),
    }
}

// ------------------------------------------------------------------ audit

#[derive(Deserialize, Default)]
struct AuditQuery {
    starting_after: Option<String>,
}

pub async fn audit(State(st): State<AppState>, Path(org): Path<String>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let (_, me) = tri!(me(&st, &r, &org).await);
    let q: AuditQuery = r.query();
    let page = PageReq {
        limit: Some(50),
        starting_after: q.starting_after.filter(|s| !s.is_empty()),
    };
    match me
        .admin
        .list_audit(&me.caller, &AuditFilter::default(), &page)
        .await
    {
        Ok(list) => render(
            StatusCode::OK,
            "audit.html",
            context! {
                section => "audit",
                me => me.view(),
                entries => list.data.iter().map(|e| context! {
                    when => super::when(e.created_at),
                    actor => e.actor.clone(),
                    action => e.action.clone(),
                    target => e.target.clone(),
                    project_id => e.project_id.clone(),
                    detail => e.detail.to_string().chars().take(160).collect::<String>(),
                    ip => e.ip.clone(),
                }).collect::<Vec<_>>(),
                next => list.next_cursor,
            },
        ),
        Err(e) => me.error(e, "/dashboard"),
    }
}
