//! A revocation holds on every instance whatever Redis and the bus do: cut off (the logout's
//! DEL and publish fail), killed (subscribers miss the message), flushed; and a renewal racing a
//! logout never brings the session back. Each scenario runs several real instances against the
//! machine's PostgreSQL and Redis, with a loopback proxy in front of Redis for the faults.

#[allow(unused_macros)] // every scenario needs Redis; on_both! is not used here
mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::proxy::RedisProxy;
use common::{Backend, Deployment, TestApp, unique};
use reauth_actors::store;
use reauth_runtime::config::Secret;
use reauth_runtime::crypto::hash_token;
use reauth_runtime::{Settings, now_ms};

/// Poll an async condition until it holds; returns how long it took.
async fn until<F, Fut>(what: &str, deadline: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn settings(dep: &Deployment, redis: Option<&str>, revalidate_secs: u64) -> Settings {
    let mut s = dep.settings();
    if let Some(url) = redis {
        s.redis_url = Some(Secret::new(url.to_string()));
    }
    s.revalidate_secs = revalidate_secs;
    s
}

async fn status(app: &TestApp, host: &str, token: &str) -> StatusCode {
    app.user(host, token).await.status
}

/// The session's copy in Redis, read as another instance would.
async fn redis_copy(dep: &Deployment, token: &str) -> Option<String> {
    let cache = reauth_runtime::cache::connect(Some(&common::redis_url()), &dep.redis_prefix)
        .await
        .unwrap();
    cache
        .get(&format!("sess:{}", hash_token(token)))
        .await
        .unwrap()
}

async fn logout(app: &TestApp, host: &str, token: &str) -> StatusCode {
    app.post(
        host,
        "/v1/logout",
        &[("authorization", format!("Bearer {token}"))],
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_cut_off_from_redis_is_refused_on_every_instance_within_the_bound() {
    let dep = Deployment::new(Backend::Real).await;
    let proxy = RedisProxy::start().await;
    // A reaches Redis through the proxy; B directly. Both revalidate each second.
    let a = dep.spawn_with(settings(&dep, Some(&proxy.url), 1)).await;
    let b = dep.spawn_with(settings(&dep, None, 1)).await;
    let p = dep.project(&a, false).await;
    b.wait_for_project(&p).await;
    let token = common::sign_in(&b, &dep, &p, &format!("{}@example.com", unique("cut"))).await;
    assert_eq!(status(&a, &p.host, &token).await, StatusCode::OK);
    assert_eq!(status(&b, &p.host, &token).await, StatusCode::OK);

    proxy.cut();
    assert_eq!(logout(&a, &p.host, &token).await, StatusCode::NO_CONTENT);
    // The scenario is real: the DEL did not reach Redis and the bus message was not sent.
    assert!(
        redis_copy(&dep, &token).await.is_some(),
        "the Redis copy outlived the logout"
    );
    assert_eq!(status(&a, &p.host, &token).await, StatusCode::UNAUTHORIZED);

    // B, where the session is resident and which never heard of the logout: refused within
    // one revalidation interval (1 s here), from the revocations feed.
    let took = until(
        "B refuses the revoked session",
        Duration::from_secs(10),
        || {
            let (b, host, token) = (&b, p.host.clone(), token.clone());
            async move { status(b, &host, &token).await == StatusCode::UNAUTHORIZED }
        },
    )
    .await;
    assert!(took < Duration::from_secs(5), "B took {took:?}");

    // A new instance (revalidating only hourly) refuses the stale Redis copy from its first
    // request: it loaded the recent revocations before serving.
    let c = dep.spawn_with(settings(&dep, None, 3600)).await;
    c.wait_for_project(&p).await;
    assert_eq!(status(&c, &p.host, &token).await, StatusCode::UNAUTHORIZED);
    // And so does it for a cold lookup after its start (a second token, logged out on A).
    proxy.heal();
    let other = common::sign_in(&b, &dep, &p, &format!("{}@example.com", unique("cut2"))).await;
    proxy.cut();
    assert_eq!(logout(&a, &p.host, &other).await, StatusCode::NO_CONTENT);
    assert!(redis_copy(&dep, &other).await.is_some());
    let d = dep.spawn_with(settings(&dep, None, 1)).await;
    d.wait_for_project(&p).await;
    assert_eq!(status(&d, &p.host, &other).await, StatusCode::UNAUTHORIZED);

    proxy.heal();
    for app in [a, b, c, d] {
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_missed_while_redis_was_down_applies_when_the_bus_resubscribes() {
    let dep = Deployment::new(Backend::Real).await;
    let proxy = RedisProxy::start().await;
    // B revalidates only hourly: what refuses the session after Redis returns is the bus
    // resubscription's immediate feed read, not the interval.
    let a = dep.spawn_with(settings(&dep, None, 3600)).await;
    let b = dep.spawn_with(settings(&dep, Some(&proxy.url), 3600)).await;
    let p = dep.project(&a, false).await;
    b.wait_for_project(&p).await;
    let token = common::sign_in(&a, &dep, &p, &format!("{}@example.com", unique("kill"))).await;
    assert_eq!(status(&b, &p.host, &token).await, StatusCode::OK);

    proxy.kill();
    assert_eq!(logout(&a, &p.host, &token).await, StatusCode::NO_CONTENT);
    // B missed the message: its resident session still answers (nothing told it).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&b, &p.host, &token).await, StatusCode::OK);

    proxy.revive();
    let took = until(
        "B refuses the session after Redis returns",
        Duration::from_secs(15),
        || {
            let (b, host, token) = (&b, p.host.clone(), token.clone());
            async move { status(b, &host, &token).await == StatusCode::UNAUTHORIZED }
        },
    )
    .await;
    assert!(took < Duration::from_secs(10), "took {took:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_logs_nobody_in_or_out() {
    let dep = Deployment::new(Backend::Real).await;
    let a = dep.spawn_with(settings(&dep, None, 3600)).await;
    let b = dep.spawn_with(settings(&dep, None, 3600)).await;
    let p = dep.project(&a, false).await;
    b.wait_for_project(&p).await;
    let live = common::sign_in(&a, &dep, &p, &format!("{}@example.com", unique("fl1"))).await;
    let gone = common::sign_in(&a, &dep, &p, &format!("{}@example.com", unique("fl2"))).await;
    assert_eq!(status(&b, &p.host, &gone).await, StatusCode::OK);
    assert_eq!(logout(&a, &p.host, &gone).await, StatusCode::NO_CONTENT);

    // Flush this deployment's keys.
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", dep.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert!(redis_copy(&dep, &live).await.is_none());

    // From SQL: the live session still signs in, the revoked one never comes back.
    let c = dep.spawn_with(settings(&dep, None, 3600)).await;
    c.wait_for_project(&p).await;
    assert_eq!(status(&c, &p.host, &live).await, StatusCode::OK);
    assert_eq!(status(&c, &p.host, &gone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&b, &p.host, &gone).await, StatusCode::UNAUTHORIZED);
    for app in [a, b, c] {
        app.shutdown().await;
    }
}

/// Make the session's renewal due and have this instance adopt it from SQL.
async fn adopt_with_renewal_due(app: &TestApp, dep: &Deployment, host: &str, token: &str) {
    let db = &app.handle.state.core.svc.db;
    let hash = hash_token(token);
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
        .bind(now_ms() - 2 * 3_600_000)
        .bind(&hash)
        .execute(&db.pool)
        .await
        .unwrap();
    // Drop the Redis copy so the lookup reads SQL (the old last_seen_at).
    let cache = reauth_runtime::cache::connect(Some(&common::redis_url()), &dep.redis_prefix)
        .await
        .unwrap();
    cache.del(&format!("sess:{hash}")).await.unwrap();
    assert_eq!(status(app, host, token).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_racing_a_logout_never_resurrects_the_session() {
    let dep = Deployment::new(Backend::Real).await;
    // Hourly revalidation: only the renewal's own outcome can refuse the session here.
    let a = dep.spawn_with(settings(&dep, None, 3600)).await;
    let b = dep.spawn_with(settings(&dep, None, 3600)).await;
    let p = dep.project(&a, false).await;
    b.wait_for_project(&p).await;
    let token = common::sign_in(&b, &dep, &p, &format!("{}@example.com", unique("ren"))).await;
    adopt_with_renewal_due(&a, &dep, &p.host, &token).await;

    // The logout lands in SQL and deletes the Redis copy, but its bus message is lost; A's
    // next read finds the renewal due.
    let db = &a.handle.state.core.svc.db;
    let rec = store::revoke_session(db, &p.id, &hash_token(&token), now_ms())
        .await
        .unwrap();
    assert!(rec.is_some());
    // The logout's DEL of the Redis copy succeeded; only its bus message was lost.
    let cache = reauth_runtime::cache::connect(Some(&common::redis_url()), &dep.redis_prefix)
        .await
        .unwrap();
    cache
        .del(&format!("sess:{}", hash_token(&token)))
        .await
        .unwrap();
    let before = store::session_by_hash(db, &hash_token(&token))
        .await
        .unwrap()
        .unwrap();
    // This read triggers the renewal; SQL refuses to extend a revoked session, and A learns
    // from that answer that the session is gone.
    let _ = status(&a, &p.host, &token).await;
    until("A refuses the session", Duration::from_secs(5), || {
        let (a, host, token) = (&a, p.host.clone(), token.clone());
        async move { status(a, &host, &token).await == StatusCode::UNAUTHORIZED }
    })
    .await;
    let after = store::session_by_hash(db, &hash_token(&token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.expires_at, before.expires_at, "SQL expiry untouched");
    assert!(
        redis_copy(&dep, &token).await.is_none(),
        "the renewal wrote the session back to Redis"
    );
    // A cold instance agrees.
    let c = dep.spawn_with(settings(&dep, None, 3600)).await;
    c.wait_for_project(&p).await;
    assert_eq!(status(&c, &p.host, &token).await, StatusCode::UNAUTHORIZED);
    for app in [a, b, c] {
        app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_renewal_extends_the_session_in_sql_first() {
    let dep = Deployment::new(Backend::Real).await;
    let a = dep.spawn_with(settings(&dep, None, 3600)).await;
    let p = dep.project(&a, false).await;
    let token = common::sign_in(&a, &dep, &p, &format!("{}@example.com", unique("ext"))).await;
    // Another instance's view: A adopts it with the renewal due.
    a.shutdown().await;
    let a = dep.spawn_with(settings(&dep, None, 3600)).await;
    a.wait_for_project(&p).await;
    adopt_with_renewal_due(&a, &dep, &p.host, &token).await;
    let db = a.handle.state.core.svc.db.clone();
    let before = store::session_by_hash(&db, &hash_token(&token))
        .await
        .unwrap()
        .unwrap();
    let _ = status(&a, &p.host, &token).await;
    let hash = hash_token(&token);
    until("SQL extended the session", Duration::from_secs(5), || {
        let (db, hash) = (db.clone(), hash.clone());
        let old = before.last_seen_at;
        async move {
            store::session_by_hash(&db, &hash)
                .await
                .unwrap()
                .is_some_and(|s| s.last_seen_at > old)
        }
    })
    .await;
    let after = store::session_by_hash(&db, &hash).await.unwrap().unwrap();
    assert!(after.expires_at >= before.expires_at);
    // The view shows the expiry SQL wrote.
    let want = reauth_actors::model::rfc3339(after.expires_at);
    until(
        "the view shows SQL's expiry",
        Duration::from_secs(5),
        || {
            let (a, host, token, want) = (&a, p.host.clone(), token.clone(), want.clone());
            async move {
                let r = a.user(&host, &token).await;
                r.status == StatusCode::OK && r.json()["session"]["expires_at"] == want.as_str()
            }
        },
    )
    .await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_whose_bus_message_was_lost_shows_within_the_bound() {
    use common::stripe::{event, sign, subscription};
    let dep = Deployment::new(Backend::Real).await;
    let proxy = RedisProxy::start().await;
    let a = dep.spawn_with(settings(&dep, Some(&proxy.url), 1)).await;
    let b = dep.spawn_with(settings(&dep, None, 1)).await;
    let p = dep.billing_project(&a).await;
    b.wait_for_project(&p).await;
    let token = common::sign_in(&b, &dep, &p, &format!("{}@example.com", unique("plan"))).await;
    let r = b.user(&p.host, &token).await;
    assert_eq!(r.json()["plan"], "free");
    let user_id = r.json()["user_id"].as_str().unwrap().to_string();

    // A applies the webhook in SQL but cannot tell anyone.
    proxy.cut();
    let t = now_ms() / 1000;
    let payload = event(
        &format!("evt_{}", unique("")),
        "customer.subscription.created",
        t,
        subscription(
            "sub_lost",
            "cus_lost",
            "active",
            "price_pro",
            t + 86_400,
            false,
            Some(&user_id),
        ),
    );
    let r = a
        .send_raw_webhook(
            &p.id,
            &payload,
            Some(&sign(&payload, &common::webhook_secret(&p), t)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let took = until("B shows the new plan", Duration::from_secs(10), || {
        let (b, host, token) = (&b, p.host.clone(), token.clone());
        async move { b.user(&host, &token).await.json()["plan"] == "pro" }
    })
    .await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    proxy.heal();
    a.shutdown().await;
    b.shutdown().await;
}
