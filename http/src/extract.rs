//! Request helpers: the project a request's `Host` maps to, the session token (bearer header or
//! cookie), the client's IP and user agent, and the base URL links should use.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, header};
use reauth_actors::model::ProjectRef;
use reauth_actors::tenants::normalize_host;

use crate::app::AppState;

pub const SESSION_COOKIE: &str = "reauth_session";
pub const OAUTH_COOKIE: &str = "reauth_oauth";

pub fn host(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(normalize_host)
}

pub fn project(state: &AppState, headers: &HeaderMap) -> Option<ProjectRef> {
    let h = headers.get(header::HOST)?.to_str().ok()?;
    state.core.directory.by_host(h)
}

/// Local hosts get plain http and non-`Secure` cookies; everything else is https.
pub fn is_local(host: &str) -> bool {
    host == "localhost" || host == "127.0.0.1" || host == "::1" || host.ends_with(".localhost")
}

/// `scheme://host[:port]` as the browser sees us.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let raw = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let h = normalize_host(raw).unwrap_or_default();
    let forwarded = state
        .settings
        .trust_proxy
        .then(|| {
            headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
        })
        .flatten();
    let scheme = match forwarded {
        Some("http") => "http",
        Some(_) => "https",
        None if is_local(&h) => "http",
        None => "https",
    };
    format!("{scheme}://{raw}")
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The session token: `Authorization: Bearer` wins over the cookie.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = auth.splitn(2, ' ');
        if parts
            .next()
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        {
            return parts.next().map(str::trim);
        }
    }
    cookie(headers, SESSION_COOKIE)
}

pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub fn client<B>(state: &AppState, req: &Request<B>) -> Client {
    let headers = req.headers();
    let forwarded = state
        .settings
        .trust_proxy
        .then(|| {
            headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|s| s.trim().to_string())
        })
        .flatten();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    Client {
        ip: forwarded.or(peer),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    }
}

/// The `Domain` attribute for session cookies: the registrable domain of a verified custom
/// domain (`auth.customer.com` -> `customer.com`), so the customer's app sees the cookie.
/// Never set on `<slug>.<base domain>` hosts: a cookie there must not reach other tenants.
pub fn cookie_domain(project: &ProjectRef, host: &str) -> Option<String> {
    let custom = project.custom_domain.as_deref()?;
    if !project.domain_verified || !custom.eq_ignore_ascii_case(host) {
        return None;
    }
    let labels: Vec<&str> = custom.split('.').collect();
    (labels.len() >= 3).then(|| labels[1..].join("."))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reauth_actors::model::Project;

    use super::*;

    fn project(custom: Option<&str>, verified: bool) -> ProjectRef {
        Arc::new(Project {
            custom_domain: custom.map(String::from),
            domain_verified: verified,
            ..Project::new("prj_1", "shop", "Shop")
        })
    }

    #[test]
    fn session_cookies_reach_the_customers_domain_only_from_a_verified_custom_domain() {
        let p = project(Some("auth.shop.example"), true);
        assert_eq!(
            cookie_domain(&p, "auth.shop.example").as_deref(),
            Some("shop.example")
        );
        // On the shared base domain the cookie stays host-only: other tenants live there too.
        assert_eq!(cookie_domain(&p, "shop.reauth.example"), None);
        assert_eq!(
            cookie_domain(
                &project(Some("auth.shop.example"), false),
                "auth.shop.example"
            ),
            None
        );
        assert_eq!(
            cookie_domain(&project(Some("shop.example"), true), "shop.example"),
            None
        );
        assert_eq!(cookie_domain(&project(None, false), "localhost"), None);
    }

    #[test]
    fn bearer_wins_over_the_cookie_and_junk_is_ignored() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; reauth_session=fromcookie; b=2".parse().unwrap(),
        );
        assert_eq!(token(&h), Some("fromcookie"));
        h.insert(header::AUTHORIZATION, "Bearer frombearer".parse().unwrap());
        assert_eq!(token(&h), Some("frombearer"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(token(&h), Some("fromcookie"));
        assert!(is_local("localhost") && is_local("127.0.0.1") && !is_local("auth.example.com"));
    }
}
