//! Typed settings: defaults, then an optional TOML file, then `REAUTH_*` environment variables,
//! then command-line flags (applied by the binary through [`Settings::set`]).
//! Secrets are wrapped in [`Secret`] and never printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A secret string whose `Debug`/`Display` never reveal it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every setting of a reauth process. See the README's configuration table.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `postgres://…` or `sqlite://…`; `None` = embedded SQLite under `data_dir`.
    pub database_url: Option<Secret>,
    pub data_dir: PathBuf,
    /// `redis://…`; `None` = in-process cache and bus.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and channel, so deployments (and tests) can share one Redis.
    pub redis_prefix: String,
    /// 32 bytes, base64: seals project secrets at rest (AES-256-GCM).
    pub master_key: Option<Secret>,
    /// Projects are served on `<slug>.<base_domain>`.
    pub base_domain: Option<String>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub request_timeout_secs: u64,
    /// Seconds a session actor may sit idle before it is passivated.
    pub session_idle_secs: u64,
    /// Every instance reads the revocations feed this often: the bound on a revocation whose
    /// bus message was lost (Redis partitioned, flushed or down).
    pub revalidate_secs: u64,
    /// Projects with a `project` label of their own in the metrics (the rest: `_other`).
    pub metrics_projects: usize,
    /// Operators' drills (`POST /ops/drills/project-failure` on the ops listener) are allowed.
    pub ops_drills: bool,
    /// Days the email log is kept (the janitor prunes older rows).
    pub email_log_retention_days: u64,
    /// Days the Stripe-event ledger is kept (at least 7: Stripe retries for three days).
    pub stripe_events_retention_days: u64,
    /// Days the audit log is kept.
    pub audit_log_retention_days: u64,
    /// Peers (reverse proxies) whose `X-Forwarded-For` is believed: the client is the rightmost
    /// hop not in this set. Empty = the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The operator listener (`/metrics`, `/ops/*`); `None` = not served.
    pub ops_listen: Option<SocketAddr>,
    /// `http` or `https` for every emitted URL; `None` = https except on loopback hosts.
    pub public_scheme: Option<String>,
    /// A connection must send a request's headers within this many seconds; an idle
    /// keep-alive connection is closed after as long.
    pub header_timeout_secs: u64,
    /// Connections served at once; the listener stops accepting beyond.
    pub max_connections: usize,
    /// The nameserver custom domains are verified against (`ip:port`, UDP with TCP fallback);
    /// `None` = the system's resolvers (`/etc/resolv.conf`).
    pub dns_nameserver: Option<SocketAddr>,
    /// The ingress name a custom domain must CNAME to (`ingress.example.net`); `None` with no
    /// `ingress_addrs` either = only the TXT challenge is checked (development).
    pub cname_target: Option<String>,
    /// Addresses an apex domain's A/AAAA records may point at instead of a CNAME.
    pub ingress_addrs: Vec<std::net::IpAddr>,
    /// The janitor re-checks verified domains this often.
    pub domain_recheck_secs: u64,
    /// A verified domain whose checks fail stays routed this long before it is unverified.
    pub domain_grace_secs: u64,
    /// `REAUTH_*` variables that name no setting (with the closest known name), for a warning.
    pub unknown_env: Vec<(String, Option<String>)>,
    pub resend_api_url: String,
    pub google_auth_url: String,
    pub google_token_url: String,
    pub google_userinfo_url: String,
    /// An OpenID Connect issuer (`https://accounts.google.com`, or a staging provider): when
    /// set, the three Google endpoints come from its discovery document at startup.
    pub google_issuer: Option<String>,
    pub stripe_api_url: String,
    /// Where the developer dashboard lives (`https://console.example.com`): its sign-in links
    /// and cookie are built from it, never from a request. `None` = in dev, the demo
    /// project's origin; in serve, dashboard sign-in is off until set.
    pub dashboard_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            data_dir: PathBuf::from("./data"),
            redis_url: None,
            redis_prefix: "reauth:".into(),
            master_key: None,
            base_domain: None,
            log_level: "info".into(),
            log_format: LogFormat::Pretty,
            request_timeout_secs: 15,
            session_idle_secs: 300,
            revalidate_secs: 30,
            metrics_projects: 50,
            ops_drills: false,
            email_log_retention_days: 90,
            stripe_events_retention_days: 90,
            audit_log_retention_days: 365,
            trusted_proxies: vec![],
            ops_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9091))),
            public_scheme: None,
            header_timeout_secs: 10,
            max_connections: 4096,
            dns_nameserver: None,
            cname_target: None,
            ingress_addrs: vec![],
            domain_recheck_secs: 6 * 3600,
            domain_grace_secs: 72 * 3600,
            unknown_env: vec![],
            resend_api_url: "https://api.resend.com".into(),
            google_auth_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            google_token_url: "https://oauth2.googleapis.com/token".into(),
            google_userinfo_url: "https://openidconnect.googleapis.com/v1/userinfo".into(),
            google_issuer: None,
            stripe_api_url: "https://api.stripe.com/".into(),
            dashboard_url: None,
        }
    }
}

/// The setting names, as used in the TOML file (`listen = "…"`) and, upper-cased with a
/// `REAUTH_` prefix, in the environment (`REAUTH_LISTEN`).
pub const KEYS: &[&str] = &[
    "listen",
    "database_url",
    "data_dir",
    "redis_url",
    "redis_prefix",
    "master_key",
    "base_domain",
    "log_level",
    "log_format",
    "request_timeout_secs",
    "session_idle_secs",
    "revalidate_secs",
    "metrics_projects",
    "ops_drills",
    "email_log_retention_days",
    "stripe_events_retention_days",
    "audit_log_retention_days",
    "trusted_proxies",
    "ops_listen",
    "public_scheme",
    "header_timeout_secs",
    "max_connections",
    "dns_nameserver",
    "cname_target",
    "ingress_addrs",
    "domain_recheck_secs",
    "domain_grace_secs",
    "resend_api_url",
    "google_auth_url",
    "google_token_url",
    "google_userinfo_url",
    "google_issuer",
    "stripe_api_url",
    "dashboard_url",
];

/// `REAUTH_*` variables read by the CLI or the test tools rather than by [`Settings`].
pub const OTHER_ENV: &[&str] = &[
    "REAUTH_CONFIG",
    "REAUTH_PROJECT_RESEND_API_KEY",
    "REAUTH_PROJECT_GOOGLE_CLIENT_SECRET",
    "REAUTH_PROJECT_STRIPE_SECRET_KEY",
    "REAUTH_PROJECT_STRIPE_WEBHOOK_SECRET",
    "REAUTH_BIN",
    "REAUTH_URL",
    "REAUTH_TEST_REDIS_URL",
    "REAUTH_TEST_PG_ADMIN_URL",
];

/// The known name closest to `name` (edit distance at most 3), for "did you mean".
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl Settings {
    /// Defaults, then the TOML file (if any), then `REAUTH_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut s = Self::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            for (k, v) in table {
                let v = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                if !KEYS.contains(&k.as_str()) {
                    let hint = closest(&k, KEYS.iter().copied())
                        .map(|c| format!(" (did you mean {c:?}?)"))
                        .unwrap_or_default();
                    bail!("in {}: unknown key {k:?}{hint}", path.display());
                }
                s.set(&k, &v)
                    .with_context(|| format!("in {}: key {k}", path.display()))?;
            }
        }
        for (k, v) in env {
            let Some(name) = k.strip_prefix("REAUTH_") else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if KEYS.contains(&name.as_str()) {
                s.set(&name, &v).with_context(|| format!("in ${k}"))?;
            } else if !OTHER_ENV.contains(&k.as_str()) {
                let hint = closest(&name, KEYS.iter().copied())
                    .map(|c| format!("REAUTH_{}", c.to_ascii_uppercase()));
                s.unknown_env.push((k.clone(), hint));
            }
        }
        Ok(s)
    }

    /// Set one setting from its string form. Unknown names and bad values are errors.
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let opt = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_string());
        match key {
            "listen" => {
                self.listen = value
                    .parse()
                    .with_context(|| format!("listen must be host:port, got {value:?}"))?
            }
            "database_url" => self.database_url = opt(value).map(Secret),
            "data_dir" => self.data_dir = PathBuf::from(value),
            "redis_url" => self.redis_url = opt(value).map(Secret),
            "redis_prefix" => self.redis_prefix = value.to_string(),
            "master_key" => self.master_key = opt(value).map(Secret),
            "base_domain" => {
                self.base_domain = opt(value).map(|d| d.trim_matches('.').to_ascii_lowercase())
            }
            "log_level" => self.log_level = value.to_string(),
            "log_format" => {
                self.log_format = match value {
                    "pretty" => LogFormat::Pretty,
                    "json" => LogFormat::Json,
                    _ => bail!("log_format must be pretty or json, got {value:?}"),
                }
            }
            "request_timeout_secs" => self.request_timeout_secs = parse_num(value)?,
            "session_idle_secs" => self.session_idle_secs = parse_num(value)?,
            "email_log_retention_days" => self.email_log_retention_days = parse_num(value)?,
            "audit_log_retention_days" => self.audit_log_retention_days = parse_num(value)?,
            "stripe_events_retention_days" => {
                self.stripe_events_retention_days = parse_num(value)?;
                if self.stripe_events_retention_days < 7 {
                    bail!(
                        "stripe_events_retention_days must be at least 7 (Stripe retries a delivery for three days)"
                    );
                }
            }
            "metrics_projects" => self.metrics_projects = parse_num(value)? as usize,
            "ops_drills" => self.ops_drills = parse_bool(value)?,
            "revalidate_secs" => {
                self.revalidate_secs = parse_num(value)?;
                if self.revalidate_secs == 0 {
                    bail!("revalidate_secs must be at least 1");
                }
            }
            "trusted_proxies" => {
                self.trusted_proxies = value
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(parse_cidr)
                    .collect::<anyhow::Result<_>>()?
            }
            "ops_listen" => {
                self.ops_listen = match value.trim() {
                    "" | "off" | "none" => None,
                    v => Some(v.parse().with_context(|| {
                        format!(
                            "ops_listen must be host:port (or empty to turn it off), got {value:?}"
                        )
                    })?),
                }
            }
            "public_scheme" => {
                self.public_scheme = match value.trim() {
                    "" => None,
                    v @ ("http" | "https") => Some(v.to_string()),
                    _ => bail!("public_scheme must be http or https, got {value:?}"),
                }
            }
            "header_timeout_secs" => {
                self.header_timeout_secs = parse_num(value)?;
                if self.header_timeout_secs == 0 {
                    bail!("header_timeout_secs must be at least 1");
                }
            }
            "max_connections" => {
                self.max_connections = usize::try_from(parse_num(value)?)?;
                if self.max_connections == 0 {
                    bail!("max_connections must be at least 1");
                }
            }
            "dns_nameserver" => {
                self.dns_nameserver = match value.trim() {
                    "" => None,
                    v => Some(v.parse().with_context(|| {
                        format!("dns_nameserver must be ip:port (e.g. 1.1.1.1:53), got {value:?}")
                    })?),
                }
            }
            "dashboard_url" => {
                self.dashboard_url = match value.trim().trim_end_matches('/') {
                    "" => None,
                    v => {
                        let rest = v
                            .strip_prefix("https://")
                            .or_else(|| v.strip_prefix("http://"));
                        let ok = rest.is_some_and(|r| {
                            !r.is_empty()
                                && r.bytes().all(|b| {
                                    b.is_ascii_alphanumeric()
                                        || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                                })
                        });
                        if !ok {
                            bail!(
                                "dashboard_url must be an origin like https://console.example.com, got {v:?}"
                            );
                        }
                        Some(v.to_ascii_lowercase())
                    }
                }
            }
            "cname_target" => {
                self.cname_target =
                    opt(value.trim()).map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            }
            "ingress_addrs" => {
                self.ingress_addrs = value
                    .split([',', ' '])
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        a.parse()
                            .with_context(|| format!("ingress_addrs: {a:?} is not an IP address"))
                    })
                    .collect::<anyhow::Result<_>>()?
            }
            "domain_recheck_secs" => {
                self.domain_recheck_secs = parse_num(value)?;
                if self.domain_recheck_secs < 60 {
                    bail!("domain_recheck_secs must be at least 60");
                }
            }
            "domain_grace_secs" => self.domain_grace_secs = parse_num(value)?,
            "resend_api_url" => self.resend_api_url = value.trim_end_matches('/').to_string(),
            "google_auth_url" => self.google_auth_url = value.to_string(),
            "google_token_url" => self.google_token_url = value.to_string(),
            "google_userinfo_url" => self.google_userinfo_url = value.to_string(),
            "google_issuer" => {
                let v = value.trim().trim_end_matches('/');
                if !v.is_empty() && !v.starts_with("https://") && !v.starts_with("http://") {
                    bail!("google_issuer must be an http(s) URL, got {value:?}");
                }
                self.google_issuer = (!v.is_empty()).then(|| v.to_string());
            }
            "stripe_api_url" => {
                // async-stripe concatenates `{base}v1/…`: keep exactly one trailing slash.
                self.stripe_api_url = format!("{}/", value.trim_end_matches('/'))
            }
            _ => bail!("unknown setting {key:?}"),
        }
        Ok(())
    }
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
fn parse_cidr(c: &str) -> anyhow::Result<ipnet::IpNet> {
    if let Ok(net) = c.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    c.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .with_context(|| format!("trusted_proxies: {c:?} is not a CIDR (10.0.0.0/8) or an address"))
}

fn parse_bool(v: &str) -> anyhow::Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => bail!("expected true or false, got {v:?}"),
    }
}

fn parse_num(v: &str) -> anyhow::Result<u64> {
    v.trim()
        .parse()
        .with_context(|| format!("expected a whole number, got {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_file_which_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("reauth-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("reauth.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nsession_idle_secs = 42\nbase_domain = \"Auth.Example.com\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&file),
            env(&[("REAUTH_LISTEN", "0.0.0.0:7000"), ("OTHER", "x")]),
        )
        .unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:7000");
        assert_eq!(s.session_idle_secs, 42);
        assert_eq!(s.base_domain.as_deref(), Some("auth.example.com"));
        assert_eq!(s.redis_url, None);
    }

    #[test]
    fn bad_values_are_readable_errors() {
        let err = Settings::load(None, env(&[("REAUTH_LISTEN", "nope")])).unwrap_err();
        assert!(format!("{err:#}").contains("host:port"), "{err:#}");
        assert!(Settings::default().set("nonsense", "1").is_err());
        let err = Settings::load(
            None,
            env(&[("REAUTH_GOOGLE_ISSUER", "accounts.google.com")]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("http(s) URL"), "{err:#}");
        let s = Settings::load(
            None,
            env(&[("REAUTH_GOOGLE_ISSUER", "https://accounts.google.com/")]),
        )
        .unwrap();
        assert_eq!(
            s.google_issuer.as_deref(),
            Some("https://accounts.google.com")
        );
    }

    #[test]
    fn unknown_variables_are_named_with_the_closest_setting() {
        let s = Settings::load(
            None,
            env(&[
                ("REAUTH_LISTN", "0.0.0.0:1"),
                ("REAUTH_TRUST_PROXY", "true"),
                ("REAUTH_ZZZZZZZZZZZZ", "1"),
                ("REAUTH_CONFIG", "x.toml"),
                ("REAUTH_PROJECT_RESEND_API_KEY", "re_x"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.listen.to_string(),
            "127.0.0.1:8080",
            "a typo changes nothing"
        );
        assert_eq!(
            s.unknown_env,
            vec![
                ("REAUTH_LISTN".into(), Some("REAUTH_LISTEN".into())),
                ("REAUTH_TRUST_PROXY".into(), None),
                ("REAUTH_ZZZZZZZZZZZZ".into(), None),
            ]
        );
        assert_eq!(
            closest("trust_proxy", KEYS.iter().copied()),
            None,
            "too far from trusted_proxies to guess"
        );
        assert_eq!(
            closest("base_domian", KEYS.iter().copied()),
            Some("base_domain")
        );
    }

    #[test]
    fn unknown_file_keys_are_errors_with_a_hint() {
        let dir = std::env::temp_dir().join(format!("reauth-cfg-typo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("reauth.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::load(Some(&file), env(&[])).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("unknown key \"lisen\"") && msg.contains("\"listen\""),
            "{msg}"
        );
    }

    #[test]
    fn listener_and_proxy_settings_parse() {
        let s = Settings::load(
            None,
            env(&[
                ("REAUTH_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7 ::1/128"),
                ("REAUTH_OPS_LISTEN", ""),
                ("REAUTH_PUBLIC_SCHEME", "http"),
                ("REAUTH_HEADER_TIMEOUT_SECS", "3"),
                ("REAUTH_MAX_CONNECTIONS", "50"),
            ]),
        )
        .unwrap();
        let nets: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
        assert_eq!(s.ops_listen, None);
        assert_eq!(s.public_scheme.as_deref(), Some("http"));
        assert_eq!((s.header_timeout_secs, s.max_connections), (3, 50));
        assert_eq!(
            Settings::default()
                .ops_listen
                .map(|a| a.to_string())
                .as_deref(),
            Some("127.0.0.1:9091")
        );
        for (k, v) in [
            ("REAUTH_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("REAUTH_PUBLIC_SCHEME", "ftp"),
            ("REAUTH_HEADER_TIMEOUT_SECS", "0"),
            ("REAUTH_OPS_LISTEN", "nope"),
        ] {
            assert!(Settings::load(None, env(&[(k, v)])).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::load(
            None,
            env(&[
                (
                    "REAUTH_MASTER_KEY",
                    "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==",
                ),
                ("REAUTH_DATABASE_URL", "postgres://u:hunter2@db/x"),
            ]),
        )
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(!dbg.contains("c2VjcmV0"));
    }
}
