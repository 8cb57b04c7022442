//! The SQL store: Postgres in production, SQLite for the embedded default. Both are reached
//! through sqlx's `Any` driver with one portable schema (TEXT ids, BIGINT epoch-millisecond
//! times, TEXT JSON, BIGINT 0/1 flags) and `$N` placeholders, which both dialects accept. So one
//! set of queries serves both backends and the conformance suite proves it on each.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Executor, SqlSafeStr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A pool on one of the two backends.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// The migrations, embedded in the binary. Each file is portable SQL for both backends.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "revocations feed",
        include_str!("../../migrations/0002_revocations_feed.sql"),
    ),
    (
        3,
        "subscriptions per project",
        include_str!("../../migrations/0003_subscriptions_per_project.sql"),
    ),
    (
        4,
        "feeds and upkeep",
        include_str!("../../migrations/0004_feeds_and_upkeep.sql"),
    ),
    (
        5,
        "organizations and management",
        include_str!("../../migrations/0005_organizations_and_management.sql"),
    ),
    (
        6,
        "dashboard members",
        include_str!("../../migrations/0006_dashboard_members.sql"),
    ),
];

fn migrator() -> Migrator {
    let list = MIGRATIONS
        .iter()
        .map(|(v, desc, sql)| {
            Migration::new(
                *v,
                (*desc).into(),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(list)
}

impl Db {
    /// Connect to `url` (`postgres://…` or `sqlite://…`).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("database url must start with postgres:// or sqlite://");
        };
        let opts = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(5));
        let opts = if backend == Backend::Sqlite {
            opts.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                        .await?;
                    Ok(())
                })
            })
        } else {
            opts
        };
        let pool = opts
            .connect(url)
            .await
            .with_context(|| format!("connecting to the {backend:?} database"))?;
        Ok(Self { pool, backend })
    }

    /// The embedded default: a SQLite file in `data_dir` (created when missing).
    pub async fn embedded(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let file = data_dir.join("reauth.db");
        Self::connect(&format!("sqlite://{}?mode=rwc", file.display())).await
    }

    /// Apply every embedded migration not yet applied (idempotent; locked on Postgres).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        migrator()
            .run(&self.pool)
            .await
            .context("applying migrations")?;
        if self.backend == Backend::Postgres {
            // Email-prefix search (`LIKE 'ann%'`) can use a b-tree only with C collation or
            // pattern ops; databases are often created with another collation. PostgreSQL-only
            // syntax, so it lives here rather than in the portable migrations.
            // Instances starting together would race on IF NOT EXISTS (it is not atomic in
            // PostgreSQL): one at a time, under a transaction-scoped advisory lock.
            let mut tx = self.pool.begin().await?;
            tx.execute("SELECT pg_advisory_xact_lock(7235541001)")
                .await
                .context("locking for the email-prefix index")?;
            tx.execute("CREATE INDEX IF NOT EXISTS end_users_email_pattern ON end_users (project_id, email text_pattern_ops)")
                .await
                .context("creating the email-prefix index")?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// True when `e` is a unique-constraint violation (either backend).
    pub fn is_unique_violation(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
    }
}

/// Helpers for tests: a fresh database per test binary.
pub mod testing {
    use super::*;

    /// Admin URL of the machine's PostgreSQL (override with `REAUTH_TEST_PG_ADMIN_URL`).
    pub fn pg_admin_url() -> String {
        std::env::var("REAUTH_TEST_PG_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// Create a fresh, migrated Postgres database named `reauth_t_<random>`; returns its URL.
    pub async fn fresh_postgres() -> anyhow::Result<String> {
        sqlx::any::install_default_drivers();
        let admin_url = pg_admin_url();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .context(
                "connecting to PostgreSQL for tests (is it running? ./scripts/test starts it)",
            )?;
        let name = format!("reauth_t_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .unwrap_or(admin_url);
        // Loopback: no TLS. Debian's PostgreSQL offers it and sqlx would negotiate it; it cost
        // a third of webhook throughput in the benchmark.
        Ok(format!("{base}/{name}?sslmode=disable"))
    }

    /// A fresh SQLite file in a temp dir; returns its URL.
    pub fn fresh_sqlite() -> String {
        let dir = std::env::temp_dir().join("reauth-tests");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{}.db", uuid::Uuid::now_v7().simple()));
        format!("sqlite://{}?mode=rwc", file.display())
    }
}
