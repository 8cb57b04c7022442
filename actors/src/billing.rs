//! Stripe billing: webhook verification (async-stripe's `Webhook`, 5-minute tolerance), an
//! idempotent event ledger, tolerant reading of the fields we need (both the pre- and
//! post-2025-03-31 object shapes), out-of-order safety by event time, and Checkout / Billing
//! Portal sessions through the project's own Stripe account. Runs in tasks spawned by the
//! ProjectActor, which owns the project's Stripe client.

use std::collections::HashMap;
use std::time::Duration;

use reauth_runtime::now_ms;
use serde_json::Value;
use stripe_webhook::{Webhook, WebhookError};

use crate::model::{Project, SubscriptionRecord, grants_plan};
use crate::services::Svc;
use crate::session::{Sessions, load_user_state_sql};

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("Stripe is not configured for this project")]
    NotConfigured,
    #[error("signature verification failed: {0}")]
    BadSignature(String),
    #[error("the event is not valid JSON of a Stripe event")]
    Malformed,
    #[error("this price is not offered by the project")]
    PriceNotAllowed,
    #[error("redirect URL is not on the project's allowed origins")]
    InvalidRedirect,
    #[error("the user already has an active subscription; use the billing portal to change plans")]
    AlreadySubscribed,
    #[error("the user has no billing account yet")]
    NoCustomer,
    #[error("Stripe request failed: {0}")]
    Stripe(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<sqlx::Error> for BillingError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// What happened to a webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Seen before and already applied (or ignored): acknowledged, not applied again.
    Duplicate,
    /// A type we do not handle: recorded and acknowledged.
    Ignored,
    /// A handled type we could not understand: stored raw with an error status (replayable).
    Unreadable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Unreadable => "unreadable",
        }
    }
}

/// A Stripe API client for one project's secret key.
pub fn client(svc: &Svc, project: &Project) -> Option<stripe::Client> {
    let key = project.stripe_secret_key.as_ref()?;
    stripe::ClientBuilder::new(key.expose())
        .url(svc.settings.stripe_api_url.clone())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(
            |e| tracing::error!(project = %project.slug, error = %e, "Stripe client not built"),
        )
        .ok()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(p)?,
        };
    }
    cur.as_str()
}

fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(p)?,
        };
    }
    cur.as_i64()
}

/// An id field that may be a plain id or an expanded object.
fn id_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    match v.get(key)? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
}

/// The fields of a subscription we keep, read tolerantly.
struct SubFields {
    id: String,
    customer: String,
    status: String,
    price: Option<String>,
    period_end: Option<i64>,
    cancel_at_period_end: bool,
    user_hint: Option<String>,
}

fn read_subscription(obj: &Value) -> Option<SubFields> {
    let item = obj
        .get("items")
        .and_then(|i| i.get("data"))
        .and_then(|d| d.get(0));
    // `current_period_end` moved from the subscription to its items in API 2025-03-31.
    let period_end = i64_at(obj, &["current_period_end"])
        .or_else(|| item.and_then(|i| i64_at(i, &["current_period_end"])));
    let price = item
        .and_then(|i| str_at(i, &["price", "id"]).or_else(|| str_at(i, &["plan", "id"])))
        .or_else(|| str_at(obj, &["plan", "id"]))
        .map(String::from);
    Some(SubFields {
        id: obj.get("id")?.as_str()?.to_string(),
        customer: id_of(obj, "customer")?.to_string(),
        status: obj.get("status")?.as_str()?.to_string(),
        price,
        period_end: period_end.map(|s| s * 1000),
        cancel_at_period_end: obj
            .get("cancel_at_period_end")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        user_hint: str_at(obj, &["metadata", "reauth_user_id"]).map(String::from),
    })
}

/// The fields of an invoice we keep: its subscription, customer, period end and price.
struct InvoiceFields {
    subscription: String,
    customer: String,
    price: Option<String>,
    period_end: Option<i64>,
}

fn read_invoice(obj: &Value) -> Option<InvoiceFields> {
    // Older API versions: `subscription` on the invoice; newer: under `parent`.
    let subscription = id_of(obj, "subscription")
        .or_else(|| str_at(obj, &["parent", "subscription_details", "subscription"]))?;
    let line = obj
        .get("lines")
        .and_then(|l| l.get("data"))
        .and_then(|d| d.get(0));
    let price = line.and_then(|l| {
        str_at(l, &["price", "id"])
            .or_else(|| str_at(l, &["pricing", "price_details", "price"]))
            .map(String::from)
    });
    let period_end = line
        .and_then(|l| i64_at(l, &["period", "end"]))
        .or_else(|| i64_at(obj, &["period_end"]));
    Some(InvoiceFields {
        subscription: subscription.to_string(),
        customer: id_of(obj, "customer")?.to_string(),
        price,
        period_end: period_end.map(|s| s * 1000),
    })
}

/// Handle one webhook delivery for `project`.
pub async fn handle_webhook(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    payload: &str,
    signature: &str,
) -> Result<Outcome, BillingError> {
    let secret = project
        .stripe_webhook_secret
        .as_ref()
        .ok_or(BillingError::NotConfigured)?;
    let now_secs = now_ms() / 1000;
    match Webhook::construct_event_with_timestamp(payload, signature, secret.expose(), now_secs) {
        // BadParse comes after a successful signature and timestamp check: the typed parse of a
        // newer API shape failed, which is fine — we read the fields tolerantly below.
        Ok(_) | Err(WebhookError::BadParse(_)) => {}
        Err(e) => return Err(BillingError::BadSignature(e.to_string())),
    }
    let event: Value = serde_json::from_str(payload).map_err(|_| BillingError::Malformed)?;
    let (Some(event_id), Some(kind), Some(created), Some(object)) = (
        event.get("id").and_then(Value::as_str),
        event.get("type").and_then(Value::as_str),
        event.get("created").and_then(Value::as_i64),
        event
            .get("data")
            .and_then(|d| d.get("object"))
            .filter(|o| o.is_object()),
    ) else {
        return Err(BillingError::Malformed);
    };
    let created_ms = created * 1000;
    let now = now_ms();

    let mut tx = svc.db.pool.begin().await?;
    let applied = match kind {
        "checkout.session.completed" => Some(apply_checkout(&mut tx, project, object).await?),
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => Some(match read_subscription(object) {
            Some(mut s) => {
                if kind == "customer.subscription.deleted" {
                    s.status = "canceled".into();
                }
                Ok(apply_subscription(&mut tx, project, &s, created_ms, now).await?)
            }
            None => Err("subscription object lacks id, customer or status"),
        }),
        "invoice.paid" | "invoice.payment_failed" => Some(match read_invoice(object) {
            Some(inv) => {
                let status = if kind == "invoice.paid" {
                    "active"
                } else {
                    "past_due"
                };
                Ok(apply_invoice(&mut tx, project, &inv, status, created_ms, now).await?)
            }
            None => Err("invoice object lacks subscription or customer"),
        }),
        _ => None,
    };
    let (status, error, users) = match applied {
        None => ("ignored", None, Vec::new()),
        Some(Ok(users)) => ("applied", None, users),
        Some(Err(reason)) => ("error", Some(reason), Vec::new()),
    };
    // Record the event. One already recorded (unless it is stored in error) makes this delivery
    // a replay: roll back whatever it did and acknowledge it. Concurrent deliveries of one
    // event serialize on the ledger's primary key, so exactly one commits.
    let recorded = sqlx::query(
        "INSERT INTO stripe_events (project_id, event_id, event_type, created, status, error, payload, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (project_id, event_id) DO UPDATE SET status = excluded.status, error = excluded.error, received_at = excluded.received_at
         WHERE stripe_events.status = 'error'",
    )
    .bind(&project.id)
    .bind(event_id)
    .bind(kind)
    .bind(created_ms)
    .bind(status)
    .bind(error)
    .bind(payload)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if recorded == 0 {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    tx.commit().await?;
    if status == "ignored" {
        metrics::counter!("reauth_stripe_events_total", "outcome" => "ignored").increment(1);
        return Ok(Outcome::Ignored);
    }

    if let Some(reason) = error {
        metrics::counter!("reauth_stripe_events_total", "outcome" => "unreadable").increment(1);
        tracing::error!(project = %project.slug, event_id, kind, reason, "Stripe event stored unapplied; it is re-applied when delivered again");
        return Ok(Outcome::Unreadable);
    }
    metrics::counter!("reauth_stripe_events_total", "outcome" => "applied").increment(1);
    for push in users {
        match push {
            Push::Subscription(user_id, sub) => sessions.subscription_changed(&user_id, sub).await,
            Push::Reload(user_id) => {
                if let Err(e) = sessions.user_changed(&project.id, &user_id).await {
                    tracing::warn!(error = %e, "pushing the new plan failed; caches expire within the hour");
                }
            }
        }
    }
    Ok(Outcome::Applied)
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// What to tell the session actors after the transaction commits.
enum Push {
    /// The user's data changed in ways best re-read (a customer was linked).
    Reload(String),
    /// One subscription of the user changed; actors merge it by recency.
    Subscription(String, SubscriptionRecord),
}

/// `RETURNING` of the subscription upserts: a row only when the row changed.
const RETURNING_SUB: &str = "RETURNING user_id, id, price_id, status, current_period_end, cancel_at_period_end, source_created";

fn push_of(row: Option<sqlx::any::AnyRow>) -> Result<Vec<Push>, BillingError> {
    use sqlx::Row;
    let Some(r) = row else { return Ok(Vec::new()) };
    let Some(user) = r.try_get::<Option<String>, _>("user_id")? else {
        return Ok(Vec::new());
    };
    let sub = SubscriptionRecord {
        id: r.try_get("id")?,
        price_id: r.try_get("price_id")?,
        status: r.try_get("status")?,
        current_period_end: r.try_get("current_period_end")?,
        cancel_at_period_end: r.try_get::<i64, _>("cancel_at_period_end")? != 0,
        source_created: r.try_get("source_created")?,
    };
    Ok(vec![Push::Subscription(user, sub)])
}

/// Link the Checkout's customer to the user (`client_reference_id`) and attach any
/// subscriptions of that customer that arrived before the link.
async fn apply_checkout(
    tx: &mut Tx<'_>,
    project: &Project,
    obj: &Value,
) -> Result<Result<Vec<Push>, &'static str>, BillingError> {
    if obj.get("mode").and_then(Value::as_str) != Some("subscription") {
        return Ok(Ok(Vec::new()));
    }
    let (Some(user_id), Some(customer)) = (
        obj.get("client_reference_id").and_then(Value::as_str),
        id_of(obj, "customer"),
    ) else {
        return Ok(Err(
            "checkout session lacks client_reference_id or customer",
        ));
    };
    let n = sqlx::query(
        "UPDATE end_users SET stripe_customer_id = $1, updated_at = $2
         WHERE id = $3 AND project_id = $4 AND (stripe_customer_id IS NULL OR stripe_customer_id = $1)",
    )
    .bind(customer)
    .bind(now_ms())
    .bind(user_id)
    .bind(&project.id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(Err(
            "client_reference_id is not a user of this project (or has another customer)",
        ));
    }
    sqlx::query("UPDATE subscriptions SET user_id = $1 WHERE project_id = $2 AND customer_id = $3 AND user_id IS NULL")
        .bind(user_id)
        .bind(&project.id)
        .bind(customer)
        .execute(&mut **tx)
        .await?;
    Ok(Ok(vec![Push::Reload(user_id.to_string())]))
}

/// Upsert a subscription unless the stored state is newer (out-of-order safety): an event only
/// wins over one created earlier; at the same second a cancellation wins.
async fn apply_subscription(
    tx: &mut Tx<'_>,
    project: &Project,
    s: &SubFields,
    event_created: i64,
    now: i64,
) -> Result<Vec<Push>, BillingError> {
    // The owner: the metadata hint (set by our Checkout) when it is a user of this project,
    // else the user linked to the customer. RETURNING yields a row only when the row changed.
    let sql = format!(
        "INSERT INTO subscriptions (id, project_id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at)
         VALUES ($1, $2,
            COALESCE((SELECT id FROM end_users WHERE id = $3 AND project_id = $2),
                     (SELECT id FROM end_users WHERE project_id = $2 AND stripe_customer_id = $4)),
            $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO UPDATE SET
            user_id = COALESCE(excluded.user_id, subscriptions.user_id),
            price_id = COALESCE(excluded.price_id, subscriptions.price_id),
            status = excluded.status,
            current_period_end = COALESCE(excluded.current_period_end, subscriptions.current_period_end),
            cancel_at_period_end = excluded.cancel_at_period_end,
            source_created = excluded.source_created,
            updated_at = excluded.updated_at
         WHERE subscriptions.project_id = excluded.project_id
           AND (subscriptions.source_created < excluded.source_created
                OR (subscriptions.source_created = excluded.source_created AND excluded.status = 'canceled'))
         {RETURNING_SUB}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&s.id)
        .bind(&project.id)
        .bind(&s.user_hint)
        .bind(&s.customer)
        .bind(&s.price)
        .bind(&s.status)
        .bind(s.period_end)
        .bind(i64::from(s.cancel_at_period_end))
        .bind(event_created)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
    push_of(row)
}

/// An invoice moves the subscription's status (paid -> active, failed -> past_due) and period,
/// again only when it is not older than what is stored.
async fn apply_invoice(
    tx: &mut Tx<'_>,
    project: &Project,
    inv: &InvoiceFields,
    status: &str,
    event_created: i64,
    now: i64,
) -> Result<Vec<Push>, BillingError> {
    let sql = format!(
        "INSERT INTO subscriptions (id, project_id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at)
         VALUES ($1, $2, (SELECT id FROM end_users WHERE project_id = $2 AND stripe_customer_id = $3),
                 $3, $4, $5, $6, 0, $7, $8)
         ON CONFLICT (id) DO UPDATE SET
            user_id = COALESCE(excluded.user_id, subscriptions.user_id),
            price_id = COALESCE(excluded.price_id, subscriptions.price_id),
            status = CASE WHEN subscriptions.status = 'canceled' THEN subscriptions.status ELSE excluded.status END,
            current_period_end = COALESCE(excluded.current_period_end, subscriptions.current_period_end),
            source_created = excluded.source_created,
            updated_at = excluded.updated_at
         WHERE subscriptions.project_id = excluded.project_id
           AND subscriptions.source_created <= excluded.source_created
         {RETURNING_SUB}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&inv.subscription)
        .bind(&project.id)
        .bind(&inv.customer)
        .bind(&inv.price)
        .bind(status)
        .bind(inv.period_end)
        .bind(event_created)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
    push_of(row)
}

// ---- Checkout and Billing Portal ----

pub struct CheckoutRequest {
    pub user_id: String,
    pub price_id: String,
    pub success_url: String,
    pub cancel_url: String,
}

fn stripe_err(e: impl std::fmt::Display) -> BillingError {
    BillingError::Stripe(e.to_string())
}

/// The user's Stripe customer, created (with their email and our user id) when missing.
async fn ensure_customer(
    svc: &Svc,
    client: &stripe::Client,
    project: &Project,
    user_id: &str,
) -> Result<String, BillingError> {
    let st = load_user_state_sql(svc, &project.id, user_id).await?;
    if let Some(c) = st.user.stripe_customer_id {
        return Ok(c);
    }
    let mut metadata = HashMap::new();
    metadata.insert("reauth_user_id".to_string(), user_id.to_string());
    metadata.insert("reauth_project_id".to_string(), project.id.clone());
    let customer = stripe_core::customer::CreateCustomer::new()
        .email(st.user.email.clone())
        .metadata(metadata)
        .send(client)
        .await
        .map_err(stripe_err)?;
    let id = customer.id.to_string();
    sqlx::query("UPDATE end_users SET stripe_customer_id = $1, updated_at = $2 WHERE id = $3 AND project_id = $4 AND stripe_customer_id IS NULL")
        .bind(&id)
        .bind(now_ms())
        .bind(user_id)
        .bind(&project.id)
        .execute(&svc.db.pool)
        .await?;
    // A concurrent request may have linked another customer first: use whichever is stored.
    let stored: Option<String> =
        sqlx::query_scalar("SELECT stripe_customer_id FROM end_users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&svc.db.pool)
            .await?;
    Ok(stored.unwrap_or(id))
}

/// A Checkout Session in subscription mode for a price in the plan mapping. A user who already
/// has a subscription granting a plan is sent to the portal instead (no second subscription).
pub async fn checkout(
    svc: &Svc,
    client: Option<stripe::Client>,
    project: &Project,
    req: CheckoutRequest,
) -> Result<String, BillingError> {
    let client = client.ok_or(BillingError::NotConfigured)?;
    if project.plan_for_price(&req.price_id).is_none() {
        return Err(BillingError::PriceNotAllowed);
    }
    let (Some(success), Some(cancel)) = (
        project.allowed_redirect(&req.success_url),
        project.allowed_redirect(&req.cancel_url),
    ) else {
        return Err(BillingError::InvalidRedirect);
    };
    let st = load_user_state_sql(svc, &project.id, &req.user_id).await?;
    if st
        .subscription
        .as_ref()
        .is_some_and(|s| grants_plan(&s.status))
    {
        return Err(BillingError::AlreadySubscribed);
    }
    let customer = ensure_customer(svc, &client, project, &req.user_id).await?;
    let mut line = stripe_checkout::checkout_session::CreateCheckoutSessionLineItems::new();
    line.price = Some(req.price_id.clone());
    line.quantity = Some(1);
    let mut metadata = HashMap::new();
    metadata.insert("reauth_user_id".to_string(), req.user_id.clone());
    let mut sub_data =
        stripe_checkout::checkout_session::CreateCheckoutSessionSubscriptionData::new();
    sub_data.metadata = Some(metadata);
    let session = stripe_checkout::checkout_session::CreateCheckoutSession::new()
        .mode(stripe_checkout::CheckoutSessionMode::Subscription)
        .customer(customer)
        .client_reference_id(req.user_id.clone())
        .line_items(vec![line])
        .subscription_data(sub_data)
        .success_url(success)
        .cancel_url(cancel)
        .send(&client)
        .await
        .map_err(stripe_err)?;
    session
        .url
        .ok_or_else(|| BillingError::Stripe("checkout session has no url".into()))
}

/// A Billing Portal session for the user's customer.
pub async fn portal(
    svc: &Svc,
    client: Option<stripe::Client>,
    project: &Project,
    user_id: &str,
    return_url: &str,
) -> Result<String, BillingError> {
    let client = client.ok_or(BillingError::NotConfigured)?;
    let ret = project
        .allowed_redirect(return_url)
        .ok_or(BillingError::InvalidRedirect)?;
    let st = load_user_state_sql(svc, &project.id, user_id).await?;
    let customer = st.user.stripe_customer_id.ok_or(BillingError::NoCustomer)?;
    let session = stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
        .customer(customer)
        .return_url(ret)
        .send(&client)
        .await
        .map_err(stripe_err)?;
    Ok(session.url)
}
