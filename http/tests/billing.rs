//! Stripe billing against a loopback Stripe: signed webhooks change what `/v1/user` shows (on
//! every instance), replays and reordering are safe, bad deliveries store nothing, and Checkout
//! / Portal requests reach Stripe with the right parameters.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::stripe::{checkout_completed, event, invoice, subscription, subscription_legacy};
use common::{Backend, Deployment, TestApp, TestProject, sign_in, unique, webhook_secret};
use serde_json::{Value, json};

fn now() -> i64 {
    reauth_runtime::now_ms() / 1000
}

async fn setup(backend: Backend) -> (Deployment, TestApp, TestProject, String, String) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let p = dep.billing_project(&app).await;
    let token = sign_in(&app, &dep, &p, &format!("{}@example.com", unique("payer"))).await;
    let user_id = app.user(&p.host, &token).await.json()["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    (dep, app, p, token, user_id)
}

async fn send(
    app: &TestApp,
    p: &TestProject,
    kind: &str,
    created: i64,
    obj: Value,
) -> (StatusCode, Value) {
    let id = format!("evt_{}", unique(""));
    let payload = event(&id, kind, created, obj);
    let r = app
        .webhook(&p.id, &payload, &webhook_secret(p), now())
        .await;
    (r.status, r.json())
}

async fn user(app: &TestApp, p: &TestProject, token: &str) -> Value {
    let r = app.user(&p.host, token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

async fn stored_events(app: &TestApp, p: &TestProject) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE project_id = $1")
        .bind(&p.id)
        .fetch_one(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap()
}

on_both!(each_handled_event_type_changes_what_v1_user_returns);
async fn each_handled_event_type_changes_what_v1_user_returns(backend: Backend) {
    let (dep, app, p, token, user_id) = setup(backend).await;
    let key = format!("sk_test_{}", p.slug);
    let t0 = now() - 100;
    let sub = format!("sub_{}", unique(""));
    let cus = format!("cus_{}", unique(""));
    let period = now() + 30 * 86400;
    let v = user(&app, &p, &token).await;
    assert_eq!(
        (v["plan"].as_str(), v["features"].as_array().unwrap().len()),
        (Some("free"), 0)
    );

    // A subscription for a customer nobody is linked to yet: no change for our user.
    let (s, body) = send(
        &app,
        &p,
        "customer.subscription.created",
        t0,
        subscription(&sub, &cus, "active", "price_pro", period, false, None),
    )
    .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("applied"))
    );
    assert_eq!(user(&app, &p, &token).await["plan"], "free");

    // checkout.session.completed links the customer to the user: the plan appears.
    let (s, _) = send(
        &app,
        &p,
        "checkout.session.completed",
        t0 + 1,
        checkout_completed("cs_1", &cus, &user_id, &sub),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v = user(&app, &p, &token).await;
    assert_eq!(v["plan"], "pro");
    assert_eq!(v["features"], json!(["export", "api"]));
    assert_eq!(v["subscription_status"], "active");
    assert_eq!(
        v["current_period_end"],
        reauth_actors::model::rfc3339(period * 1000)
    );

    // customer.subscription.updated: downgrade, cancel at period end.
    send(
        &app,
        &p,
        "customer.subscription.updated",
        t0 + 2,
        subscription(&sub, &cus, "active", "price_basic", period, true, None),
    )
    .await;
    let v = user(&app, &p, &token).await;
    assert_eq!(
        (v["plan"].as_str(), v["cancel_at_period_end"].as_bool()),
        (Some("basic"), Some(true))
    );
    assert_eq!(v["features"], json!(["export"]));

    // invoice.payment_failed: the subscription is fetched from Stripe, which says past due.
    dep.stripe.put_subscription(
        &key,
        subscription(&sub, &cus, "past_due", "price_basic", period, true, None),
    );
    send(
        &app,
        &p,
        "invoice.payment_failed",
        t0 + 3,
        invoice("in_1", &cus, &sub, "price_basic", period, "open"),
    )
    .await;
    assert_eq!(
        user(&app, &p, &token).await["subscription_status"],
        "past_due"
    );

    // invoice.paid: Stripe says active again, period extended.
    let next_period = period + 30 * 86400;
    dep.stripe.put_subscription(
        &key,
        subscription(&sub, &cus, "active", "price_basic", next_period, true, None),
    );
    send(
        &app,
        &p,
        "invoice.paid",
        t0 + 4,
        invoice("in_2", &cus, &sub, "price_basic", next_period, "paid"),
    )
    .await;
    let v = user(&app, &p, &token).await;
    assert_eq!(v["subscription_status"], "active");
    assert_eq!(
        v["current_period_end"],
        reauth_actors::model::rfc3339(next_period * 1000)
    );

    // customer.subscription.deleted: back to free.
    send(
        &app,
        &p,
        "customer.subscription.deleted",
        t0 + 5,
        subscription(
            &sub,
            &cus,
            "canceled",
            "price_basic",
            next_period,
            false,
            None,
        ),
    )
    .await;
    let v = user(&app, &p, &token).await;
    assert_eq!(
        (v["plan"].as_str(), v["subscription_status"].as_str()),
        (Some("free"), Some("canceled"))
    );
    assert_eq!(v["features"], json!([]));

    // The pre-2025-03-31 shape (period end on the subscription) is read as well.
    let sub2 = format!("sub_{}", unique(""));
    let legacy_period = now() + 10 * 86400;
    send(
        &app,
        &p,
        "customer.subscription.created",
        t0 + 6,
        subscription_legacy(&sub2, &cus, "trialing", "price_pro", legacy_period),
    )
    .await;
    let v = user(&app, &p, &token).await;
    assert_eq!(
        (v["plan"].as_str(), v["subscription_status"].as_str()),
        (Some("pro"), Some("trialing"))
    );
    assert_eq!(
        v["current_period_end"],
        reauth_actors::model::rfc3339(legacy_period * 1000)
    );

    // Unknown types: 200, recorded, ignored.
    let before = stored_events(&app, &p).await;
    let (s, body) = send(
        &app,
        &p,
        "customer.tax_id.created",
        t0 + 7,
        json!({"id": "txi_1", "object": "tax_id"}),
    )
    .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    assert_eq!(stored_events(&app, &p).await, before + 1);
    app.shutdown().await;
}

on_both!(replays_apply_once_and_a_shuffled_stream_ends_in_the_newest_state);
async fn replays_apply_once_and_a_shuffled_stream_ends_in_the_newest_state(backend: Backend) {
    let (_dep, app, p, token, user_id) = setup(backend).await;
    let sub = format!("sub_{}", unique(""));
    let cus = format!("cus_{}", unique(""));
    let t0 = now() - 1000;
    let period = now() + 86400;

    // One event replayed 10 times: applied once, acknowledged every time.
    let payload = event(
        "evt_replayed",
        "customer.subscription.created",
        t0,
        subscription(
            &sub,
            &cus,
            "active",
            "price_pro",
            period,
            false,
            Some(&user_id),
        ),
    );
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = app
            .webhook(&p.id, &payload, &webhook_secret(&p), now())
            .await;
        assert_eq!(r.status, StatusCode::OK);
        statuses.push(r.json()["status"].as_str().unwrap().to_string());
    }
    assert_eq!(
        statuses.iter().filter(|s| *s == "applied").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| *s == "duplicate").count(), 9);
    assert_eq!(stored_events(&app, &p).await, 1);
    assert_eq!(user(&app, &p, &token).await["plan"], "pro");
    // A newer change, then the old event replayed again: the old one is not applied again.
    send(
        &app,
        &p,
        "customer.subscription.updated",
        t0 + 1,
        subscription(
            &sub,
            &cus,
            "active",
            "price_basic",
            period,
            false,
            Some(&user_id),
        ),
    )
    .await;
    let r = app
        .webhook(&p.id, &payload, &webhook_secret(&p), now())
        .await;
    assert_eq!(r.json()["status"], "duplicate");
    assert_eq!(user(&app, &p, &token).await["plan"], "basic");

    // A stream of one subscription's events delivered in several shuffled orders.
    let steps: Vec<(&str, &str, &str, bool)> = vec![
        (
            "customer.subscription.created",
            "incomplete",
            "price_basic",
            false,
        ),
        (
            "customer.subscription.updated",
            "active",
            "price_basic",
            false,
        ),
        (
            "customer.subscription.updated",
            "active",
            "price_pro",
            false,
        ),
        (
            "customer.subscription.updated",
            "past_due",
            "price_pro",
            false,
        ),
        ("customer.subscription.updated", "active", "price_pro", true),
        (
            "customer.subscription.updated",
            "active",
            "price_basic",
            false,
        ),
        (
            "customer.subscription.updated",
            "active",
            "price_pro",
            false,
        ),
    ];
    let orders: [[usize; 7]; 3] = [
        [6, 0, 3, 1, 5, 2, 4],
        [3, 6, 5, 4, 2, 1, 0],
        [0, 2, 1, 6, 4, 3, 5],
    ];
    for (round, order) in orders.iter().enumerate() {
        let sub = format!("sub_shuffled_{round}_{}", unique(""));
        let base = now() - 500 + (round as i64) * 50;
        let events: Vec<String> = steps
            .iter()
            .enumerate()
            .map(|(i, (kind, status, price, cancel))| {
                event(
                    &format!("evt_{round}_{i}_{}", unique("")),
                    kind,
                    base + i as i64,
                    subscription(
                        &sub,
                        &cus,
                        status,
                        price,
                        period + i as i64,
                        *cancel,
                        Some(&user_id),
                    ),
                )
            })
            .collect();
        for &i in order {
            let r = app
                .webhook(&p.id, &events[i], &webhook_secret(&p), now())
                .await;
            assert_eq!(r.status, StatusCode::OK);
        }
        let (status, price, cancel, end): (String, Option<String>, i64, Option<i64>) = {
            use sqlx::Row;
            let row = sqlx::query("SELECT status, price_id, cancel_at_period_end, current_period_end FROM subscriptions WHERE id = $1")
                .bind(&sub)
                .fetch_one(&app.handle.state.core.svc.db.pool)
                .await
                .unwrap();
            (
                row.get("status"),
                row.get("price_id"),
                row.get("cancel_at_period_end"),
                row.get("current_period_end"),
            )
        };
        let newest = steps.len() - 1;
        assert_eq!(
            (status.as_str(), price.as_deref(), cancel),
            ("active", Some("price_pro"), 0),
            "order {order:?}"
        );
        assert_eq!(
            end,
            Some((period + newest as i64) * 1000),
            "order {order:?}"
        );
    }
    app.shutdown().await;
}

on_both!(bad_deliveries_are_rejected_and_store_nothing);
async fn bad_deliveries_are_rejected_and_store_nothing(backend: Backend) {
    let (dep, app, p, token, user_id) = setup(backend).await;
    let other = dep.billing_project(&app).await;
    let obj = subscription(
        "sub_x",
        "cus_x",
        "active",
        "price_pro",
        now() + 1000,
        false,
        Some(&user_id),
    );
    let payload = event("evt_bad", "customer.subscription.created", now(), obj);
    let before = stored_events(&app, &p).await;

    let cases: Vec<(&str, common::Resp)> = vec![
        (
            "wrong secret",
            app.webhook(&p.id, &payload, "whsec_wrong", now()).await,
        ),
        (
            "stale timestamp",
            app.webhook(&p.id, &payload, &webhook_secret(&p), now() - 301)
                .await,
        ),
        (
            "future timestamp",
            app.webhook(&p.id, &payload, &webhook_secret(&p), now() + 301)
                .await,
        ),
        (
            "signed for another project",
            app.webhook(&p.id, &payload, &webhook_secret(&other), now())
                .await,
        ),
        (
            "another project's endpoint",
            app.webhook(&other.id, &payload, &webhook_secret(&p), now())
                .await,
        ),
        (
            "unknown project",
            app.webhook("prj_doesnotexist", &payload, &webhook_secret(&p), now())
                .await,
        ),
        (
            "malformed JSON, validly signed",
            app.webhook(&p.id, "{not json", &webhook_secret(&p), now())
                .await,
        ),
        (
            "JSON that is no event, validly signed",
            app.webhook(&p.id, "{\"hello\":1}", &webhook_secret(&p), now())
                .await,
        ),
    ];
    for (what, r) in cases {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert!(r.json()["error"]["code"].is_string(), "{what}");
    }
    let r = app.send_raw_webhook(&p.id, &payload, None).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "missing signature header"
    );
    assert_eq!(stored_events(&app, &p).await, before, "nothing stored");
    assert_eq!(stored_events(&app, &other).await, 0);
    assert_eq!(user(&app, &p, &token).await["plan"], "free");

    // A handled type that cannot be understood is kept (status unreadable), not dropped, and
    // answered 200: a retry would not make it readable.
    let (s, body) = send(
        &app,
        &p,
        "customer.subscription.updated",
        now(),
        json!({"id": "sub_weird", "object": "subscription"}),
    )
    .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("unreadable"))
    );
    let status: String = sqlx::query_scalar("SELECT status FROM stripe_events WHERE project_id = $1 AND event_type = 'customer.subscription.updated'")
        .bind(&p.id)
        .fetch_one(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "unreadable");
    let metrics = app.ops_get("/metrics").await.body;
    assert!(
        metrics.contains("reauth_stripe_events_total{outcome=\"unreadable\"}"),
        "counted in metrics"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_on_one_instance_changes_v1_user_on_another() {
    let dep = Deployment::new(Backend::Real).await;
    let a = dep.spawn().await;
    let b = dep.spawn().await;
    let p = dep.billing_project(&a).await;
    b.wait_for_project(&p).await;
    let token = sign_in(&a, &dep, &p, &format!("{}@example.com", unique("two"))).await;
    let user_id = user(&a, &p, &token).await["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    // B's session actor is warm and shows free.
    assert_eq!(user(&b, &p, &token).await["plan"], "free");
    let sent = Instant::now();
    let (s, _) = send(
        &a,
        &p,
        "customer.subscription.created",
        now(),
        subscription(
            "sub_ab",
            "cus_ab",
            "active",
            "price_pro",
            now() + 86400,
            false,
            Some(&user_id),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    loop {
        if user(&b, &p, &token).await["plan"] == "pro" {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "instance B never saw the new plan"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

on_both!(checkout_and_portal_reach_stripe_with_the_right_parameters);
async fn checkout_and_portal_reach_stripe_with_the_right_parameters(backend: Backend) {
    let (dep, app, p, token, user_id) = setup(backend).await;
    let ok = format!("{}/billing/success", p.origin);
    let cancel = format!("{}/billing/cancel", p.origin);

    // Prices outside the mapping and foreign redirect URLs are refused before Stripe is called.
    let r = app
        .post_json(
            &p.host,
            "/v1/billing/checkout",
            &token,
            json!({"price_id": "price_gold", "success_url": ok, "cancel_url": cancel}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("price_not_allowed"))
    );
    let r = app.post_json(&p.host, "/v1/billing/checkout", &token, json!({"price_id": "price_pro", "success_url": "https://evil.com/", "cancel_url": cancel})).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_redirect"))
    );
    let r = app
        .post_json(
            &p.host,
            "/v1/billing/checkout",
            &token,
            json!({"price": "x"}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let r = app
        .post_json(&p.host, "/v1/billing/checkout", "not-a-token", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(dep.stripe.calls("/v1/checkout/sessions").is_empty());

    // No billing account yet: the portal says so.
    let r = app
        .post_json(
            &p.host,
            "/v1/billing/portal",
            &token,
            json!({"return_url": ok}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    let r = app
        .post_json(
            &p.host,
            "/v1/billing/checkout",
            &token,
            json!({"price_id": "price_pro", "success_url": ok, "cancel_url": cancel}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.json()["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/")
    );
    let customers = dep.stripe.calls("/v1/customers");
    assert_eq!(customers.len(), 1);
    assert_eq!(
        customers[0].key,
        format!("sk_test_{}", p.slug),
        "the project's own Stripe key"
    );
    assert_eq!(
        customers[0].get("metadata[reauth_user_id]"),
        Some(user_id.as_str())
    );
    let sessions = dep.stripe.calls("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1);
    let c = &sessions[0];
    assert_eq!(c.get("mode"), Some("subscription"));
    assert_eq!(c.get("client_reference_id"), Some(user_id.as_str()));
    assert_eq!(c.get("line_items[0][price]"), Some("price_pro"));
    assert_eq!(c.get("line_items[0][quantity]"), Some("1"));
    assert_eq!(c.get("success_url"), Some(ok.as_str()));
    assert_eq!(c.get("cancel_url"), Some(cancel.as_str()));
    assert_eq!(
        c.get("subscription_data[metadata][reauth_user_id]"),
        Some(user_id.as_str())
    );
    let customer = c.get("customer").unwrap().to_string();
    assert!(customer.starts_with("cus_"));

    // A second checkout before paying reuses the customer.
    let r = app
        .post_json(
            &p.host,
            "/v1/billing/checkout",
            &token,
            json!({"price_id": "price_basic", "success_url": ok, "cancel_url": cancel}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(dep.stripe.calls("/v1/customers").len(), 1);
    assert_eq!(
        dep.stripe.calls("/v1/checkout/sessions")[1].get("customer"),
        Some(customer.as_str())
    );

    // Once subscribed, another checkout is refused (no second subscription): use the portal.
    send(
        &app,
        &p,
        "customer.subscription.created",
        now(),
        subscription(
            "sub_paid",
            &customer,
            "active",
            "price_pro",
            now() + 86400,
            false,
            Some(&user_id),
        ),
    )
    .await;
    let r = app
        .post_json(
            &p.host,
            "/v1/billing/checkout",
            &token,
            json!({"price_id": "price_basic", "success_url": ok, "cancel_url": cancel}),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_subscribed"))
    );
    assert_eq!(dep.stripe.calls("/v1/checkout/sessions").len(), 2);

    let r = app
        .post_json(
            &p.host,
            "/v1/billing/portal",
            &token,
            json!({"return_url": ok}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.json()["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/")
    );
    let portal = dep.stripe.calls("/v1/billing_portal/sessions");
    assert_eq!(portal.len(), 1);
    assert_eq!(portal[0].get("customer"), Some(customer.as_str()));
    assert_eq!(portal[0].get("return_url"), Some(ok.as_str()));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_answers_5xx_so_stripe_retries() {
    let (_dep, app, p, _token, user_id) = setup(Backend::Embedded).await;
    app.handle.state.core.svc.db.pool.close().await;
    let (s, body) = send(
        &app,
        &p,
        "customer.subscription.created",
        now(),
        subscription(
            "sub_z",
            "cus_z",
            "active",
            "price_pro",
            now() + 1000,
            false,
            Some(&user_id),
        ),
    )
    .await;
    assert!(s.is_server_error(), "{s}: {body}");
    assert_eq!(body["error"]["code"], "unavailable");
}

on_both!(a_plan_mapping_change_reaches_resident_views_on_every_instance);
async fn a_plan_mapping_change_reaches_resident_views_on_every_instance(backend: Backend) {
    let (dep, app, p, token, user_id) = setup(backend).await;
    let second = (backend == Backend::Real).then_some(dep.spawn().await);
    if let Some(b) = &second {
        b.wait_for_project(&p).await;
    }
    let (sub, cus) = (format!("sub_{}", unique("")), format!("cus_{}", unique("")));
    let period = now() + 30 * 86400;
    let t0 = now() - 10;
    send(
        &app,
        &p,
        "checkout.session.completed",
        t0,
        checkout_completed("cs_cfg", &cus, &user_id, &sub),
    )
    .await;
    send(
        &app,
        &p,
        "customer.subscription.created",
        t0 + 1,
        subscription(&sub, &cus, "active", "price_pro", period, false, None),
    )
    .await;
    assert_eq!(user(&app, &p, &token).await["plan"], "pro");
    if let Some(b) = &second {
        // Resident on B too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.user(&p.host, &token).await.json()["plan"] != "pro" {
            assert!(Instant::now() < deadline, "B never saw the plan");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // The operator renames the plan and adds a feature; nobody's session is touched.
    app.update_project(
        &p.id,
        reauth_actors::store::ProjectPatch {
            plans: Some(vec![
                reauth_http::cli::parse_plan("price_pro=team:export,api,sso").unwrap(),
            ]),
            ..Default::default()
        },
    )
    .await;
    for inst in std::iter::once(&app).chain(second.as_ref()) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = user(inst, &p, &token).await;
            if v["plan"] == "team" {
                assert_eq!(v["features"], json!(["export", "api", "sso"]));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "resident view kept the old plan: {v}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if let Some(b) = second {
        b.shutdown().await;
    }
    app.shutdown().await;
}

on_both!(checkout_and_portal_are_limited_per_user_with_a_retry_hint);
async fn checkout_and_portal_are_limited_per_user_with_a_retry_hint(backend: Backend) {
    let (dep, app, p, token, _) = setup(backend).await;
    let ok = format!("{}/done", p.origin);
    let mut statuses = vec![];
    for _ in 0..21 {
        // No Stripe customer yet: each answer is a 409, and each counts against the budget.
        let r = app
            .post_json(
                &p.host,
                "/v1/billing/portal",
                &token,
                json!({"return_url": ok}),
            )
            .await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            let e = &r.json()["error"];
            assert_eq!(e["code"], "rate_limited");
            let secs = e["retry_after"].as_u64().expect("retry_after in the body");
            assert!(secs > 0 && secs <= 600, "{secs}");
            assert_eq!(r.headers["retry-after"].to_str().unwrap(), secs.to_string());
        }
    }
    assert_eq!(&statuses[..20], &[409; 20], "{statuses:?}");
    assert_eq!(statuses[20], 429, "{statuses:?}");
    // Checkout shares the budget, and Stripe was not asked.
    let r = app
        .post_json(
            &p.host,
            "/v1/billing/checkout",
            &token,
            json!({"price_id": "price_basic", "success_url": ok, "cancel_url": ok}),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(dep.stripe.calls("/v1/checkout/sessions").is_empty());
    // Another user of the project has their own budget.
    let other = sign_in(&app, &dep, &p, &format!("{}@example.com", unique("other"))).await;
    let r = app
        .post_json(
            &p.host,
            "/v1/billing/portal",
            &other,
            json!({"return_url": ok}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    app.shutdown().await;
}
