//! The domain's SQL: one set of portable queries over the runtime's [`Db`] (Postgres or SQLite).

use anyhow::Context;
use reauth_runtime::config::Secret;
use reauth_runtime::crypto::MasterKey;
use reauth_runtime::{Db, ids};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{
    PlanMapping, Project, SessionRecord, SubscriptionRecord, UserRecord, UserState,
};

const PROJECT_COLS: &str = "id, slug, name, custom_domain, domain_verified_at, dev_hosts, allowed_origins, logo_url, accent_color, email_from, google_client_id, magic_link_ttl_secs, session_ttl_secs, plans, google_client_secret_enc, resend_api_key_enc, stripe_secret_key_enc, stripe_webhook_secret_enc, version";

fn json_list<T: serde::de::DeserializeOwned>(s: &str) -> Vec<T> {
    serde_json::from_str(s).unwrap_or_default()
}

fn open(key: &MasterKey, sealed: Option<String>) -> anyhow::Result<Option<Secret>> {
    sealed
        .map(|s| key.open(&s).map(Secret::new))
        .transpose()
        .context("opening a project secret (is REAUTH_MASTER_KEY the key it was sealed with?)")
}

fn project_from_row(r: &AnyRow, key: &MasterKey) -> anyhow::Result<Project> {
    Ok(Project {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        custom_domain: r.try_get("custom_domain")?,
        domain_verified: r.try_get::<Option<i64>, _>("domain_verified_at")?.is_some(),
        domains: vec![],
        dev_hosts: json_list(&r.try_get::<String, _>("dev_hosts")?),
        allowed_origins: json_list(&r.try_get::<String, _>("allowed_origins")?),
        logo_url: r.try_get("logo_url")?,
        accent_color: r.try_get("accent_color")?,
        email_from: r.try_get("email_from")?,
        google_client_id: r.try_get("google_client_id")?,
        google_client_secret: open(key, r.try_get("google_client_secret_enc")?)?,
        resend_api_key: open(key, r.try_get("resend_api_key_enc")?)?,
        stripe_secret_key: open(key, r.try_get("stripe_secret_key_enc")?)?,
        stripe_webhook_secret: open(key, r.try_get("stripe_webhook_secret_enc")?)?,
        magic_link_ttl_secs: r.try_get("magic_link_ttl_secs")?,
        session_ttl_secs: r.try_get("session_ttl_secs")?,
        plans: json_list::<PlanMapping>(&r.try_get::<String, _>("plans")?),
        version: r.try_get("version")?,
        origin: None,
        stats: Default::default(),
    })
}

pub async fn list_projects(db: &Db, key: &MasterKey) -> anyhow::Result<Vec<Project>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {PROJECT_COLS} FROM projects ORDER BY slug"));
    let rows = sqlx::query(sql).fetch_all(&db.pool).await?;
    let mut out = rows
        .iter()
        .map(|r| project_from_row(r, key))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for p in &mut out {
        p.domains = routed_domains(db, &p.id).await?;
    }
    Ok(out)
}

/// A project's routed custom domains (verified, or failing within the grace period), the
/// primary first.
pub async fn routed_domains(db: &Db, project_id: &str) -> anyhow::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT hostname FROM domains WHERE project_id = $1 AND status IN ('verified', 'failing') ORDER BY is_primary DESC, id",
    )
    .bind(project_id)
    .fetch_all(&db.pool)
    .await
    .context("reading a project's domains")
}

async fn with_domains(db: &Db, p: Option<Project>) -> anyhow::Result<Option<Project>> {
    match p {
        Some(mut p) => {
            p.domains = routed_domains(db, &p.id).await?;
            Ok(Some(p))
        }
        None => Ok(None),
    }
}

pub async fn get_project(db: &Db, key: &MasterKey, id: &str) -> anyhow::Result<Option<Project>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {PROJECT_COLS} FROM projects WHERE id = $1"));
    let row = sqlx::query(sql).bind(id).fetch_optional(&db.pool).await?;
    let p = row.map(|r| project_from_row(&r, key)).transpose()?;
    with_domains(db, p).await
}

pub async fn get_project_by_slug(
    db: &Db,
    key: &MasterKey,
    slug: &str,
) -> anyhow::Result<Option<Project>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {PROJECT_COLS} FROM projects WHERE slug = $1"
    ));
    let row = sqlx::query(sql).bind(slug).fetch_optional(&db.pool).await?;
    let p = row.map(|r| project_from_row(&r, key)).transpose()?;
    with_domains(db, p).await
}

/// A valid project slug: 2-40 of `a-z0-9-`, not starting or ending with `-`.
pub fn valid_slug(slug: &str) -> bool {
    (2..=40).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

pub async fn create_project(
    db: &Db,
    slug: &str,
    name: &str,
    dev_hosts: &[String],
    allowed_origins: &[String],
    now: i64,
) -> anyhow::Result<String> {
    create_project_in(db, None, slug, name, dev_hosts, allowed_origins, now).await
}

/// A new project, owned by `org_id` when given.
pub async fn create_project_in(
    db: &Db,
    org_id: Option<&str>,
    slug: &str,
    name: &str,
    dev_hosts: &[String],
    allowed_origins: &[String],
    now: i64,
) -> anyhow::Result<String> {
    let id = ids::new_id("prj");
    sqlx::query("INSERT INTO projects (id, org_id, slug, name, dev_hosts, allowed_origins, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
        .bind(&id)
        .bind(org_id)
        .bind(slug)
        .bind(name)
        .bind(serde_json::to_string(dev_hosts)?)
        .bind(serde_json::to_string(allowed_origins)?)
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(id)
}

/// Changes to a project's settings; `None` leaves a field as it is. Secrets arrive in clear and
/// are sealed here.
#[derive(Debug, Default, Clone)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub logo_url: Option<Option<String>>,
    pub accent_color: Option<Option<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub dev_hosts: Option<Vec<String>>,
    pub custom_domain: Option<Option<String>>,
    pub email_from: Option<Option<String>>,
    pub resend_api_key: Option<Option<Secret>>,
    pub google_client_id: Option<Option<String>>,
    pub google_client_secret: Option<Option<Secret>>,
    pub stripe_secret_key: Option<Option<Secret>>,
    pub stripe_webhook_secret: Option<Option<Secret>>,
    pub magic_link_ttl_secs: Option<i64>,
    pub session_ttl_secs: Option<i64>,
    pub plans: Option<Vec<PlanMapping>>,
}

/// Apply `patch` in one statement per field inside one transaction; bumps the version.
pub async fn update_project(
    db: &Db,
    key: &MasterKey,
    id: &str,
    patch: &ProjectPatch,
    now: i64,
) -> anyhow::Result<()> {
    let mut tx = db.pool.begin().await?;
    let set = |col: &'static str, v: Option<String>| {
        let sql = sqlx::AssertSqlSafe(format!("UPDATE projects SET {col} = $1 WHERE id = $2"));
        (sql, v)
    };
    let seal = |s: &Option<Secret>| -> anyhow::Result<Option<String>> {
        s.as_ref()
            .map(|s| key.seal(s.expose()).map_err(anyhow::Error::from))
            .transpose()
    };
    let mut updates: Vec<(sqlx::AssertSqlSafe<String>, Option<String>)> = Vec::new();
    if let Some(v) = &patch.name {
        updates.push(set("name", Some(v.clone())));
    }
    if let Some(v) = &patch.logo_url {
        updates.push(set("logo_url", v.clone()));
    }
    if let Some(v) = &patch.accent_color {
        updates.push(set("accent_color", v.clone()));
    }
    if let Some(v) = &patch.allowed_origins {
        updates.push(set("allowed_origins", Some(serde_json::to_string(v)?)));
    }
    if let Some(v) = &patch.dev_hosts {
        updates.push(set("dev_hosts", Some(serde_json::to_string(v)?)));
    }
    if let Some(v) = &patch.custom_domain {
        updates.push(set("custom_domain", v.clone()));
    }
    if let Some(v) = &patch.email_from {
        updates.push(set("email_from", v.clone()));
    }
    if let Some(v) = &patch.google_client_id {
        updates.push(set("google_client_id", v.clone()));
    }
    if let Some(v) = &patch.resend_api_key {
        updates.push(set("resend_api_key_enc", seal(v)?));
    }
    if let Some(v) = &patch.google_client_secret {
        updates.push(set("google_client_secret_enc", seal(v)?));
    }
    if let Some(v) = &patch.stripe_secret_key {
        updates.push(set("stripe_secret_key_enc", seal(v)?));
    }
    if let Some(v) = &patch.stripe_webhook_secret {
        updates.push(set("stripe_webhook_secret_enc", seal(v)?));
    }
    if let Some(v) = &patch.plans {
        updates.push(set("plans", Some(serde_json::to_string(v)?)));
    }
    for (sql, v) in updates {
        sqlx::query(sql).bind(v).bind(id).execute(&mut *tx).await?;
    }
    if let Some(v) = patch.magic_link_ttl_secs {
        sqlx::query("UPDATE projects SET magic_link_ttl_secs = $1 WHERE id = $2")
            .bind(v)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(v) = patch.session_ttl_secs {
        sqlx::query("UPDATE projects SET session_ttl_secs = $1 WHERE id = $2")
            .bind(v)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let n = sqlx::query("UPDATE projects SET version = version + 1, updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        anyhow::bail!("no project {id}");
    }
    tx.commit().await?;
    Ok(())
}

// ---- users ----

const USER_COLS: &str = "id, project_id, email, name, avatar_url, google_sub, stripe_customer_id";

fn user_from_row(r: &AnyRow) -> anyhow::Result<UserRecord> {
    Ok(UserRecord {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        avatar_url: r.try_get("avatar_url")?,
        google_sub: r.try_get("google_sub")?,
        stripe_customer_id: r.try_get("stripe_customer_id")?,
    })
}

pub async fn find_user_by_google_sub(
    db: &Db,
    project_id: &str,
    sub: &str,
) -> anyhow::Result<Option<UserRecord>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLS} FROM end_users WHERE project_id = $1 AND google_sub = $2"
    ));
    let row = sqlx::query(sql)
        .bind(project_id)
        .bind(sub)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

/// Find the user with this (verified) email in the project, or create them. Records the login.
pub async fn upsert_user_by_email(
    db: &Db,
    project_id: &str,
    email: &str,
    now: i64,
) -> anyhow::Result<UserRecord> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO end_users (id, project_id, email, email_verified, created_at, updated_at, last_login_at)
         VALUES ($1, $2, $3, 1, $4, $4, $4)
         ON CONFLICT (project_id, email) DO UPDATE SET email_verified = 1, last_login_at = $4
         RETURNING {USER_COLS}"
    ));
    let row = sqlx::query(sql)
        .bind(ids::new_id("usr"))
        .bind(project_id)
        .bind(email)
        .bind(now)
        .fetch_one(&db.pool)
        .await?;
    user_from_row(&row)
}

/// Attach a Google identity (and fill in a missing name/avatar) to a user.
pub async fn link_google(
    db: &Db,
    user_id: &str,
    sub: &str,
    name: Option<&str>,
    avatar: Option<&str>,
    now: i64,
) -> anyhow::Result<UserRecord> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE end_users SET google_sub = $1, name = COALESCE(name, $2), avatar_url = COALESCE(avatar_url, $3), updated_at = $4, last_login_at = $4
         WHERE id = $5 RETURNING {USER_COLS}"
    ));
    let row = sqlx::query(sql)
        .bind(sub)
        .bind(name)
        .bind(avatar)
        .bind(now)
        .bind(user_id)
        .fetch_one(&db.pool)
        .await?;
    user_from_row(&row)
}

/// A user and their most recent subscription (by the time its source event was created), in one
/// round trip: what a SessionActor caches and what a billing change pushes.
pub async fn user_state(
    db: &Db,
    project_id: &str,
    user_id: &str,
) -> anyhow::Result<Option<UserState>> {
    let row = sqlx::query(
        "SELECT u.id, u.project_id, u.email, u.name, u.avatar_url, u.google_sub, u.stripe_customer_id,
                s.id AS sub_id, s.price_id, s.status, s.current_period_end, s.cancel_at_period_end, s.source_created
         FROM end_users u
         LEFT JOIN subscriptions s ON s.project_id = u.project_id AND s.id = (
             SELECT id FROM subscriptions WHERE project_id = u.project_id AND user_id = u.id
             ORDER BY source_created DESC, updated_at DESC LIMIT 1)
         WHERE u.id = $1 AND u.project_id = $2",
    )
    .bind(user_id)
    .bind(project_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let subscription = match r.try_get::<Option<String>, _>("sub_id")? {
        Some(id) => Some(SubscriptionRecord {
            id,
            price_id: r.try_get("price_id")?,
            status: r.try_get("status")?,
            current_period_end: r.try_get("current_period_end")?,
            cancel_at_period_end: r.try_get::<i64, _>("cancel_at_period_end")? != 0,
            source_created: r.try_get("source_created")?,
        }),
        None => None,
    };
    Ok(Some(UserState {
        user: user_from_row(&r)?,
        subscription,
    }))
}

/// The banned user of the project with this address (or this Google subject), if any:
/// sign-in refuses them until they are unbanned.
pub async fn banned_user(
    db: &Db,
    project_id: &str,
    email: &str,
    google_sub: Option<&str>,
) -> anyhow::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT id FROM end_users WHERE project_id = $1 AND banned_at IS NOT NULL AND deleted_at IS NULL AND (email = $2 OR google_sub = $3) LIMIT 1",
    )
    .bind(project_id)
    .bind(email)
    .bind(google_sub)
    .fetch_optional(&db.pool)
    .await
    .context("checking for a ban")
}

// ---- sessions ----

const SESSION_COLS: &str =
    "id, project_id, user_id, token_hash, created_at, expires_at, last_seen_at, revoked_at";

fn session_from_row(r: &AnyRow) -> anyhow::Result<SessionRecord> {
    Ok(SessionRecord {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        user_id: r.try_get("user_id")?,
        token_hash: r.try_get("token_hash")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn create_session(
    db: &Db,
    project_id: &str,
    user_id: &str,
    token_hash: &str,
    ttl_secs: i64,
    user_agent: Option<&str>,
    ip: Option<&str>,
    now: i64,
) -> anyhow::Result<SessionRecord> {
    let rec = SessionRecord {
        id: ids::new_id("ses"),
        project_id: project_id.into(),
        user_id: user_id.into(),
        token_hash: token_hash.into(),
        created_at: now,
        expires_at: now + ttl_secs * 1000,
        last_seen_at: now,
        revoked_at: None,
    };
    // Only for a user who is neither banned nor deleted, decided in the same statement. On
    // PostgreSQL the user row is share-locked: a ban committing meanwhile either makes this
    // insert see it, or waits for the insert and then revokes the new session with the others
    // (SQLite has one writer at a time, so the race cannot happen there).
    let lock = if db.backend == reauth_runtime::Backend::Postgres {
        " FOR SHARE"
    } else {
        ""
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO sessions (id, project_id, user_id, token_hash, created_at, expires_at, last_seen_at, user_agent, ip)
         SELECT $1, $2, $3, $4, $5, $6, $5, $7, $8 FROM end_users
         WHERE id = $3 AND project_id = $2 AND banned_at IS NULL AND deleted_at IS NULL{lock}"
    ));
    let n = sqlx::query(sql)
        .bind(&rec.id)
        .bind(project_id)
        .bind(user_id)
        .bind(token_hash)
        .bind(now)
        .bind(rec.expires_at)
        .bind(user_agent.map(|s| s.chars().take(256).collect::<String>()))
        .bind(ip)
        .execute(&db.pool)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(UserUnavailable.into());
    }
    Ok(rec)
}

/// A session was refused because its user is banned or deleted (or gone).
#[derive(Debug, thiserror::Error)]
#[error("the user is banned or deleted")]
pub struct UserUnavailable;

pub async fn session_by_hash(db: &Db, token_hash: &str) -> anyhow::Result<Option<SessionRecord>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1"
    ));
    let row = sqlx::query(sql)
        .bind(token_hash)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(session_from_row).transpose()
}

/// Revoke a live session; returns it when something was revoked.
pub async fn revoke_session(
    db: &Db,
    project_id: &str,
    token_hash: &str,
    now: i64,
) -> anyhow::Result<Option<SessionRecord>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2 AND project_id = $3 AND revoked_at IS NULL RETURNING {SESSION_COLS}"
    ));
    let row = sqlx::query(sql)
        .bind(now)
        .bind(token_hash)
        .bind(project_id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(session_from_row).transpose()
}

/// Sliding renewal: push the expiry out (never pulls it in, never revives a revoked or expired
/// session). Returns whether SQL extended it; only then may a cached copy be extended.
pub async fn renew_session(db: &Db, id: &str, expires_at: i64, now: i64) -> anyhow::Result<bool> {
    let n = sqlx::query("UPDATE sessions SET expires_at = $1, last_seen_at = $2 WHERE id = $3 AND revoked_at IS NULL AND expires_at > $2 AND expires_at < $1")
        .bind(expires_at)
        .bind(now)
        .bind(id)
        .execute(&db.pool)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// One row of the revocations feed.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub token_hash: String,
    pub user_id: String,
    pub revoked_at: i64,
}

/// Sessions revoked at or after `since` (the index `sessions_revoked` makes this
/// O(revocations), whatever the number of sessions).
pub async fn revocations_since(db: &Db, since: i64) -> anyhow::Result<Vec<Revocation>> {
    let rows = sqlx::query(
        "SELECT token_hash, user_id, revoked_at FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at >= $1",
    )
    .bind(since)
    .fetch_all(&db.pool)
    .await
    .context("reading the revocations feed")?;
    rows.iter()
        .map(|r| {
            Ok(Revocation {
                token_hash: r.try_get("token_hash")?,
                user_id: r.try_get("user_id")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

// ---- magic links ----

pub async fn insert_magic_link(
    db: &Db,
    token_hash: &str,
    project_id: &str,
    email: &str,
    redirect_to: Option<&str>,
    now: i64,
    expires_at: i64,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO magic_links (token_hash, project_id, email, redirect_to, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(token_hash)
        .bind(project_id)
        .bind(email)
        .bind(redirect_to)
        .bind(now)
        .bind(expires_at)
        .execute(&db.pool)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    Unknown,
    Used,
    Expired,
}

/// Consume a magic link atomically: exactly one caller wins; others learn why they lost.
pub async fn consume_magic_link(
    db: &Db,
    project_id: &str,
    token_hash: &str,
    now: i64,
) -> anyhow::Result<Result<(String, Option<String>), LinkProblem>> {
    let row = sqlx::query(
        "UPDATE magic_links SET used_at = $1 WHERE token_hash = $2 AND project_id = $3 AND used_at IS NULL AND expires_at > $1 RETURNING email, redirect_to",
    )
    .bind(now)
    .bind(token_hash)
    .bind(project_id)
    .fetch_optional(&db.pool)
    .await?;
    if let Some(r) = row {
        return Ok(Ok((r.try_get("email")?, r.try_get("redirect_to")?)));
    }
    let row =
        sqlx::query("SELECT used_at FROM magic_links WHERE token_hash = $1 AND project_id = $2")
            .bind(token_hash)
            .bind(project_id)
            .fetch_optional(&db.pool)
            .await?;
    Ok(Err(match row {
        None => LinkProblem::Unknown,
        Some(r) if r.try_get::<Option<i64>, _>("used_at")?.is_some() => LinkProblem::Used,
        Some(_) => LinkProblem::Expired,
    }))
}

/// The email a magic link would sign in, without using it (the confirmation page).
pub async fn peek_magic_link(
    db: &Db,
    project_id: &str,
    token_hash: &str,
    now: i64,
) -> anyhow::Result<Result<String, LinkProblem>> {
    let row = sqlx::query(
        "SELECT email, used_at, expires_at FROM magic_links WHERE token_hash = $1 AND project_id = $2",
    )
    .bind(token_hash)
    .bind(project_id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = row else {
        return Ok(Err(LinkProblem::Unknown));
    };
    if r.try_get::<Option<i64>, _>("used_at")?.is_some() {
        return Ok(Err(LinkProblem::Used));
    }
    if r.try_get::<i64, _>("expires_at")? <= now {
        return Ok(Err(LinkProblem::Expired));
    }
    Ok(Ok(r.try_get("email")?))
}

// ---- oauth states ----

pub struct OAuthState {
    pub browser_hash: String,
    pub pkce_verifier: String,
    pub redirect_to: Option<String>,
    pub expires_at: i64,
}

pub async fn insert_oauth_state(
    db: &Db,
    state_hash: &str,
    project_id: &str,
    st: &OAuthState,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO oauth_states (state_hash, project_id, browser_hash, pkce_verifier, redirect_to, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(state_hash)
        .bind(project_id)
        .bind(&st.browser_hash)
        .bind(&st.pkce_verifier)
        .bind(&st.redirect_to)
        .bind(now)
        .bind(st.expires_at)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Take (single use) the state for this project.
pub async fn take_oauth_state(
    db: &Db,
    project_id: &str,
    state_hash: &str,
) -> anyhow::Result<Option<OAuthState>> {
    let row = sqlx::query("DELETE FROM oauth_states WHERE state_hash = $1 AND project_id = $2 RETURNING browser_hash, pkce_verifier, redirect_to, expires_at")
        .bind(state_hash)
        .bind(project_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        Ok(OAuthState {
            browser_hash: r.try_get("browser_hash")?,
            pkce_verifier: r.try_get("pkce_verifier")?,
            redirect_to: r.try_get("redirect_to")?,
            expires_at: r.try_get("expires_at")?,
        })
    })
    .transpose()
}

// ---- email log ----

pub struct EmailLogEntry<'a> {
    pub project_id: &'a str,
    pub to: &'a str,
    pub from: &'a str,
    pub subject: &'a str,
    pub kind: &'a str,
    pub status: &'a str,
    pub provider_id: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub async fn log_email(db: &Db, e: &EmailLogEntry<'_>, now: i64) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO email_log (id, project_id, to_email, from_email, subject, kind, status, provider_id, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(ids::new_id("eml"))
        .bind(e.project_id)
        .bind(e.to)
        .bind(e.from)
        .bind(e.subject)
        .bind(e.kind)
        .bind(e.status)
        .bind(e.provider_id)
        .bind(e.error)
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// `(id, version)` of every project: lets an instance notice changes made by another process
/// (the CLI against the embedded store has no bus to announce them).
pub async fn project_versions(db: &Db) -> anyhow::Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT id, version FROM projects")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("version")?)))
        .collect()
}

// ---- feeds and upkeep (revalidation, janitor) ----

/// A subscription that changed at or after `since`, with the user it belongs to: the
/// revalidation pass pushes these to resident views, so a plan change whose bus message was
/// lost still shows within the bound.
pub async fn subscriptions_changed_since(
    db: &Db,
    since: i64,
) -> anyhow::Result<Vec<(String, SubscriptionRecord)>> {
    let rows = sqlx::query(
        "SELECT user_id, id, price_id, status, current_period_end, cancel_at_period_end, source_created
         FROM subscriptions WHERE updated_at >= $1 AND user_id IS NOT NULL",
    )
    .bind(since)
    .fetch_all(&db.pool)
    .await
    .context("reading changed subscriptions")?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("user_id")?,
                SubscriptionRecord {
                    id: r.try_get("id")?,
                    price_id: r.try_get("price_id")?,
                    status: r.try_get("status")?,
                    current_period_end: r.try_get("current_period_end")?,
                    cancel_at_period_end: r.try_get::<i64, _>("cancel_at_period_end")? != 0,
                    source_created: r.try_get("source_created")?,
                },
            ))
        })
        .collect()
}

/// Delete at most `batch` rows of `table` matching `cond` (one bound parameter, `$1`), so a
/// large backlog never holds a long lock; returns how many went.
async fn delete_batch(
    db: &Db,
    table: &'static str,
    key: &'static str,
    cond: &'static str,
    bound: i64,
    batch: i64,
) -> anyhow::Result<u64> {
    let sql = sqlx::AssertSqlSafe(format!(
        "DELETE FROM {table} WHERE {key} IN (SELECT {cols} FROM {table} WHERE {cond} LIMIT $2)",
        cols = key.trim_matches(|c| c == '(' || c == ')')
    ));
    Ok(sqlx::query(sql)
        .bind(bound)
        .bind(batch)
        .execute(&db.pool)
        .await
        .with_context(|| format!("pruning {table}"))?
        .rows_affected())
}

/// What the janitor may delete, and when.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub now: i64,
    /// Expired or revoked sessions are kept this long after (support, audit).
    pub sessions_ms: i64,
    pub email_log_ms: i64,
    pub stripe_events_ms: i64,
    pub audit_log_ms: i64,
}

/// One table's prune: `(table, rows deleted)`.
pub type Pruned = Vec<(&'static str, u64)>;

/// Delete what outlived its use, in batches of `batch`, at most `max_batches` per table per
/// call (the janitor comes back next run for the rest).
pub async fn prune(db: &Db, r: &Retention, batch: i64, max_batches: u32) -> anyhow::Result<Pruned> {
    // (table, key, condition on $1, bound)
    let jobs: [(&'static str, &'static str, &'static str, i64); 8] = [
        (
            "magic_links",
            "token_hash",
            "used_at IS NOT NULL AND used_at < $1",
            r.now - 86_400_000,
        ),
        (
            "magic_links",
            "token_hash",
            "expires_at < $1",
            r.now - 86_400_000,
        ),
        ("oauth_states", "state_hash", "expires_at < $1", r.now),
        (
            "sessions",
            "id",
            "(expires_at < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1))",
            r.now - r.sessions_ms,
        ),
        ("email_log", "id", "created_at < $1", r.now - r.email_log_ms),
        ("audit_log", "id", "created_at < $1", r.now - r.audit_log_ms),
        (
            "idempotency_keys",
            "(org_id, idem_key)",
            "created_at < $1",
            r.now - 86_400_000,
        ),
        // Stripe retries a delivery for up to three days; the ledger is kept longer than that.
        (
            "stripe_events",
            "(project_id, event_id)",
            "received_at < $1",
            r.now - r.stripe_events_ms.max(7 * 86_400_000),
        ),
    ];
    let mut out: Pruned = Vec::new();
    for (table, key, cond, bound) in jobs {
        let mut total = 0;
        for _ in 0..max_batches {
            let n = delete_batch(db, table, key, cond, bound, batch).await?;
            total += n;
            if (n as i64) < batch {
                break;
            }
        }
        match out.iter_mut().find(|(t, _)| *t == table) {
            Some((_, n)) => *n += total,
            None => out.push((table, total)),
        }
    }
    Ok(out)
}

/// Take the lease on a periodic job for `ttl_ms` (one instance of many runs it); returns
/// whether this holder got it.
pub async fn take_lease(
    db: &Db,
    job: &str,
    holder: &str,
    now: i64,
    ttl_ms: i64,
) -> anyhow::Result<bool> {
    sqlx::query("INSERT INTO job_leases (job, holder, until) VALUES ($1, '', 0) ON CONFLICT (job) DO NOTHING")
        .bind(job)
        .execute(&db.pool)
        .await?;
    let n =
        sqlx::query("UPDATE job_leases SET holder = $1, until = $2 WHERE job = $3 AND until <= $4")
            .bind(holder)
            .bind(now + ttl_ms)
            .bind(job)
            .bind(now)
            .execute(&db.pool)
            .await?
            .rows_affected();
    Ok(n == 1)
}

/// Ids of API keys revoked at or after `since` (the revalidation pass drops them from every
/// instance's verified-key cache).
pub async fn api_keys_revoked_since(db: &Db, since: i64) -> anyhow::Result<Vec<String>> {
    sqlx::query_scalar("SELECT id FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at >= $1")
        .bind(since)
        .fetch_all(&db.pool)
        .await
        .context("reading revoked API keys")
}
