//! `Idempotency-Key` on POST, with Stripe's semantics: the first complete (2xx) answer for an
//! org's key is replayed for 24 hours to a request with the same fingerprint (method, path,
//! body); the same key with another request is a conflict; a request that failed (validation,
//! not found, a fault) stores nothing, so it can be retried with the same key.

use reauth_runtime::now_ms;
use sqlx::Row;

use super::{Admin, AdminError, AdminResult};

/// How long an answer is replayed.
pub const KEEP_MS: i64 = 86_400_000;

/// What to do with a request carrying an `Idempotency-Key`.
#[derive(Debug)]
pub enum Begin {
    /// First time: run it, then [`Admin::idempotency_finish`].
    Fresh,
    /// Seen and answered: send this again.
    Replay { status: u16, body: String },
}

impl Admin {
    pub async fn idempotency_begin(
        &self,
        org_id: &str,
        key: &str,
        fingerprint: &str,
    ) -> AdminResult<Begin> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminError::invalid(
                "Idempotency-Key",
                "1 to 255 visible ASCII characters",
            ));
        }
        let now = now_ms();
        let db = &self.svc.db;
        // An expired record is gone as far as callers can tell.
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2 AND created_at < $3",
        )
        .bind(org_id)
        .bind(key)
        .bind(now - KEEP_MS)
        .execute(&db.pool)
        .await?;
        let claimed = sqlx::query("INSERT INTO idempotency_keys (org_id, idem_key, fingerprint, status, response, created_at) VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT (org_id, idem_key) DO NOTHING")
            .bind(org_id)
            .bind(key)
            .bind(fingerprint)
            .bind(now)
            .execute(&db.pool)
            .await?
            .rows_affected();
        if claimed == 1 {
            return Ok(Begin::Fresh);
        }
        let row = sqlx::query("SELECT fingerprint, status, response FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2")
            .bind(org_id)
            .bind(key)
            .fetch_optional(&db.pool)
            .await?;
        let Some(r) = row else {
            // Finished and failed between our two statements: the key is free again.
            return Box::pin(self.idempotency_begin(org_id, key, fingerprint)).await;
        };
        let stored: String = r.try_get("fingerprint")?;
        if !reauth_runtime::crypto::ct_eq(stored.as_bytes(), fingerprint.as_bytes()) {
            return Err(AdminError::Conflict(
                "this Idempotency-Key was used with a different request".into(),
            ));
        }
        let status: i64 = r.try_get("status")?;
        if status == 0 {
            return Err(AdminError::Conflict(
                "a request with this Idempotency-Key is still in progress".into(),
            ));
        }
        Ok(Begin::Replay {
            status: u16::try_from(status).unwrap_or(200),
            body: r.try_get("response")?,
        })
    }

    /// Record the answer (2xx), or free the key (anything else).
    pub async fn idempotency_finish(&self, org_id: &str, key: &str, status: u16, body: &str) {
        let db = &self.svc.db;
        let res = if (200..300).contains(&status) {
            sqlx::query("UPDATE idempotency_keys SET status = $1, response = $2 WHERE org_id = $3 AND idem_key = $4")
                .bind(i64::from(status))
                .bind(body)
                .bind(org_id)
                .bind(key)
                .execute(&db.pool)
                .await
        } else {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2 AND status = 0",
            )
            .bind(org_id)
            .bind(key)
            .execute(&db.pool)
            .await
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "idempotency record not finished; the key frees after 24 h");
        }
    }
}
