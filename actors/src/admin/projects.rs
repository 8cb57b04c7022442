//! Projects of an organization: list, create, get, update, delete; their credentials
//! (write-only: reads say whether each is set and its last four characters); their domains.

use reauth_runtime::config::Secret;
use reauth_runtime::{ids, now_ms};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::audit::Record;
use super::{Admin, AdminError, AdminResult, Caller, Page, PageReq, page_of};
use crate::model::{PlanMapping, Project, valid_color};
use crate::store::{self, ProjectPatch};

/// A project as the API shows it: no secret, ever.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProjectView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub dev_hosts: Vec<String>,
    pub logo_url: Option<String>,
    pub accent_color: Option<String>,
    pub magic_link_ttl_secs: i64,
    pub session_ttl_secs: i64,
    pub plans: Vec<PlanMapping>,
    /// Where Stripe must send this project's webhooks (path; prefix it with the auth host).
    pub webhook_path: String,
    pub version: i64,
}

impl From<&Project> for ProjectView {
    fn from(p: &Project) -> Self {
        Self {
            id: p.id.clone(),
            slug: p.slug.clone(),
            name: p.name.clone(),
            allowed_origins: p.allowed_origins.clone(),
            dev_hosts: p.dev_hosts.clone(),
            logo_url: p.logo_url.clone(),
            accent_color: p.accent_color.clone(),
            magic_link_ttl_secs: p.magic_link_ttl_secs,
            session_ttl_secs: p.session_ttl_secs,
            plans: p.plans.clone(),
            webhook_path: format!("/webhooks/stripe/{}", p.id),
            version: p.version,
        }
    }
}

/// A new project.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewProject {
    #[schema(
        min_length = 2,
        max_length = 40,
        pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
    )]
    pub slug: String,
    /// Defaults to the slug.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// `scheme://host[:port]` origins a sign-in may return to.
    #[serde(default)]
    #[schema(schema_with = origins_schema)]
    pub allowed_origins: Vec<String>,
}

/// Changes to a project's settings; absent fields stay, `null` clears an optional one.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ProjectUpdate {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 2000, pattern = "^https://")]
    pub logo_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(pattern = "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")]
    pub accent_color: Option<Option<String>>,
    #[schema(schema_with = origins_schema)]
    pub allowed_origins: Option<Vec<String>>,
    pub dev_hosts: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub email_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub google_client_id: Option<Option<String>>,
    #[schema(minimum = 60, maximum = 86_400)]
    pub magic_link_ttl_secs: Option<i64>,
    #[schema(minimum = 300, maximum = 31_536_000)]
    pub session_ttl_secs: Option<i64>,
    #[schema(max_items = 100)]
    pub plans: Option<Vec<PlanMapping>>,
}

/// Up to 50 `http(s)://host[:port]` origins (the OpenAPI schema; [`check_origins`] decides).
fn origins_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^https?://[^/?#\\s]+$")),
        )
        .max_items(Some(50))
        .build()
}

/// `null` -> `Some(None)`, a value -> `Some(Some(v))`; absent stays `None` (serde default).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Write-only credentials; absent stays, `null` (or "") clears.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    #[serde(default, deserialize_with = "nullable")]
    pub google_client_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 500, pattern = "^[!-~]*$")]
    pub google_client_secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 500, pattern = "^[!-~]*$")]
    pub resend_api_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub email_from: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 500, pattern = "^$|^(sk|rk)_[!-~]*$")]
    pub stripe_secret_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 500, pattern = "^$|^whsec_[!-~]*$")]
    pub stripe_webhook_secret: Option<Option<String>>,
}

/// Whether a secret is set, and its last four characters.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SecretState {
    pub set: bool,
    pub last4: Option<String>,
}

fn state_of(s: &Option<Secret>) -> SecretState {
    SecretState {
        set: s.is_some(),
        last4: s.as_ref().map(|s| {
            let v = s.expose();
            let n = v.chars().count();
            v.chars().skip(n.saturating_sub(4)).collect()
        }),
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CredentialsView {
    pub google_client_id: Option<String>,
    pub google_client_secret: SecretState,
    pub resend_api_key: SecretState,
    pub email_from: Option<String>,
    pub stripe_secret_key: SecretState,
    pub stripe_webhook_secret: SecretState,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Domain {
    pub id: String,
    pub project_id: String,
    pub hostname: String,
    pub primary: bool,
    /// `pending` until verified; then `verified`, `failing` (a re-check failed; still routed
    /// within the grace period) and `unverified` (failing past it; no longer routed).
    pub status: String,
    /// The DNS records to create: the TXT challenge, and a CNAME to the ingress when the
    /// deployment names one (`REAUTH_CNAME_TARGET`).
    pub records: Vec<DnsRecord>,
    /// The Google OAuth redirect URI to register for this domain.
    pub google_redirect_uri: String,
    /// Why the last check failed, in words.
    pub reason: Option<String>,
    pub verified_at: Option<i64>,
    pub checked_at: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DnsRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub value: String,
}

fn valid_origin(o: &str) -> bool {
    // Any port of a loopback host (`http://localhost:*`), for local development.
    if let Some(base) = o.strip_suffix(":*") {
        return crate::model::is_loopback_origin(base);
    }
    url::Url::parse(o).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.path() == "/"
    }) && !o.ends_with('/')
}

/// A host name a project may answer on: lower-case DNS labels (IDNA is the domains issue's).
fn valid_hostname(h: &str) -> bool {
    let h = h.trim_end_matches('.');
    (3..=253).contains(&h.len())
        && h.contains('.')
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn valid_dev_host(h: &str) -> bool {
    let (name, _port) = crate::model::split_port(h);
    name == "localhost" || valid_hostname(name) || name.parse::<std::net::IpAddr>().is_ok()
}

fn check_origins(field: &str, list: &[String]) -> AdminResult<()> {
    if list.len() > 50 {
        return Err(AdminError::invalid(field, "at most 50 origins"));
    }
    for o in list {
        if !valid_origin(o) {
            return Err(AdminError::invalid(
                field,
                format!("{o:?} must be scheme://host[:port] (http or https, no path)"),
            ));
        }
    }
    Ok(())
}

fn opt_str(
    field: &str,
    v: &Option<Option<String>>,
    max: usize,
) -> AdminResult<Option<Option<String>>> {
    match v {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(s)) if s.trim().is_empty() => Ok(Some(None)),
        Some(Some(s)) if s.len() > max => Err(AdminError::invalid(
            field,
            format!("at most {max} characters"),
        )),
        Some(Some(s)) => Ok(Some(Some(s.trim().to_string()))),
    }
}

/// Validate an update into a store patch (shared by the API and the CLI).
pub fn patch_of(u: &ProjectUpdate) -> AdminResult<ProjectPatch> {
    if let Some(n) = &u.name
        && (n.trim().is_empty() || n.len() > 200)
    {
        return Err(AdminError::invalid("name", "1 to 200 characters"));
    }
    if let Some(o) = &u.allowed_origins {
        check_origins("allowed_origins", o)?;
    }
    if let Some(hosts) = &u.dev_hosts
        && let Some(h) = hosts.iter().find(|h| !valid_dev_host(h))
    {
        return Err(AdminError::invalid(
            "dev_hosts",
            format!("{h:?} must be host[:port]"),
        ));
    }
    let logo_url = opt_str("logo_url", &u.logo_url, 2000)?;
    if let Some(Some(l)) = &logo_url
        && !l.starts_with("https://")
    {
        return Err(AdminError::invalid("logo_url", "must be an https:// URL"));
    }
    let accent_color = opt_str("accent_color", &u.accent_color, 7)?;
    if let Some(Some(c)) = &accent_color
        && !valid_color(c)
    {
        return Err(AdminError::invalid(
            "accent_color",
            "must be #rgb or #rrggbb",
        ));
    }
    if let Some(t) = u.magic_link_ttl_secs
        && !(60..=86_400).contains(&t)
    {
        return Err(AdminError::invalid(
            "magic_link_ttl_secs",
            "between 60 and 86400 seconds",
        ));
    }
    if let Some(t) = u.session_ttl_secs
        && !(300..=31_536_000).contains(&t)
    {
        return Err(AdminError::invalid(
            "session_ttl_secs",
            "between 300 and 31536000 seconds",
        ));
    }
    if let Some(plans) = &u.plans {
        if plans.len() > 100 {
            return Err(AdminError::invalid("plans", "at most 100 prices"));
        }
        for p in plans {
            if p.price_id.trim().is_empty() || p.plan.trim().is_empty() {
                return Err(AdminError::invalid(
                    "plans",
                    "each mapping needs a price_id and a plan",
                ));
            }
        }
    }
    Ok(ProjectPatch {
        name: u.name.as_ref().map(|n| n.trim().to_string()),
        logo_url,
        accent_color,
        allowed_origins: u.allowed_origins.clone(),
        dev_hosts: u.dev_hosts.clone(),
        email_from: opt_str("email_from", &u.email_from, 320)?,
        google_client_id: opt_str("google_client_id", &u.google_client_id, 500)?,
        magic_link_ttl_secs: u.magic_link_ttl_secs,
        session_ttl_secs: u.session_ttl_secs,
        plans: u.plans.clone(),
        ..Default::default()
    })
}

/// Field names a patch changes (the audit summary: names, never values of secrets).
fn changed_fields(p: &ProjectPatch) -> Vec<&'static str> {
    let mut v = vec![];
    let fields: [(&'static str, bool); 15] = [
        ("name", p.name.is_some()),
        ("logo_url", p.logo_url.is_some()),
        ("accent_color", p.accent_color.is_some()),
        ("allowed_origins", p.allowed_origins.is_some()),
        ("dev_hosts", p.dev_hosts.is_some()),
        ("custom_domain", p.custom_domain.is_some()),
        ("email_from", p.email_from.is_some()),
        ("resend_api_key", p.resend_api_key.is_some()),
        ("google_client_id", p.google_client_id.is_some()),
        ("google_client_secret", p.google_client_secret.is_some()),
        ("stripe_secret_key", p.stripe_secret_key.is_some()),
        ("stripe_webhook_secret", p.stripe_webhook_secret.is_some()),
        ("magic_link_ttl_secs", p.magic_link_ttl_secs.is_some()),
        ("session_ttl_secs", p.session_ttl_secs.is_some()),
        ("plans", p.plans.is_some()),
    ];
    for (name, changed) in fields {
        if changed {
            v.push(name);
        }
    }
    v
}

fn secret_of(v: &Option<Option<String>>) -> Option<Option<Secret>> {
    v.as_ref().map(|o| {
        o.as_ref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Secret::new(s.trim()))
    })
}

impl Admin {
    /// The project `project_id` if the caller's org owns it; anything else is "not found".
    pub async fn project_of(&self, caller: &Caller, project_id: &str) -> AdminResult<Project> {
        let owner: Option<Option<String>> =
            sqlx::query_scalar("SELECT org_id FROM projects WHERE id = $1")
                .bind(project_id)
                .fetch_optional(&self.svc.db.pool)
                .await?;
        match owner {
            None => return Err(AdminError::NotFound("project")),
            Some(org) if !caller.operator && org.as_deref() != Some(caller.org_id.as_str()) => {
                return Err(AdminError::NotFound("project"));
            }
            Some(_) => {}
        }
        store::get_project(&self.svc.db, &self.svc.master_key, project_id)
            .await?
            .ok_or(AdminError::NotFound("project"))
    }

    pub async fn list_projects(
        &self,
        caller: &Caller,
        page: &PageReq,
    ) -> AdminResult<Page<ProjectView>> {
        let p = self.project_page(caller, page).await?;
        Ok(Page {
            data: p.data.iter().map(ProjectView::from).collect(),
            has_more: p.has_more,
            next_cursor: p.next_cursor,
        })
    }

    /// A page of the caller's projects, in full.
    async fn project_page(&self, caller: &Caller, page: &PageReq) -> AdminResult<Page<Project>> {
        let limit = page.limit()?;
        // The operator (CLI) without an org sees every project.
        let all = caller.operator && caller.org_id.is_empty();
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM projects WHERE (org_id = $1 OR $4 = 1) AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(&caller.org_id)
        .bind(&page.starting_after)
        .bind(limit + 1)
        .bind(i64::from(all))
        .fetch_all(&self.svc.db.pool)
        .await?;
        let mut projects = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(p) = store::get_project(&self.svc.db, &self.svc.master_key, &id).await? {
                projects.push(p);
            }
        }
        Ok(page_of(projects, limit, |p| p.id.clone()))
    }

    pub async fn get_project(&self, caller: &Caller, project_id: &str) -> AdminResult<ProjectView> {
        Ok(ProjectView::from(
            &self.project_of(caller, project_id).await?,
        ))
    }

    pub async fn create_project(
        &self,
        caller: &Caller,
        new: &NewProject,
    ) -> AdminResult<ProjectView> {
        if !store::valid_slug(&new.slug) {
            return Err(AdminError::invalid(
                "slug",
                "2-40 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            ));
        }
        let name = new.name.clone().unwrap_or_else(|| new.slug.clone());
        if name.trim().is_empty() || name.len() > 200 {
            return Err(AdminError::invalid("name", "1 to 200 characters"));
        }
        check_origins("allowed_origins", &new.allowed_origins)?;
        if store::get_project_by_slug(&self.svc.db, &self.svc.master_key, &new.slug)
            .await?
            .is_some()
        {
            return Err(AdminError::Conflict(format!(
                "a project with slug {:?} already exists",
                new.slug
            )));
        }
        let id = store::create_project_in(
            &self.svc.db,
            (!caller.org_id.is_empty()).then_some(caller.org_id.as_str()),
            &new.slug,
            name.trim(),
            &[],
            &new.allowed_origins,
            now_ms(),
        )
        .await
        .map_err(|e| {
            // Two creations racing for one slug: the unique index decides.
            if e.to_string().to_ascii_lowercase().contains("unique") {
                AdminError::Conflict(format!("a project with slug {:?} already exists", new.slug))
            } else {
                AdminError::Store(e)
            }
        })?;
        self.project_changed(&id).await;
        self.audit(
            caller,
            Record {
                project_id: Some(&id),
                action: "project.created",
                target: Some(&id),
                detail: serde_json::json!({ "slug": new.slug }),
            },
        )
        .await;
        self.get_project(caller, &id).await
    }

    pub async fn update_project(
        &self,
        caller: &Caller,
        project_id: &str,
        update: &ProjectUpdate,
    ) -> AdminResult<ProjectView> {
        self.project_of(caller, project_id).await?;
        let patch = patch_of(update)?;
        self.apply_patch(caller, project_id, &patch, "project.updated")
            .await?;
        self.get_project(caller, project_id).await
    }

    async fn apply_patch(
        &self,
        caller: &Caller,
        project_id: &str,
        patch: &ProjectPatch,
        action: &str,
    ) -> AdminResult<()> {
        store::update_project(
            &self.svc.db,
            &self.svc.master_key,
            project_id,
            patch,
            now_ms(),
        )
        .await?;
        self.project_changed(project_id).await;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action,
                target: Some(project_id),
                detail: serde_json::json!({ "changed": changed_fields(patch) }),
            },
        )
        .await;
        Ok(())
    }

    /// Delete a project and everything it holds (users, sessions, subscriptions, logs); the
    /// audit trail stays. Its actor stops on every instance.
    pub async fn delete_project(&self, caller: &Caller, project_id: &str) -> AdminResult<()> {
        let p = self.project_of(caller, project_id).await?;
        let mut tx = self.svc.db.pool.begin().await?;
        for table in [
            "sessions",
            "subscriptions",
            "magic_links",
            "oauth_states",
            "email_log",
            "stripe_events",
            "domains",
            "end_users",
        ] {
            let sql = sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE project_id = $1"));
            sqlx::query(sql).bind(project_id).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.project_changed(project_id).await;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "project.deleted",
                target: Some(project_id),
                detail: serde_json::json!({ "slug": p.slug }),
            },
        )
        .await;
        Ok(())
    }

    pub async fn get_credentials(
        &self,
        caller: &Caller,
        project_id: &str,
    ) -> AdminResult<CredentialsView> {
        let p = self.project_of(caller, project_id).await?;
        Ok(CredentialsView {
            google_client_id: p.google_client_id.clone(),
            google_client_secret: state_of(&p.google_client_secret),
            resend_api_key: state_of(&p.resend_api_key),
            email_from: p.email_from.clone(),
            stripe_secret_key: state_of(&p.stripe_secret_key),
            stripe_webhook_secret: state_of(&p.stripe_webhook_secret),
        })
    }

    /// Write credentials (sealed under the master key); the answer never echoes a secret.
    pub async fn put_credentials(
        &self,
        caller: &Caller,
        project_id: &str,
        c: &Credentials,
    ) -> AdminResult<CredentialsView> {
        self.project_of(caller, project_id).await?;
        for (field, v, max) in [
            ("google_client_secret", &c.google_client_secret, 500),
            ("resend_api_key", &c.resend_api_key, 500),
            ("stripe_secret_key", &c.stripe_secret_key, 500),
            ("stripe_webhook_secret", &c.stripe_webhook_secret, 500),
        ] {
            opt_str(field, v, max)?;
            // Keys go into HTTP headers: anything else is accepted here and breaks later.
            if let Some(Some(s)) = v
                && !s.trim().bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(AdminError::invalid(field, "visible ASCII characters only"));
            }
        }
        if let Some(Some(k)) = &c.stripe_secret_key
            && !k.trim().is_empty()
            && !(k.starts_with("sk_") || k.starts_with("rk_"))
        {
            return Err(AdminError::invalid(
                "stripe_secret_key",
                "a Stripe secret key starts with sk_ (or rk_ for a restricted key)",
            ));
        }
        if let Some(Some(k)) = &c.stripe_webhook_secret
            && !k.trim().is_empty()
            && !k.starts_with("whsec_")
        {
            return Err(AdminError::invalid(
                "stripe_webhook_secret",
                "a Stripe webhook signing secret starts with whsec_",
            ));
        }
        let patch = ProjectPatch {
            google_client_id: opt_str("google_client_id", &c.google_client_id, 500)?,
            google_client_secret: secret_of(&c.google_client_secret),
            resend_api_key: secret_of(&c.resend_api_key),
            email_from: opt_str("email_from", &c.email_from, 320)?,
            stripe_secret_key: secret_of(&c.stripe_secret_key),
            stripe_webhook_secret: secret_of(&c.stripe_webhook_secret),
            ..Default::default()
        };
        self.apply_patch(caller, project_id, &patch, "project.credentials_updated")
            .await?;
        self.get_credentials(caller, project_id).await
    }

    pub async fn list_domains(
        &self,
        caller: &Caller,
        project_id: &str,
    ) -> AdminResult<Vec<Domain>> {
        self.project_of(caller, project_id).await?;
        let rows = sqlx::query(
            "SELECT id, project_id, hostname, is_primary, status, token, reason, verified_at, checked_at, created_at FROM domains WHERE project_id = $1 ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(&self.svc.db.pool)
        .await?;
        rows.iter()
            .map(|r| self.domain_from_row(r))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(AdminError::from)
    }

    /// One domain of the project, as the API shows it (the answer to every domain change).
    async fn domain(
        &self,
        caller: &Caller,
        project_id: &str,
        domain_id: &str,
    ) -> AdminResult<Domain> {
        self.list_domains(caller, project_id)
            .await?
            .into_iter()
            .find(|d| d.id == domain_id)
            .ok_or(AdminError::NotFound("domain"))
    }

    fn domain_from_row(&self, r: &sqlx::any::AnyRow) -> Result<Domain, sqlx::Error> {
        let hostname: String = r.try_get("hostname")?;
        let token: String = r.try_get("token")?;
        let mut records = vec![DnsRecord {
            kind: "TXT",
            name: format!("{}.{hostname}", crate::domains::CHALLENGE_LABEL),
            value: format!("reauth-verify={token}"),
        }];
        if let Some(target) = &self.svc.settings.cname_target {
            records.push(DnsRecord {
                kind: "CNAME",
                name: hostname.clone(),
                value: target.clone(),
            });
        }
        let scheme = match self.svc.settings.public_scheme.as_deref() {
            Some("http") => "http",
            _ => "https",
        };
        Ok(Domain {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            records,
            google_redirect_uri: format!("{scheme}://{hostname}/callback/google"),
            hostname,
            primary: r.try_get::<i64, _>("is_primary")? != 0,
            status: r.try_get("status")?,
            reason: r.try_get("reason")?,
            verified_at: r.try_get("verified_at")?,
            checked_at: r.try_get("checked_at")?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// Add a domain (pending until verified; it serves nothing before).
    pub async fn add_domain(
        &self,
        caller: &Caller,
        project_id: &str,
        hostname: &str,
    ) -> AdminResult<Domain> {
        self.project_of(caller, project_id).await?;
        // IDNA: `auth.bücher.example` is stored (and served) as its punycode form.
        let Some(host) = crate::domains::normalize(hostname) else {
            return Err(AdminError::invalid(
                "hostname",
                "a DNS name such as auth.example.com",
            ));
        };
        if crate::domains::is_reserved(&host, self.svc.settings.base_domain.as_deref()) {
            return Err(AdminError::invalid(
                "hostname",
                "the base domain and its subdomains are reauth's own",
            ));
        }
        let taken: Option<String> =
            sqlx::query_scalar("SELECT id FROM domains WHERE hostname = $1")
                .bind(&host)
                .fetch_optional(&self.svc.db.pool)
                .await?;
        if taken.is_some() {
            return Err(AdminError::Conflict(format!(
                "{host} is already claimed by a project"
            )));
        }
        let first: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(&self.svc.db.pool)
            .await?;
        let id = ids::new_id("dom");
        sqlx::query("INSERT INTO domains (id, project_id, hostname, is_primary, status, token, created_at) VALUES ($1, $2, $3, $4, 'pending', $5, $6)")
            .bind(&id)
            .bind(project_id)
            .bind(&host)
            .bind(i64::from(first == 0))
            .bind(reauth_runtime::crypto::random_token())
            .bind(now_ms())
            .execute(&self.svc.db.pool)
            .await
            .map_err(|e| {
                if e.to_string().to_ascii_lowercase().contains("unique") {
                    AdminError::Conflict(format!("{host} is already claimed by a project"))
                } else {
                    AdminError::from(e)
                }
            })?;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "domain.added",
                target: Some(&id),
                detail: serde_json::json!({ "hostname": host }),
            },
        )
        .await;
        self.domain(caller, project_id, &id).await
    }

    pub async fn remove_domain(
        &self,
        caller: &Caller,
        project_id: &str,
        domain_id: &str,
    ) -> AdminResult<()> {
        self.project_of(caller, project_id).await?;
        let n = sqlx::query("DELETE FROM domains WHERE id = $1 AND project_id = $2")
            .bind(domain_id)
            .bind(project_id)
            .execute(&self.svc.db.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(AdminError::NotFound("domain"));
        }
        // The primary gone, the oldest remaining domain takes its place.
        sqlx::query("UPDATE domains SET is_primary = 1 WHERE id = (SELECT MIN(id) FROM domains WHERE project_id = $1) AND NOT EXISTS (SELECT 1 FROM domains WHERE project_id = $1 AND is_primary = 1)")
            .bind(project_id)
            .execute(&self.svc.db.pool)
            .await?;
        crate::domains::bump_version(&self.svc, project_id).await?;
        self.project_changed(project_id).await;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "domain.removed",
                target: Some(domain_id),
                detail: serde_json::json!({}),
            },
        )
        .await;
        Ok(())
    }

    /// Make a domain the project's primary: once verified, the canonical origin for links,
    /// OAuth and cookies; the project's other hosts become aliases that redirect to it.
    pub async fn set_primary_domain(
        &self,
        caller: &Caller,
        project_id: &str,
        domain_id: &str,
    ) -> AdminResult<Domain> {
        self.project_of(caller, project_id).await?;
        let mut tx = self.svc.db.pool.begin().await?;
        let n = sqlx::query("UPDATE domains SET is_primary = 1 WHERE id = $1 AND project_id = $2")
            .bind(domain_id)
            .bind(project_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(AdminError::NotFound("domain"));
        }
        sqlx::query("UPDATE domains SET is_primary = 0 WHERE project_id = $1 AND id <> $2")
            .bind(project_id)
            .bind(domain_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE projects SET version = version + 1 WHERE id = $1")
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.project_changed(project_id).await;
        self.audit(
            caller,
            Record {
                project_id: Some(project_id),
                action: "domain.primary",
                target: Some(domain_id),
                detail: serde_json::json!({}),
            },
        )
        .await;
        self.domain(caller, project_id, domain_id).await
    }

    /// Check a domain's DNS now and store the outcome (status, reason, times). A domain that
    /// became routable (or stopped being) is reloaded on every instance.
    pub async fn verify_domain(
        &self,
        caller: &Caller,
        project_id: &str,
        domain_id: &str,
    ) -> AdminResult<Domain> {
        self.project_of(caller, project_id).await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT project_id FROM domains WHERE id = $1")
                .bind(domain_id)
                .fetch_optional(&self.svc.db.pool)
                .await?;
        if owner.as_deref() != Some(project_id) {
            return Err(AdminError::NotFound("domain"));
        }
        let checked =
            crate::domains::check_and_store(&self.svc, domain_id, now_ms(), &caller.actor)
                .await?
                .ok_or(AdminError::NotFound("domain"))?;
        if checked.routing_changed {
            self.project_changed(project_id).await;
        }
        self.domain(caller, project_id, domain_id).await
    }
}

impl Admin {
    /// A project by slug (tenancy as [`Admin::project_of`]); the CLI's way in.
    pub async fn project_by_slug(&self, caller: &Caller, slug: &str) -> AdminResult<Project> {
        let p = store::get_project_by_slug(&self.svc.db, &self.svc.master_key, slug)
            .await?
            .ok_or(AdminError::NotFound("project"))?;
        self.project_of(caller, &p.id).await
    }

    /// Every project the caller sees, in full (the CLI's listing).
    pub async fn projects(&self, caller: &Caller) -> AdminResult<Vec<Project>> {
        let mut out = vec![];
        let mut page = PageReq {
            limit: Some(100),
            starting_after: None,
        };
        loop {
            let p = self.project_page(caller, &page).await?;
            out.extend(p.data);
            match p.next_cursor {
                Some(c) if p.has_more => page.starting_after = Some(c),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(out)
    }
}

impl Admin {
    /// Dev mode's project on `hosts`: created, or its hosts set and `origins` put first in its
    /// allowed origins (keeping any others). Returns its id; running actors are told.
    pub async fn ensure_dev_project(
        &self,
        slug: &str,
        name: &str,
        hosts: &[String],
        origins: &[String],
    ) -> AdminResult<String> {
        let db = &self.svc.db;
        let id = match store::get_project_by_slug(db, &self.svc.master_key, slug).await? {
            Some(p) => {
                let mut merged = origins.to_vec();
                for o in p.allowed_origins {
                    if !merged.contains(&o) {
                        merged.push(o);
                    }
                }
                let patch = ProjectPatch {
                    allowed_origins: Some(merged),
                    dev_hosts: Some(hosts.to_vec()),
                    ..Default::default()
                };
                store::update_project(db, &self.svc.master_key, &p.id, &patch, now_ms()).await?;
                p.id
            }
            None => store::create_project(db, slug, name, hosts, origins, now_ms()).await?,
        };
        // Any local app may be the redirect target in dev, whatever port it runs on.
        let p = store::get_project(db, &self.svc.master_key, &id)
            .await?
            .ok_or(AdminError::NotFound("project"))?;
        let mut all = p.allowed_origins.clone();
        for o in ["http://localhost:*", "http://127.0.0.1:*"] {
            if !all.iter().any(|a| a == o) {
                all.push(o.to_string());
            }
        }
        if all != p.allowed_origins {
            let patch = ProjectPatch {
                allowed_origins: Some(all),
                ..Default::default()
            };
            store::update_project(db, &self.svc.master_key, &id, &patch, now_ms()).await?;
        }
        self.project_changed(&id).await;
        Ok(id)
    }
}
