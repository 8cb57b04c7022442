//! A loopback Stripe: the API endpoints reauth calls (customers, Checkout Sessions, Billing
//! Portal sessions; form-encoded, bearer secret key), subscriptions retrieved and listed from
//! state the test controls (one account per secret key; `GET /v1/subscriptions/{id}` and
//! `GET /v1/subscriptions?status=…&limit=…&starting_after=…`, newest first, as Stripe pages
//! them), and webhook payloads signed exactly as Stripe documents:
//! `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug)]
pub struct StripeCall {
    pub path: String,
    pub key: String,
    pub form: Vec<(String, String)>,
}

impl StripeCall {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Subscriptions per account (secret key), oldest first.
type Accounts = Arc<Mutex<HashMap<String, Vec<Value>>>>;

#[derive(Clone)]
pub struct FakeStripe {
    pub url: String,
    pub calls: Arc<Mutex<Vec<StripeCall>>>,
    accounts: Accounts,
}

impl FakeStripe {
    pub async fn start() -> Self {
        let calls: Arc<Mutex<Vec<StripeCall>>> = Arc::default();
        let accounts: Accounts = Arc::default();
        let reads = Router::new()
            .route("/v1/subscriptions", get(list_subscriptions))
            .route("/v1/subscriptions/{id}", get(retrieve_subscription))
            .with_state((calls.clone(), accounts.clone()));
        let app = Router::new()
            .route("/v1/customers", post(customers))
            .route("/v1/checkout/sessions", post(checkout_sessions))
            .route("/v1/billing_portal/sessions", post(portal_sessions))
            .with_state(calls.clone())
            .merge(reads);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/"),
            calls,
            accounts,
        }
    }

    /// Set a subscription of the account of `secret_key` as Stripe now has it (replacing one
    /// with the same id, keeping its place in the list).
    pub fn put_subscription(&self, secret_key: &str, sub: Value) {
        let mut accounts = self.accounts.lock().expect("lock");
        let subs = accounts.entry(secret_key.to_string()).or_default();
        match subs.iter_mut().find(|s| s["id"] == sub["id"]) {
            Some(s) => *s = sub,
            None => subs.push(sub),
        }
    }

    pub fn calls(&self, path: &str) -> Vec<StripeCall> {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }
}

fn record(
    calls: &Arc<Mutex<Vec<StripeCall>>>,
    path: &str,
    headers: &HeaderMap,
    body: &str,
) -> Result<StripeCall, Response> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    if !key.starts_with("sk_test_") {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}})),
        )
            .into_response());
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_str(body).unwrap_or_default();
    let call = StripeCall {
        path: path.into(),
        key,
        form,
    };
    calls.lock().expect("lock").push(call.clone());
    Ok(call)
}

fn now() -> i64 {
    reauth_runtime::now_ms() / 1000
}

fn stripe_error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": message}})),
    )
        .into_response()
}

type ReadState = State<(Arc<Mutex<Vec<StripeCall>>>, Accounts)>;

/// `GET /v1/subscriptions/{id}`: the subscription in the caller's account, else 404.
async fn retrieve_subscription(
    State((calls, accounts)): ReadState,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/subscriptions/{id}");
    let call = match record(&calls, &path, &headers, "") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let accounts = accounts.lock().expect("lock");
    match accounts
        .get(&call.key)
        .and_then(|subs| subs.iter().find(|s| s["id"] == id.as_str()))
    {
        Some(s) => Json(s.clone()).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            format!("No such subscription: '{id}'"),
        ),
    }
}

/// `GET /v1/subscriptions`: newest first; without `status` canceled ones are left out, as
/// Stripe does; `limit` 1..=100 (default 10); `starting_after` an id of the list.
async fn list_subscriptions(
    State((calls, accounts)): ReadState,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    let call = match record(&calls, "/v1/subscriptions", &headers, &query) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 10,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "limit must be between 1 and 100".into(),
            );
        }
    };
    let accounts = accounts.lock().expect("lock");
    let all: Vec<&Value> = accounts
        .get(&call.key)
        .map(|subs| subs.iter().rev().collect())
        .unwrap_or_default();
    let listed: Vec<&Value> = all
        .into_iter()
        .filter(|s| match q.get("status").map(String::as_str) {
            Some("all") => true,
            Some(st) => s["status"] == st,
            None => s["status"] != "canceled",
        })
        .collect();
    let start = match q.get("starting_after") {
        None => 0,
        Some(after) => match listed.iter().position(|s| s["id"] == after.as_str()) {
            Some(i) => i + 1,
            None => {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    format!("starting_after {after} is not in the list"),
                );
            }
        },
    };
    let page: Vec<Value> = listed
        .iter()
        .skip(start)
        .take(limit)
        .map(|s| (*s).clone())
        .collect();
    Json(json!({
        "object": "list",
        "url": "/v1/subscriptions",
        "has_more": start + page.len() < listed.len(),
        "data": page,
    }))
    .into_response()
}

async fn customers(
    State(calls): State<Arc<Mutex<Vec<StripeCall>>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let call = match record(&calls, "/v1/customers", &headers, &body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    Json(json!({
        "id": format!("cus_{}", &reauth_runtime::ids::new_id("x")[2..18]),
        "object": "customer",
        "created": now(),
        "livemode": false,
        "email": call.get("email"),
        "metadata": {},
    }))
    .into_response()
}

async fn checkout_sessions(
    State(calls): State<Arc<Mutex<Vec<StripeCall>>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let call = match record(&calls, "/v1/checkout/sessions", &headers, &body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = format!("cs_test_{}", &reauth_runtime::ids::new_id("x")[2..18]);
    Json(json!({
        "id": id,
        "object": "checkout.session",
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "client_reference_id": call.get("client_reference_id"),
        "created": now(),
        "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "customer": call.get("customer"),
        "expires_at": now() + 86400,
        "livemode": false,
        "mode": "subscription",
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "shipping_options": [],
        "status": "open",
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
    }))
    .into_response()
}

async fn portal_sessions(
    State(calls): State<Arc<Mutex<Vec<StripeCall>>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let call = match record(&calls, "/v1/billing_portal/sessions", &headers, &body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let id = format!("bps_{}", &reauth_runtime::ids::new_id("x")[2..18]);
    Json(json!({
        "id": id,
        "object": "billing_portal.session",
        "configuration": "bpc_test",
        "created": now(),
        "customer": call.get("customer"),
        "livemode": false,
        "return_url": call.get("return_url"),
        "url": format!("https://billing.stripe.com/p/session/{id}"),
    }))
    .into_response()
}

// ---- signing, as documented by Stripe (HMAC-SHA256, hex) ----

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<u8>>());
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<u8>>());
    outer.update(inner);
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize());
    out
}

pub fn sign(payload: &str, secret: &str, t: i64) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{t}.{payload}").as_bytes());
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

// ---- event payloads in Stripe's wire format ----

pub fn event(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
    .to_string()
}

/// A `customer.subscription.created` event for a new active `price_pro` subscription, created
/// at `created` (seconds), linked to `user` through its metadata when given.
pub fn new_subscription_event(created: i64, user: Option<&str>) -> String {
    event(
        &format!("evt_{}", super::unique("")),
        "customer.subscription.created",
        created,
        subscription(
            &format!("sub_{}", super::unique("")),
            &format!("cus_{}", super::unique("")),
            "active",
            "price_pro",
            created + 30 * 86400,
            false,
            user,
        ),
    )
}

/// A subscription in the current shape (`current_period_end` on the item, API >= 2025-03-31).
pub fn subscription(
    id: &str,
    customer: &str,
    status: &str,
    price: &str,
    period_end: i64,
    cancel_at_period_end: bool,
    user_hint: Option<&str>,
) -> Value {
    let mut metadata = serde_json::Map::new();
    if let Some(u) = user_hint {
        metadata.insert("reauth_user_id".into(), json!(u));
    }
    json!({
        "id": id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "created": now() - 1000,
        "metadata": metadata,
        "items": { "object": "list", "data": [{
            "id": format!("si_{id}"),
            "object": "subscription_item",
            "current_period_start": period_end - 2_592_000,
            "current_period_end": period_end,
            "price": { "id": price, "object": "price", "currency": "usd", "unit_amount": 1500 },
            "quantity": 1,
        }]},
    })
}

/// The same in the pre-2025-03-31 shape (`current_period_end` on the subscription).
pub fn subscription_legacy(
    id: &str,
    customer: &str,
    status: &str,
    price: &str,
    period_end: i64,
) -> Value {
    json!({
        "id": id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": false,
        "current_period_start": period_end - 2_592_000,
        "current_period_end": period_end,
        "items": { "object": "list", "data": [{
            "id": format!("si_{id}"), "object": "subscription_item",
            "price": { "id": price, "object": "price" }, "quantity": 1,
        }]},
        "plan": { "id": price, "object": "plan" },
    })
}

/// An invoice in the current shape (subscription under `parent`, price under `pricing`).
pub fn invoice(
    id: &str,
    customer: &str,
    subscription: &str,
    price: &str,
    period_end: i64,
    status: &str,
) -> Value {
    json!({
        "id": id,
        "object": "invoice",
        "customer": customer,
        "status": status,
        "parent": { "type": "subscription_details", "subscription_details": { "subscription": subscription } },
        "lines": { "object": "list", "data": [{
            "id": format!("il_{id}"), "object": "line_item",
            "period": { "start": period_end - 2_592_000, "end": period_end },
            "pricing": { "type": "price_details", "price_details": { "price": price, "product": "prod_1" } },
        }]},
    })
}

pub fn checkout_completed(id: &str, customer: &str, user_id: &str, subscription: &str) -> Value {
    json!({
        "id": id,
        "object": "checkout.session",
        "mode": "subscription",
        "client_reference_id": user_id,
        "customer": customer,
        "subscription": subscription,
        "payment_status": "paid",
        "status": "complete",
    })
}
