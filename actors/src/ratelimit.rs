//! Fixed-window rate limits kept in the cache, so they hold across instances. If the cache is
//! unreachable the limiter fails open (logged): losing Redis must not lock users out.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use reauth_runtime::Cache;
use reauth_runtime::crypto::hash_token;

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: i64,
    pub window: Duration,
}

pub const MAGIC_LINK_PER_EMAIL: Limit = Limit {
    max: 5,
    window: Duration::from_secs(15 * 60),
};
pub const MAGIC_LINK_PER_IP: Limit = Limit {
    max: 20,
    window: Duration::from_secs(15 * 60),
};
pub const VERIFY_PER_IP: Limit = Limit {
    max: 30,
    window: Duration::from_secs(5 * 60),
};
pub const GOOGLE_START_PER_IP: Limit = Limit {
    max: 30,
    window: Duration::from_secs(5 * 60),
};
pub const BILLING_PER_USER: Limit = Limit {
    max: 20,
    window: Duration::from_secs(10 * 60),
};
pub const CALLBACK_PER_IP: Limit = Limit {
    max: 30,
    window: Duration::from_secs(5 * 60),
};

/// Count one attempt; `Err(retry_after)` when over the limit.
pub async fn hit(
    cache: &Cache,
    bucket: &str,
    project_id: &str,
    subject: &str,
    limit: Limit,
) -> Result<(), Duration> {
    // Subjects (emails, IPs) are hashed so the cache holds no personal data in clear.
    let key = format!("rl:{bucket}:{project_id}:{}", hash_token(subject));
    match cache.incr(&key, limit.window).await {
        Ok((n, left)) if n > limit.max => Err(left.max(Duration::from_secs(1))),
        Ok(_) => Ok(()),
        Err(e) => {
            metrics::counter!("reauth_ratelimit_fail_open_total", "bucket" => bucket.to_string())
                .increment(1);
            // Once a minute at most: a Redis outage must not flood the log.
            static LAST_LOGGED_MS: AtomicI64 = AtomicI64::new(0);
            let now = reauth_runtime::now_ms();
            let last = LAST_LOGGED_MS.load(Ordering::Relaxed);
            if now - last >= 60_000
                && LAST_LOGGED_MS
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!(error = %e, bucket, "rate limiter unavailable; allowing (fail open, counted in reauth_ratelimit_fail_open_total)");
            }
            Ok(())
        }
    }
}
