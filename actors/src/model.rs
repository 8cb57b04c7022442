//! Domain records (as stored) and views (as the SDK sees them).

use std::sync::Arc;

use reauth_runtime::config::Secret;
use serde::{Deserialize, Serialize};

/// A plan mapping entry: a Stripe price id grants a plan name and its features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanMapping {
    pub price_id: String,
    pub plan: String,
    #[serde(default)]
    pub features: Vec<String>,
}

/// A project's configuration with its secrets opened. Shared as an immutable snapshot
/// (`Arc<Project>`); the ProjectActor is its only writer.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub custom_domain: Option<String>,
    pub domain_verified: bool,
    /// Routed custom domains (from the `domains` table: verified or failing within the grace
    /// period), the primary first: the first is the canonical origin, the rest are aliases.
    pub domains: Vec<String>,
    pub dev_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub logo_url: Option<String>,
    pub accent_color: Option<String>,
    pub email_from: Option<String>,
    pub google_client_id: Option<String>,
    pub google_client_secret: Option<Secret>,
    pub resend_api_key: Option<Secret>,
    pub stripe_secret_key: Option<Secret>,
    pub stripe_webhook_secret: Option<Secret>,
    pub magic_link_ttl_secs: i64,
    pub session_ttl_secs: i64,
    pub plans: Vec<PlanMapping>,
    pub version: i64,
    /// Where the project's hosted pages live, from its configuration alone (see
    /// [`Origin::of`]); set when the snapshot is published. Every absolute URL reauth emits
    /// for the project starts with it.
    pub origin: Option<Origin>,
    /// The project's counters (operators' metrics); the directory's, once published.
    pub stats: Arc<crate::stats::ProjectStats>,
}

impl Project {
    /// A project with defaults (15-minute links, 30-day sessions, nothing configured).
    pub fn new(id: &str, slug: &str, name: &str) -> Self {
        Self {
            id: id.into(),
            slug: slug.into(),
            name: name.into(),
            custom_domain: None,
            domain_verified: false,
            domains: vec![],
            dev_hosts: vec![],
            allowed_origins: vec![],
            logo_url: None,
            accent_color: None,
            email_from: None,
            google_client_id: None,
            google_client_secret: None,
            resend_api_key: None,
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            magic_link_ttl_secs: 900,
            session_ttl_secs: 2_592_000,
            plans: vec![],
            version: 1,
            origin: None,
            stats: Arc::default(),
        }
    }

    pub fn google_enabled(&self) -> bool {
        self.google_client_id.is_some() && self.google_client_secret.is_some()
    }

    /// The first allowed origin is the default redirect target.
    pub fn default_redirect(&self) -> Option<&str> {
        self.allowed_origins.first().map(String::as_str)
    }

    /// `target` when it is an absolute http(s) URL on one of the allowed origins, else `None`.
    pub fn allowed_redirect(&self, target: &str) -> Option<String> {
        let url = url::Url::parse(target).ok()?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let origin = url.origin().ascii_serialization();
        self.origin_allowed(&origin).then(|| url.to_string())
    }

    /// Whether `origin` (`scheme://host[:port]`, as browsers send it) is one of the allowed
    /// origins. An allowed origin may end in `:*` for a loopback host (`http://localhost:*`):
    /// any port of that host, as a developer's apps move between ports.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|a| {
            let a = a.trim_end_matches('/');
            if a.eq_ignore_ascii_case(origin) {
                return true;
            }
            match a.strip_suffix(":*") {
                Some(base) if is_loopback_origin(base) => {
                    let (Some(head), Some(rest)) =
                        (origin.get(..base.len()), origin.get(base.len()..))
                    else {
                        return false;
                    };
                    head.eq_ignore_ascii_case(base)
                        && (rest.is_empty()
                            || rest
                                .strip_prefix(':')
                                .is_some_and(|p| p.parse::<u16>().is_ok()))
                }
                _ => false,
            }
        })
    }

    /// The plan a price grants, `None` for a price outside the mapping.
    pub fn plan_for_price(&self, price_id: &str) -> Option<&PlanMapping> {
        self.plans.iter().find(|p| p.price_id == price_id)
    }
}

/// `http(s)://localhost`, `http(s)://127.0.0.1` or `http(s)://[::1]`: the only origins a port
/// wildcard may follow.
pub fn is_loopback_origin(base: &str) -> bool {
    let host = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"));
    matches!(host, Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// A brand colour: `#rgb` or `#rrggbb`.
pub fn valid_color(c: &str) -> bool {
    c.strip_prefix('#')
        .is_some_and(|h| (h.len() == 3 || h.len() == 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub type ProjectRef = Arc<Project>;

/// A project's canonical origin: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: &'static str,
    /// Lower-case, without the port (IPv6 literals in brackets).
    pub host: String,
    pub port: Option<u16>,
}

impl Origin {
    /// The primary routed custom domain (else the legacy verified `custom_domain`), else
    /// `<slug>.<base_domain>`, else the first dev host
    /// (which may carry a port). `https`, except for loopback and `.localhost` hosts, unless
    /// `public_scheme` says otherwise. Never derived from a request.
    pub fn of(p: &Project, base_domain: Option<&str>, public_scheme: Option<&str>) -> Option<Self> {
        let (host, port) = if let Some(d) = p.domains.first() {
            (d.clone(), None)
        } else if let (Some(d), true) = (&p.custom_domain, p.domain_verified) {
            (d.to_ascii_lowercase(), None)
        } else if let Some(base) = base_domain {
            (format!("{}.{}", p.slug, base), None)
        } else {
            let (h, port) = split_port(p.dev_hosts.first()?);
            (h.to_ascii_lowercase(), port)
        };
        let scheme = match public_scheme {
            Some("http") => "http",
            Some(_) => "https",
            None if is_loopback(&host) => "http",
            None => "https",
        };
        Some(Self { scheme, host, port })
    }

    /// `scheme://host[:port]`, no trailing slash.
    pub fn url(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }

    /// Cookies for this origin carry `Secure`.
    pub fn secure(&self) -> bool {
        self.scheme == "https"
    }
}

/// `localhost`, `*.localhost`, `127.0.0.0/8` and `[::1]`: browsers treat them as secure
/// contexts over plain http.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port]` of a configured host (dev hosts may carry a port).
pub fn split_port(h: &str) -> (&str, Option<u16>) {
    let h = h.trim();
    if let Some((name, port)) = h.rsplit_once(':')
        && !name.is_empty()
        && (name.ends_with(']') || !name.contains(':'))
        && let Ok(port) = port.parse::<u16>()
    {
        return (name, Some(port));
    }
    (h, None)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub project_id: String,
    pub email: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub google_sub: Option<String>,
    pub stripe_customer_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub id: String,
    pub price_id: Option<String>,
    pub status: String,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub source_created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
}

impl SessionRecord {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What a user's SessionActor caches: the user and their subscription (also cached in Redis).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    pub user: UserRecord,
    pub subscription: Option<SubscriptionRecord>,
}

/// The denormalized view the SDK gets from `GET /v1/user`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub plan: String,
    pub subscription_status: Option<String>,
    pub current_period_end: Option<String>,
    pub cancel_at_period_end: bool,
    pub features: Vec<String>,
    pub session: SessionView,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionView {
    pub id: String,
    pub created_at: String,
    pub expires_at: String,
}

/// Statuses under which a subscription grants its plan.
pub fn grants_plan(status: &str) -> bool {
    matches!(status, "active" | "trialing" | "past_due")
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl UserState {
    /// Build the SDK view for one session, mapping the subscription's price to a plan.
    pub fn view(&self, project: &Project, session: &SessionRecord) -> UserView {
        let sub = self.subscription.as_ref();
        let mapping = sub
            .filter(|s| grants_plan(&s.status))
            .and_then(|s| s.price_id.as_deref())
            .and_then(|p| project.plan_for_price(p));
        UserView {
            user_id: self.user.id.clone(),
            email: self.user.email.clone(),
            name: self.user.name.clone(),
            avatar_url: self.user.avatar_url.clone(),
            plan: mapping.map_or_else(|| "free".to_string(), |m| m.plan.clone()),
            subscription_status: sub.map(|s| s.status.clone()),
            current_period_end: sub.and_then(|s| s.current_period_end).map(rfc3339),
            cancel_at_period_end: sub.is_some_and(|s| s.cancel_at_period_end),
            features: mapping.map(|m| m.features.clone()).unwrap_or_default(),
            session: SessionView {
                id: session.id.clone(),
                created_at: rfc3339(session.created_at),
                expires_at: rfc3339(session.expires_at),
            },
        }
    }
}

/// A syntactically valid, normalized (trimmed, lower-cased) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        let (local, domain) = s.rsplit_once('@')?;
        let ok_local = !local.is_empty() && local.len() <= 64 && !local.contains('@');
        let ok_domain = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        (ok_local && ok_domain && !s.contains(['<', '>', ',', ';', '"'])).then_some(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(origins: &[&str]) -> Project {
        Project {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..Project::new("prj_1", "demo", "Demo")
        }
    }

    #[test]
    fn redirects_are_allow_listed_by_origin() {
        let p = project(&["https://app.example.com", "http://localhost:3000"]);
        assert_eq!(
            p.allowed_redirect("https://app.example.com/dash?x=1")
                .as_deref(),
            Some("https://app.example.com/dash?x=1")
        );
        assert!(p.allowed_redirect("http://localhost:3000/").is_some());
        for bad in [
            "https://evil.com/",
            "https://app.example.com.evil.com/",
            "//evil.com",
            "/relative",
            "javascript:alert(1)",
            "https://user@app.example.com/",
            "http://app.example.com/",
            "not a url",
        ] {
            assert_eq!(p.allowed_redirect(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_loopback_port_wildcard_allows_any_port_of_that_host_only() {
        let p = project(&[
            "http://localhost:*",
            "http://127.0.0.1:*",
            "https://evil.com:*",
        ]);
        for ok in [
            "http://localhost:3000/dash",
            "http://localhost:5173/",
            "http://localhost/",
            "http://127.0.0.1:8081/x",
        ] {
            assert!(p.allowed_redirect(ok).is_some(), "{ok}");
        }
        for bad in [
            "https://localhost:3000/",
            "http://localhost.evil.com:3000/",
            "http://localhostx:3000/",
            "http://127.0.0.2:3000/",
            "https://evil.com:443/",
            "https://evil.com/",
            "http://user@localhost:3000/",
        ] {
            assert!(p.allowed_redirect(bad).is_none(), "{bad}");
        }
        assert!(p.origin_allowed("http://localhost:4000"));
        assert!(!p.origin_allowed("http://localhost:"));
        assert!(!p.origin_allowed("http://localhost:99999"));
    }

    #[test]
    fn emails_are_normalized_and_validated() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@b.com",
            "a@.com",
            "a b@c.com",
            "a@b.com>",
            "a@b_c.com",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
    }
}
