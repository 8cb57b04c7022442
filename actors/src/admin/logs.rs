//! Read-only views of what a project's users and providers did: subscriptions (as the Stripe
//! webhooks left them), the email log and the Stripe event ledger with each event's outcome.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Admin, AdminError, AdminResult, Caller, Page, PageReq, page_of};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    pub id: String,
    pub user_id: Option<String>,
    pub customer_id: String,
    pub price_id: Option<String>,
    /// The plan the project maps `price_id` to, if any.
    pub plan: Option<String>,
    pub status: String,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmailLogEntry {
    pub id: String,
    pub to: String,
    pub from: String,
    pub subject: String,
    /// `magic_link`.
    pub kind: String,
    /// `accepted` (by Resend), `failed`, or `outbox` (dev mode).
    pub status: String,
    pub provider_id: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StripeEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// When Stripe created the event (ms).
    pub created: i64,
    /// The outcome: `applied`, `stale`, `duplicate`, `ignored` or `unreadable`.
    pub status: String,
    pub error: Option<String>,
    pub received_at: i64,
}

/// The cursor of the Stripe event ledger: `<received_at>:<event_id>` (events of one
/// millisecond are ordered by id, so no page boundary skips or repeats one).
fn stripe_cursor(e: &StripeEvent) -> String {
    format!("{}:{}", e.received_at, e.event_id)
}

fn parse_stripe_cursor(c: &str) -> AdminResult<(i64, String)> {
    c.split_once(':')
        .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
        .filter(|(_, id)| !id.is_empty())
        .ok_or_else(|| {
            AdminError::invalid("starting_after", "not a cursor of this list (next_cursor)")
        })
}

fn subscription_from_row(
    r: &AnyRow,
    plans: &[crate::model::PlanMapping],
) -> Result<Subscription, sqlx::Error> {
    let price_id: Option<String> = r.try_get("price_id")?;
    let plan = price_id
        .as_deref()
        .and_then(|p| plans.iter().find(|m| m.price_id == p))
        .map(|m| m.plan.clone());
    Ok(Subscription {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        customer_id: r.try_get("customer_id")?,
        price_id,
        plan,
        status: r.try_get("status")?,
        current_period_end: r.try_get("current_period_end")?,
        cancel_at_period_end: r.try_get::<i64, _>("cancel_at_period_end")? != 0,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Admin {
    /// The project's subscriptions, or one user's, in id order.
    pub async fn list_subscriptions(
        &self,
        caller: &Caller,
        project_id: &str,
        user_id: Option<&str>,
        page: &PageReq,
    ) -> AdminResult<Page<Subscription>> {
        let limit = page.limit()?;
        let project = self.project_of(caller, project_id).await?;
        if let Some(uid) = user_id {
            self.user_in(project_id, uid).await?;
        }
        let rows = sqlx::query(
            "SELECT id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, updated_at
             FROM subscriptions
             WHERE project_id = $1 AND ($2 IS NULL OR user_id = $2) AND ($3 IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(&page.starting_after)
        .bind(limit + 1)
        .fetch_all(&self.svc.db.pool)
        .await?;
        let list = rows
            .iter()
            .map(|r| subscription_from_row(r, &project.plans))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(page_of(list, limit, |s| s.id.clone()))
    }

    /// The project's email log, newest first.
    pub async fn list_email_log(
        &self,
        caller: &Caller,
        project_id: &str,
        page: &PageReq,
    ) -> AdminResult<Page<EmailLogEntry>> {
        let limit = page.limit()?;
        self.project_of(caller, project_id).await?;
        let rows = sqlx::query(
            "SELECT id, to_email, from_email, subject, kind, status, provider_id, error, created_at
             FROM email_log
             WHERE project_id = $1 AND ($2 IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(project_id)
        .bind(&page.starting_after)
        .bind(limit + 1)
        .fetch_all(&self.svc.db.pool)
        .await?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(EmailLogEntry {
                    id: r.try_get("id")?,
                    to: r.try_get("to_email")?,
                    from: r.try_get("from_email")?,
                    subject: r.try_get("subject")?,
                    kind: r.try_get("kind")?,
                    status: r.try_get("status")?,
                    provider_id: r.try_get("provider_id")?,
                    error: r.try_get("error")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(page_of(list, limit, |e| e.id.clone()))
    }

    /// The project's Stripe event ledger, newest received first (payloads stay private).
    pub async fn list_stripe_events(
        &self,
        caller: &Caller,
        project_id: &str,
        page: &PageReq,
    ) -> AdminResult<Page<StripeEvent>> {
        let limit = page.limit()?;
        let (after_at, after_id) = match page.starting_after.as_deref() {
            None | Some("") => (None, None),
            Some(c) => {
                let (at, id) = parse_stripe_cursor(c)?;
                (Some(at), Some(id))
            }
        };
        self.project_of(caller, project_id).await?;
        let rows = sqlx::query(
            "SELECT event_id, event_type, created, status, error, received_at
             FROM stripe_events
             WHERE project_id = $1
               AND (CAST($2 AS BIGINT) IS NULL OR received_at < $2 OR (received_at = $2 AND event_id < $3))
             ORDER BY received_at DESC, event_id DESC LIMIT $4",
        )
        .bind(project_id)
        .bind(after_at)
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(&self.svc.db.pool)
        .await?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(StripeEvent {
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    created: r.try_get("created")?,
                    status: r.try_get("status")?,
                    error: r.try_get("error")?,
                    received_at: r.try_get("received_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(page_of(list, limit, stripe_cursor))
    }
}
