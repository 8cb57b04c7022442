//! Organizations (the customer: they own projects) and their members.

use reauth_runtime::{ids, now_ms};
use serde::Serialize;
use sqlx::Row;

use super::audit::Record;
use super::{Admin, AdminError, AdminResult, Caller};
use crate::model::Email;

#[derive(Debug, Clone, Serialize)]
pub struct Org {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: String,
    pub created_at: i64,
}

pub const ROLES: &[&str] = &["owner", "admin", "viewer"];

impl Admin {
    /// Create an organization with its first owner (the bootstrap; CLI only).
    pub async fn create_org(
        &self,
        caller_actor: &str,
        slug: &str,
        name: &str,
        owner_email: &str,
    ) -> AdminResult<Org> {
        if !crate::store::valid_slug(slug) {
            return Err(AdminError::invalid(
                "slug",
                "2-40 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            ));
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 200 {
            return Err(AdminError::invalid("name", "1 to 200 characters"));
        }
        let email = Email::parse(owner_email)
            .ok_or_else(|| AdminError::invalid("owner_email", "not an email address"))?
            .as_str()
            .to_string();
        if self.org_by_slug(slug).await?.is_some() {
            return Err(AdminError::Conflict(format!(
                "an organization with slug {slug:?} exists"
            )));
        }
        let now = now_ms();
        let org = Org {
            id: ids::new_id("org"),
            slug: slug.to_string(),
            name: name.to_string(),
            created_at: now,
        };
        let mut tx = self.svc.db.pool.begin().await?;
        sqlx::query(
            "INSERT INTO organizations (id, slug, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&org.id)
        .bind(&org.slug)
        .bind(&org.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO org_members (id, org_id, email, role, created_at) VALUES ($1, $2, $3, 'owner', $4)")
            .bind(ids::new_id("mem"))
            .bind(&org.id)
            .bind(&email)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let caller = Caller {
            org_id: org.id.clone(),
            actor: caller_actor.to_string(),
            scopes: vec![],
            ip: None,
            request_id: None,
            operator: true,
        };
        self.audit(
            &caller,
            Record {
                project_id: None,
                action: "org.created",
                target: Some(&org.id),
                detail: serde_json::json!({ "slug": org.slug, "owner": email }),
            },
        )
        .await;
        Ok(org)
    }

    pub async fn list_orgs(&self) -> AdminResult<Vec<Org>> {
        let rows = sqlx::query(
            "SELECT id, slug, name, created_at FROM organizations WHERE slug IS NOT NULL ORDER BY slug",
        )
        .fetch_all(&self.svc.db.pool)
        .await?;
        Ok(rows
            .iter()
            .map(org_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?)
    }

    pub async fn org_by_slug(&self, slug: &str) -> AdminResult<Option<Org>> {
        let row =
            sqlx::query("SELECT id, slug, name, created_at FROM organizations WHERE slug = $1")
                .bind(slug)
                .fetch_optional(&self.svc.db.pool)
                .await?;
        Ok(row.as_ref().map(org_from_row).transpose()?)
    }

    pub async fn org(&self, caller: &Caller) -> AdminResult<Org> {
        let row = sqlx::query("SELECT id, slug, name, created_at FROM organizations WHERE id = $1")
            .bind(&caller.org_id)
            .fetch_optional(&self.svc.db.pool)
            .await?;
        row.as_ref()
            .map(org_from_row)
            .transpose()?
            .ok_or(AdminError::NotFound("organization"))
    }

    pub async fn list_members(&self, caller: &Caller) -> AdminResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT id, org_id, email, role, created_at FROM org_members WHERE org_id = $1 ORDER BY id",
        )
        .bind(&caller.org_id)
        .fetch_all(&self.svc.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    id: r.try_get("id")?,
                    org_id: r.try_get("org_id")?,
                    email: r.try_get("email")?,
                    role: r.try_get("role")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(AdminError::from)
    }
}

fn org_from_row(r: &sqlx::any::AnyRow) -> Result<Org, sqlx::Error> {
    Ok(Org {
        id: r.try_get("id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}
