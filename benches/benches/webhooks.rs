//! Stripe webhook fan-out: time from a webhook accepted by instance A to the new plan visible
//! at `GET /v1/user` on instance B (whose SessionActor is warm), over 1,000 events; and webhook
//! throughput of one instance. Production backends: PostgreSQL + Redis.
//!
//! `cargo bench -p reauth-benches --bench webhooks` -> benches/results/webhooks.md

use std::time::{Duration, Instant};

use reauth_actors::model::PlanMapping;
use reauth_actors::store::{self, ProjectPatch};
use reauth_benches::{ms, pct, write_results};
use reauth_http::Mode;
use reauth_runtime::config::Secret;
use reauth_runtime::now_ms;
use serde_json::json;
use stripe_webhook::Webhook;

const EVENTS: usize = 1000;
const THROUGHPUT_EVENTS: usize = 40_000;
const TP_SECS: u32 = 5;
const CONCURRENCY: usize = 32;
const SECRET: &str = "whsec_bench";

fn sub_event(id: &str, sub: &str, cus: &str, user: &str, price: &str, created: i64) -> String {
    json!({
        "id": id, "object": "event", "api_version": "2026-09-30.endive", "created": created,
        "type": "customer.subscription.updated", "livemode": false, "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "data": {"object": {
            "id": sub, "object": "subscription", "customer": cus, "status": "active",
            "cancel_at_period_end": false, "metadata": {"reauth_user_id": user},
            "items": {"object": "list", "data": [{"id": "si_1", "object": "subscription_item",
                "current_period_end": created + 2_592_000, "price": {"id": price, "object": "price"}}]}
        }}
    })
    .to_string()
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let s = reauth_benches::production_settings("reauth_bench_wh_").await?;
    let a = reauth_http::start(s.clone(), Mode::Serve).await?;
    let b = reauth_http::start(s.clone(), Mode::Serve).await?;
    let core = a.state.core.clone();
    let pid = reauth_benches::create_project(&core).await?;
    let patch = ProjectPatch {
        stripe_webhook_secret: Some(Some(Secret::new(SECRET))),
        stripe_secret_key: Some(Some(Secret::new("sk_test_bench"))),
        plans: Some(vec![
            PlanMapping {
                price_id: "price_basic".into(),
                plan: "basic".into(),
                features: vec![],
            },
            PlanMapping {
                price_id: "price_pro".into(),
                plan: "pro".into(),
                features: vec![],
            },
        ]),
        ..Default::default()
    };
    store::update_project(&core.svc.db, &core.svc.master_key, &pid, &patch, now_ms()).await?;
    core.project_changed(&pid).await?;
    for inst in [&a, &b] {
        let t = Instant::now();
        while inst
            .state
            .core
            .directory
            .project(&pid)
            .is_none_or(|p| p.plans.is_empty())
        {
            anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "project not loaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let project = core
        .directory
        .project(&pid)
        .ok_or_else(|| anyhow::anyhow!("project"))?;
    let host = "bench.bench.local";
    let http = reqwest::Client::new();
    let webhook_url = format!("http://{}/webhooks/stripe/{pid}", a.addr);
    let b_user = format!("http://{}/v1/user", b.addr);

    // ---- latency: one user, warm on B, plan flips with every event
    let u = store::upsert_user_by_email(&core.svc.db, &pid, "lat@example.com", now_ms()).await?;
    let (token, _) = core
        .sessions
        .create(&project, &u.id, None, None, now_ms())
        .await?;
    let plan_on_b = |http: reqwest::Client, url: String, token: String| async move {
        let v: serde_json::Value = http
            .get(&url)
            .header("host", host)
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        Ok::<_, anyhow::Error>(v["plan"].as_str().unwrap_or_default().to_string())
    };
    anyhow::ensure!(plan_on_b(http.clone(), b_user.clone(), token.clone()).await? == "free");
    let base = now_ms() / 1000 - 10 * EVENTS as i64;
    let mut accepted_to_visible = Vec::with_capacity(EVENTS);
    let mut sent_to_visible = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let (price, plan) = if i % 2 == 0 {
            ("price_pro", "pro")
        } else {
            ("price_basic", "basic")
        };
        let payload = sub_event(
            &format!("evt_lat_{i}"),
            "sub_lat",
            "cus_lat",
            &u.id,
            price,
            base + i as i64,
        );
        let sig = Webhook::generate_test_header(&payload, SECRET, None);
        let sent = Instant::now();
        let r = http
            .post(&webhook_url)
            .header("stripe-signature", sig)
            .body(payload)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "webhook {}", r.status());
        let accepted = Instant::now();
        loop {
            if plan_on_b(http.clone(), b_user.clone(), token.clone()).await? == plan {
                break;
            }
            anyhow::ensure!(
                accepted.elapsed() < Duration::from_secs(5),
                "plan never visible on B"
            );
        }
        accepted_to_visible.push(accepted.elapsed());
        sent_to_visible.push(sent.elapsed());
    }
    accepted_to_visible.sort();
    sent_to_visible.sort();

    // ---- throughput: many users and subscriptions, CONCURRENCY senders against instance A
    let mut users = Vec::new();
    for i in 0..200 {
        let u = store::upsert_user_by_email(
            &core.svc.db,
            &pid,
            &format!("tp{i}@example.com"),
            now_ms(),
        )
        .await?;
        users.push(u.id);
    }
    // Pre-signed deliveries, replayed by wrk (a C load tool, far cheaper than an in-process
    // client) from a file: one `signature<TAB>payload` per line, each event id used once.
    let file = std::env::temp_dir().join(format!("reauth-webhooks-{}.tsv", std::process::id()));
    let mut lines = String::new();
    for i in 0..THROUGHPUT_EVENTS {
        let user = &users[i % users.len()];
        let p = sub_event(
            &format!("evt_tp_{i}"),
            &format!("sub_tp_{}", i % users.len()),
            &format!("cus_tp_{}", i % users.len()),
            user,
            if i % 3 == 0 {
                "price_pro"
            } else {
                "price_basic"
            },
            base + i as i64,
        );
        let sig = Webhook::generate_test_header(&p, SECRET, None);
        lines.push_str(&format!("{sig}\t{p}\n"));
    }
    std::fs::write(&file, lines)?;
    let script = format!(
        r#"
local reqs = {{}}
local n = 0
init = function(args)
  for line in io.lines("{}") do
    local tab = line:find("\t")
    table.insert(reqs, wrk.format("POST", nil, {{ ["Stripe-Signature"] = line:sub(1, tab - 1), ["Content-Type"] = "application/json" }}, line:sub(tab + 1)))
  end
end
request = function()
  n = n + 1
  if n > #reqs then n = 1 end
  return reqs[n]
end
"#,
        file.display()
    );
    let before: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE project_id = $1")
            .bind(&pid)
            .fetch_one(&core.svc.db.pool)
            .await?;
    let url = webhook_url.clone();
    let tp = tokio::task::spawn_blocking(move || {
        reauth_benches::wrk(&url, CONCURRENCY as u32, TP_SECS, &script)
    })
    .await??;
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE project_id = $1")
        .bind(&pid)
        .fetch_one(&core.svc.db.pool)
        .await?;
    let recorded = after - before;
    anyhow::ensure!(
        (recorded as usize) < THROUGHPUT_EVENTS,
        "pre-signed events ran out; raise THROUGHPUT_EVENTS"
    );
    let _ = std::fs::remove_file(&file);

    let mut body = String::new();
    body.push_str(&format!("Two reauth instances in one process (2 tokio workers shared), PostgreSQL + Redis on the same machine. Instance B's SessionActor for the user is warm; each of {EVENTS} `customer.subscription.updated` events flips the plan; after A answers 200 the harness polls B's `GET /v1/user` (one request at a time) until the new plan shows.\n\n"));
    body.push_str("| Measure | p50 | p90 | p99 | max |\n|---|---|---|---|---|\n");
    for (name, v) in [
        (
            "webhook accepted by A -> new plan at B's /v1/user",
            &accepted_to_visible,
        ),
        (
            "webhook sent to A -> new plan at B's /v1/user",
            &sent_to_visible,
        ),
    ] {
        body.push_str(&format!(
            "| {name} | {} | {} | {} | {} |\n",
            ms(pct(v, 50.0)),
            ms(pct(v, 90.0)),
            ms(pct(v, 99.0)),
            ms(pct(v, 100.0))
        ));
    }
    body.push_str(&format!(
        "\n**Webhook throughput of instance A:** wrk (`-t1 -c{CONCURRENCY}`, {TP_SECS} s) posting distinct pre-signed `customer.subscription.updated` events over 200 subscriptions: **{:.0} events/s** accepted (p50 {}, p99 {}, {} errors); {recorded} distinct events recorded in the ledger = **{:.0} applied events/s**. Each event is one SQL transaction (PostgreSQL commits with fsync), a Redis write and a bus publish.\n\nTargets: p99 under 50 ms; at least 1,000 events/s.\n",
        tp.rps,
        ms(tp.p50),
        ms(tp.p99),
        tp.errors,
        recorded as f64 / f64::from(TP_SECS)
    ));
    write_results(
        "webhooks",
        "Stripe webhook fan-out benchmark",
        "cargo bench -p reauth-benches --bench webhooks",
        &body,
    )?;
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}
