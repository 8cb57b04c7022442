//! A project's end users: list (with filters), read, change name and metadata, ban, unban and
//! delete. A ban or a deletion revokes every session of the user on every instance (through
//! [`crate::session::Sessions`]); a banned user cannot sign in again until unbanned. Deletion is
//! soft: the row stays (the audit trail and billing history point at it) with its personal
//! data scrubbed, and it is invisible to every listing and read.

use reauth_runtime::now_ms;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::Record;
use super::{Admin, AdminError, AdminResult, Caller, Notifier, Page, PageReq, page_of};
use crate::model::Email;

/// The most metadata a user may carry, as serialized JSON.
pub const METADATA_MAX_BYTES: usize = 8 * 1024;

/// An end user as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndUser {
    pub id: String,
    pub project_id: String,
    pub email: String,
    pub email_verified: bool,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    /// Whether a Google account is linked (its subject id stays private).
    pub google_linked: bool,
    pub stripe_customer_id: Option<String>,
    /// The customer's own key-value data (a JSON object, at most 8 KiB).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub banned: bool,
    pub banned_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

const COLS: &str = "id, project_id, email, email_verified, name, avatar_url, google_sub, stripe_customer_id, metadata, banned_at, created_at, updated_at, last_login_at";

fn user_from_row(r: &AnyRow) -> Result<EndUser, sqlx::Error> {
    let banned_at: Option<i64> = r.try_get("banned_at")?;
    Ok(EndUser {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        email: r.try_get("email")?,
        email_verified: r.try_get::<i64, _>("email_verified")? != 0,
        name: r.try_get("name")?,
        avatar_url: r.try_get("avatar_url")?,
        google_linked: r.try_get::<Option<String>, _>("google_sub")?.is_some(),
        stripe_customer_id: r.try_get("stripe_customer_id")?,
        // Written only by this module as an object; anything else reads as empty.
        metadata: serde_json::from_str(&r.try_get::<String, _>("metadata")?)
            .unwrap_or_else(|_| serde_json::json!({})),
        banned: banned_at.is_some(),
        banned_at,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

/// Filters of the user listing; times are milliseconds since the epoch.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserFilter {
    /// Exact address (compared lower-cased, as stored).
    pub email: Option<String>,
    /// Addresses starting with this (lower-cased).
    pub email_prefix: Option<String>,
    pub created_gte: Option<i64>,
    pub created_lt: Option<i64>,
}

/// Changes to a user: absent fields stay; `name: null` clears the name, `metadata: null`
/// empties it. Metadata is replaced as a whole.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct UserUpdate {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<serde_json::Value>>,
}

/// `null` -> `Some(None)`, a value -> `Some(Some(v))`; absent stays `None` (serde default).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `a_b%` -> `a\_b\%%`: a prefix for `LIKE … ESCAPE '\'` that matches only itself.
fn like_prefix(p: &str) -> String {
    let mut s = String::with_capacity(p.len() + 1);
    for c in p.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

impl Admin {
    /// The live (not deleted) user `user_id` of the caller's project `project_id`.
    pub async fn get_user(
        &self,
        caller: &Caller,
        project_id: &str,
        user_id: &str,
    ) -> AdminResult<EndUser> {
        self.project_of(caller, project_id).await?;
        self.user_in(project_id, user_id).await
    }

    /// The user without the tenancy check (the caller did it).
    pub(crate) async fn user_in(&self, project_id: &str, user_id: &str) -> AdminResult<EndUser> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM end_users WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL"
        ));
        let row = sqlx::query(sql)
            .bind(user_id)
            .bind(project_id)
            .fetch_optional(&self.svc.db.pool)
            .await?;
        match row {
            Some(r) => Ok(user_from_row(&r)?),
            None => Err(AdminError::NotFound("user")),
        }
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        project_id: &str,
        filter: &UserFilter,
        page: &PageReq,
    ) -> AdminResult<Page<EndUser>> {
        let limit = page.limit()?;
        self.project_of(caller, project_id).await?;
        let email = match filter.email.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(e) => Some(
                Email::parse(e)
                    .ok_or_else(|| AdminError::invalid("email", "not an email address"))?
                    .as_str()
                    .to_string(),
            ),
        };
        let prefix = match filter.email_prefix.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) if p.len() > 254 => {
                return Err(AdminError::invalid(
                    "email_prefix",
                    "at most 254 characters",
                ));
            }
            Some(p) => Some(like_prefix(&p.to_ascii_lowercase())),
        };
        if let (Some(a), Some(b)) = (filter.created_gte, filter.created_lt)
            && a >= b
        {
            return Err(AdminError::invalid(
                "created_lt",
                "must be later than created_gte",
            ));
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM end_users
             WHERE project_id = $1 AND deleted_at IS NULL
               AND ($2 IS NULL OR email = $2)
               AND ($3 IS NULL OR email LIKE $3 ESCAPE '\\')
               AND (CAST($4 AS BIGINT) IS NULL OR created_at >= $4)
               AND (CAST($5 AS BIGINT) IS NULL OR created_at < $5)
               AND ($6 IS NULL OR id > $6)
             ORDER BY id LIMIT $7"
        ));
        let rows = sqlx::query(sql)
            .bind(project_id)
            .bind(email)
            .bind(prefix)
            .bind(filter.created_gte)
            .bind(filter.created_lt)
            .bind(&page.starting_after)
            .bind(limit + 1)
            .fetch_all(&self.svc.db.pool)
            .await?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(page_of(users, limit, |u| u.id.clone()))
    }

    pub async fn update_user(
        &self,
        caller: &Caller,
        project_id: &str,
        user_id: &str,
        update: &UserUpdate,
    ) -> AdminResult<EndUser> {
        self.get_user(caller, project_id, user_id).await?;
        let name = match &update.name {
            None => None,
            Some(None) => Some(None),
            Some(Some(n)) if n.trim().is_empty() => Some(None),
            Some(Some(n)) if n.chars().count() > 200 => {
                return Err(AdminError::invalid("name", "at most 200 characters"));
            }
            Some(Some(n)) => Some(Some(n.trim().to_string())),
        };
        let metadata = match &update.metadata {
            None => None,
            Some(None) => Some("{}".to_string()),
            Some(Some(v)) if !v.is_object() => {
                return Err(AdminError::invalid("metadata", "must be a JSON object"));
            }
            Some(Some(v)) => {
                let s = v.to_string();
                if s.len() > METADATA_MAX_BYTES {
                    return Err(AdminError::invalid(
                        "metadata",
                        format!("at most {METADATA_MAX_BYTES} bytes of JSON"),
                    ));
                }
                Some(s)
            }
        };
        let mut changed = vec![];
        if name.is_some() {
            changed.push("name");
        }
        if metadata.is_some() {
            changed.push("metadata");
        }
        if changed.is_empty() {
            return self.user_in(project_id, user_id).await;
        }
        // A flag per field: one statement whatever the combination.
        sqlx::query(
            "UPDATE end_users SET
               name = CASE WHEN $1 = 1 THEN $2 ELSE name END,
               metadata = CASE WHEN $3 = 1 THEN $4 ELSE metadata END,
               updated_at = $5
             WHERE id = $6 AND project_id = $7 AND deleted_at IS NULL",
        )
        .bind(i64::from(name.is_some()))
        .bind(name.flatten())
        .bind(i64::from(metadata.is_some()))
        .bind(metadata.unwrap_or_default())
        .bind(now_ms())
        .bind(user_id)
        .bind(project_id)
        .execute(&self.svc.db.pool)
        .await?;
        self.user_changed(project_id, user_id).await;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "user.updated",
                target: Some(user_id),
                detail: serde_json::json!({ "changed": changed }),
            },
        )
        .await;
        self.user_in(project_id, user_id).await
    }

    /// Ban: every session revoked on every instance, and sign-in refused until unbanned.
    pub async fn ban_user(
        &self,
        caller: &Caller,
        project_id: &str,
        user_id: &str,
    ) -> AdminResult<EndUser> {
        self.get_user(caller, project_id, user_id).await?;
        let now = now_ms();
        // The flag first: a sign-in finishing meanwhile is refused or its session revoked below.
        sqlx::query(
            "UPDATE end_users SET banned_at = COALESCE(banned_at, $1), updated_at = $1 WHERE id = $2 AND project_id = $3",
        )
        .bind(now)
        .bind(user_id)
        .bind(project_id)
        .execute(&self.svc.db.pool)
        .await?;
        let revoked = self.revoke_user_sessions(project_id, user_id, now).await?;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "user.banned",
                target: Some(user_id),
                detail: serde_json::json!({ "sessions_revoked": revoked }),
            },
        )
        .await;
        self.user_in(project_id, user_id).await
    }

    pub async fn unban_user(
        &self,
        caller: &Caller,
        project_id: &str,
        user_id: &str,
    ) -> AdminResult<EndUser> {
        self.get_user(caller, project_id, user_id).await?;
        sqlx::query(
            "UPDATE end_users SET banned_at = NULL, updated_at = $1 WHERE id = $2 AND project_id = $3",
        )
        .bind(now_ms())
        .bind(user_id)
        .bind(project_id)
        .execute(&self.svc.db.pool)
        .await?;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "user.unbanned",
                target: Some(user_id),
                detail: serde_json::json!({}),
            },
        )
        .await;
        self.user_in(project_id, user_id).await
    }

    /// Soft delete: sessions revoked everywhere, personal data scrubbed (the address becomes
    /// `deleted+<id>@deleted.invalid`, unique and undeliverable, so the address is free to sign
    /// up afresh), the Google link dropped (a Google sign-in makes a new user), `deleted_at`
    /// set. The row stays for the audit trail and billing history.
    pub async fn delete_user(
        &self,
        caller: &Caller,
        project_id: &str,
        user_id: &str,
    ) -> AdminResult<()> {
        self.get_user(caller, project_id, user_id).await?;
        let now = now_ms();
        sqlx::query(
            "UPDATE end_users SET email = $1, name = NULL, avatar_url = NULL, google_sub = NULL,
               metadata = '{}', deleted_at = $2, updated_at = $2
             WHERE id = $3 AND project_id = $4 AND deleted_at IS NULL",
        )
        .bind(format!("deleted+{user_id}@deleted.invalid"))
        .bind(now)
        .bind(user_id)
        .bind(project_id)
        .execute(&self.svc.db.pool)
        .await?;
        let revoked = self.revoke_user_sessions(project_id, user_id, now).await?;
        self.user_changed(project_id, user_id).await;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "user.deleted",
                target: Some(user_id),
                detail: serde_json::json!({ "sessions_revoked": revoked }),
            },
        )
        .await;
        Ok(())
    }

    /// A user's stored data changed: resident views everywhere show it.
    pub(crate) async fn user_changed(&self, project_id: &str, user_id: &str) {
        match &self.notifier {
            Notifier::Core(core) => {
                if let Err(e) = core.sessions.user_changed(project_id, user_id).await {
                    tracing::warn!(user = %user_id, error = %e, "user change not pushed; views refresh when their actor reloads");
                }
            }
            Notifier::Bus => {
                let _ = self.svc.cache.del(&format!("user:{user_id}")).await;
                self.publish("user.changed", serde_json::json!({ "user_id": user_id }))
                    .await;
            }
        }
    }
}
