//! Reconciliation: a project's subscriptions as Stripe lists them, compared with SQL, and the
//! drift repaired — status, price, period end and cancel-at-period-end of known subscriptions,
//! and subscriptions missing in SQL whose customer is one of the project's users. Webhooks can
//! be lost (an endpoint down for longer than Stripe retries, an event stored as unreadable);
//! this is the backstop, run daily by the janitor and on demand by `reauth stripe reconcile`.
//! Repaired subscriptions reach resident session views the way webhook changes do.

use std::sync::Arc;

use reauth_runtime::{BusMessage, now_ms};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::billing::{self, BillingError, RETURNING_SUB, SubFields, read_subscription};
use crate::model::{Project, SubscriptionRecord};
use crate::services::Svc;
use crate::session::Sessions;
use crate::store;

/// Rows written this recently (before the listing started) are left alone: a webhook may have
/// stored a state newer than the list, which Stripe serves with a short lag.
const FRESH_MS: i64 = 60_000;

/// Stripe's largest page.
const PAGE: &str = "100";

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("no project {0:?}")]
    NoProject(String),
    #[error("project {0:?} has no Stripe secret key")]
    NotConfigured(String),
    #[error("Stripe request failed: {0}")]
    Stripe(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ReconcileError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<BillingError> for ReconcileError {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::Store(e) => Self::Store(e),
            other => Self::Stripe(other.to_string()),
        }
    }
}

/// What reconciling one project found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ProjectReport {
    pub project: String,
    pub project_id: String,
    /// Subscriptions Stripe listed and we could read.
    pub checked: u64,
    /// Rows changed to match Stripe, or inserted.
    pub repaired: u64,
    /// Why the project could not be reconciled (only from [`reconcile_all`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where repaired subscriptions are announced: the resident views of this instance (and, via
/// the bus, every other) when `sessions` is given; otherwise — the CLI, which runs no actors —
/// the bus alone, with the cached user state dropped.
async fn announce(svc: &Svc, sessions: Option<&Sessions>, user_id: &str, sub: SubscriptionRecord) {
    if let Some(sessions) = sessions {
        sessions.subscription_changed(user_id, sub).await;
        return;
    }
    let _ = svc.cache.del(&format!("user:{user_id}")).await;
    let msg = BusMessage {
        origin: svc.instance_id.clone(),
        topic: "user.subscription".into(),
        payload: serde_json::json!({ "user_id": user_id, "subscription": &sub }).to_string(),
    };
    if let Err(e) = svc.cache.publish(&msg).await {
        tracing::warn!(error = %e, user_id, "announcing a repaired subscription failed; resident views catch up when they reload");
    }
}

/// Reconcile one project against its Stripe account.
pub async fn reconcile_project(
    svc: &Svc,
    sessions: Option<&Sessions>,
    project: &Project,
) -> Result<ProjectReport, ReconcileError> {
    let key = project
        .stripe_secret_key
        .as_ref()
        .ok_or_else(|| ReconcileError::NotConfigured(project.slug.clone()))?;
    let started = now_ms();
    let mut report = ProjectReport {
        project: project.slug.clone(),
        project_id: project.id.clone(),
        ..Default::default()
    };
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("status", "all"), ("limit", PAGE)];
        if let Some(a) = &after {
            query.push(("starting_after", a.as_str()));
        }
        let page = billing::stripe_get(svc, key, &["subscriptions"], &query)
            .await?
            .ok_or_else(|| ReconcileError::Stripe("GET /v1/subscriptions: 404".into()))?;
        let data = page
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| ReconcileError::Stripe("subscription list has no data".into()))?;
        for obj in data {
            let Some(s) = read_subscription(obj) else {
                tracing::warn!(project = %project.slug, id = ?obj.get("id"), "Stripe listed a subscription we cannot read");
                continue;
            };
            report.checked += 1;
            if let Some((user_id, sub)) = repair(svc, project, &s, started).await? {
                report.repaired += 1;
                metrics::counter!("reauth_stripe_reconcile_repairs_total", "project" => project.slug.clone())
                    .increment(1);
                tracing::info!(project = %project.slug, subscription = %sub.id, status = %sub.status, user_id = ?user_id, "reconcile repaired a subscription");
                if let Some(user_id) = user_id {
                    announce(svc, sessions, &user_id, sub).await;
                }
            }
        }
        let has_more = page
            .get("has_more")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let last = data
            .last()
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str);
        match (has_more, last) {
            (true, Some(id)) => after = Some(id.to_string()),
            _ => break,
        }
    }
    tracing::info!(project = %project.slug, checked = report.checked, repaired = report.repaired, "Stripe reconcile done");
    Ok(report)
}

/// Make SQL match one listed subscription: `Some((owner, row))` when a row was written (a row
/// without a user is repaired too, but no view shows it).
async fn repair(
    svc: &Svc,
    project: &Project,
    s: &SubFields,
    started: i64,
) -> Result<Option<(Option<String>, SubscriptionRecord)>, ReconcileError> {
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT COALESCE((SELECT id FROM end_users WHERE id = $1 AND project_id = $2),
                         (SELECT id FROM end_users WHERE project_id = $2 AND stripe_customer_id = $3))",
    )
    .bind(&s.user_hint)
    .bind(&project.id)
    .bind(&s.customer)
    .fetch_one(&svc.db.pool)
    .await?;
    let row = sqlx::query(
        "SELECT user_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at
         FROM subscriptions WHERE project_id = $1 AND id = $2",
    )
    .bind(&project.id)
    .bind(&s.id)
    .fetch_optional(&svc.db.pool)
    .await?;
    let now = now_ms();
    let written = match row {
        None => {
            // Missing: only a subscription of one of our users is ours to keep (an account
            // shared by several projects lists everyone's).
            if owner.is_none() {
                return Ok(None);
            }
            let sql = format!(
                "INSERT INTO subscriptions (id, project_id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (project_id, id) DO NOTHING
                 {RETURNING_SUB}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&s.id)
                .bind(&project.id)
                .bind(&owner)
                .bind(&s.customer)
                .bind(&s.price)
                .bind(&s.status)
                .bind(s.period_end)
                .bind(i64::from(s.cancel_at_period_end))
                // Its recency is its creation: any event about it is newer and still applies.
                .bind(s.created.unwrap_or(0))
                .bind(now)
                .fetch_optional(&svc.db.pool)
                .await?
        }
        Some(r) => {
            let user_id: Option<String> = r.try_get("user_id")?;
            let price: Option<String> = r.try_get("price_id")?;
            let status: String = r.try_get("status")?;
            let period_end: Option<i64> = r.try_get("current_period_end")?;
            let cancel = r.try_get::<i64, _>("cancel_at_period_end")? != 0;
            let source_created: i64 = r.try_get("source_created")?;
            let updated_at: i64 = r.try_get("updated_at")?;
            let drift = status != s.status
                || (s.price.is_some() && price != s.price)
                || (s.period_end.is_some() && period_end != s.period_end)
                || cancel != s.cancel_at_period_end
                || (user_id.is_none() && owner.is_some());
            if !drift || updated_at >= started - FRESH_MS {
                return Ok(None);
            }
            // Only over the row as read: a webhook writing meanwhile knows better.
            let sql = format!(
                "UPDATE subscriptions SET status = $1, price_id = COALESCE($2, price_id),
                    current_period_end = COALESCE($3, current_period_end), cancel_at_period_end = $4,
                    user_id = COALESCE(user_id, $5), updated_at = $6
                 WHERE project_id = $7 AND id = $8 AND source_created = $9 AND updated_at = $10
                 {RETURNING_SUB}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&s.status)
                .bind(&s.price)
                .bind(s.period_end)
                .bind(i64::from(s.cancel_at_period_end))
                .bind(&owner)
                .bind(now)
                .bind(&project.id)
                .bind(&s.id)
                .bind(source_created)
                .bind(updated_at)
                .fetch_optional(&svc.db.pool)
                .await?
        }
    };
    let Some(row) = written else { return Ok(None) };
    Ok(Some((row.try_get("user_id")?, subscription_of(&row)?)))
}

fn subscription_of(r: &sqlx::any::AnyRow) -> Result<SubscriptionRecord, ReconcileError> {
    Ok(SubscriptionRecord {
        id: r.try_get("id")?,
        price_id: r.try_get("price_id")?,
        status: r.try_get("status")?,
        current_period_end: r.try_get("current_period_end")?,
        cancel_at_period_end: r.try_get::<i64, _>("cancel_at_period_end")? != 0,
        source_created: r.try_get("source_created")?,
    })
}

/// Reconcile every project that has a Stripe secret key, one after another. One project's
/// failure (a revoked key, Stripe down) is in its report and does not stop the others; `Err`
/// only when the projects cannot be listed.
pub async fn reconcile_all(
    svc: &Svc,
    sessions: Option<&Sessions>,
) -> Result<Vec<ProjectReport>, ReconcileError> {
    let projects = store::list_projects(&svc.db, &svc.master_key).await?;
    let mut reports = Vec::new();
    for p in projects.iter().filter(|p| p.stripe_secret_key.is_some()) {
        match reconcile_project(svc, sessions, p).await {
            Ok(r) => reports.push(r),
            Err(e) => {
                tracing::warn!(project = %p.slug, error = %e, "Stripe reconcile failed");
                reports.push(ProjectReport {
                    project: p.slug.clone(),
                    project_id: p.id.clone(),
                    error: Some(e.to_string()),
                    ..Default::default()
                });
            }
        }
    }
    Ok(reports)
}

/// The CLI's entry: one project by slug, or every project with a Stripe key.
pub async fn reconcile_cli(
    svc: &Arc<crate::services::Services>,
    slug: Option<&str>,
) -> Result<Vec<ProjectReport>, ReconcileError> {
    match slug {
        None => reconcile_all(svc, None).await,
        Some(slug) => {
            let p = store::get_project_by_slug(&svc.db, &svc.master_key, slug)
                .await?
                .ok_or_else(|| ReconcileError::NoProject(slug.to_string()))?;
            Ok(vec![reconcile_project(svc, None, &p).await?])
        }
    }
}
