//! Revocation bounds and the cost of revalidation. Production backends: PostgreSQL + Redis.
//!
//! 1. A logout on instance A -> the token refused by instance B's hot path, where the session
//!    is resident: with the bus healthy (the real logout: SQL, Redis DEL, publish), and with the
//!    bus message dropped (the revocation lands in SQL only; B learns it from the revocations
//!    feed, read every `REAUTH_REVALIDATE_SECS`, set to 1 s here).
//! 2. The revalidation pass on an instance holding 100,000 resident sessions, against the
//!    naive pass it replaces (checking every resident session against SQL), in the same run.
//!
//! `cargo bench -p reauth-benches --bench revocation` -> benches/results/revocation.md

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reauth_actors::Core;
use reauth_actors::session::Resident;
use reauth_actors::store;
use reauth_benches::{ms, pct, write_results};
use reauth_http::Mode;
use reauth_runtime::crypto::{hash_token, random_token};
use reauth_runtime::now_ms;

const HEALTHY_RUNS: usize = 500;
const DROPPED_RUNS: usize = 100;
const RESIDENT: usize = 100_000;
const USERS: usize = 1_000;
const PASSES: usize = 30;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

/// CPU time of this process so far (user + system), from /proc/self/stat (10 ms ticks).
fn cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// `n` users of the project, each with `per_user` sessions, written in bulk; returns the tokens.
async fn bulk_sessions(
    core: &Core,
    pid: &str,
    tag: &str,
    n: usize,
    per_user: usize,
) -> anyhow::Result<Vec<String>> {
    let db = &core.svc.db;
    let now = now_ms();
    let mut tokens = Vec::with_capacity(n * per_user);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| format!("('usr_{tag}{i}', '{pid}', '{tag}{i}@example.com', 1, {now}, {now})"))
            .collect();
        let sql = format!(
            "INSERT INTO end_users (id, project_id, email, email_verified, created_at, updated_at) VALUES {}",
            values.join(",")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&db.pool)
            .await?;
    }
    let expires = now + 86_400_000;
    let all: Vec<(usize, usize)> = (0..n)
        .flat_map(|u| (0..per_user).map(move |s| (u, s)))
        .collect();
    for chunk in all.chunks(500) {
        let mut values = Vec::with_capacity(chunk.len());
        for (u, s) in chunk {
            let t = random_token();
            values.push(format!(
                "('ses_{tag}{u}_{s}', '{pid}', 'usr_{tag}{u}', '{}', {now}, {expires}, {now})",
                hash_token(&t)
            ));
            tokens.push(t);
        }
        let sql = format!(
            "INSERT INTO sessions (id, project_id, user_id, token_hash, created_at, expires_at, last_seen_at) VALUES {}",
            values.join(",")
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&db.pool)
            .await?;
    }
    Ok(tokens)
}

/// Make every token's session resident on `core` (slow path: Redis, SQL, activation).
async fn make_resident(core: &Core, pid: &str, tokens: &[String]) -> anyhow::Result<()> {
    let sessions = core.sessions.clone();
    let now = now_ms();
    let results: Vec<bool> = futures_util::stream::iter(tokens.iter().cloned())
        .map(|t| {
            let (s, pid) = (sessions.clone(), pid.to_string());
            async move { matches!(s.lookup(&pid, &t, now).await, Ok(Some(_))) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    anyhow::ensure!(results.iter().all(|ok| *ok), "a session did not resolve");
    Ok(())
}

fn live(core: &Core, pid: &str, token: &str) -> bool {
    matches!(
        core.sessions.published(pid, token, now_ms()),
        Resident::Live(_)
    )
}

/// Poll B's hot path until the token is refused; returns how long it took.
async fn until_refused(core: &Core, pid: &str, token: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while live(core, pid, token) {
        if t.elapsed() > limit {
            return None;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Some(t.elapsed())
}

async fn run() -> anyhow::Result<()> {
    let mut s = reauth_benches::production_settings("reauth_bench_rv_").await?;
    s.revalidate_secs = 1;
    let a = reauth_http::start(s.clone(), Mode::Serve).await?;
    let b = reauth_http::start(s.clone(), Mode::Serve).await?;
    let (ca, cb) = (a.state.core.clone(), b.state.core.clone());
    let pid = reauth_benches::create_project(&ca).await?;
    ca.project_changed(&pid).await?;
    for c in [&ca, &cb] {
        let t = Instant::now();
        while c.directory.project(&pid).is_none() {
            anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "project not loaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // ---- 1. A -> B, bus healthy: the real logout path on A.
    let tokens = bulk_sessions(&ca, &pid, "h", HEALTHY_RUNS, 1).await?;
    make_resident(&cb, &pid, &tokens).await?;
    let mut healthy = Vec::with_capacity(HEALTHY_RUNS);
    let mut missed = 0;
    for t in &tokens {
        let start = Instant::now();
        anyhow::ensure!(ca.sessions.revoke(&pid, t, now_ms()).await?, "not revoked");
        match until_refused(&cb, &pid, t, Duration::from_secs(5)).await {
            Some(_) => healthy.push(start.elapsed()),
            None => missed += 1,
        }
    }
    healthy.sort();

    // ---- 1b. A -> B, bus dropped: SQL only (no DEL, no publish), at random moments.
    let tokens = bulk_sessions(&ca, &pid, "d", DROPPED_RUNS, 1).await?;
    make_resident(&cb, &pid, &tokens).await?;
    let mut dropped = Vec::with_capacity(DROPPED_RUNS);
    let mut dropped_missed = 0;
    let results: Vec<Option<Duration>> = futures_util::stream::iter(tokens.iter().enumerate())
        .map(|(i, t)| {
            let (ca, cb, pid, t) = (ca.clone(), cb.clone(), pid.clone(), t.clone());
            async move {
                // Spread over the interval: a revocation's wait depends on where it falls.
                tokio::time::sleep(Duration::from_millis((i as u64 * 137) % 1000)).await;
                let start = Instant::now();
                store::revoke_session(&ca.svc.db, &pid, &hash_token(&t), now_ms())
                    .await
                    .ok()??;
                until_refused(&cb, &pid, &t, Duration::from_secs(10))
                    .await
                    .map(|_| start.elapsed())
            }
        })
        .buffer_unordered(DROPPED_RUNS)
        .collect()
        .await;
    for r in results {
        match r {
            Some(d) => dropped.push(d),
            None => dropped_missed += 1,
        }
    }
    dropped.sort();
    a.shutdown().await;

    // ---- 2. The revalidation pass with 100,000 resident sessions on B.
    let t = Instant::now();
    let tokens = bulk_sessions(&cb, &pid, "r", USERS, RESIDENT / USERS).await?;
    make_resident(&cb, &pid, &tokens).await?;
    let setup = t.elapsed();
    let resident = cb.sessions.resident();
    let hashes: Arc<Vec<String>> = Arc::new(tokens.iter().map(|t| hash_token(t)).collect());
    let mut rows = String::new();
    let mut revoked_so_far = 0usize;
    for in_window in [0usize, 100, 1_000] {
        // Revoke sessions until `in_window` fall in the pass's window.
        let db = &cb.svc.db;
        for h in hashes
            .iter()
            .skip(revoked_so_far)
            .take(in_window - revoked_so_far.min(in_window))
        {
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2")
                .bind(now_ms())
                .bind(h)
                .execute(&db.pool)
                .await?;
        }
        revoked_so_far = revoked_so_far.max(in_window);
        let since = now_ms() - 60_000;
        // The pass as it runs: revocations + changed subscriptions, applied here.
        let (cpu0, t0) = (cpu(), Instant::now());
        let mut seen = 0;
        for _ in 0..PASSES {
            seen = reauth_actors::revocation::revalidate(&cb.svc, &cb.sessions, since)
                .await?
                .rows;
        }
        let wall = t0.elapsed() / PASSES as u32;
        let cpu_per = (cpu() - cpu0) / PASSES as u32;
        // The SQL alone.
        let t1 = Instant::now();
        for _ in 0..PASSES {
            store::revocations_since(db, since).await?;
            store::subscriptions_changed_since(db, since).await?;
        }
        let sql = t1.elapsed() / PASSES as u32;
        // Baseline: what a pass costs when it checks every resident session against SQL.
        let (cpu2, t2) = (cpu(), Instant::now());
        let naive_passes = 3;
        for _ in 0..naive_passes {
            for chunk in hashes.chunks(1_000) {
                let list = chunk
                    .iter()
                    .map(|h| format!("'{h}'"))
                    .collect::<Vec<_>>()
                    .join(",");
                let sql = format!(
                    "SELECT token_hash FROM sessions WHERE revoked_at IS NOT NULL AND token_hash IN ({list})"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&db.pool)
                    .await?;
            }
        }
        let naive = t2.elapsed() / naive_passes;
        let naive_cpu = (cpu() - cpu2) / naive_passes;
        rows.push_str(&format!(
            "| {in_window} ({seen} read) | {} | {} | {} | {} | {} | {:.0}x |\n",
            ms(wall),
            ms(cpu_per),
            ms(sql),
            ms(naive),
            ms(naive_cpu),
            naive.as_secs_f64() / wall.as_secs_f64().max(1e-9),
        ));
    }
    b.shutdown().await;

    let mut body = String::new();
    body.push_str("Two reauth instances in one process (2 tokio workers shared), PostgreSQL + Redis on the same machine. B holds the sessions resident; the harness watches B's hot path (`Sessions::published`, what `GET /v1/user` reads) every 0.2 ms.\n\n");
    body.push_str("## Logout on A -> refused on B\n\n| Case | Runs | p50 | p90 | p99 | max | Not refused in time |\n|---|---|---|---|---|---|---|\n");
    for (name, v, miss) in [
        ("bus healthy (SQL + DEL + publish)", &healthy, missed),
        (
            "bus dropped (SQL only), `REAUTH_REVALIDATE_SECS=1`",
            &dropped,
            dropped_missed,
        ),
    ] {
        body.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {miss} |\n",
            v.len(),
            ms(pct(v, 50.0)),
            ms(pct(v, 90.0)),
            ms(pct(v, 99.0)),
            ms(v.last().copied().unwrap_or_default()),
        ));
    }
    body.push_str("\nWith the bus dropped the wait is the time to B's next pass (uniform over the interval) plus the pass: the bound is `REAUTH_REVALIDATE_SECS` (default 30 s) plus one pass.\n\n");
    body.push_str(&format!(
        "## Revalidation pass with {} resident sessions (held by {resident} session actors)\n\nSet-up (bulk insert + activating every session): {:.1} s. Each pass row is the mean of {PASSES} passes; the baseline (every resident session checked against SQL in batches of 1,000) the mean of 3. CPU is the whole process's (user + system, 10 ms ticks).\n\n| Revocations in the window (rows the pass read, incl. earlier ones) | Pass (wall) | Pass (CPU) | of which SQL (wall) | Baseline: check all (wall) | Baseline (CPU) | Baseline / pass |\n|---|---|---|---|---|---|---|\n{rows}",
        hashes.len(),
        setup.as_secs_f64()
    ));
    write_results(
        "revocation",
        "Revocation: A -> B bounds, and the revalidation pass",
        "cargo bench -p reauth-benches --bench revocation",
        &body,
    )?;
    Ok(())
}
