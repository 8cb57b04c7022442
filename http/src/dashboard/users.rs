//! A project's end users: search by email, a paged list, and a user's page (profile, live
//! sessions with revoke, subscriptions, audit trail) with ban, unban and delete.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use reauth_actors::admin::audit::AuditFilter;
use reauth_actors::admin::sessions::SessionFilter;
use reauth_actors::admin::users::UserFilter;
use reauth_actors::admin::{AdminError, PageReq};
use serde::Deserialize;

use super::projects::project_view;
use super::{
    Me, Req, check_post, form, me_for_project, message, notice, render, req_info, see_other,
    session, when,
};
use crate::app::AppState;

const PAGE: i64 = 25;

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    starting_after: Option<String>,
}

pub async fn list(State(st): State<AppState>, Path(pid): Path<String>, req: Request) -> Response {
    let r = req_info(&st, &req);
    let s = tri!(session(&st, &r).await);
    let me = tri!(me_for_project(&st, &s, &r, &pid).await);
    let p = match me.admin.get_project(&me.caller, &pid).await {
        Ok(p) => p,
        Err(e) => return me.error(e, "/dashboard"),
    };
    let q: ListQuery = r.query();
    let search =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    let filter = UserFilter {
        email_prefix: search.clone(),
        ..Default::default()
    };
    let page = PageReq {
        limit: Some(PAGE),
        starting_after: q.starting_after.filter(|s| !s.is_empty()),
    };
    let (users, next, error) = match me.admin.list_users(&me.caller, &pid, &filter, &page).await {
        Ok(list) => (list.data, list.next_cursor, None),
        Err(AdminError::Invalid { message, .. }) => {
            (vec![], None, Some(format!("Search: {message}.")))
        }
        Err(e) => return me.error(e, "/dashboard"),
    };
    let next_href = next.map(|c| {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = &search {
            qs.append_pair("q", s);
        }
        qs.append_pair("starting_after", &c);
        format!("?{}", qs.finish())
    });
    render(
        if error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        "users.html",
        context! {
            me => me.view(),
            project => project_view(&st, &p, "users"),
            notice => notice(&r),
            q => search,
            error,
            users => users.iter().map(|u| context! {
                id => u.id.clone(), email => u.email.clone(), name => u.name.clone(),
                created => when(u.created_at), last_login => u.last_login_at.map(when),
                banned => u.banned,
            }).collect::<Vec<_>>(),
            next_href,
            first_page => page.starting_after.is_none(),
        },
    )
}

pub async fn detail(
    State(st): State<AppState>,
    Path((pid, uid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let s = tri!(session(&st, &r).await);
    let me = tri!(me_for_project(&st, &s, &r, &pid).await);
    let back = format!("/dashboard/projects/{pid}/users");
    let p = match me.admin.get_project(&me.caller, &pid).await {
        Ok(p) => p,
        Err(e) => return me.error(e, "/dashboard"),
    };
    let u = match me.admin.get_user(&me.caller, &pid, &uid).await {
        Ok(u) => u,
        Err(e) => return me.error(e, &back),
    };
    let all = PageReq {
        limit: Some(100),
        starting_after: None,
    };
    let sessions = match me
        .admin
        .list_sessions(
            &me.caller,
            &pid,
            Some(&uid),
            &SessionFilter::default(),
            &all,
        )
        .await
    {
        Ok(l) => l.data,
        Err(e) => return me.error(e, &back),
    };
    let subs = match me
        .admin
        .list_subscriptions(&me.caller, &pid, Some(&uid), &all)
        .await
    {
        Ok(l) => l.data,
        Err(e) => return me.error(e, &back),
    };
    // The user's trail: the project's recent entries that name them.
    let trail = match me
        .admin
        .list_audit(
            &me.caller,
            &AuditFilter {
                project_id: Some(pid.clone()),
                action: None,
            },
            &all,
        )
        .await
    {
        Ok(l) => l
            .data
            .into_iter()
            .filter(|e| e.target.as_deref() == Some(uid.as_str()))
            .take(20)
            .collect::<Vec<_>>(),
        Err(e) => return me.error(e, &back),
    };
    render(
        StatusCode::OK,
        "user.html",
        context! {
            me => me.view(),
            project => project_view(&st, &p, "users"),
            notice => notice(&r),
            user => context! {
                id => u.id.clone(), email => u.email.clone(), name => u.name.clone(),
                created => when(u.created_at), last_login => u.last_login_at.map(when),
                banned => u.banned, google_linked => u.google_linked,
                stripe_customer_id => u.stripe_customer_id.clone(),
                metadata => u.metadata.to_string(),
            },
            sessions => sessions.iter().map(|x| context! {
                id => x.id.clone(), created => when(x.created_at), last_seen => when(x.last_seen_at),
                expires => when(x.expires_at), ip => x.ip.clone(), user_agent => x.user_agent.as_deref().map(|a| a.chars().take(60).collect::<String>()),
            }).collect::<Vec<_>>(),
            subscriptions => subs.iter().map(|x| context! {
                plan => x.plan.clone(), price_id => x.price_id.clone(), status => x.status.clone(),
                period_end => x.current_period_end.map(when), cancel_at_period_end => x.cancel_at_period_end,
            }).collect::<Vec<_>>(),
            trail => trail.iter().map(|e| context! {
                when => when(e.created_at), action => e.action.clone(), actor => e.actor.clone(),
                detail => e.detail.to_string(),
            }).collect::<Vec<_>>(),
        },
    )
}

#[derive(Deserialize, Default)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// The member for a write on users or sessions, after the CSRF and role checks.
async fn writer(
    st: &AppState,
    r: &Req,
    pid: &str,
    csrf: &str,
    resource: &str,
) -> Result<Me, Response> {
    let s = session(st, r).await?;
    check_post(st, &s, r, csrf)?;
    let me = me_for_project(st, &s, r, pid).await?;
    me.need_write(resource)?;
    Ok(me)
}

pub async fn revoke_session(
    State(st): State<AppState>,
    Path((pid, sid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (r, f): (Req, ActionForm) = form(&st, req).await;
    let me = tri!(writer(&st, &r, &pid, &f.csrf, "sessions").await);
    #[derive(Deserialize, Default)]
    struct Back {
        user: Option<String>,
    }
    let back: Back = r.query();
    let to = match back.user.filter(|u| u.starts_with("usr_") && u.len() < 100) {
        Some(u) => format!("/dashboard/projects/{pid}/users/{u}"),
        None => format!("/dashboard/projects/{pid}/users"),
    };
    match me.admin.revoke_session(&me.caller, &pid, &sid).await {
        Ok(()) => see_other(&format!("{to}?ok=revoked")),
        Err(e) => me.error(e, &to),
    }
}

pub async fn ban(
    State(st): State<AppState>,
    Path((pid, uid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (r, f): (Req, ActionForm) = form(&st, req).await;
    let me = tri!(writer(&st, &r, &pid, &f.csrf, "users").await);
    let to = format!("/dashboard/projects/{pid}/users/{uid}");
    match me.admin.ban_user(&me.caller, &pid, &uid).await {
        Ok(_) => see_other(&format!("{to}?ok=banned")),
        Err(e) => me.error(e, &to),
    }
}

pub async fn unban(
    State(st): State<AppState>,
    Path((pid, uid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (r, f): (Req, ActionForm) = form(&st, req).await;
    let me = tri!(writer(&st, &r, &pid, &f.csrf, "users").await);
    let to = format!("/dashboard/projects/{pid}/users/{uid}");
    match me.admin.unban_user(&me.caller, &pid, &uid).await {
        Ok(_) => see_other(&format!("{to}?ok=unbanned")),
        Err(e) => me.error(e, &to),
    }
}

/// Deleting needs the form's "I understand" box ticked (no script needed to confirm).
pub async fn delete(
    State(st): State<AppState>,
    Path((pid, uid)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (r, f): (Req, ActionForm) = form(&st, req).await;
    let me = tri!(writer(&st, &r, &pid, &f.csrf, "users").await);
    let to = format!("/dashboard/projects/{pid}/users/{uid}");
    if f.confirm != "yes" {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please confirm",
            "Tick the box to confirm that the user, their sessions and personal data are deleted.",
            (&to, "Back to the user"),
            Some(&me),
        );
    }
    match me.admin.delete_user(&me.caller, &pid, &uid).await {
        Ok(_) => see_other(&format!("/dashboard/projects/{pid}/users?ok=deleted")),
        Err(e) => me.error(e, &to),
    }
}
