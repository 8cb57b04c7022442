//! A project's credentials (Google, Resend, Stripe: write-only, shown as set or unset with the
//! last four characters) and billing (the plan mapping editor, the webhook URL, the recent
//! Stripe events with their outcome).

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use minijinja::value::Serde;
use reauth_actors::admin::projects::{Credentials, ProjectUpdate, ProjectView};
use reauth_actors::admin::{AdminError, PageReq};
use reauth_actors::model::PlanMapping;
use serde::Deserialize;

use super::projects::project_view;
use super::{Me, Req, form, notice, render, req_info, see_other, when};
use crate::app::AppState;

/// Rows of the plan editor beyond the mapped ones.
const BLANK_ROWS: usize = 2;
/// At most this many rows are read back from the form.
const MAX_ROWS: usize = 100;

fn label(field: &str) -> &str {
    match field {
        "google_client_id" => "Google client ID",
        "google_client_secret" => "Google client secret",
        "resend_api_key" => "Resend API key",
        "email_from" => "From address",
        "stripe_secret_key" => "Stripe secret key",
        "stripe_webhook_secret" => "Stripe webhook secret",
        "plans" => "Plans",
        other => other,
    }
}

async fn credentials_page(
    st: &AppState,
    me: &Me,
    r: &Req,
    p: &ProjectView,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let c = match me.admin.get_credentials(&me.caller, &p.id).await {
        Ok(c) => c,
        Err(e) => return me.error(e, "/dashboard"),
    };
    render(
        status,
        "credentials.html",
        context! {
            me => me.view(),
            project => project_view(st, p, "credentials"),
            notice => notice(r),
            c => Serde(&c),
            error,
        },
    )
}

pub async fn credentials(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let (me, p) = tri!(super::projects::load(&st, &r, &pid).await);
    credentials_page(&st, &me, &r, &p, None, StatusCode::OK).await
}

#[derive(Deserialize, Default)]
pub struct CredForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    google_client_id: String,
    #[serde(default)]
    google_client_secret: String,
    #[serde(default)]
    resend_api_key: String,
    #[serde(default)]
    email_from: String,
    #[serde(default)]
    stripe_secret_key: String,
    #[serde(default)]
    stripe_webhook_secret: String,
    /// Secrets to remove (checkboxes).
    #[serde(default)]
    clear_google_client_secret: String,
    #[serde(default)]
    clear_resend_api_key: String,
    #[serde(default)]
    clear_stripe_secret_key: String,
    #[serde(default)]
    clear_stripe_webhook_secret: String,
}

/// A secret field: empty keeps what is stored, the box clears it, a value replaces it.
fn secret(value: &str, clear: &str) -> Option<Option<String>> {
    if clear == "yes" {
        Some(None)
    } else if value.trim().is_empty() {
        None
    } else {
        Some(Some(value.trim().to_string()))
    }
}

/// A plain field: shown filled in, so what is submitted is the new value (empty clears).
fn plain(value: &str) -> Option<Option<String>> {
    Some(Some(value.trim().to_string()).filter(|v| !v.is_empty()))
}

pub async fn save_credentials(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let (r, f): (Req, CredForm) = form(&st, req).await;
    let (me, p) =
        tri!(super::projects::load_post(&st, &r, &pid, &f.csrf, Some("credentials")).await);
    let c = Credentials {
        google_client_id: plain(&f.google_client_id),
        google_client_secret: secret(&f.google_client_secret, &f.clear_google_client_secret),
        resend_api_key: secret(&f.resend_api_key, &f.clear_resend_api_key),
        email_from: plain(&f.email_from),
        stripe_secret_key: secret(&f.stripe_secret_key, &f.clear_stripe_secret_key),
        stripe_webhook_secret: secret(&f.stripe_webhook_secret, &f.clear_stripe_webhook_secret),
    };
    match me.admin.put_credentials(&me.caller, &pid, &c).await {
        Ok(_) => see_other(&format!("/dashboard/projects/{pid}/credentials?ok=saved")),
        Err(AdminError::Invalid { field, message }) => {
            credentials_page(
                &st,
                &me,
                &r,
                &p,
                Some(format!("{}: {message}.", label(&field))),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => me.error(e, &format!("/dashboard/projects/{pid}/credentials")),
    }
}

// ------------------------------------------------------------------ billing

fn rows_of(plans: &[PlanMapping]) -> Vec<minijinja::Value> {
    plans
        .iter()
        .map(|m| context! { price_id => m.price_id.clone(), plan => m.plan.clone(), features => m.features.join(", ") })
        .chain((0..BLANK_ROWS).map(|_| context! { price_id => "", plan => "", features => "" }))
        .collect()
}

async fn billing_page(
    st: &AppState,
    me: &Me,
    r: &Req,
    p: &ProjectView,
    rows: Vec<minijinja::Value>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let events = match me
        .admin
        .list_stripe_events(
            &me.caller,
            &p.id,
            &PageReq {
                limit: Some(20),
                starting_after: None,
            },
        )
        .await
    {
        Ok(l) => l.data,
        Err(e) => return me.error(e, "/dashboard"),
    };
    let webhook_url = st.core.directory.project(&p.id).and_then(|x| {
        x.origin
            .as_ref()
            .map(|o| format!("{}{}", o.url(), p.webhook_path))
    });
    render(
        status,
        "billing.html",
        context! {
            me => me.view(),
            project => project_view(st, p, "billing"),
            notice => notice(r),
            rows,
            webhook_url,
            webhook_path => p.webhook_path.clone(),
            events => events.iter().map(|e| context! {
                id => e.event_id.clone(), kind => e.event_type.clone(), status => e.status.clone(),
                error => e.error.clone(), received => when(e.received_at),
            }).collect::<Vec<_>>(),
            error,
        },
    )
}

pub async fn billing(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let r = req_info(&st, &req);
    let (me, p) = tri!(super::projects::load(&st, &r, &pid).await);
    let rows = rows_of(&p.plans);
    billing_page(&st, &me, &r, &p, rows, None, StatusCode::OK).await
}

/// The plan editor's rows: `price_N`, `plan_N`, `features_N` (comma-separated); blank rows
/// are dropped. Returns the mapping and the rows as typed (to show them again on an error).
fn plans_of(
    form: &[(String, String)],
) -> (Result<Vec<PlanMapping>, String>, Vec<minijinja::Value>) {
    let get = |name: String| {
        form.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let mut plans = vec![];
    let mut rows = vec![];
    let mut problem = None;
    for i in 0..MAX_ROWS {
        let (price, plan, features) = (
            get(format!("price_{i}")),
            get(format!("plan_{i}")),
            get(format!("features_{i}")),
        );
        if !form.iter().any(|(k, _)| *k == format!("price_{i}")) {
            break;
        }
        if price.is_empty() && plan.is_empty() && features.is_empty() {
            continue;
        }
        rows.push(context! { price_id => price.clone(), plan => plan.clone(), features => features.clone() });
        if price.is_empty() || plan.is_empty() {
            problem.get_or_insert_with(|| {
                format!("Row {}: a price id and a plan name are both needed.", i + 1)
            });
            continue;
        }
        plans.push(PlanMapping {
            price_id: price,
            plan,
            features: features
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    rows.extend((0..BLANK_ROWS).map(|_| context! { price_id => "", plan => "", features => "" }));
    (problem.map_or(Ok(plans), Err), rows)
}

pub async fn save_billing(
    State(st): State<AppState>,
    Path(pid): Path<String>,
    req: Request,
) -> Response {
    let (r, f): (Req, Vec<(String, String)>) = form(&st, req).await;
    let csrf = f
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let (me, p) = tri!(super::projects::load_post(&st, &r, &pid, &csrf, Some("projects")).await);
    let (plans, rows) = plans_of(&f);
    let plans = match plans {
        Ok(p) => p,
        Err(msg) => {
            return billing_page(
                &st,
                &me,
                &r,
                &p,
                rows,
                Some(msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let update = ProjectUpdate {
        plans: Some(plans),
        ..Default::default()
    };
    match me.admin.update_project(&me.caller, &pid, &update).await {
        Ok(_) => see_other(&format!("/dashboard/projects/{pid}/billing?ok=saved")),
        Err(AdminError::Invalid { field, message }) => {
            billing_page(
                &st,
                &me,
                &r,
                &p,
                rows,
                Some(format!("{}: {message}.", label(&field))),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => me.error(e, &format!("/dashboard/projects/{pid}/billing")),
    }
}
