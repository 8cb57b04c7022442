//! The application service: the one door through which the Management API, the CLI (and the
//! dashboard) reach organizations, API keys, projects, end users, sessions, subscriptions and
//! the logs. Every method checks tenancy (an org sees only its own projects; anything else is
//! "not found", so existence does not leak), validates its input (naming the field), writes the
//! audit log, and tells running instances about changes (the bus, as the CLI always did).
//! Nothing outside `actors` runs SQL.

pub mod audit;
pub mod idempotency;
pub mod keys;
pub mod logs;
pub mod members;
pub mod orgs;
pub mod projects;
pub mod sessions;
pub mod stats;
pub mod users;

use std::sync::Arc;

use reauth_runtime::BusMessage;
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::services::Svc;

pub use keys::KeyCache;
pub use members::{Membership, Role};

/// Who is acting, for tenancy and the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub org_id: String,
    /// `key_…` (an API key), `cli`, or a member's email.
    pub actor: String,
    pub scopes: Vec<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// The operator at the CLI: every org's projects (tenancy is for API keys and members).
    pub operator: bool,
}

impl Caller {
    /// The operator at the command line (`org_id` is the org a command names, if any).
    pub fn operator(org_id: Option<&str>) -> Self {
        Self {
            org_id: org_id.unwrap_or_default().to_string(),
            actor: "cli".into(),
            scopes: vec!["*:write".into()],
            ip: None,
            request_id: None,
            operator: true,
        }
    }

    /// Whether the caller may `access` (`read` or `write`) `resource`: `resource:write` implies
    /// read, and `*:read` / `*:write` cover every resource.
    pub fn may(&self, resource: &str, access: Access) -> bool {
        self.scopes.iter().any(|s| {
            let Some((r, a)) = s.split_once(':') else {
                return false;
            };
            (r == "*" || r == resource) && (a == "write" || (a == "read" && access == Access::Read))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The resources a key's scopes name.
pub const RESOURCES: &[&str] = &[
    "projects",
    "credentials",
    "domains",
    "users",
    "sessions",
    "subscriptions",
    "email_log",
    "stripe_events",
    "audit_log",
];

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such resource *for this caller* (another org's is the same answer).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Bad input, naming the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    /// The key lacks the scope.
    #[error("this API key lacks the {0} scope")]
    Forbidden(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl AdminError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// A page of a list: Stripe's shape with an explicit cursor.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    /// Pass as `starting_after` for the next page.
    pub next_cursor: Option<String>,
}

/// Cursor pagination: at most `limit` (1..=100, default 10) items after `starting_after`,
/// in the order of the sortable id.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageReq {
    /// How many items (1 to 100; default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub starting_after: Option<String>,
}

impl PageReq {
    pub fn limit(&self) -> AdminResult<i64> {
        match self.limit {
            None => Ok(10),
            Some(n) if (1..=100).contains(&n) => Ok(n),
            Some(_) => Err(AdminError::invalid("limit", "must be between 1 and 100")),
        }
    }
}

/// Fetch `limit + 1` rows ordered by id, then cut: whether there is more and the cursor.
pub fn page_of<T>(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Page<T> {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if has_more { rows.last().map(&id) } else { None };
    Page {
        data: rows,
        has_more,
        next_cursor,
    }
}

/// How changes reach running instances: in a server, the local actors and the bus; from the
/// CLI, the bus (and each instance's version watcher).
#[derive(Clone)]
enum Notifier {
    Core(Core),
    Bus,
}

/// The façade. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    svc: Svc,
    notifier: Notifier,
    keys: Arc<KeyCache>,
}

impl Admin {
    /// Inside a server.
    pub fn new(core: &Core) -> Self {
        Self {
            svc: core.svc.clone(),
            keys: core.api_keys.clone(),
            notifier: Notifier::Core(core.clone()),
        }
    }

    /// For the CLI: no actors, changes announced on the bus.
    pub fn detached(svc: Svc) -> Self {
        Self {
            svc,
            keys: Arc::new(KeyCache::default()),
            notifier: Notifier::Bus,
        }
    }

    pub fn svc(&self) -> &Svc {
        &self.svc
    }

    async fn publish(&self, topic: &str, payload: serde_json::Value) {
        let msg = BusMessage {
            origin: self.svc.instance_id.clone(),
            topic: topic.to_string(),
            payload: payload.to_string(),
        };
        if let Err(e) = self.svc.cache.publish(&msg).await {
            tracing::warn!(error = %e, topic, "bus publish failed; instances catch up from the store");
        }
    }

    /// A project's stored configuration changed: reload it everywhere.
    async fn project_changed(&self, project_id: &str) {
        match &self.notifier {
            Notifier::Core(core) => {
                if let Err(e) = core.project_changed(project_id).await {
                    tracing::warn!(project = %project_id, error = %e, "project reload failed; the version watcher retries");
                }
            }
            Notifier::Bus => {
                self.publish(
                    "project.changed",
                    serde_json::json!({ "project_id": project_id }),
                )
                .await
            }
        }
    }
}
