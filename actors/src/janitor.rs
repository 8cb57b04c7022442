//! The janitor: upkeep no request should wait for. Every five minutes it prunes what outlived
//! its use — used and expired magic links, expired OAuth states, sessions long expired or
//! revoked, idempotency records past 24 hours, and (by the configured retention) old email-log,
//! Stripe-event and audit-log rows — in bounded
//! batches, and drops index entries of actors that died without `post_stop`. Once a day one
//! instance (a lease in SQL) reconciles every project's subscriptions with Stripe.

use std::time::Duration;

use reauth_runtime::now_ms;

use crate::services::Svc;
use crate::session::Sessions;
use crate::store::{self, Pruned, Retention};

/// How often the prune runs.
pub const PRUNE_EVERY: Duration = Duration::from_secs(300);
/// How often Stripe is reconciled (by one instance of many).
pub const RECONCILE_EVERY: Duration = Duration::from_secs(86_400);
/// Sessions are kept this long after they expired or were revoked (support, audit), and well
/// beyond what the revocations feed needs.
pub const SESSION_RETENTION_MS: i64 = 30 * 86_400_000;
const BATCH: i64 = 1_000;
const MAX_BATCHES: u32 = 50;
const DAY_MS: i64 = 86_400_000;

/// One prune pass at `now` with the configured retention.
pub async fn prune(svc: &Svc, now: i64) -> anyhow::Result<Pruned> {
    let r = Retention {
        now,
        sessions_ms: SESSION_RETENTION_MS,
        email_log_ms: svc.settings.email_log_retention_days as i64 * DAY_MS,
        stripe_events_ms: svc.settings.stripe_events_retention_days as i64 * DAY_MS,
        audit_log_ms: svc.settings.audit_log_retention_days as i64 * DAY_MS,
    };
    let pruned = store::prune(&svc.db, &r, BATCH, MAX_BATCHES).await?;
    for (table, n) in &pruned {
        if *n > 0 {
            metrics::counter!("reauth_janitor_pruned_total", "table" => *table).increment(*n);
        }
    }
    Ok(pruned)
}

fn outcome(job: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("reauth_janitor_runs_total", "job" => job, "outcome" => outcome).increment(1);
}

pub async fn run(svc: Svc, sessions: Sessions) {
    let mut prune_tick = tokio::time::interval(PRUNE_EVERY);
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reconcile_tick = tokio::time::interval(Duration::from_secs(3600));
    reconcile_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = prune_tick.tick() => {
                match prune(&svc, now_ms()).await {
                    Ok(pruned) => {
                        outcome("prune", true);
                        let total: u64 = pruned.iter().map(|(_, n)| n).sum();
                        if total > 0 {
                            tracing::info!(?pruned, "janitor pruned expired rows");
                        }
                    }
                    Err(e) => {
                        outcome("prune", false);
                        tracing::warn!(error = %e, "janitor prune failed; retried next run");
                    }
                }
                sessions.prune_index();
            }
            // Checked hourly; the lease makes it daily across all instances.
            _ = reconcile_tick.tick() => {
                let now = now_ms();
                let ttl = RECONCILE_EVERY.as_millis() as i64;
                match store::take_lease(&svc.db, "stripe_reconcile", &svc.instance_id, now, ttl).await {
                    Ok(true) => match crate::reconcile::reconcile_all(&svc, Some(&sessions)).await {
                        Ok(reports) => {
                            outcome("stripe_reconcile", true);
                            let repaired: u64 = reports.iter().map(|r| r.repaired).sum();
                            tracing::info!(projects = reports.len(), repaired, "daily Stripe reconciliation done");
                        }
                        Err(e) => {
                            outcome("stripe_reconcile", false);
                            tracing::warn!(error = %e, "daily Stripe reconciliation failed");
                        }
                    },
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "janitor lease unavailable"),
                }
            }
        }
    }
}
