//! The audit log: every management action (who, what, on which target, a summary of the
//! change, from where, which request) and every auth event. Never a secret or a token: callers
//! pass summaries (field names, "set"/"cleared"), not values of secrets.

use reauth_runtime::{Db, ids, now_ms};
use serde::Serialize;
use sqlx::Row;

use super::{Admin, AdminResult, Caller, Page, PageReq, page_of};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub project_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: i64,
}

/// What to record (the caller's org, actor, ip and request id come from the [`Caller`]).
pub struct Record<'a> {
    pub project_id: Option<&'a str>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// Write one entry. An audit write that fails is logged, never the reason an action fails
/// after it happened.
pub async fn write(
    db: &Db,
    org_id: Option<&str>,
    actor: &str,
    ip: Option<&str>,
    request_id: Option<&str>,
    r: Record<'_>,
) {
    let res = sqlx::query("INSERT INTO audit_log (id, org_id, project_id, actor, action, target, detail, ip, request_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(ids::new_id("aud"))
        .bind(org_id)
        .bind(r.project_id)
        .bind(actor)
        .bind(r.action)
        .bind(r.target)
        .bind(r.detail.to_string())
        .bind(ip)
        .bind(request_id)
        .bind(now_ms())
        .execute(&db.pool)
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, action = r.action, "audit entry not written");
    }
}

/// Filters of the audit-log listing.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditFilter {
    pub project_id: Option<String>,
    pub action: Option<String>,
}

impl Admin {
    pub(crate) async fn audit(&self, caller: &Caller, r: Record<'_>) {
        write(
            &self.svc.db,
            Some(&caller.org_id),
            &caller.actor,
            caller.ip.as_deref(),
            caller.request_id.as_deref(),
            r,
        )
        .await;
    }

    /// The org's audit log (and its projects' auth events), newest first.
    pub async fn list_audit(
        &self,
        caller: &Caller,
        filter: &AuditFilter,
        page: &PageReq,
    ) -> AdminResult<Page<AuditEntry>> {
        let limit = page.limit()?;
        if let Some(pid) = &filter.project_id {
            self.project_of(caller, pid).await?;
        }
        // Entries of the org itself, and auth events of its projects (written without an org).
        let rows = sqlx::query(
            "SELECT a.id, a.project_id, a.actor, a.action, a.target, a.detail, a.ip, a.request_id, a.created_at
             FROM audit_log a
             WHERE (a.org_id = $1 OR a.project_id IN (SELECT id FROM projects WHERE org_id = $1))
               AND ($2 IS NULL OR a.project_id = $2)
               AND ($3 IS NULL OR a.action = $3)
               AND ($4 IS NULL OR a.id < $4)
             ORDER BY a.id DESC LIMIT $5",
        )
        .bind(&caller.org_id)
        .bind(&filter.project_id)
        .bind(&filter.action)
        .bind(&page.starting_after)
        .bind(limit + 1)
        .fetch_all(&self.svc.db.pool)
        .await?;
        let entries = rows
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    project_id: r.try_get("project_id")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: serde_json::from_str(&r.try_get::<String, _>("detail")?)
                        .unwrap_or(serde_json::Value::Null),
                    ip: r.try_get("ip")?,
                    request_id: r.try_get("request_id")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(page_of(entries, limit, |e| e.id.clone()))
    }
}
