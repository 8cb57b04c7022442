//! Data lifecycle: the janitor prunes used and expired one-time material, long-dead sessions
//! and (by the configured retention) old email-log and Stripe-event rows, and keeps the rest.

#[macro_use]
mod common;

use common::{Backend, Deployment, unique};
use reauth_runtime::now_ms;

const DAY: i64 = 86_400_000;

async fn count(db: &reauth_runtime::Db, sql: &'static str, project: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(project)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn the_janitor_prunes_what_outlived_its_use_and_keeps_the_rest(backend: Backend) {
    let dep = Deployment::new(backend).await;
    let app = dep.spawn().await;
    let p = dep.project(&app, false).await;
    let core = app.handle.state.core.clone();
    let db = core.svc.db.clone();
    let now = now_ms();
    // A real user with a live session (kept) and old sessions (pruned).
    let token = common::sign_in(&app, &dep, &p, &format!("{}@example.com", unique("jan"))).await;
    let user_id: String = sqlx::query_scalar("SELECT user_id FROM sessions WHERE project_id = $1")
        .bind(&p.id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let rows: Vec<(String, i64, Option<i64>)> = vec![
        ("old_expired".into(), now - 40 * DAY, None),
        ("old_revoked".into(), now + 10 * DAY, Some(now - 40 * DAY)),
        ("recent_revoked".into(), now + 10 * DAY, Some(now - DAY)),
        ("recent_expired".into(), now - DAY, None),
    ];
    for (name, expires, revoked) in &rows {
        sqlx::query("INSERT INTO sessions (id, project_id, user_id, token_hash, created_at, expires_at, last_seen_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $5, $7)")
            .bind(format!("ses_{name}_{}", unique("")))
            .bind(&p.id)
            .bind(&user_id)
            .bind(format!("hash_{name}_{}", unique("")))
            .bind(now - 50 * DAY)
            .bind(expires)
            .bind(revoked)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    for (name, expires, used) in [
        ("used", now + DAY, Some(now - 2 * DAY)),
        ("expired", now - 2 * DAY, None),
        ("fresh", now + 600_000, None),
    ] {
        sqlx::query("INSERT INTO magic_links (token_hash, project_id, email, created_at, expires_at, used_at) VALUES ($1, $2, 'x@example.com', $3, $4, $5)")
            .bind(format!("ml_{name}_{}", unique("")))
            .bind(&p.id)
            .bind(now - 3 * DAY)
            .bind(expires)
            .bind(used)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    for (name, age) in [("old", 100 * DAY), ("new", DAY)] {
        sqlx::query("INSERT INTO email_log (id, project_id, to_email, from_email, subject, kind, status, created_at) VALUES ($1, $2, 'a@example.com', 'b@example.com', 's', 'magic_link', 'sent', $3)")
            .bind(format!("eml_{name}_{}", unique("")))
            .bind(&p.id)
            .bind(now - age)
            .execute(&db.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO stripe_events (project_id, event_id, event_type, created, status, payload, received_at) VALUES ($1, $2, 'invoice.paid', 0, 'applied', '{}', $3)")
            .bind(&p.id)
            .bind(format!("evt_{name}_{}", unique("")))
            .bind(now - age)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let emails_before = count(
        &db,
        "SELECT COUNT(*) FROM email_log WHERE project_id = $1",
        &p.id,
    )
    .await;

    let pruned = core.prune(now).await.unwrap();
    let deleted = |t: &str| {
        pruned
            .iter()
            .find(|(table, _)| *table == t)
            .map_or(0, |(_, n)| *n)
    };
    // Other binaries' rows never share this database's project, but other tests of this binary
    // may have pruned theirs too: check what is left of this project.
    assert!(deleted("sessions") >= 2);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM sessions WHERE project_id = $1",
            &p.id
        )
        .await,
        3,
        "the live session and the two recent dead ones stay"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM magic_links WHERE project_id = $1",
            &p.id
        )
        .await,
        2,
        "the fresh link and the sign-in's own (used today) stay"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM email_log WHERE project_id = $1",
            &p.id
        )
        .await,
        emails_before - 1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM stripe_events WHERE project_id = $1",
            &p.id
        )
        .await,
        1
    );
    // The user is still signed in.
    assert_eq!(
        app.user(&p.host, &token).await.status,
        axum::http::StatusCode::OK
    );
    // Nothing is left to prune: a second pass deletes none of this project's rows.
    let again = core.prune(now).await.unwrap();
    assert!(again.iter().all(|(_, n)| *n == 0), "{again:?}");
    app.shutdown().await;
}
on_both!(the_janitor_prunes_what_outlived_its_use_and_keeps_the_rest);
