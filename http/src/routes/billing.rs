//! Billing: Stripe webhooks (`POST /webhooks/stripe/{project_id}`, raw body + `Stripe-Signature`)
//! and the end user's Checkout / Billing Portal sessions (session-authenticated).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use reauth_actors::billing::{BillingError, CheckoutRequest};
use reauth_actors::ratelimit;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::{ApiError, Code};
use crate::routes::sdk::resolve;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/stripe/{project_id}", post(webhook))
        .route("/v1/billing/checkout", post(checkout))
        .route("/v1/billing/portal", post(portal))
}

fn billing_error(e: BillingError) -> ApiError {
    match e {
        BillingError::NotConfigured => ApiError::new(Code::NotConfigured, e.to_string()),
        BillingError::BadSignature(_) => ApiError::new(Code::InvalidSignature, e.to_string()),
        BillingError::Malformed => ApiError::new(Code::InvalidRequest, e.to_string()),
        BillingError::PriceNotAllowed => ApiError::new(Code::PriceNotAllowed, e.to_string()),
        BillingError::InvalidRedirect => ApiError::new(Code::InvalidRedirect, e.to_string()),
        BillingError::AlreadySubscribed => ApiError::new(Code::AlreadySubscribed, e.to_string()),
        BillingError::NoCustomer => ApiError::new(Code::Conflict, e.to_string()),
        BillingError::Stripe(detail) => {
            tracing::warn!(detail, "Stripe request failed");
            ApiError::new(
                Code::PaymentProviderError,
                "the payment provider did not accept the request",
            )
        }
        BillingError::Store(e) => ApiError::unavailable(e),
    }
}

/// Each Checkout or Portal session is a call to Stripe on the customer's key: a budget per user.
async fn per_user_limit(st: &AppState, project_id: &str, user_id: &str) -> Result<(), ApiError> {
    ratelimit::hit(
        &st.core.svc.cache,
        "billing_user",
        project_id,
        user_id,
        ratelimit::BILLING_PER_USER,
    )
    .await
    .map_err(ApiError::rate_limited)
}

async fn webhook(
    State(st): State<AppState>,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let outcome_metric = |o: &str| {
        metrics::counter!("reauth_stripe_webhooks_total", "outcome" => o.to_string()).increment(1)
    };
    // Deliveries refused here are logged here; every other delivery gets its one line (with
    // its outcome) from the project's webhook task.
    if st.core.directory.project(&project_id).is_none() {
        outcome_metric("unknown_project");
        tracing::warn!(project = %project_id, "Stripe webhook for an unknown project refused");
        return Err(ApiError::new(Code::InvalidRequest, "unknown project"));
    }
    let Some(sig) = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
    else {
        outcome_metric("rejected");
        tracing::warn!(project = %project_id, "Stripe webhook without a signature refused");
        return Err(ApiError::new(
            Code::InvalidSignature,
            "missing Stripe-Signature header",
        ));
    };
    let Ok(payload) = String::from_utf8(body.to_vec()) else {
        outcome_metric("rejected");
        tracing::warn!(project = %project_id, "Stripe webhook with a non-UTF-8 body refused");
        return Err(ApiError::new(Code::InvalidRequest, "body is not UTF-8"));
    };
    match st
        .core
        .tenants
        .stripe_webhook(&project_id, payload, sig.to_string())
        .await
    {
        Ok(outcome) => {
            outcome_metric(outcome.as_str());
            Ok(Json(
                json!({ "received": true, "status": outcome.as_str() }),
            ))
        }
        Err(e) => {
            outcome_metric("rejected");
            // Already logged once by the webhook task, with the reason.
            Err(match e {
                BillingError::Stripe(_) => ApiError::new(
                    Code::PaymentProviderError,
                    "the payment provider did not answer; Stripe will retry",
                ),
                BillingError::Store(_) => ApiError::new(
                    Code::Unavailable,
                    "a dependency is unavailable; Stripe will retry",
                ),
                other => billing_error(other),
            })
        }
    }
}

#[derive(Deserialize)]
struct CheckoutBody {
    price_id: String,
    success_url: String,
    cancel_url: String,
}

async fn checkout(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (project, view) = resolve(&st, &headers).await?;
    per_user_limit(&st, &project.id, &view.user_id).await?;
    let b: CheckoutBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::InvalidRequest,
            format!("expected JSON {{price_id, success_url, cancel_url}}: {e}"),
        )
    })?;
    let req = CheckoutRequest {
        user_id: view.user_id.clone(),
        price_id: b.price_id,
        success_url: b.success_url,
        cancel_url: b.cancel_url,
    };
    let url = st
        .core
        .tenants
        .checkout(&project.id, req)
        .await
        .map_err(billing_error)?;
    Ok(Json(json!({ "url": url })))
}

#[derive(Deserialize)]
struct PortalBody {
    return_url: String,
}

async fn portal(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (project, view) = resolve(&st, &headers).await?;
    per_user_limit(&st, &project.id, &view.user_id).await?;
    let b: PortalBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            Code::InvalidRequest,
            format!("expected JSON {{return_url}}: {e}"),
        )
    })?;
    let url = st
        .core
        .tenants
        .portal(&project.id, view.user_id.clone(), b.return_url)
        .await
        .map_err(billing_error)?;
    Ok(Json(json!({ "url": url })))
}
