//! Stripe billing: webhook verification (async-stripe's `Webhook`, 5-minute tolerance), an
//! idempotent event ledger that says what each event did, tolerant reading of the fields we
//! need (both the pre- and post-2025-03-31 object shapes), and Checkout / Billing Portal
//! sessions through the project's own Stripe account. Runs in tasks spawned by the
//! ProjectActor, which owns the project's Stripe client.
//!
//! Ordering follows Stripe's advice: events are not delivered in order, so a subscription's
//! stored state only moves forward by event time, and when that time cannot decide (two events
//! of one second) or an event says nothing about the status (invoices), the subscription is
//! fetched from the Stripe API and what Stripe returns is stored. A subscription's status comes
//! from subscription objects only.

use std::collections::HashMap;
use std::time::Duration;

use reauth_runtime::config::Secret;
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

/// What a webhook event did. The ledger (`stripe_events.status`) stores the first four for
/// the event; `Duplicate` is the answer to a delivery of an event already recorded, whose
/// ledger row keeps what the event did the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its state (or Stripe's current state, fetched because of it) was stored.
    Applied,
    /// Older than the stored state: recorded, nothing changed.
    Stale,
    /// Seen before: acknowledged, not applied again.
    Duplicate,
    /// Not ours to act on (a type we do not handle, another project's Checkout, an invoice of
    /// no subscription): recorded and acknowledged.
    Ignored,
    /// A handled type we could not understand: stored raw as `unreadable`, answered 200 (a
    /// retry would not make it readable), counted and logged. A resend from the Stripe
    /// Dashboard applies it again; `reauth stripe reconcile` repairs what it missed.
    Unreadable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
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

/// `GET` a Stripe API path (`segments` joined under `/v1/`) with the project's secret key,
/// read as plain JSON so a newer API shape never fails a typed parse. `Ok(None)` is Stripe's
/// 404 (no such object in this account).
pub(crate) async fn stripe_get(
    svc: &Svc,
    key: &Secret,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<Option<Value>, BillingError> {
    let mut url = reqwest::Url::parse(&svc.settings.stripe_api_url)
        .map_err(|e| BillingError::Stripe(format!("REAUTH_STRIPE_API_URL: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| BillingError::Stripe("REAUTH_STRIPE_API_URL cannot be a base".into()))?
        .pop_if_empty()
        .push("v1")
        .extend(segments);
    let what = format!("GET /v1/{}", segments.join("/"));
    let res = svc
        .http
        .get(url)
        .bearer_auth(key.expose())
        .query(query)
        .send()
        .await
        .map_err(|e| BillingError::Stripe(format!("{what}: {e}")))?;
    let status = res.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body: Value = res
        .json()
        .await
        .map_err(|e| BillingError::Stripe(format!("{what}: {status}, body not JSON: {e}")))?;
    if !status.is_success() {
        let msg = str_at(&body, &["error", "message"]).unwrap_or("no message");
        return Err(BillingError::Stripe(format!("{what}: {status}: {msg}")));
    }
    Ok(Some(body))
}

/// The subscription as Stripe has it now, `None` when Stripe does not know it.
async fn fetch_subscription(
    svc: &Svc,
    key: &Secret,
    id: &str,
) -> Result<Option<SubFields>, BillingError> {
    match stripe_get(svc, key, &["subscriptions", id], &[]).await? {
        Some(obj) => read_subscription(&obj).map(Some).ok_or_else(|| {
            BillingError::Stripe(format!("subscription {id} lacks id, customer or status"))
        }),
        None => Ok(None),
    }
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
#[derive(Debug, Clone)]
pub(crate) struct SubFields {
    pub id: String,
    pub customer: String,
    pub status: String,
    pub price: Option<String>,
    /// Milliseconds.
    pub period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub user_hint: Option<String>,
    /// When Stripe created the subscription (milliseconds).
    pub created: Option<i64>,
}

pub(crate) fn read_subscription(obj: &Value) -> Option<SubFields> {
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
        created: i64_at(obj, &["created"]).map(|s| s * 1000),
    })
}

/// The subscription an invoice belongs to: older API versions name it on the invoice, newer
/// ones under `parent`. `None` for an invoice of no subscription (a one-off invoice).
fn invoice_subscription(obj: &Value) -> Option<&str> {
    id_of(obj, "subscription")
        .or_else(|| str_at(obj, &["parent", "subscription_details", "subscription"]))
}

/// The event being handled, for the ledger and the log line.
struct Ev<'a> {
    id: &'a str,
    kind: &'a str,
    /// `created` of the event, in milliseconds.
    created: i64,
    payload: &'a str,
}

/// What the log line of a delivery says beyond its outcome.
#[derive(Default)]
struct Trail {
    event_id: Option<String>,
    kind: Option<String>,
    /// The subscription was fetched from the Stripe API to decide.
    fetched: bool,
    /// Why the event was stale, ignored or unreadable.
    note: Option<String>,
    /// The event's `created` (milliseconds).
    created: Option<i64>,
}

/// Handle one webhook delivery for `project`: one log line per delivery says what happened.
pub async fn handle_webhook(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    payload: &str,
    signature: &str,
) -> Result<Outcome, BillingError> {
    let mut trail = Trail::default();
    let r = webhook_inner(svc, sessions, project, payload, signature, &mut trail).await;
    let (event_id, kind) = (
        trail.event_id.as_deref().unwrap_or("-"),
        trail.kind.as_deref().unwrap_or("-"),
    );
    let (fetched, note) = (trail.fetched, trail.note.as_deref().unwrap_or(""));
    let stat = match &r {
        Ok(o) => o.as_str(),
        Err(
            BillingError::BadSignature(_) | BillingError::Malformed | BillingError::NotConfigured,
        ) => "rejected",
        Err(_) => "failed",
    };
    let lag = match (&r, trail.created) {
        (Ok(Outcome::Applied), Some(created)) => Some(now_ms() - created),
        _ => None,
    };
    project.stats.webhook(stat, lag);
    let project = project.slug.as_str();
    match &r {
        Ok(Outcome::Unreadable) => tracing::warn!(
            project,
            event_id,
            kind,
            outcome = "unreadable",
            fetched,
            note,
            "Stripe webhook: stored as unreadable and answered 200, so Stripe will not retry it; after a fix, resend it from the Stripe Dashboard or run `reauth stripe reconcile`"
        ),
        Ok(o) => tracing::info!(
            project,
            event_id,
            kind,
            outcome = o.as_str(),
            fetched,
            note,
            "Stripe webhook"
        ),
        Err(
            e @ (BillingError::BadSignature(_)
            | BillingError::Malformed
            | BillingError::NotConfigured),
        ) => {
            tracing::warn!(project, event_id, kind, outcome = "rejected", error = %e, "Stripe webhook: rejected with 400, nothing stored")
        }
        Err(e) => tracing::warn!(
            project, event_id, kind, outcome = "retry", fetched, error = %e,
            "Stripe webhook: not recorded, answered 5xx so Stripe delivers it again"
        ),
    }
    r
}

async fn webhook_inner(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    payload: &str,
    signature: &str,
    trail: &mut Trail,
) -> Result<Outcome, BillingError> {
    let secret = project
        .stripe_webhook_secret
        .as_ref()
        .ok_or(BillingError::NotConfigured)?;
    let now_secs = now_ms() / 1000;
    // async-stripe logs its typed-parse failures at ERROR (and API version differences at
    // WARN) from inside; both are expected here — we read the fields tolerantly below — so the
    // call runs with no subscriber and we say it ourselves, at debug.
    let verified =
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
            Webhook::construct_event_with_timestamp(payload, signature, secret.expose(), now_secs)
        });
    let typed_parse_failed = match verified {
        Ok(_) => None,
        // BadParse comes after a successful signature and timestamp check.
        Err(WebhookError::BadParse(why)) => Some(why),
        Err(e) => return Err(BillingError::BadSignature(e.to_string())),
    };
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
    trail.event_id = Some(event_id.to_string());
    trail.kind = Some(kind.to_string());
    trail.created = Some(created * 1000);
    if let Some(why) = typed_parse_failed {
        tracing::debug!(
            event_id,
            kind,
            why,
            "async-stripe could not type this event; reading it tolerantly"
        );
    }
    let ev = Ev {
        id: event_id,
        kind,
        created: created * 1000,
        payload,
    };

    // A recorded event is acknowledged without work (and without a Stripe API call); the
    // ledger's primary key still settles concurrent first deliveries below.
    let recorded: Option<String> = sqlx::query_scalar(
        "SELECT status FROM stripe_events WHERE project_id = $1 AND event_id = $2",
    )
    .bind(&project.id)
    .bind(event_id)
    .fetch_optional(&svc.db.pool)
    .await?;
    if recorded.is_some_and(|s| !REAPPLIED.contains(&s.as_str())) {
        return Ok(Outcome::Duplicate);
    }

    match kind {
        "checkout.session.completed" => {
            let mut tx = svc.db.pool.begin().await?;
            let (outcome, pushes) = match apply_checkout(&mut tx, project, object).await? {
                Ok(p) => (Outcome::Applied, p),
                Err(note) => {
                    trail.note = Some(note.to_string());
                    (Outcome::Ignored, Vec::new())
                }
            };
            finish(sessions, project, &ev, tx, outcome, trail, pushes).await
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            let Some(mut s) = read_subscription(object) else {
                return unreadable(
                    svc,
                    project,
                    &ev,
                    trail,
                    "subscription object lacks id, customer or status",
                )
                .await;
            };
            let deleted = kind == "customer.subscription.deleted";
            if deleted {
                s.status = "canceled".into();
            }
            subscription_event(svc, sessions, project, &ev, s, deleted, trail).await
        }
        "invoice.paid" | "invoice.payment_failed" => {
            if id_of(object, "customer").is_none() {
                return unreadable(svc, project, &ev, trail, "invoice object lacks a customer")
                    .await;
            }
            let Some(sub_id) = invoice_subscription(object) else {
                trail.note = Some("an invoice of no subscription".into());
                let tx = svc.db.pool.begin().await?;
                return finish(
                    sessions,
                    project,
                    &ev,
                    tx,
                    Outcome::Ignored,
                    trail,
                    Vec::new(),
                )
                .await;
            };
            invoice_event(svc, sessions, project, &ev, sub_id, trail).await
        }
        _ => {
            let tx = svc.db.pool.begin().await?;
            finish(
                sessions,
                project,
                &ev,
                tx,
                Outcome::Ignored,
                trail,
                Vec::new(),
            )
            .await
        }
    }
}

/// Ledger statuses a new delivery of the same event may overwrite: the event was not
/// understood (`error` is the name 0001 gave `unreadable`).
const REAPPLIED: &[&str] = &["unreadable", "error"];

/// Where the stored state of a subscription stands against an event.
async fn stored_created(
    svc: &Svc,
    project: &Project,
    sub_id: &str,
) -> Result<Option<i64>, BillingError> {
    Ok(sqlx::query_scalar(
        "SELECT source_created FROM subscriptions WHERE project_id = $1 AND id = $2",
    )
    .bind(&project.id)
    .bind(sub_id)
    .fetch_optional(&svc.db.pool)
    .await?)
}

/// A subscription event: applied when newer than the stored state, stale when older; at the
/// same second the order is in doubt, so Stripe's current state decides (a deletion needs no
/// fetch: canceled is final).
async fn subscription_event(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    ev: &Ev<'_>,
    s: SubFields,
    deleted: bool,
    trail: &mut Trail,
) -> Result<Outcome, BillingError> {
    // Twice at most: a concurrent event can land between the look and the write.
    for _ in 0..2 {
        let stored = stored_created(svc, project, &s.id).await?;
        match stored {
            Some(st) if st > ev.created => {
                trail.note = Some("older than the stored state".into());
                let tx = svc.db.pool.begin().await?;
                return finish(sessions, project, ev, tx, Outcome::Stale, trail, Vec::new()).await;
            }
            Some(st) if st == ev.created && !deleted => {
                if let Some(key) = &project.stripe_secret_key {
                    return fetch_and_apply(svc, sessions, project, ev, key, &s.id, trail).await;
                }
                // No API key to ask Stripe: the later delivery wins, except over a cancellation.
                trail.note = Some("same-second tie decided without Stripe: no secret key".into());
                let mut tx = svc.db.pool.begin().await?;
                let pushes = upsert_event(&mut tx, project, &s, ev.created, true).await?;
                let outcome = if pushes.is_some() {
                    Outcome::Applied
                } else {
                    Outcome::Stale
                };
                return finish(
                    sessions,
                    project,
                    ev,
                    tx,
                    outcome,
                    trail,
                    pushes.unwrap_or_default(),
                )
                .await;
            }
            _ => {
                let mut tx = svc.db.pool.begin().await?;
                match upsert_event(&mut tx, project, &s, ev.created, false).await? {
                    Some(pushes) => {
                        return finish(sessions, project, ev, tx, Outcome::Applied, trail, pushes)
                            .await;
                    }
                    // Another event of this subscription got there first: look again.
                    None => tx.rollback().await?,
                }
            }
        }
    }
    trail.note = Some("lost two races with newer events".into());
    let tx = svc.db.pool.begin().await?;
    finish(sessions, project, ev, tx, Outcome::Stale, trail, Vec::new()).await
}

/// An invoice event never sets a status (a failed first invoice leaves the subscription
/// `incomplete`, not `past_due`): it prompts a fetch of its subscription, stored as Stripe has it.
async fn invoice_event(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    ev: &Ev<'_>,
    sub_id: &str,
    trail: &mut Trail,
) -> Result<Outcome, BillingError> {
    let Some(key) = &project.stripe_secret_key else {
        trail.note = Some("no Stripe secret key to fetch the invoice's subscription".into());
        let tx = svc.db.pool.begin().await?;
        return finish(
            sessions,
            project,
            ev,
            tx,
            Outcome::Ignored,
            trail,
            Vec::new(),
        )
        .await;
    };
    fetch_and_apply(svc, sessions, project, ev, key, sub_id, trail).await
}

/// Fetch the subscription from Stripe (before any transaction: no lock is held across the
/// network) and store what Stripe returns. A Stripe failure is an error, so the delivery is
/// answered 5xx and retried.
#[allow(clippy::too_many_arguments)]
async fn fetch_and_apply(
    svc: &Svc,
    sessions: &Sessions,
    project: &Project,
    ev: &Ev<'_>,
    key: &Secret,
    sub_id: &str,
    trail: &mut Trail,
) -> Result<Outcome, BillingError> {
    trail.fetched = true;
    let Some(s) = fetch_subscription(svc, key, sub_id).await? else {
        return unreadable(
            svc,
            project,
            ev,
            trail,
            "Stripe does not know the subscription (404)",
        )
        .await;
    };
    let mut tx = svc.db.pool.begin().await?;
    let pushes = upsert_fetched(&mut tx, project, &s, ev.created).await?;
    finish(sessions, project, ev, tx, Outcome::Applied, trail, pushes).await
}

async fn unreadable(
    svc: &Svc,
    project: &Project,
    ev: &Ev<'_>,
    trail: &mut Trail,
    why: &str,
) -> Result<Outcome, BillingError> {
    trail.note = Some(why.to_string());
    let mut tx = svc.db.pool.begin().await?;
    if !record(&mut tx, project, ev, Outcome::Unreadable, Some(why)).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    tx.commit().await?;
    metrics::counter!("reauth_stripe_events_total", "outcome" => "unreadable").increment(1);
    Ok(Outcome::Unreadable)
}

/// Record the event in the ledger in the transaction that applied it. An event already
/// recorded (unless unreadable) makes this delivery a replay: `false`, and the caller rolls
/// back. Concurrent deliveries of one event serialize on the ledger's primary key.
async fn record(
    tx: &mut Tx<'_>,
    project: &Project,
    ev: &Ev<'_>,
    outcome: Outcome,
    note: Option<&str>,
) -> Result<bool, BillingError> {
    let n = sqlx::query(
        "INSERT INTO stripe_events (project_id, event_id, event_type, created, status, error, payload, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (project_id, event_id) DO UPDATE SET status = excluded.status, error = excluded.error, received_at = excluded.received_at
         WHERE stripe_events.status IN ('unreadable', 'error')",
    )
    .bind(&project.id)
    .bind(ev.id)
    .bind(ev.kind)
    .bind(ev.created)
    .bind(outcome.as_str())
    .bind(note)
    .bind(ev.payload)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Record, commit, count, then tell the session actors.
#[allow(clippy::too_many_arguments)]
async fn finish(
    sessions: &Sessions,
    project: &Project,
    ev: &Ev<'_>,
    mut tx: Tx<'_>,
    outcome: Outcome,
    trail: &Trail,
    pushes: Vec<Push>,
) -> Result<Outcome, BillingError> {
    if !record(&mut tx, project, ev, outcome, trail.note.as_deref()).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    tx.commit().await?;
    metrics::counter!("reauth_stripe_events_total", "outcome" => outcome.as_str()).increment(1);
    push_all(sessions, &project.id, pushes).await;
    Ok(outcome)
}

pub(crate) async fn push_all(sessions: &Sessions, project_id: &str, pushes: Vec<Push>) {
    for push in pushes {
        match push {
            Push::Subscription(user_id, sub) => sessions.subscription_changed(&user_id, sub).await,
            Push::Reload(user_id) => {
                if let Err(e) = sessions.user_changed(project_id, &user_id).await {
                    tracing::warn!(error = %e, "pushing the new plan failed; caches expire within the hour");
                }
            }
        }
    }
}

pub(crate) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// What to tell the session actors after the transaction commits.
pub(crate) enum Push {
    /// The user's data changed in ways best re-read (a customer was linked).
    Reload(String),
    /// One subscription of the user changed; actors merge it by recency.
    Subscription(String, SubscriptionRecord),
}

/// `RETURNING` of the subscription writes.
pub(crate) const RETURNING_SUB: &str = "RETURNING user_id, id, price_id, status, current_period_end, cancel_at_period_end, source_created";

/// The push for a written row: none when the subscription has no user (yet).
pub(crate) fn push_of(r: &sqlx::any::AnyRow) -> Result<Vec<Push>, BillingError> {
    use sqlx::Row;
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
/// subscriptions of that customer that arrived before the link. `Err(why)` when the Checkout is
/// not this project's to act on: one Stripe account may serve several projects, each endpoint
/// receiving every Checkout of the account.
async fn apply_checkout(
    tx: &mut Tx<'_>,
    project: &Project,
    obj: &Value,
) -> Result<Result<Vec<Push>, &'static str>, BillingError> {
    if obj.get("mode").and_then(Value::as_str) != Some("subscription") {
        return Ok(Err("not a subscription Checkout"));
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

/// The owner of a subscription in this project: the metadata hint (set by our Checkout) when
/// it is a user of the project, else the user linked to the customer. SQL for `$3` = hint,
/// `$4` = customer, `$2` = project.
const OWNER: &str = "COALESCE((SELECT id FROM end_users WHERE id = $3 AND project_id = $2),
                              (SELECT id FROM end_users WHERE project_id = $2 AND stripe_customer_id = $4))";

/// Upsert an event's subscription only when it is newer than the stored state (at the same
/// second a cancellation wins, and with `tie_wins` any state but over a cancellation).
/// `None` when the stored state won.
async fn upsert_event(
    tx: &mut Tx<'_>,
    project: &Project,
    s: &SubFields,
    event_created: i64,
    tie_wins: bool,
) -> Result<Option<Vec<Push>>, BillingError> {
    let sql = format!(
        "INSERT INTO subscriptions (id, project_id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at)
         VALUES ($1, $2, {OWNER}, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (project_id, id) DO UPDATE SET
            user_id = COALESCE(excluded.user_id, subscriptions.user_id),
            price_id = COALESCE(excluded.price_id, subscriptions.price_id),
            status = excluded.status,
            current_period_end = COALESCE(excluded.current_period_end, subscriptions.current_period_end),
            cancel_at_period_end = excluded.cancel_at_period_end,
            source_created = excluded.source_created,
            updated_at = excluded.updated_at
         WHERE subscriptions.source_created < excluded.source_created
            OR (subscriptions.source_created = excluded.source_created
                AND (excluded.status = 'canceled' OR ($11 = 1 AND subscriptions.status <> 'canceled')))
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
        .bind(now_ms())
        .bind(i64::from(tie_wins))
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(push_of).transpose()
}

/// Store the subscription as Stripe returned it: it is at least as new as any event created
/// before the fetch, so it always wins; its recency becomes that of the event that prompted the
/// fetch (when newer), so older events stay stale and same-second ones fetch again.
async fn upsert_fetched(
    tx: &mut Tx<'_>,
    project: &Project,
    s: &SubFields,
    event_created: i64,
) -> Result<Vec<Push>, BillingError> {
    let sql = format!(
        "INSERT INTO subscriptions (id, project_id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at)
         VALUES ($1, $2, {OWNER}, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (project_id, id) DO UPDATE SET
            user_id = COALESCE(excluded.user_id, subscriptions.user_id),
            price_id = COALESCE(excluded.price_id, subscriptions.price_id),
            status = excluded.status,
            current_period_end = COALESCE(excluded.current_period_end, subscriptions.current_period_end),
            cancel_at_period_end = excluded.cancel_at_period_end,
            source_created = CASE WHEN subscriptions.source_created > excluded.source_created
                                  THEN subscriptions.source_created ELSE excluded.source_created END,
            updated_at = excluded.updated_at
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
        .bind(now_ms())
        .fetch_one(&mut **tx)
        .await?;
    push_of(&row)
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
