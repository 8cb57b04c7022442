//! A project's end-user sessions: list (live ones by default), revoke one, revoke all of a
//! user's. A revocation is written to SQL (the revocations feed every instance reads) and then
//! announced through [`crate::session::Sessions`] — its Redis copy dropped and the bus told —
//! so every instance refuses the token, as a logout does.

use reauth_runtime::now_ms;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::Record;
use super::{Admin, AdminError, AdminResult, Caller, Notifier, Page, PageReq, page_of};
use crate::store::Revocation;

/// A session as the API shows it: never its token or the token's hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub user_id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

fn session_from_row(r: &AnyRow) -> Result<SessionInfo, sqlx::Error> {
    Ok(SessionInfo {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        user_agent: r.try_get("user_agent")?,
        ip: r.try_get("ip")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Filters of the session listing.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionFilter {
    /// Also revoked and expired sessions (by default only live ones).
    #[serde(default)]
    pub include_revoked: bool,
}

fn revocation_from_row(r: &AnyRow) -> Result<Revocation, sqlx::Error> {
    Ok(Revocation {
        token_hash: r.try_get("token_hash")?,
        user_id: r.try_get("user_id")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Admin {
    /// The project's sessions, or one user's (`user_id`), in id (creation) order.
    pub async fn list_sessions(
        &self,
        caller: &Caller,
        project_id: &str,
        user_id: Option<&str>,
        filter: &SessionFilter,
        page: &PageReq,
    ) -> AdminResult<Page<SessionInfo>> {
        let limit = page.limit()?;
        self.project_of(caller, project_id).await?;
        if let Some(uid) = user_id {
            self.user_in(project_id, uid).await?;
        }
        let rows = sqlx::query(
            "SELECT id, user_id, user_agent, ip, created_at, last_seen_at, expires_at, revoked_at
             FROM sessions
             WHERE project_id = $1
               AND ($2 IS NULL OR user_id = $2)
               AND ($3 = 1 OR (revoked_at IS NULL AND expires_at > $4))
               AND ($5 IS NULL OR id > $5)
             ORDER BY id LIMIT $6",
        )
        .bind(project_id)
        .bind(user_id)
        .bind(i64::from(filter.include_revoked))
        .bind(now_ms())
        .bind(&page.starting_after)
        .bind(limit + 1)
        .fetch_all(&self.svc.db.pool)
        .await?;
        let list = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(page_of(list, limit, |s| s.id.clone()))
    }

    /// Revoke one session of the project on every instance. Revoking one already revoked is
    /// not an error (the answer is the same: it no longer works).
    pub async fn revoke_session(
        &self,
        caller: &Caller,
        project_id: &str,
        session_id: &str,
    ) -> AdminResult<()> {
        self.project_of(caller, project_id).await?;
        let user_id: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM sessions WHERE id = $1 AND project_id = $2")
                .bind(session_id)
                .bind(project_id)
                .fetch_optional(&self.svc.db.pool)
                .await?;
        let Some(user_id) = user_id else {
            return Err(AdminError::NotFound("session"));
        };
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND project_id = $3 AND revoked_at IS NULL
             RETURNING token_hash, user_id, revoked_at",
        )
        .bind(now_ms())
        .bind(session_id)
        .bind(project_id)
        .fetch_all(&self.svc.db.pool)
        .await?;
        let revoked = rows
            .iter()
            .map(revocation_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        self.announce_revocations(&revoked).await;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "session.revoked",
                target: Some(session_id),
                detail: serde_json::json!({ "user_id": user_id, "was_live": !revoked.is_empty() }),
            },
        )
        .await;
        Ok(())
    }

    /// Revoke every session of a user on every instance; returns how many were live.
    pub async fn revoke_all_sessions(
        &self,
        caller: &Caller,
        project_id: &str,
        user_id: &str,
    ) -> AdminResult<usize> {
        self.get_user(caller, project_id, user_id).await?;
        let n = self
            .revoke_user_sessions(project_id, user_id, now_ms())
            .await?;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "user.sessions_revoked",
                target: Some(user_id),
                detail: serde_json::json!({ "sessions_revoked": n }),
            },
        )
        .await;
        Ok(n)
    }

    /// SQL first (the source of truth, and the feed instances read), then the announcement.
    pub(crate) async fn revoke_user_sessions(
        &self,
        project_id: &str,
        user_id: &str,
        now: i64,
    ) -> AdminResult<usize> {
        let rows = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE project_id = $2 AND user_id = $3 AND revoked_at IS NULL
             RETURNING token_hash, user_id, revoked_at",
        )
        .bind(now)
        .bind(project_id)
        .bind(user_id)
        .fetch_all(&self.svc.db.pool)
        .await?;
        let revoked = rows
            .iter()
            .map(revocation_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        self.announce_revocations(&revoked).await;
        Ok(revoked.len())
    }

    /// Tell every instance (this one first) that these sessions are revoked.
    async fn announce_revocations(&self, revoked: &[Revocation]) {
        if revoked.is_empty() {
            return;
        }
        match &self.notifier {
            Notifier::Core(core) => core.sessions.revoked_in_store(revoked).await,
            Notifier::Bus => crate::session::announce_revocations(&self.svc, revoked).await,
        }
    }
}
