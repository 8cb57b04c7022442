//! Revocations that hold whatever Redis and the bus do.
//!
//! SQL is the source of truth: a revoked session has `revoked_at` (indexed). The bus carries a
//! revocation to every instance within milliseconds, but a bus message can be lost (the
//! publisher cut off from Redis, a subscriber reconnecting). So every instance also reads the
//! *revocations feed* — the rows revoked since its last read, minus [`OVERLAP_MS`] for clock
//! skew and commit lag — every `REAUTH_REVALIDATE_SECS`, at once on every bus (re)subscription
//! and on a detected gap, and applies them to its resident sessions. The cost of a read is
//! O(revocations in the window), never O(resident sessions).
//!
//! A Redis copy of a session could outlive its revocation (the DEL failed, or a renewal raced
//! the logout). Copies therefore live at most [`COPY_TTL`], and every instance remembers the
//! hashes revoked within [`REMEMBER_MS`] (longer than a copy lives, loaded from SQL at start):
//! a slow-path lookup refuses a copy whose hash is remembered, and a SessionActor refuses to
//! adopt one. Together: a revoked session is refused everywhere within one revalidation
//! interval, whatever failed.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use reauth_runtime::now_ms;
use tokio::sync::Notify;

use crate::services::Svc;
use crate::session::Sessions;
use crate::store;

/// The longest a session's Redis copy lives; a lookup after that reads SQL.
pub const COPY_TTL: Duration = Duration::from_secs(600);
/// How far back each feed read reaches beyond the previous one: instances' clocks may differ
/// and a revocation may commit a little after its `revoked_at` was taken.
pub const OVERLAP_MS: i64 = 60_000;
/// How long a revoked hash is remembered: longer than any Redis copy can live, plus the skew.
pub const REMEMBER_MS: i64 = COPY_TTL.as_millis() as i64 + 2 * OVERLAP_MS;

/// The hashes revoked recently (with when), and the trigger for an immediate feed read.
#[derive(Default)]
pub struct Revoked {
    recent: DashMap<String, i64>,
    kick: Notify,
}

impl Revoked {
    pub fn note(&self, hash: &str, revoked_at: i64) {
        self.recent.insert(hash.to_string(), revoked_at);
    }

    pub fn contains(&self, hash: &str) -> bool {
        self.recent.contains_key(hash)
    }

    /// Forget what no Redis copy can still carry.
    pub fn prune(&self, now: i64) {
        self.recent.retain(|_, at| *at > now - REMEMBER_MS);
    }

    /// Read the feed now (the bus reconnected or lost messages).
    pub fn kick(&self) {
        self.kick.notify_one();
    }
}

/// What one feed read did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Revocations read (and applied to whatever is resident here).
    pub rows: usize,
    /// Changed subscriptions read (pushed to resident views, merged by recency).
    pub subscriptions: usize,
}

/// Read the revocations since `since` and apply them to this instance's resident sessions.
pub async fn catch_up(svc: &Svc, sessions: &Sessions, since: i64) -> anyhow::Result<Pass> {
    let rows = store::revocations_since(&svc.db, since).await?;
    for r in &rows {
        sessions.apply_revoke_at(&r.user_id, &r.token_hash, r.revoked_at);
    }
    Ok(Pass {
        rows: rows.len(),
        subscriptions: 0,
    })
}

/// One revalidation pass: the revocations feed, then the subscriptions changed since `since`
/// (a plan change whose bus message was lost shows within the same bound). Both cost
/// O(changes in the window); a user who is not resident here costs a map lookup.
pub async fn revalidate(svc: &Svc, sessions: &Sessions, since: i64) -> anyhow::Result<Pass> {
    let mut pass = catch_up(svc, sessions, since).await?;
    let subs = store::subscriptions_changed_since(&svc.db, since).await?;
    pass.subscriptions = subs.len();
    for (user_id, sub) in subs {
        sessions.apply_subscription(&user_id, sub);
    }
    Ok(pass)
}

/// The revalidation loop: every `interval`, and whenever kicked. The first read reaches back
/// [`OVERLAP_MS`] from the loop's start (the startup load covered what came before).
pub async fn run(
    svc: Svc,
    sessions: Sessions,
    revoked: Arc<Revoked>,
    api_keys: Arc<crate::admin::KeyCache>,
    interval: Duration,
) {
    let runs = metrics::counter!("reauth_revalidation_runs_total");
    let failures = metrics::counter!("reauth_revalidation_failures_total");
    let applied = metrics::counter!("reauth_revalidation_revocations_total");
    let seconds = metrics::histogram!("reauth_revalidation_duration_seconds");
    let behind = metrics::gauge!("reauth_revalidation_lag_seconds");
    // Revocations up to the start of the last successful read are known here.
    let mut known_until = now_ms();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = revoked.kick.notified() => {}
        }
        let started = now_ms();
        let t = std::time::Instant::now();
        // Revoked API keys too: a revocation made where no bus reaches (the CLI on the
        // embedded store, a lost message) holds within the same bound.
        if let Ok(ids) = store::api_keys_revoked_since(&svc.db, known_until - OVERLAP_MS).await {
            for id in ids {
                api_keys.forget(&id);
            }
        }
        match revalidate(&svc, &sessions, known_until - OVERLAP_MS).await {
            Ok(pass) => {
                runs.increment(1);
                applied.increment(pass.rows as u64);
                seconds.record(t.elapsed().as_secs_f64());
                known_until = started;
                behind.set(0.0);
                svc.status.revalidated(started, 0);
            }
            Err(e) => {
                failures.increment(1);
                behind.set((started - known_until) as f64 / 1000.0);
                svc.status.revalidated(started, started - known_until);
                tracing::warn!(error = %e, "revocation feed unreadable; resident sessions are revalidated when it is back");
            }
        }
        revoked.prune(started);
    }
}
