//! The Management API at scale: listing end users (limit 100: the first page and a deep page)
//! and exact-email and email-prefix lookups with 1,000,000 end users in one project on
//! PostgreSQL, p50/p99 over HTTP; and what API-key authentication costs per request against an
//! unauthenticated route in the same run.
//!
//! `cargo bench -p reauth-benches --bench api` -> benches/results/api.md (needs wrk, PostgreSQL)

use std::time::{Duration, Instant};

use reauth_actors::admin::projects::NewProject;
use reauth_actors::admin::{Admin, Caller};
use reauth_benches::{ms, pct, script, us, write_results, wrk};
use reauth_http::Mode;
use reauth_runtime::now_ms;

const USERS: i64 = 1_000_000;
const SAMPLES: usize = 400;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

/// Latencies of `n` sequential GETs (keep-alive), sorted; fails on any non-200.
async fn sample(
    http: &reqwest::Client,
    key: &str,
    mut url: impl FnMut(usize) -> String,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let u = url(i);
        let t = Instant::now();
        let r = http.get(&u).bearer_auth(key).send().await?;
        let status = r.status();
        let body = r.bytes().await?;
        v.push(t.elapsed());
        anyhow::ensure!(
            status.is_success(),
            "{u}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    v.sort();
    Ok(v)
}

async fn run() -> anyhow::Result<()> {
    let s = reauth_benches::production_settings("reauth_bench_api_").await?;
    let app = reauth_http::start(s, Mode::Serve).await?;
    let core = app.state.core.clone();
    let admin = Admin::new(&core);
    let org = admin
        .create_org("bench", "bench-org", "Bench", "owner@bench.example")
        .await?;
    let operator = Caller::operator(Some(&org.id));
    let (_, key) = admin.create_api_key(&operator, "bench", &[]).await?;
    let project = admin
        .create_project(
            &operator,
            &NewProject {
                slug: "bench".into(),
                name: Some("Bench".into()),
                allowed_origins: vec![],
            },
        )
        .await?;
    let pid = project.id;

    // 1,000,000 end users, ids sortable like the real ones (usr_ + 32 hex digits).
    let t = Instant::now();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO end_users (id, project_id, email, email_verified, created_at, updated_at)
         SELECT 'usr_' || lpad(to_hex(g), 32, '0'), $1, 'user' || g || '@example.com', 1, $2 + g, $2 + g
         FROM generate_series(1, $3::bigint) AS g",
    )
    .bind(&pid)
    .bind(now - USERS)
    .bind(USERS)
    .execute(&core.svc.db.pool)
    .await?;
    sqlx::query("ANALYZE end_users")
        .execute(&core.svc.db.pool)
        .await?;
    let load = t.elapsed();

    let base = format!("http://{}/api/v1/projects/{pid}/users", app.addr);
    let http = reqwest::Client::new();
    // Warm up the connection, the key cache and the plans.
    sample(&http, &key, |_| format!("{base}?limit=100"), 20).await?;
    let first = sample(&http, &key, |_| format!("{base}?limit=100"), SAMPLES).await?;
    let deep = sample(
        &http,
        &key,
        |i| {
            let at = (i as i64 * 2_477 % (USERS - 200)) + 1;
            format!("{base}?limit=100&starting_after=usr_{at:032x}")
        },
        SAMPLES,
    )
    .await?;
    let email = sample(
        &http,
        &key,
        |i| {
            let n = (i as i64 * 7_919 % USERS) + 1;
            format!("{base}?email=user{n}@example.com")
        },
        SAMPLES,
    )
    .await?;
    let prefix = sample(
        &http,
        &key,
        |i| {
            let n = (i as i64 * 7_919 % (USERS / 10)) + 1;
            format!("{base}?email_prefix=user{n}&limit=100")
        },
        SAMPLES,
    )
    .await?;

    // API-key authentication: in process (cached, and the first check with argon2id), and
    // over HTTP against an unauthenticated route with wrk.
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        admin.authenticate(&key, None, None).await?;
    }
    let cached = t.elapsed() / n;
    let (_, fresh_key) = admin.create_api_key(&operator, "fresh", &[]).await?;
    let t = Instant::now();
    admin.authenticate(&fresh_key, None, None).await?;
    let uncached = t.elapsed();
    let mut bad = key.clone().into_bytes();
    let i = "reauth_sk_".len() + 2;
    bad[i] = if bad[i] == b'a' { b'b' } else { b'a' };
    let bad = String::from_utf8(bad)?;

    let health = wrk(
        &format!("http://{}/healthz", app.addr),
        32,
        5,
        &script(&[], None),
    )?;
    let auth_header = format!("Bearer {key}");
    let authed = wrk(
        &format!("http://{}/api/v1/projects?limit=1", app.addr),
        32,
        5,
        &script(&[("Authorization", &auth_header)], None),
    )?;
    let bad_header = format!("Bearer {bad}");
    let refused = wrk(
        &format!("http://{}/api/v1/projects?limit=1", app.addr),
        32,
        5,
        &script(&[("Authorization", &bad_header)], None),
    )?;
    app.shutdown().await;

    let row = |name: &str, v: &[Duration]| {
        format!(
            "| {name} | {} | {} | {} | {} |\n",
            v.len(),
            ms(pct(v, 50.0)),
            ms(pct(v, 99.0)),
            ms(v.last().copied().unwrap_or_default())
        )
    };
    let mut body = format!(
        "One reauth instance (2 tokio workers) on PostgreSQL + Redis on the same machine; {USERS} end users in one project (bulk-loaded in {:.1} s). Requests are sequential over one keep-alive connection, each with the API key (cached after its first check).\n\n## Listing and lookups\n\n| Request | Samples | p50 | p99 | max |\n|---|---|---|---|---|\n",
        load.as_secs_f64()
    );
    body.push_str(&row("`GET …/users?limit=100` (first page)", &first));
    body.push_str(&row(
        "`GET …/users?limit=100&starting_after=…` (pages across the million)",
        &deep,
    ));
    body.push_str(&row("`GET …/users?email=…` (exact, normalized)", &email));
    body.push_str(&row("`GET …/users?email_prefix=…&limit=100`", &prefix));
    let per_health = 1.0 / health.rps.max(1.0);
    body.push_str(&format!(
        "\n## API-key authentication\n\n| Measure | Result |\n|---|---|\n| `authenticate()` with the key cached (SHA-256 + map), per call | {} |\n| `authenticate()` the first time (SQL + argon2id), one call | {} |\n| `GET /healthz` (no key), wrk 32 connections | {:.0} req/s, p99 {} |\n| `GET /api/v1/projects?limit=1` (key + one SQL query), wrk 32 connections | {:.0} req/s, p99 {} |\n| the same with a mistyped key (refused by its checksum, no I/O) | {:.0} req/s, p99 {} |\n| cached key check / one `/healthz` request's service time | {:.3}x |\n",
        us(cached),
        ms(uncached),
        health.rps,
        ms(health.p99),
        authed.rps,
        ms(authed.p99),
        refused.rps,
        ms(refused.p99),
        cached.as_secs_f64() / per_health,
    ));
    write_results(
        "api",
        "Management API: end users at 1,000,000, and the cost of API keys",
        "cargo bench -p reauth-benches --bench api",
        &body,
    )?;
    Ok(())
}
