//! Org members and the dashboard's sign-in. A member has a role — owner (everything, and the
//! org's members and API keys), admin (reads and writes every project) or viewer (reads) — and
//! acts through a [`Caller`] whose scopes say so. Members sign in to the dashboard through the
//! internal *console* project: reauth's own magic links and sessions (the dashboard is reauth's
//! first customer). Its slug is not a valid host label, so no host ever routes to it and its
//! sessions are worth nothing as a tenant session.

use reauth_runtime::{ids, now_ms};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::Record;
use super::orgs::{Member, Org};
use super::{Access, Admin, AdminError, AdminResult, Caller, RESOURCES};
use crate::model::Email;
use crate::store::{self, ProjectPatch};

/// The console project's slug: `_` is refused by the host parser and by `valid_slug`, so it can
/// neither be routed to nor taken by a customer's project.
pub const CONSOLE_SLUG: &str = "_console";
/// Dashboard sessions last a working day.
const CONSOLE_SESSION_TTL_SECS: i64 = 12 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }

    /// What the role may do, as API scopes: owners everything (`members`, `api_keys`
    /// included), admins write every project resource, viewers read.
    pub fn scopes(self) -> Vec<String> {
        match self {
            Self::Owner => vec!["*:write".into()],
            Self::Admin => RESOURCES.iter().map(|r| format!("{r}:write")).collect(),
            Self::Viewer => vec!["*:read".into()],
        }
    }

    pub fn can_write(self) -> bool {
        self != Self::Viewer
    }

    /// Members and API keys.
    pub fn can_manage(self) -> bool {
        self == Self::Owner
    }
}

/// An org the signed-in email belongs to, with its role there.
#[derive(Debug, Clone, Serialize)]
pub struct Membership {
    pub org: Org,
    pub role: Role,
}

fn member_from_row(r: &AnyRow) -> Result<Member, sqlx::Error> {
    Ok(Member {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        email: r.try_get("email")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
    })
}

fn require_manage(caller: &Caller) -> AdminResult<()> {
    if caller.may("members", Access::Write) {
        Ok(())
    } else {
        Err(AdminError::Forbidden("members:write".into()))
    }
}

impl Admin {
    /// Every org `email` is a member of, by org name.
    pub async fn memberships(&self, email: &str) -> AdminResult<Vec<Membership>> {
        let Some(email) = Email::parse(email) else {
            return Ok(vec![]);
        };
        let rows = sqlx::query(
            "SELECT o.id, o.slug, o.name, o.created_at, m.role FROM org_members m
             JOIN organizations o ON o.id = m.org_id WHERE m.email = $1 ORDER BY o.name, o.id",
        )
        .bind(email.as_str())
        .fetch_all(&self.svc.db.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(role) = Role::parse(&r.try_get::<String, _>("role")?) else {
                continue;
            };
            out.push(Membership {
                org: Org {
                    id: r.try_get("id")?,
                    slug: r.try_get::<Option<String>, _>("slug")?.unwrap_or_default(),
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                },
                role,
            });
        }
        Ok(out)
    }

    /// The caller a signed-in member is in `org_id`; "not found" for an org they are not in.
    pub async fn member_caller(
        &self,
        email: &str,
        org_id: &str,
        ip: Option<String>,
        request_id: Option<String>,
    ) -> AdminResult<(Caller, Role)> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM org_members WHERE org_id = $1 AND email = $2")
                .bind(org_id)
                .bind(email)
                .fetch_optional(&self.svc.db.pool)
                .await?;
        let role = role
            .as_deref()
            .and_then(Role::parse)
            .ok_or(AdminError::NotFound("organization"))?;
        Ok((
            Caller {
                org_id: org_id.to_string(),
                actor: email.to_string(),
                scopes: role.scopes(),
                ip,
                request_id,
                operator: false,
            },
            role,
        ))
    }

    /// The org owning `project_id` ("not found" when none does).
    pub async fn project_org(&self, project_id: &str) -> AdminResult<String> {
        let org: Option<Option<String>> =
            sqlx::query_scalar("SELECT org_id FROM projects WHERE id = $1")
                .bind(project_id)
                .fetch_optional(&self.svc.db.pool)
                .await?;
        org.flatten().ok_or(AdminError::NotFound("project"))
    }

    /// Add `email` to the caller's org with `role` (owners only). They sign in with that
    /// address.
    pub async fn invite_member(
        &self,
        caller: &Caller,
        email: &str,
        role: &str,
    ) -> AdminResult<Member> {
        require_manage(caller)?;
        let email = Email::parse(email)
            .ok_or_else(|| AdminError::invalid("email", "not an email address"))?;
        let role = Role::parse(role)
            .ok_or_else(|| AdminError::invalid("role", "owner, admin or viewer"))?;
        let member = Member {
            id: ids::new_id("mem"),
            org_id: caller.org_id.clone(),
            email: email.as_str().to_string(),
            role: role.as_str().to_string(),
            created_at: now_ms(),
        };
        let res = sqlx::query("INSERT INTO org_members (id, org_id, email, role, created_at, invited_by) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&member.id)
            .bind(&member.org_id)
            .bind(&member.email)
            .bind(&member.role)
            .bind(member.created_at)
            .bind(&caller.actor)
            .execute(&self.svc.db.pool)
            .await;
        match res {
            Ok(_) => {}
            Err(e) if reauth_runtime::Db::is_unique_violation(&e) => {
                return Err(AdminError::Conflict(format!(
                    "{} is already a member",
                    member.email
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.audit(
            caller,
            Record {
                project_id: None,
                action: "member.invited",
                target: Some(&member.id),
                detail: serde_json::json!({ "email": member.email, "role": member.role }),
            },
        )
        .await;
        Ok(member)
    }

    async fn member_in(&self, org_id: &str, member_id: &str) -> AdminResult<Member> {
        let row = sqlx::query(
            "SELECT id, org_id, email, role, created_at FROM org_members WHERE id = $1 AND org_id = $2",
        )
        .bind(member_id)
        .bind(org_id)
        .fetch_optional(&self.svc.db.pool)
        .await?;
        row.as_ref()
            .map(member_from_row)
            .transpose()?
            .ok_or(AdminError::NotFound("member"))
    }

    async fn owners(&self, org_id: &str) -> AdminResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND role = 'owner'",
        )
        .bind(org_id)
        .fetch_one(&self.svc.db.pool)
        .await?)
    }

    /// Change a member's role (owners only; the last owner stays an owner).
    pub async fn set_member_role(
        &self,
        caller: &Caller,
        member_id: &str,
        role: &str,
    ) -> AdminResult<Member> {
        require_manage(caller)?;
        let role = Role::parse(role)
            .ok_or_else(|| AdminError::invalid("role", "owner, admin or viewer"))?;
        let m = self.member_in(&caller.org_id, member_id).await?;
        if m.role == "owner" && role != Role::Owner && self.owners(&caller.org_id).await? <= 1 {
            return Err(AdminError::Conflict(
                "an organization keeps at least one owner: make someone else owner first".into(),
            ));
        }
        sqlx::query("UPDATE org_members SET role = $1 WHERE id = $2 AND org_id = $3")
            .bind(role.as_str())
            .bind(member_id)
            .bind(&caller.org_id)
            .execute(&self.svc.db.pool)
            .await?;
        self.audit(
            caller,
            Record {
                project_id: None,
                action: "member.role_changed",
                target: Some(member_id),
                detail: serde_json::json!({ "email": m.email, "from": m.role, "to": role.as_str() }),
            },
        )
        .await;
        self.member_in(&caller.org_id, member_id).await
    }

    /// Remove a member (owners only; never the last owner).
    pub async fn remove_member(&self, caller: &Caller, member_id: &str) -> AdminResult<()> {
        require_manage(caller)?;
        let m = self.member_in(&caller.org_id, member_id).await?;
        if m.role == "owner" && self.owners(&caller.org_id).await? <= 1 {
            return Err(AdminError::Conflict(
                "an organization keeps at least one owner".into(),
            ));
        }
        sqlx::query("DELETE FROM org_members WHERE id = $1 AND org_id = $2")
            .bind(member_id)
            .bind(&caller.org_id)
            .execute(&self.svc.db.pool)
            .await?;
        self.audit(
            caller,
            Record {
                project_id: None,
                action: "member.removed",
                target: Some(member_id),
                detail: serde_json::json!({ "email": m.email, "role": m.role }),
            },
        )
        .await;
        Ok(())
    }

    /// Note a member's dashboard sign-in (every org they belong to) in the audit log.
    pub async fn record_member_sign_in(&self, email: &str, ip: Option<String>) {
        let now = now_ms();
        if let Err(e) = sqlx::query("UPDATE org_members SET last_sign_in_at = $1 WHERE email = $2")
            .bind(now)
            .bind(email)
            .execute(&self.svc.db.pool)
            .await
        {
            tracing::warn!(error = %e, "last_sign_in_at not written");
        }
        if let Ok(ms) = self.memberships(email).await {
            for m in ms {
                let caller = Caller {
                    org_id: m.org.id.clone(),
                    actor: email.to_string(),
                    scopes: vec![],
                    ip: ip.clone(),
                    request_id: None,
                    operator: false,
                };
                self.audit(
                    &caller,
                    Record {
                        project_id: None,
                        action: "dashboard.sign_in",
                        target: None,
                        detail: serde_json::json!({ "role": m.role }),
                    },
                )
                .await;
            }
        }
    }

    /// The console project (created on first use): the dashboard signs members in through its
    /// magic links and sessions. Returns its id once the directory serves it.
    pub async fn console_project(&self) -> AdminResult<String> {
        let db = &self.svc.db;
        if let Some(p) = store::get_project_by_slug(db, &self.svc.master_key, CONSOLE_SLUG).await? {
            return Ok(p.id);
        }
        let id = match store::create_project(db, CONSOLE_SLUG, "reauth", &[], &[], now_ms()).await {
            Ok(id) => id,
            // Another instance created it first.
            Err(_) => store::get_project_by_slug(db, &self.svc.master_key, CONSOLE_SLUG)
                .await?
                .map(|p| p.id)
                .ok_or_else(|| AdminError::Store(anyhow::anyhow!("console project not created")))?,
        };
        let patch = ProjectPatch {
            session_ttl_secs: Some(CONSOLE_SESSION_TTL_SECS),
            ..Default::default()
        };
        store::update_project(db, &self.svc.master_key, &id, &patch, now_ms()).await?;
        self.project_changed(&id).await;
        Ok(id)
    }

    /// Dev mode: an org `dev` owned by `owner_email`, owning the demo project `project_slug`
    /// when that has no org yet. Idempotent.
    pub async fn ensure_dev_org(&self, owner_email: &str, project_slug: &str) -> AdminResult<Org> {
        let org = match self.org_by_slug("dev").await? {
            Some(o) => o,
            None => match self.create_org("dev", "dev", "Dev", owner_email).await {
                Ok(o) => o,
                Err(AdminError::Conflict(_)) => self
                    .org_by_slug("dev")
                    .await?
                    .ok_or(AdminError::NotFound("organization"))?,
                Err(e) => return Err(e),
            },
        };
        let n = sqlx::query("UPDATE projects SET org_id = $1 WHERE slug = $2 AND org_id IS NULL")
            .bind(&org.id)
            .bind(project_slug)
            .execute(&self.svc.db.pool)
            .await?
            .rows_affected();
        if n > 0 {
            tracing::info!(org = %org.id, project = project_slug, "the dev org owns the demo project");
        }
        Ok(org)
    }
}
