//! The janitor: upkeep no request should wait for. Every five minutes it prunes what outlived
//! its use — used and expired magic links, expired OAuth states, sessions long expired or
//! revoked, idempotency records past 24 hours, and (by the configured retention) old email-log,
//! Stripe-event and audit-log rows — in bounded
//! batches, and drops index entries of actors that died without `post_stop`. Once a day one
//! instance (a lease in SQL) reconciles every project's subscriptions with Stripe, and one
//! re-checks the DNS of verified custom domains (every `REAUTH_DOMAIN_RECHECK_SECS`).

use std::time::Duration;

use reauth_runtime::now_ms;

use crate::services::Svc;
use crate::session::Sessions;
use crate::store::{self, Pruned, Retention};
use crate::tenants::Tenants;

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
/// How often the janitor looks for domains due a re-check (each is re-checked once per
/// `domain_recheck_secs`; this only bounds how late).
const DOMAIN_TICK: Duration = Duration::from_secs(600);

/// Re-check every routed domain due at `now`; reload the projects whose routing changed here
/// and announce them on the bus (their version was bumped too, so every instance's watcher
/// catches up even if the message is lost).
pub async fn recheck_domains(
    svc: &Svc,
    tenants: &Tenants,
    now: i64,
) -> anyhow::Result<Vec<String>> {
    let every_ms = (svc.settings.domain_recheck_secs as i64).saturating_mul(1000);
    let changed = crate::domains::recheck_due(svc, now, every_ms).await?;
    for id in &changed {
        if let Err(e) = tenants.reload(id).await {
            tracing::warn!(project = %id, error = %e, "project reload failed; the version watcher retries");
        }
        let msg = reauth_runtime::BusMessage {
            origin: svc.instance_id.clone(),
            topic: "project.changed".into(),
            payload: serde_json::json!({ "project_id": id }).to_string(),
        };
        if let Err(e) = svc.cache.publish(&msg).await {
            tracing::warn!(error = %e, "bus publish failed; instances catch up from the store");
        }
    }
    Ok(changed)
}

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

/// Count a job's run and remember it for `/ops`: what it did, or why it failed.
fn outcome(svc: &Svc, job: &'static str, result: Result<String, String>) {
    let ok = result.is_ok();
    let label = if ok { "ok" } else { "error" };
    metrics::counter!("reauth_janitor_runs_total", "task" => job, "outcome" => label).increment(1);
    let detail = result.unwrap_or_else(|e| e);
    svc.status.job_ran(job, ok, detail, now_ms());
}

pub async fn run(svc: Svc, sessions: Sessions, tenants: Tenants) {
    let mut prune_tick = tokio::time::interval(PRUNE_EVERY);
    prune_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reconcile_tick = tokio::time::interval(Duration::from_secs(3600));
    reconcile_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut domain_tick = tokio::time::interval(DOMAIN_TICK);
    domain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = prune_tick.tick() => {
                match prune(&svc, now_ms()).await {
                    Ok(pruned) => {
                        let total: u64 = pruned.iter().map(|(_, n)| n).sum();
                        outcome(&svc, "prune", Ok(format!("{total} expired rows removed")));
                        if total > 0 {
                            tracing::info!(?pruned, "janitor pruned expired rows");
                        }
                    }
                    Err(e) => {
                        outcome(&svc, "prune", Err(e.to_string()));
                        tracing::warn!(error = %e, "janitor prune failed; retried next run");
                    }
                }
                sessions.prune_index();
            }
            // One instance per tick re-checks what is due (DNS lookups need not be repeated
            // by every instance).
            _ = domain_tick.tick() => {
                let now = now_ms();
                let ttl = DOMAIN_TICK.as_millis() as i64;
                match store::take_lease(&svc.db, "domain_recheck", &svc.instance_id, now, ttl).await {
                    Ok(true) => match recheck_domains(&svc, &tenants, now).await {
                        Ok(changed) => {
                            outcome(&svc, "domain_recheck", Ok(format!("{} domains changed routing", changed.len())));
                            if !changed.is_empty() {
                                tracing::info!(?changed, "domain re-check changed routing");
                            }
                        }
                        Err(e) => {
                            outcome(&svc, "domain_recheck", Err(e.to_string()));
                            tracing::warn!(error = %e, "domain re-check failed; retried next run");
                        }
                    },
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "janitor lease unavailable"),
                }
            }
            // Checked hourly; the lease makes it daily across all instances.
            _ = reconcile_tick.tick() => {
                let now = now_ms();
                let ttl = RECONCILE_EVERY.as_millis() as i64;
                match store::take_lease(&svc.db, "stripe_reconcile", &svc.instance_id, now, ttl).await {
                    Ok(true) => match crate::reconcile::reconcile_all(&svc, Some(&sessions)).await {
                        Ok(reports) => {
                            let repaired: u64 = reports.iter().map(|r| r.repaired).sum();
                            outcome(&svc, "stripe_reconcile", Ok(format!("{} projects, {repaired} repaired", reports.len())));
                            tracing::info!(projects = reports.len(), repaired, "daily Stripe reconciliation done");
                        }
                        Err(e) => {
                            outcome(&svc, "stripe_reconcile", Err(e.to_string()));
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
