//! Custom domains: host-name normalization (IDNA), the DNS check (TXT challenge + CNAME or
//! A/AAAA to the ingress) and the verification state machine the façade and the janitor share.
//!
//! States: `pending` (added, never verified; serves nothing) → `verified` (routes) →
//! `failing` (a check failed; still routes, so a DNS blip does not take a login page down) →
//! `unverified` (failing for longer than the grace period; routes no more). A successful check
//! from any state makes it `verified`. `verified_at` is the last time a check succeeded, so the
//! grace period is measured from it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use reauth_runtime::Settings;
use sqlx::Row;

use crate::admin::audit::{self, Record};
use crate::services::Svc;

/// The TXT record's name is `_reauth-challenge.<host>`.
pub const CHALLENGE_LABEL: &str = "_reauth-challenge";
/// One query's timeout: a verification is interactive, and a dead nameserver must say so
/// within seconds rather than hang the request.
const QUERY_TIMEOUT: Duration = Duration::from_millis(1500);
/// The whole check's bound, whatever the resolver's retries do.
const CHECK_TIMEOUT: Duration = Duration::from_secs(6);

/// Statuses a domain routes in.
pub const ROUTING: [&str; 2] = ["verified", "failing"];

/// A host name as stored: IDNA (UTS 46) to ASCII, lower-case, no trailing dot, valid DNS
/// labels. `None` when it is not a host name.
pub fn normalize(host: &str) -> Option<String> {
    let h = host.trim().trim_end_matches('.');
    let ascii = idna::domain_to_ascii(h).ok()?;
    let ok = (3..=253).contains(&ascii.len())
        && ascii.contains('.')
        && ascii.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        // An IPv4 literal is not a domain.
        && !ascii.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(ascii)
}

/// The base domain and its subdomains are reauth's own (`<slug>.<base>`).
pub fn is_reserved(host: &str, base_domain: Option<&str>) -> bool {
    base_domain.is_some_and(|base| host == base || host.ends_with(&format!(".{base}")))
}

/// What one DNS check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Verified,
    /// The host name does not exist.
    NxDomain,
    TxtMissing,
    TxtWrong {
        found: Vec<String>,
    },
    CnameElsewhere {
        found: String,
    },
    /// No CNAME, and no A/AAAA among the ingress addresses.
    NotPointed {
        found: Vec<IpAddr>,
    },
    Timeout,
    Error(String),
}

impl Check {
    pub fn ok(&self) -> bool {
        *self == Check::Verified
    }

    /// The metric label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Check::Verified => "verified",
            Check::NxDomain => "nxdomain",
            Check::TxtMissing => "txt_missing",
            Check::TxtWrong { .. } => "txt_wrong",
            Check::CnameElsewhere { .. } => "cname_elsewhere",
            Check::NotPointed { .. } => "not_pointed",
            Check::Timeout => "timeout",
            Check::Error(_) => "error",
        }
    }

    /// Why it failed, in words an operator can act on; `None` when verified.
    pub fn reason(&self, host: &str, token: &str, settings: &Settings) -> Option<String> {
        let txt = format!("{CHALLENGE_LABEL}.{host}");
        let want = target_words(settings);
        Some(match self {
            Check::Verified => return None,
            Check::NxDomain => format!("NXDOMAIN: {host} does not exist in DNS; create {want}"),
            Check::TxtMissing => {
                format!("TXT record missing: create TXT {txt} = \"reauth-verify={token}\"")
            }
            Check::TxtWrong { found } => {
                format!("TXT record wrong: {txt} is {found:?}, expected \"reauth-verify={token}\"")
            }
            Check::CnameElsewhere { found } => {
                format!("CNAME points elsewhere: {host} is a CNAME to {found}, expected {want}")
            }
            Check::NotPointed { found } if found.is_empty() => {
                format!("no CNAME or address record: {host} must be {want}")
            }
            Check::NotPointed { found } => format!(
                "{host} points at {} (no CNAME), expected {want}",
                found
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Check::Timeout => format!(
                "nameserver timeout: {} did not answer",
                settings
                    .dns_nameserver
                    .map_or_else(|| "the system resolver".to_string(), |a| a.to_string())
            ),
            Check::Error(e) => format!("DNS lookup failed: {e}"),
        })
    }
}

fn target_words(s: &Settings) -> String {
    let addrs = s
        .ingress_addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match (&s.cname_target, addrs.is_empty()) {
        (Some(t), true) => format!("a CNAME to {t}"),
        (Some(t), false) => format!("a CNAME to {t} (or, at an apex, A/AAAA {addrs})"),
        (None, false) => format!("A/AAAA {addrs}"),
        (None, true) => "an address record".to_string(),
    }
}

/// A resolver for one verification: no cache (a record just created must be seen, not a
/// cached negative answer), one attempt per query with a short timeout.
pub fn resolver(settings: &Settings) -> anyhow::Result<TokioResolver> {
    let mut opts = ResolverOpts::default();
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 1;
    opts.cache_size = 0;
    let builder = match settings.dns_nameserver {
        Some(addr) => Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![nameserver(addr)]),
            TokioRuntimeProvider::default(),
        ),
        None => Resolver::builder_tokio().context("reading the system's resolver configuration")?,
    };
    builder
        .with_options(opts)
        .build()
        .context("building the DNS resolver")
}

/// UDP first, TCP when an answer is truncated or UDP fails.
fn nameserver(addr: SocketAddr) -> NameServerConfig {
    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
    for c in &mut ns.connections {
        c.port = addr.port();
    }
    ns
}

enum Found<T> {
    Records(Vec<T>),
    None,
    NxDomain,
    Failed(Check),
}

fn classify<T>(r: Result<Vec<T>, NetError>) -> Found<T> {
    match r {
        Ok(v) if v.is_empty() => Found::None,
        Ok(v) => Found::Records(v),
        Err(e) if e.is_nx_domain() => Found::NxDomain,
        Err(e) if e.is_no_records_found() => Found::None,
        Err(NetError::Timeout) => Found::Failed(Check::Timeout),
        Err(e) if e.to_string().to_ascii_lowercase().contains("timed out") => {
            Found::Failed(Check::Timeout)
        }
        Err(e) => Found::Failed(Check::Error(e.to_string())),
    }
}

async fn records(r: &TokioResolver, name: &str, kind: RecordType) -> Found<RData> {
    classify(
        r.lookup(name, kind)
            .await
            .map(|l| l.answers().iter().map(|rec| rec.data.clone()).collect()),
    )
}

/// Check `host` now: it exists, the TXT challenge holds `token`, and the host points at the
/// ingress (when one is configured).
pub async fn check(settings: &Settings, host: &str, token: &str) -> Check {
    let Ok(r) = resolver(settings) else {
        return Check::Error("no DNS resolver could be configured".into());
    };
    match tokio::time::timeout(CHECK_TIMEOUT, check_with(&r, settings, host, token)).await {
        Ok(c) => c,
        Err(_) => Check::Timeout,
    }
}

async fn check_with(r: &TokioResolver, s: &Settings, host: &str, token: &str) -> Check {
    // Fully qualified: no search-domain expansion.
    let fqdn = format!("{host}.");
    let cname = match records(r, &fqdn, RecordType::CNAME).await {
        Found::Records(v) => v.into_iter().find_map(|d| match d {
            RData::CNAME(c) => Some(c.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        }),
        Found::None => None,
        Found::NxDomain => return Check::NxDomain,
        Found::Failed(c) => return c,
    };
    let expected = format!("reauth-verify={token}");
    match records(r, &format!("{CHALLENGE_LABEL}.{fqdn}"), RecordType::TXT).await {
        Found::Records(v) => {
            let found: Vec<String> = v
                .iter()
                .filter_map(|d| match d {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect();
            if !found.iter().any(|f| f.trim() == expected) {
                return Check::TxtWrong { found };
            }
        }
        Found::None | Found::NxDomain => return Check::TxtMissing,
        Found::Failed(c) => return c,
    }
    if s.cname_target.is_none() && s.ingress_addrs.is_empty() {
        return Check::Verified;
    }
    if let Some(c) = cname {
        return if s.cname_target.as_deref() == Some(c.as_str()) {
            Check::Verified
        } else {
            Check::CnameElsewhere { found: c }
        };
    }
    let mut addrs = vec![];
    for kind in [RecordType::A, RecordType::AAAA] {
        match records(r, &fqdn, kind).await {
            Found::Records(v) => addrs.extend(v.into_iter().filter_map(|d| match d {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })),
            Found::None | Found::NxDomain => {}
            Found::Failed(c) => return c,
        }
    }
    if !addrs.is_empty() && addrs.iter().all(|a| s.ingress_addrs.contains(a)) {
        Check::Verified
    } else {
        Check::NotPointed { found: addrs }
    }
}

/// The next (status, verified_at) after a check at `now`.
pub fn next_state(
    status: &str,
    verified_at: Option<i64>,
    ok: bool,
    now: i64,
    grace_ms: i64,
) -> (&'static str, Option<i64>) {
    if ok {
        return ("verified", Some(now));
    }
    match status {
        "verified" | "failing" => {
            if verified_at.is_some_and(|t| now - t > grace_ms) {
                ("unverified", verified_at)
            } else {
                ("failing", verified_at)
            }
        }
        "unverified" => ("unverified", verified_at),
        _ => ("pending", verified_at),
    }
}

/// The result of checking one stored domain.
#[derive(Debug, Clone)]
pub struct Checked {
    pub project_id: String,
    pub status: &'static str,
    pub reason: Option<String>,
    /// Whether it routes differently now (the project must be reloaded everywhere).
    pub routing_changed: bool,
    pub check: Check,
}

/// Check the stored domain `domain_id` at `now` (by `actor`, for the audit log) and store the
/// outcome; bumps the project's version when routing changed, so every instance's version
/// watcher reloads it even if the bus message is lost. `None` when there is no such domain.
pub async fn check_and_store(
    svc: &Svc,
    domain_id: &str,
    now: i64,
    actor: &str,
) -> anyhow::Result<Option<Checked>> {
    let row = sqlx::query(
        "SELECT d.project_id, d.hostname, d.status, d.token, d.verified_at, p.org_id FROM domains d JOIN projects p ON p.id = d.project_id WHERE d.id = $1",
    )
    .bind(domain_id)
    .fetch_optional(&svc.db.pool)
    .await
    .context("reading a domain")?;
    let Some(row) = row else { return Ok(None) };
    let project_id: String = row.try_get("project_id")?;
    let host: String = row.try_get("hostname")?;
    let status: String = row.try_get("status")?;
    let token: String = row.try_get("token")?;
    let verified_at: Option<i64> = row.try_get("verified_at")?;
    let org_id: Option<String> = row.try_get("org_id")?;

    let check = check(&svc.settings, &host, &token).await;
    metrics::counter!("reauth_domain_checks_total", "outcome" => check.outcome()).increment(1);
    let reason = check.reason(&host, &token, &svc.settings);
    let grace_ms = (svc.settings.domain_grace_secs as i64).saturating_mul(1000);
    let (next, verified_at) = next_state(&status, verified_at, check.ok(), now, grace_ms);
    sqlx::query(
        "UPDATE domains SET status = $1, reason = $2, verified_at = $3, checked_at = $4 WHERE id = $5",
    )
    .bind(next)
    .bind(&reason)
    .bind(verified_at)
    .bind(now)
    .bind(domain_id)
    .execute(&svc.db.pool)
    .await
    .context("storing a domain check")?;
    let routing_changed = ROUTING.contains(&status.as_str()) != ROUTING.contains(&next);
    if routing_changed {
        bump_version(svc, &project_id).await?;
    }
    if next != status {
        audit::write(
            &svc.db,
            org_id.as_deref(),
            actor,
            None,
            None,
            Record {
                project_id: Some(&project_id),
                action: match next {
                    "verified" => "domain.verified",
                    "failing" => "domain.failing",
                    "unverified" => "domain.unverified",
                    _ => "domain.checked",
                },
                target: Some(domain_id),
                detail: serde_json::json!({ "hostname": host, "from": status, "reason": reason }),
            },
        )
        .await;
        tracing::info!(domain = %host, from = %status, to = next, ?reason, "domain status changed");
    }
    Ok(Some(Checked {
        project_id,
        status: next,
        reason,
        routing_changed,
        check,
    }))
}

/// A project's routing changed: a new version makes every instance's watcher reload it.
pub async fn bump_version(svc: &Svc, project_id: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE projects SET version = version + 1 WHERE id = $1")
        .bind(project_id)
        .execute(&svc.db.pool)
        .await
        .context("bumping a project's version")?;
    Ok(())
}

/// Re-check every routed domain last checked before `now - every_ms`; returns the projects
/// whose routing changed.
pub async fn recheck_due(svc: &Svc, now: i64, every_ms: i64) -> anyhow::Result<Vec<String>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM domains WHERE status IN ('verified', 'failing') AND (checked_at IS NULL OR checked_at <= $1) ORDER BY id",
    )
    .bind(now - every_ms)
    .fetch_all(&svc.db.pool)
    .await
    .context("listing domains to re-check")?;
    let mut changed = vec![];
    for id in ids {
        match check_and_store(svc, &id, now, "janitor").await {
            Ok(Some(c)) if c.routing_changed && !changed.contains(&c.project_id) => {
                changed.push(c.project_id)
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(domain = %id, error = %e, "domain re-check failed"),
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idn_host_names_are_stored_as_punycode() {
        assert_eq!(
            normalize("Auth.Bücher.Example.").as_deref(),
            Some("auth.xn--bcher-kva.example")
        );
        assert_eq!(normalize("a..b"), None);
        assert_eq!(normalize("localhost"), None);
        assert_eq!(normalize("10.0.0.1"), None);
        assert_eq!(normalize("under_score.example.com"), None);
    }

    #[test]
    fn a_failing_domain_is_unverified_only_after_the_grace_period() {
        let g = 1000;
        assert_eq!(next_state("pending", None, false, 5, g), ("pending", None));
        assert_eq!(
            next_state("pending", None, true, 5, g),
            ("verified", Some(5))
        );
        assert_eq!(
            next_state("verified", Some(5), false, 900, g),
            ("failing", Some(5))
        );
        assert_eq!(
            next_state("failing", Some(5), false, 1005, g),
            ("failing", Some(5))
        );
        assert_eq!(
            next_state("failing", Some(5), false, 1006, g),
            ("unverified", Some(5))
        );
        assert_eq!(
            next_state("failing", Some(5), true, 1006, g),
            ("verified", Some(1006))
        );
    }
}
