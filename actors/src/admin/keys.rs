//! Organization API keys: created (shown once), listed, revoked, and checked on every
//! Management API request. The format and hash live in `reauth_runtime::apikey`; an argon2id
//! check costs tens of milliseconds, so a verified key is cached in memory for [`CACHE_TTL_MS`]
//! under the SHA-256 of the key, and a revocation drops it on every instance (the bus; the TTL
//! bounds a lost message).

use std::time::Duration;

use dashmap::DashMap;
use reauth_runtime::crypto::hash_token;
use reauth_runtime::{apikey, ids, now_ms};
use serde::Serialize;
use sqlx::Row;

use super::audit::Record;
use super::{Admin, AdminError, AdminResult, Caller, RESOURCES};

/// How long a verified key is trusted without asking SQL again.
pub const CACHE_TTL_MS: i64 = 60_000;
/// `last_used_at` is written at most this often per key.
const LAST_USED_EVERY_MS: i64 = 60_000;

#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// The start of the key (`reauth_sk_` + its lookup id), to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Clone)]
struct Verified {
    id: String,
    org_id: String,
    scopes: Vec<String>,
    until: i64,
    last_used_written: i64,
}

impl Verified {
    /// The API caller this key stands for on one request.
    fn caller(&self, ip: Option<String>, request_id: Option<String>) -> Caller {
        Caller {
            org_id: self.org_id.clone(),
            actor: self.id.clone(),
            scopes: self.scopes.clone(),
            ip,
            request_id,
            operator: false,
        }
    }
}

/// Verified keys by SHA-256 of the key.
#[derive(Default)]
pub struct KeyCache {
    by_hash: DashMap<String, Verified>,
}

impl KeyCache {
    /// Forget a revoked key here (bus message from another instance, or local).
    pub fn forget(&self, key_id: &str) {
        self.by_hash.retain(|_, v| v.id != key_id);
    }
}

/// Validate scopes: `resource:read|write`, `*` for every resource.
pub fn check_scopes(scopes: &[String]) -> AdminResult<Vec<String>> {
    if scopes.is_empty() {
        return Ok(vec!["*:write".into()]);
    }
    for s in scopes {
        let ok = s.split_once(':').is_some_and(|(r, a)| {
            (r == "*" || RESOURCES.contains(&r)) && matches!(a, "read" | "write")
        });
        if !ok {
            return Err(AdminError::invalid(
                "scopes",
                format!(
                    "{s:?} is not a scope: use resource:read or resource:write with resource one of *, {}",
                    RESOURCES.join(", ")
                ),
            ));
        }
    }
    let mut v = scopes.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

fn key_from_row(r: &sqlx::any::AnyRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        prefix: format!("{}{}", apikey::PREFIX, r.try_get::<String, _>("prefix")?),
        scopes: serde_json::from_str(&r.try_get::<String, _>("scopes")?).unwrap_or_default(),
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

const KEY_COLS: &str = "id, org_id, name, prefix, scopes, created_at, last_used_at, revoked_at";

impl Admin {
    /// A new key for the caller's org: the secret is returned once and stored only hashed.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        name: &str,
        scopes: &[String],
    ) -> AdminResult<(ApiKey, String)> {
        let name = name.trim();
        if name.len() > 200 {
            return Err(AdminError::invalid("name", "at most 200 characters"));
        }
        let scopes = check_scopes(scopes)?;
        let (secret, lookup) = apikey::generate();
        let hash = tokio::task::spawn_blocking({
            let secret = secret.clone();
            move || apikey::hash(&secret)
        })
        .await
        .map_err(|e| AdminError::Store(e.into()))??;
        let key = ApiKey {
            id: ids::new_id("key"),
            org_id: caller.org_id.clone(),
            name: if name.is_empty() {
                "API key".into()
            } else {
                name.to_string()
            },
            prefix: format!("{}{lookup}", apikey::PREFIX),
            scopes: scopes.clone(),
            created_at: now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        sqlx::query("INSERT INTO api_keys (id, org_id, name, prefix, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&key.id)
            .bind(&key.org_id)
            .bind(&key.name)
            .bind(&lookup)
            .bind(&hash)
            .bind(serde_json::to_string(&scopes).map_err(anyhow::Error::from)?)
            .bind(key.created_at)
            .execute(&self.svc.db.pool)
            .await?;
        self.audit(
            caller,
            Record {
                project_id: None,
                action: "api_key.created",
                target: Some(&key.id),
                detail: serde_json::json!({ "name": key.name, "scopes": scopes, "prefix": key.prefix }),
            },
        )
        .await;
        Ok((key, secret))
    }

    pub async fn list_api_keys(&self, caller: &Caller) -> AdminResult<Vec<ApiKey>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE org_id = $1 ORDER BY id"
        ));
        let rows = sqlx::query(sql)
            .bind(&caller.org_id)
            .fetch_all(&self.svc.db.pool)
            .await?;
        Ok(rows
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?)
    }

    /// Revoke a key of the caller's org, on every instance.
    pub async fn revoke_api_key(&self, caller: &Caller, key_id: &str) -> AdminResult<ApiKey> {
        let now = now_ms();
        let n = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(key_id)
            .bind(&caller.org_id)
            .execute(&self.svc.db.pool)
            .await?
            .rows_affected();
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE id = $1 AND org_id = $2"
        ));
        let key = sqlx::query(sql)
            .bind(key_id)
            .bind(&caller.org_id)
            .fetch_optional(&self.svc.db.pool)
            .await?
            .as_ref()
            .map(key_from_row)
            .transpose()?
            .ok_or(AdminError::NotFound("API key"))?;
        if n == 1 {
            self.keys.forget(key_id);
            self.publish("apikey.revoked", serde_json::json!({ "key_id": key_id }))
                .await;
            self.audit(
                caller,
                Record {
                    project_id: None,
                    action: "api_key.revoked",
                    target: Some(key_id),
                    detail: serde_json::json!({ "prefix": key.prefix }),
                },
            )
            .await;
        }
        Ok(key)
    }

    /// The caller a presented key stands for. Shape and checksum first (no I/O), then the
    /// cache, then SQL and argon2id.
    pub async fn authenticate(
        &self,
        presented: &str,
        ip: Option<String>,
        request_id: Option<String>,
    ) -> AdminResult<Caller> {
        let lookup = apikey::parse(presented)
            .map_err(|e| AdminError::Unauthenticated(e.to_string()))?
            .to_string();
        let digest = hash_token(presented);
        let now = now_ms();
        if let Some(mut v) = self.keys.by_hash.get_mut(&digest)
            && v.until > now
        {
            let caller = v.caller(ip, request_id);
            if now - v.last_used_written >= LAST_USED_EVERY_MS {
                v.last_used_written = now;
                self.touch(&v.id, now);
            }
            return Ok(caller);
        }
        let row = sqlx::query(
            "SELECT id, org_id, key_hash, scopes, revoked_at FROM api_keys WHERE prefix = $1",
        )
        .bind(&lookup)
        .fetch_optional(&self.svc.db.pool)
        .await?;
        let bad = || AdminError::Unauthenticated("invalid or revoked API key".into());
        let Some(r) = row else { return Err(bad()) };
        if r.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            return Err(bad());
        }
        let stored: String = r.try_get("key_hash")?;
        let key = presented.to_string();
        let ok = tokio::task::spawn_blocking(move || apikey::verify(&key, &stored))
            .await
            .map_err(|e| AdminError::Store(e.into()))?;
        if !ok {
            return Err(bad());
        }
        let v = Verified {
            id: r.try_get("id")?,
            org_id: r.try_get("org_id")?,
            scopes: serde_json::from_str(&r.try_get::<String, _>("scopes")?).unwrap_or_default(),
            until: now + CACHE_TTL_MS,
            last_used_written: now,
        };
        self.touch(&v.id, now);
        let caller = v.caller(ip, request_id);
        self.keys.by_hash.insert(digest, v);
        Ok(caller)
    }

    /// Record the key's use, off the request's path.
    fn touch(&self, key_id: &str, now: i64) {
        let (db, id) = (self.svc.db.clone(), key_id.to_string());
        tokio::spawn(async move {
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&id)
                    .execute(&db.pool),
            )
            .await;
            if !matches!(r, Ok(Ok(_))) {
                tracing::debug!(key = %id, "last_used_at not written");
            }
        });
    }
}
