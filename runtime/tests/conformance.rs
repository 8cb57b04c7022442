//! One conformance suite, run against both implementations of each storage trait:
//! SQL on the machine's PostgreSQL and on SQLite; cache + bus on Redis and in-process.

use std::time::Duration;

use reauth_runtime::cache::{self, BusMessage, Cache};
use reauth_runtime::db::{Db, testing};
use sqlx::Row;

fn redis_url() -> String {
    std::env::var("REAUTH_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    format!("reauth_t_{}:", uuid_like())
}

fn uuid_like() -> String {
    reauth_runtime::ids::new_id("t")
}

async fn sql_suite(db: Db) {
    db.migrate().await.unwrap();
    // Migrating again is a no-op.
    db.migrate().await.unwrap();
    db.ping().await.unwrap();

    let now = reauth_runtime::now_ms();
    sqlx::query(
        "INSERT INTO projects (id, slug, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind("prj_1")
    .bind("demo")
    .bind("Demo")
    .bind(now)
    .execute(&db.pool)
    .await
    .unwrap();
    // Unique constraints are reported the same way on both backends.
    let dup = sqlx::query(
        "INSERT INTO projects (id, slug, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind("prj_2")
    .bind("demo")
    .bind("Other")
    .bind(now)
    .execute(&db.pool)
    .await
    .unwrap_err();
    assert!(Db::is_unique_violation(&dup), "{dup}");

    let row = sqlx::query(
        "SELECT slug, session_ttl_secs, custom_domain, version FROM projects WHERE id = $1",
    )
    .bind("prj_1")
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row.try_get::<String, _>("slug").unwrap(), "demo");
    assert_eq!(
        row.try_get::<i64, _>("session_ttl_secs").unwrap(),
        2_592_000
    );
    assert_eq!(
        row.try_get::<Option<String>, _>("custom_domain").unwrap(),
        None
    );
    assert_eq!(row.try_get::<i64, _>("version").unwrap(), 1);

    // ON CONFLICT upserts and DELETE … RETURNING behave alike.
    sqlx::query("INSERT INTO oauth_states (state_hash, project_id, browser_hash, pkce_verifier, created_at, expires_at) VALUES ($1, 'prj_1', 'b', 'v', $2, $3)")
        .bind("s1")
        .bind(now)
        .bind(now + 1000)
        .execute(&db.pool)
        .await
        .unwrap();
    let taken =
        sqlx::query("DELETE FROM oauth_states WHERE state_hash = $1 RETURNING pkce_verifier")
            .bind("s1")
            .fetch_optional(&db.pool)
            .await
            .unwrap()
            .map(|r| r.try_get::<String, _>("pkce_verifier").unwrap());
    assert_eq!(taken.as_deref(), Some("v"));
    let again =
        sqlx::query("DELETE FROM oauth_states WHERE state_hash = $1 RETURNING pkce_verifier")
            .bind("s1")
            .fetch_optional(&db.pool)
            .await
            .unwrap();
    assert!(again.is_none());

    // A failed transaction leaves nothing behind.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("UPDATE projects SET name = 'Changed' WHERE id = 'prj_1'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let name: String = sqlx::query_scalar("SELECT name FROM projects WHERE id = 'prj_1'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(name, "Demo");
}

#[tokio::test]
async fn sql_store_conforms_on_postgres() {
    let url = testing::fresh_postgres().await.unwrap();
    sql_suite(Db::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn sql_store_conforms_on_sqlite() {
    sql_suite(Db::connect(&testing::fresh_sqlite()).await.unwrap()).await;
}

#[tokio::test]
async fn embedded_store_creates_its_data_dir() {
    let dir = std::env::temp_dir().join(format!("reauth-emb-{}", uuid_like()));
    let db = Db::embedded(&dir).await.unwrap();
    db.migrate().await.unwrap();
    assert!(dir.join("reauth.db").exists());
}

async fn cache_suite(c: Cache, other_instance: Cache) {
    c.ping().await.unwrap();
    assert_eq!(c.get("missing").await.unwrap(), None);
    c.set("k", "v", None).await.unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some("v"));
    c.del("k").await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), None);

    // TTL expiry.
    c.set("ttl", "x", Some(Duration::from_millis(50)))
        .await
        .unwrap();
    assert_eq!(c.get("ttl").await.unwrap().as_deref(), Some("x"));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(c.get("ttl").await.unwrap(), None, "expired");

    // Single-use take.
    c.set("once", "1", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(c.take("once").await.unwrap().as_deref(), Some("1"));
    assert_eq!(c.take("once").await.unwrap(), None);

    // Counters: atomic under concurrency, TTL fixed at creation, reset after expiry.
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.incr("ctr", Duration::from_millis(300)).await.unwrap().0
        }));
    }
    let mut counts: Vec<i64> = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort();
    assert_eq!(counts, (1..=50).collect::<Vec<_>>());
    let (n, left) = c.incr("ctr", Duration::from_secs(100)).await.unwrap();
    assert_eq!(n, 51);
    assert!(
        left <= Duration::from_millis(300),
        "TTL not extended: {left:?}"
    );
    tokio::time::sleep(left + Duration::from_millis(50)).await;
    assert_eq!(c.incr("ctr", Duration::from_secs(1)).await.unwrap().0, 1);

    // Bus: a message published by one handle reaches the subscribers of the other.
    let mut rx = other_instance.subscribe();
    let msg = BusMessage {
        origin: "a".into(),
        topic: "user.changed".into(),
        payload: "{\"x\":1}".into(),
    };
    c.publish(&msg).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("bus message within 5s")
        .unwrap();
    assert_eq!(got, msg);
}

#[tokio::test]
async fn cache_conforms_on_redis() {
    let p = prefix();
    let a = cache::connect(Some(&redis_url()), &p).await.unwrap();
    let b = cache::connect(Some(&redis_url()), &p).await.unwrap();
    assert_eq!(a.kind(), "redis");
    cache_suite(a.clone(), b).await;
    // Keys are namespaced: another prefix does not see them.
    a.set("iso", "1", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let other = cache::connect(Some(&redis_url()), &prefix()).await.unwrap();
    assert_eq!(other.get("iso").await.unwrap(), None);
}

#[tokio::test]
async fn cache_conforms_in_process() {
    let a = cache::connect(None, "").await.unwrap();
    assert_eq!(a.kind(), "memory");
    cache_suite(a.clone(), a).await;
}
