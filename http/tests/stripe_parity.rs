//! The Stripe state reauth reports equals Stripe's: same-second events are settled by asking
//! the Stripe API, invoices never invent a status, subscriptions are kept per project when one
//! Stripe account serves several, the ledger and the answer say what each event did, every
//! delivery logs one line, and reconciliation repairs drift (from the actors and the CLI).

#[macro_use]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use common::stripe::{checkout_completed, event, invoice, subscription};
use common::{
    Backend, Deployment, TestApp, TestProject, redis_url, sign_in, unique, webhook_secret,
};
use reauth_actors::reconcile;
use serde_json::{Value, json};

fn now() -> i64 {
    reauth_runtime::now_ms() / 1000
}

fn key(p: &TestProject) -> String {
    format!("sk_test_{}", p.slug)
}

async fn setup(backend: Backend) -> (Deployment, TestApp, TestProject, String, String) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let p = dep.billing_project(&app).await;
    let (token, user_id) = signed_in(&app, &dep, &p).await;
    (dep, app, p, token, user_id)
}

async fn signed_in(app: &TestApp, dep: &Deployment, p: &TestProject) -> (String, String) {
    let token = sign_in(app, dep, p, &format!("{}@example.com", unique("payer"))).await;
    let user_id = user(app, p, &token).await["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    (token, user_id)
}

/// Deliver one event (a fresh id) to `p`'s endpoint; returns the event id too.
async fn send(
    app: &TestApp,
    p: &TestProject,
    kind: &str,
    created: i64,
    obj: Value,
) -> (StatusCode, Value, String) {
    let id = format!("evt_{}", unique(""));
    let payload = event(&id, kind, created, obj);
    let r = app
        .webhook(&p.id, &payload, &webhook_secret(p), now())
        .await;
    (r.status, r.json(), id)
}

async fn user(app: &TestApp, p: &TestProject, token: &str) -> Value {
    let r = app.user(&p.host, token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

async fn ledger(app: &TestApp, p: &TestProject, event_id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM stripe_events WHERE project_id = $1 AND event_id = $2")
        .bind(&p.id)
        .bind(event_id)
        .fetch_one(&app.handle.state.core.svc.db.pool)
        .await
        .unwrap()
}

/// Give `p` this Stripe secret key and wait until its actor serves with it.
async fn set_key(app: &TestApp, p: &TestProject, secret_key: &str) {
    app.update_project(
        &p.id,
        reauth_actors::store::ProjectPatch {
            stripe_secret_key: Some(Some(reauth_runtime::config::Secret::new(secret_key))),
            ..Default::default()
        },
    )
    .await;
    let dir = app.handle.state.core.directory.clone();
    let (id, want) = (p.id.clone(), secret_key.to_string());
    common::eventually("the new Stripe key served", Duration::from_secs(10), || {
        dir.project(&id)
            .and_then(|x| x.stripe_secret_key.clone())
            .is_some_and(|k| k.expose() == want)
    })
    .await;
}

fn rfc(secs: i64) -> String {
    reauth_actors::model::rfc3339(secs * 1000)
}

on_both!(a_same_second_update_is_settled_by_what_the_stripe_api_returns);
async fn a_same_second_update_is_settled_by_what_the_stripe_api_returns(backend: Backend) {
    let (dep, app, p, token, user_id) = setup(backend).await;
    let (sub, cus) = (format!("sub_{}", unique("")), format!("cus_{}", unique("")));
    let t = now() - 60;
    let (event_period, stripe_period) = (now() + 86400, now() + 2 * 86400);
    let hint = Some(user_id.as_str());
    let (s, body, _) = send(
        &app,
        &p,
        "customer.subscription.created",
        t,
        subscription(
            &sub,
            &cus,
            "incomplete",
            "price_pro",
            event_period,
            false,
            hint,
        ),
    )
    .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("applied"))
    );
    assert_eq!(user(&app, &p, &token).await["plan"], "free");
    assert!(
        dep.stripe
            .calls(&format!("/v1/subscriptions/{sub}"))
            .is_empty()
    );

    // The first payment went through: Stripe has it active (with its own period end), and the
    // update carries the same `created` second as the creation.
    dep.stripe.put_subscription(
        &key(&p),
        subscription(
            &sub,
            &cus,
            "active",
            "price_pro",
            stripe_period,
            false,
            hint,
        ),
    );
    let (s, body, id) = send(
        &app,
        &p,
        "customer.subscription.updated",
        t,
        subscription(&sub, &cus, "active", "price_pro", event_period, false, hint),
    )
    .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("applied"))
    );
    assert_eq!(ledger(&app, &p, &id).await, "applied");
    let fetches = dep.stripe.calls(&format!("/v1/subscriptions/{sub}"));
    assert_eq!(fetches.len(), 1, "the tie was settled by asking Stripe");
    assert_eq!(fetches[0].key, key(&p), "with the project's own key");
    let v = user(&app, &p, &token).await;
    assert_eq!(
        (v["plan"].as_str(), v["subscription_status"].as_str()),
        (Some("pro"), Some("active"))
    );
    assert_eq!(
        v["current_period_end"],
        rfc(stripe_period),
        "Stripe's state, not the event's"
    );

    // Another event of that second saying `incomplete` (delivered late) is settled the same
    // way: Stripe says active, so active it stays.
    let (_, body, _) = send(
        &app,
        &p,
        "customer.subscription.updated",
        t,
        subscription(
            &sub,
            &cus,
            "incomplete",
            "price_pro",
            event_period,
            false,
            hint,
        ),
    )
    .await;
    assert_eq!(body["status"], "applied");
    assert_eq!(
        dep.stripe.calls(&format!("/v1/subscriptions/{sub}")).len(),
        2
    );
    assert_eq!(user(&app, &p, &token).await["plan"], "pro");

    // An older event is answered and recorded as stale, and changes nothing.
    let (s, body, id) = send(
        &app,
        &p,
        "customer.subscription.updated",
        t - 5,
        subscription(
            &sub,
            &cus,
            "canceled",
            "price_pro",
            event_period,
            false,
            hint,
        ),
    )
    .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("stale"))
    );
    assert_eq!(ledger(&app, &p, &id).await, "stale");
    assert_eq!(user(&app, &p, &token).await["plan"], "pro");
    app.shutdown().await;
}

on_both!(a_failed_first_invoice_leaves_the_user_without_the_plan);
async fn a_failed_first_invoice_leaves_the_user_without_the_plan(backend: Backend) {
    let (dep, app, p, token, user_id) = setup(backend).await;
    let (sub, cus) = (format!("sub_{}", unique("")), format!("cus_{}", unique("")));
    let t = now() - 60;
    let period = now() + 86400;
    let hint = Some(user_id.as_str());
    let incomplete = subscription(&sub, &cus, "incomplete", "price_pro", period, false, hint);
    dep.stripe.put_subscription(&key(&p), incomplete.clone());
    send(&app, &p, "customer.subscription.created", t, incomplete).await;

    // The first invoice (billing_reason subscription_create) fails: Stripe keeps the
    // subscription incomplete, which grants nothing.
    let mut first = invoice("in_first", &cus, &sub, "price_pro", period, "open");
    first["billing_reason"] = json!("subscription_create");
    let (s, body, id) = send(&app, &p, "invoice.payment_failed", t + 1, first).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("applied"))
    );
    assert_eq!(ledger(&app, &p, &id).await, "applied");
    assert_eq!(
        dep.stripe.calls(&format!("/v1/subscriptions/{sub}")).len(),
        1
    );
    let v = user(&app, &p, &token).await;
    assert_eq!(
        (v["plan"].as_str(), v["subscription_status"].as_str()),
        (Some("free"), Some("incomplete"))
    );

    // The retry is paid: Stripe has it active, and the paid invoice brings that in.
    dep.stripe.put_subscription(
        &key(&p),
        subscription(&sub, &cus, "active", "price_pro", period, false, hint),
    );
    let (_, body, _) = send(
        &app,
        &p,
        "invoice.paid",
        t + 2,
        invoice("in_first", &cus, &sub, "price_pro", period, "paid"),
    )
    .await;
    assert_eq!(body["status"], "applied");
    assert_eq!(user(&app, &p, &token).await["plan"], "pro");

    // An invoice of no subscription is not ours to act on.
    let mut one_off = invoice("in_one_off", &cus, &sub, "price_pro", period, "paid");
    one_off.as_object_mut().unwrap().remove("parent");
    let (s, body, id) = send(&app, &p, "invoice.paid", t + 3, one_off).await;
    assert_eq!(
        (s, body["status"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    assert_eq!(ledger(&app, &p, &id).await, "ignored");
    app.shutdown().await;
}

on_both!(when_stripe_cannot_be_asked_the_delivery_is_refused_and_retried);
async fn when_stripe_cannot_be_asked_the_delivery_is_refused_and_retried(backend: Backend) {
    let (dep, app, p, token, user_id) = setup(backend).await;
    let (sub, cus) = (format!("sub_{}", unique("")), format!("cus_{}", unique("")));
    let period = now() + 86400;
    let hint = Some(user_id.as_str());
    dep.stripe.put_subscription(
        &key(&p),
        subscription(&sub, &cus, "active", "price_pro", period, false, hint),
    );
    // A key Stripe refuses (401): the invoice cannot be settled, so nothing is recorded and
    // the answer is a 5xx, which Stripe retries.
    set_key(&app, &p, "rk_revoked").await;
    let payload = event(
        &format!("evt_{}", unique("")),
        "invoice.paid",
        now(),
        invoice("in_r", &cus, &sub, "price_pro", period, "paid"),
    );
    let r = app
        .webhook(&p.id, &payload, &webhook_secret(&p), now())
        .await;
    assert!(r.status.is_server_error(), "{}: {}", r.status, r.body);
    let recorded: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE project_id = $1")
            .bind(&p.id)
            .fetch_one(&app.handle.state.core.svc.db.pool)
            .await
            .unwrap();
    assert_eq!(recorded, 0);
    // The key is fixed; Stripe's retry of the same delivery is applied.
    set_key(&app, &p, &key(&p)).await;
    let r = app
        .webhook(&p.id, &payload, &webhook_secret(&p), now())
        .await;
    assert_eq!(r.json()["status"], "applied", "{}", r.body);
    assert_eq!(user(&app, &p, &token).await["plan"], "pro");
    app.shutdown().await;
}

on_both!(two_projects_sharing_a_stripe_account_both_get_their_plans);
async fn two_projects_sharing_a_stripe_account_both_get_their_plans(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let a = dep.billing_project(&app).await;
    let b = dep.billing_project(&app).await;
    // B is connected to A's Stripe account: same secret key, its own endpoint and secret.
    set_key(&app, &b, &key(&a)).await;
    let (token_a, user_a) = signed_in(&app, &dep, &a).await;
    let (token_b, user_b) = signed_in(&app, &dep, &b).await;
    let (sub_a, cus_a) = (format!("sub_{}", unique("")), format!("cus_{}", unique("")));
    let (sub_b, cus_b) = (format!("sub_{}", unique("")), format!("cus_{}", unique("")));
    let t = now() - 60;
    let period = now() + 86400;

    // Stripe sends every event of the account to both endpoints, in no particular order: A's
    // events reach B first, B's reach A first.
    let deliver = async |to: [&TestProject; 2], kind: &str, created: i64, obj: Value| {
        let id = format!("evt_{}", unique(""));
        let payload = event(&id, kind, created, obj);
        let mut statuses = Vec::new();
        for p in to {
            let r = app
                .webhook(&p.id, &payload, &webhook_secret(p), now())
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            statuses.push(r.json()["status"].as_str().unwrap().to_string());
        }
        statuses
    };
    let st = deliver(
        [&b, &a],
        "checkout.session.completed",
        t,
        checkout_completed("cs_a", &cus_a, &user_a, &sub_a),
    )
    .await;
    assert_eq!(st, ["ignored", "applied"], "A's Checkout is not B's");
    let st = deliver(
        [&b, &a],
        "customer.subscription.created",
        t + 1,
        subscription(
            &sub_a,
            &cus_a,
            "active",
            "price_pro",
            period,
            false,
            Some(&user_a),
        ),
    )
    .await;
    assert_eq!(st, ["applied", "applied"]);
    let st = deliver(
        [&a, &b],
        "customer.subscription.created",
        t + 1,
        subscription(
            &sub_b,
            &cus_b,
            "active",
            "price_basic",
            period,
            false,
            Some(&user_b),
        ),
    )
    .await;
    assert_eq!(st, ["applied", "applied"]);

    assert_eq!(user(&app, &a, &token_a).await["plan"], "pro");
    assert_eq!(user(&app, &b, &token_b).await["plan"], "basic");
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM subscriptions WHERE id = $1 OR id = $2")
            .bind(&sub_a)
            .bind(&sub_b)
            .fetch_one(&app.handle.state.core.svc.db.pool)
            .await
            .unwrap();
    assert_eq!(
        rows, 4,
        "each project keeps its own copy of the account's subscriptions"
    );

    // A later change reaches both projects' copies.
    let st = deliver(
        [&b, &a],
        "customer.subscription.updated",
        t + 2,
        subscription(
            &sub_a,
            &cus_a,
            "active",
            "price_basic",
            period,
            true,
            Some(&user_a),
        ),
    )
    .await;
    assert_eq!(st, ["applied", "applied"]);
    let v = user(&app, &a, &token_a).await;
    assert_eq!(
        (v["plan"].as_str(), v["cancel_at_period_end"].as_bool()),
        (Some("basic"), Some(true))
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------- logs

/// Everything logged in this test binary (INFO and up, DEBUG of reauth), as text.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,reauth_actors=debug,stripe_webhook=trace",
            ))
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .try_init()
            .expect("the only subscriber of this test binary");
        buf
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lines_with(logs: &Arc<Mutex<Vec<u8>>>, needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_delivery_logs_one_outcome_line_and_a_typed_parse_failure_is_no_error() {
    let logs = captured();
    let (_dep, app, p, _token, user_id) = setup(Backend::Embedded).await;
    let sub = format!("sub_{}", unique(""));
    // Our fixture lacks fields async-stripe's typed Subscription requires (as a newer or older
    // API shape does): its typed parse fails; the tolerant reader applies it.
    let obj = subscription(
        &sub,
        "cus_log",
        "active",
        "price_pro",
        now() + 86400,
        false,
        Some(&user_id),
    );
    let (_, body, id) = send(&app, &p, "customer.subscription.created", now(), obj).await;
    assert_eq!(body["status"], "applied");
    let (_, body, weird) = send(
        &app,
        &p,
        "customer.subscription.updated",
        now(),
        json!({"id": "sub_weird", "object": "subscription"}),
    )
    .await;
    assert_eq!(body["status"], "unreadable");

    let lines = lines_with(&logs, &id);
    let outcome: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("Stripe webhook"))
        .collect();
    assert_eq!(outcome.len(), 1, "one line per delivery: {lines:#?}");
    assert!(
        outcome[0].contains(" INFO ") && outcome[0].contains("outcome=\"applied\""),
        "{}",
        outcome[0]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" DEBUG ") && l.contains("could not type this event")),
        "the typed parse did fail (else this test proves nothing): {lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(" ERROR ") || l.contains(" WARN ")),
        "{lines:#?}"
    );

    // The unreadable one says, in its one line, that Stripe will not retry it.
    let lines = lines_with(&logs, &weird);
    let outcome: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("Stripe webhook"))
        .collect();
    assert_eq!(outcome.len(), 1, "{lines:#?}");
    assert!(
        outcome[0].contains("outcome=\"unreadable\""),
        "{}",
        outcome[0]
    );
    assert!(
        outcome[0].contains("answered 200, so Stripe will not retry"),
        "{}",
        outcome[0]
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("re-applied when delivered again"))
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------- reconciliation

/// A user whose customer is linked and whose subscription reauth holds, as a webhook left it.
async fn subscribed(
    app: &TestApp,
    dep: &Deployment,
    p: &TestProject,
) -> (String, String, String, String) {
    let (token, user_id) = signed_in(app, dep, p).await;
    let (sub, cus) = (format!("sub_{}", unique("")), format!("cus_{}", unique("")));
    let t = now() - 600;
    send(
        app,
        p,
        "checkout.session.completed",
        t,
        checkout_completed("cs", &cus, &user_id, &sub),
    )
    .await;
    (token, user_id, sub, cus)
}

/// `/v1/user` once it shows `plan` (a push reaches a resident view asynchronously).
async fn plan_eventually(app: &TestApp, p: &TestProject, token: &str, plan: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = user(app, p, token).await;
        if v["plan"] == plan {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never showed {plan}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn repairs_metric(metrics: &str, slug: &str) -> Option<u64> {
    let prefix = format!("reauth_stripe_reconcile_repairs_total{{project=\"{slug}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

on_both!(reconcile_repairs_planted_drift_and_resident_views_show_it);
async fn reconcile_repairs_planted_drift_and_resident_views_show_it(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let p = dep.billing_project(&app).await;
    let core = &app.handle.state.core;
    let db = &core.svc.db.pool;
    let period = now() + 20 * 86400;

    // Drifted: reauth holds `canceled`, Stripe has it active.
    let (token, user_id, sub, cus) = subscribed(&app, &dep, &p).await;
    send(
        &app,
        &p,
        "customer.subscription.created",
        now() - 500,
        subscription(&sub, &cus, "active", "price_pro", period, false, None),
    )
    .await;
    sqlx::query("UPDATE subscriptions SET status = 'canceled', updated_at = 0 WHERE project_id = $1 AND id = $2")
        .bind(&p.id)
        .bind(&sub)
        .execute(db)
        .await
        .unwrap();
    core.sessions.user_changed(&p.id, &user_id).await.unwrap();
    assert_eq!(
        user(&app, &p, &token).await["plan"],
        "free",
        "the drift shows"
    );
    dep.stripe.put_subscription(
        &key(&p),
        subscription(&sub, &cus, "active", "price_pro", period, false, None),
    );
    // Missing: a subscription of a known customer whose events never arrived.
    let (token2, _, sub2, cus2) = subscribed(&app, &dep, &p).await;
    dep.stripe.put_subscription(
        &key(&p),
        subscription(&sub2, &cus2, "trialing", "price_basic", period, false, None),
    );
    assert_eq!(user(&app, &p, &token2).await["plan"], "free");
    // And more than a page of subscriptions of customers this project does not know.
    for i in 0..120 {
        dep.stripe.put_subscription(
            &key(&p),
            subscription(
                &format!("sub_other_{i}"),
                &format!("cus_other_{i}"),
                "active",
                "price_pro",
                period,
                false,
                None,
            ),
        );
    }
    let before = repairs_metric(&app.ops_get("/metrics").await.body, &p.slug).unwrap_or(0);

    let project = core.directory.project(&p.id).unwrap();
    let report = reconcile::reconcile_project(&core.svc, Some(&core.sessions), &project)
        .await
        .expect("reconcile");
    assert_eq!((report.checked, report.repaired), (122, 2), "{report:?}");
    let lists = dep.stripe.calls("/v1/subscriptions");
    assert_eq!(lists.len(), 2, "two pages");
    assert_eq!(
        (lists[0].get("status"), lists[0].get("limit")),
        (Some("all"), Some("100"))
    );
    assert!(lists[1].get("starting_after").is_some());

    // Resident views are told (no reload, no expiry).
    let v = plan_eventually(&app, &p, &token, "pro").await;
    assert_eq!(v["subscription_status"], "active");
    assert_eq!(v["current_period_end"], rfc(period));
    let v = plan_eventually(&app, &p, &token2, "basic").await;
    assert_eq!(v["subscription_status"], "trialing");
    let unknown: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM subscriptions WHERE project_id = $1 AND id LIKE 'sub_other_%'",
    )
    .bind(&p.id)
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(
        unknown, 0,
        "subscriptions of unknown customers are not ours to insert"
    );
    assert_eq!(
        repairs_metric(&app.ops_get("/metrics").await.body, &p.slug),
        Some(before + 2)
    );

    // Nothing left to repair.
    let all = reconcile::reconcile_all(&core.svc, Some(&core.sessions))
        .await
        .unwrap();
    let again = all
        .iter()
        .find(|r| r.project_id == p.id)
        .expect("the project is reconciled");
    assert_eq!(
        (again.checked, again.repaired, again.error.as_deref()),
        (122, 0, None)
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reconciles_a_project_and_running_instances_show_the_repair() {
    let dep = Deployment::new(Backend::Real).await;
    let app = dep.spawn().await;
    let p = dep.billing_project(&app).await;
    let core = &app.handle.state.core;
    let period = now() + 20 * 86400;
    let (token, user_id, sub, cus) = subscribed(&app, &dep, &p).await;
    send(
        &app,
        &p,
        "customer.subscription.created",
        now() - 500,
        subscription(&sub, &cus, "past_due", "price_pro", period, false, None),
    )
    .await;
    sqlx::query("UPDATE subscriptions SET status = 'unpaid', updated_at = 0 WHERE project_id = $1 AND id = $2")
        .bind(&p.id)
        .bind(&sub)
        .execute(&core.svc.db.pool)
        .await
        .unwrap();
    core.sessions.user_changed(&p.id, &user_id).await.unwrap();
    assert_eq!(user(&app, &p, &token).await["plan"], "free");
    dep.stripe.put_subscription(
        &key(&p),
        subscription(&sub, &cus, "active", "price_pro", period, false, None),
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reauth"))
        .args(["stripe", "reconcile", "--project", &p.slug, "--json"])
        .env("REAUTH_DATABASE_URL", &dep.database_url)
        .env("REAUTH_REDIS_URL", redis_url())
        .env("REAUTH_REDIS_PREFIX", &dep.redis_prefix)
        .env("REAUTH_MASTER_KEY", &dep.master_key)
        .env("REAUTH_STRIPE_API_URL", &dep.stripe.url)
        .env("REAUTH_DATA_DIR", &dep.data_dir)
        .output()
        .expect("run reauth");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(reports[0]["project"], p.slug.as_str());
    assert_eq!(
        (
            reports[0]["checked"].as_u64(),
            reports[0]["repaired"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // The running instance's resident view hears of it over the bus.
    plan_eventually(&app, &p, &token, "pro").await;

    // A project without a Stripe key is refused by name.
    let bare = dep.project(&app, false).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reauth"))
        .args(["stripe", "reconcile", "--project", &bare.slug])
        .env("REAUTH_DATABASE_URL", &dep.database_url)
        .env("REAUTH_MASTER_KEY", &dep.master_key)
        .env("REAUTH_STRIPE_API_URL", &dep.stripe.url)
        .env_remove("REAUTH_REDIS_URL")
        .output()
        .expect("run reauth");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no Stripe secret key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------- migration

on_both!(migration_0003_keys_subscriptions_per_project_and_keeps_every_row);
async fn migration_0003_keys_subscriptions_per_project_and_keeps_every_row(backend: Backend) {
    use sqlx::{Executor, Row};
    let url = match backend {
        Backend::Real => reauth_runtime::db::testing::fresh_postgres().await.unwrap(),
        Backend::Embedded => reauth_runtime::db::testing::fresh_sqlite(),
    };
    let db = reauth_runtime::Db::connect(&url).await.unwrap();
    let pool = &db.pool;
    let run = async |sql: &str| {
        pool.execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .unwrap();
    };
    run(include_str!("../../migrations/0001_initial.sql")).await;
    run("INSERT INTO projects (id, slug, name, created_at, updated_at) VALUES ('prj_a', 'a', 'A', 1, 1), ('prj_b', 'b', 'B', 1, 1)").await;
    run("INSERT INTO end_users (id, project_id, email, stripe_customer_id, created_at, updated_at) VALUES ('usr_1', 'prj_a', 'a@example.com', 'cus_1', 1, 1)").await;
    run("INSERT INTO subscriptions (id, project_id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at) VALUES
         ('sub_1', 'prj_a', 'usr_1', 'cus_1', 'price_pro', 'active', 1700000000000, 1, 1600000000000, 1600000000001),
         ('sub_2', 'prj_b', NULL, 'cus_2', NULL, 'incomplete', NULL, 0, 1600000000002, 1600000000003)").await;
    run("INSERT INTO stripe_events (project_id, event_id, event_type, created, status, error, payload, received_at) VALUES
         ('prj_a', 'evt_1', 'customer.subscription.updated', 1, 'error', 'lacks status', '{}', 2),
         ('prj_a', 'evt_2', 'customer.subscription.created', 1, 'applied', NULL, '{}', 2)").await;
    let rows = async || -> Vec<String> {
        sqlx::query("SELECT id, project_id, user_id, customer_id, price_id, status, current_period_end, cancel_at_period_end, source_created, updated_at FROM subscriptions ORDER BY project_id, id")
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{:?}",
                    (
                        r.get::<String, _>("id"),
                        r.get::<String, _>("project_id"),
                        r.get::<Option<String>, _>("user_id"),
                        r.get::<String, _>("customer_id"),
                        r.get::<Option<String>, _>("price_id"),
                        r.get::<String, _>("status"),
                        r.get::<Option<i64>, _>("current_period_end"),
                        r.get::<i64, _>("cancel_at_period_end"),
                        r.get::<i64, _>("source_created"),
                        r.get::<i64, _>("updated_at"),
                    )
                )
            })
            .collect()
    };
    let before = rows().await;
    assert_eq!(before.len(), 2);

    run(include_str!(
        "../../migrations/0003_subscriptions_per_project.sql"
    ))
    .await;

    assert_eq!(rows().await, before, "every row kept as it was");
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM stripe_events ORDER BY event_id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(statuses, ["unreadable", "applied"]);
    // The same Stripe subscription in another project is now its own row...
    run("INSERT INTO subscriptions (id, project_id, customer_id, status, source_created, updated_at) VALUES ('sub_1', 'prj_b', 'cus_1', 'active', 1, 1)").await;
    // ...and (project, id) is the key.
    let dup = sqlx::query("INSERT INTO subscriptions (id, project_id, customer_id, status, source_created, updated_at) VALUES ('sub_1', 'prj_a', 'cus_1', 'active', 1, 1)")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(reauth_runtime::Db::is_unique_violation(&dup), "{dup}");
    let index: i64 = match backend {
        Backend::Real => sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'subscriptions' AND indexname = 'subscriptions_user'",
        ),
        Backend::Embedded => sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'subscriptions' AND name = 'subscriptions_user'",
        ),
    }
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(index, 1, "the index subscriptions_user is kept");
    db.pool.close().await;
}
