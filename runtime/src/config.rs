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
    /// Trust `X-Forwarded-For` / `X-Forwarded-Proto` from a reverse proxy.
    pub trust_proxy: bool,
    pub resend_api_url: String,
    pub google_auth_url: String,
    pub google_token_url: String,
    pub google_userinfo_url: String,
    /// An OpenID Connect issuer (`https://accounts.google.com`, or a staging provider): when
    /// set, the three Google endpoints come from its discovery document at startup.
    pub google_issuer: Option<String>,
    pub stripe_api_url: String,
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
            trust_proxy: false,
            resend_api_url: "https://api.resend.com".into(),
            google_auth_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            google_token_url: "https://oauth2.googleapis.com/token".into(),
            google_userinfo_url: "https://openidconnect.googleapis.com/v1/userinfo".into(),
            google_issuer: None,
            stripe_api_url: "https://api.stripe.com/".into(),
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
    "trust_proxy",
    "resend_api_url",
    "google_auth_url",
    "google_token_url",
    "google_userinfo_url",
    "google_issuer",
    "stripe_api_url",
];

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
            "trust_proxy" => {
                self.trust_proxy = match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" | "" => false,
                    _ => bail!("trust_proxy must be true or false, got {value:?}"),
                }
            }
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
