//! Request helpers: the project a request's `Host` selects, the project's canonical origin,
//! the session token (bearer header or cookie), the client's IP and user agent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use ipnet::IpNet;
use reauth_actors::model::{Origin, ProjectRef};

use crate::app::AppState;
use crate::host::{self, Host, HostError};

pub const SESSION_COOKIE: &str = "reauth_session";
pub const OAUTH_COOKIE: &str = "reauth_oauth";

/// The request's `Host`, strictly parsed ([`crate::host`]).
pub fn host(headers: &HeaderMap) -> Result<Host<'_>, HostError> {
    let raw = headers.get(header::HOST).ok_or(HostError::Missing)?;
    host::parse(raw.to_str().map_err(|_| HostError::Invalid)?)
}

/// The project the request's `Host` selects (the host chooses; it is never echoed).
pub fn project(state: &AppState, headers: &HeaderMap) -> Option<ProjectRef> {
    project_at(state, headers.get(header::HOST)?)
}

/// The project a `Host` value selects.
pub fn project_at(state: &AppState, host_value: &HeaderValue) -> Option<ProjectRef> {
    let h = host::parse(host_value.to_str().ok()?).ok()?;
    state.core.directory.by_host(&h.name)
}

/// The project's canonical origin (`https://auth.customer.com`), from its configuration.
pub fn origin(p: &ProjectRef) -> Option<&Origin> {
    p.origin.as_ref()
}

/// True when the request came in on the project's canonical host (ports aside).
pub fn on_canonical_host(p: &ProjectRef, headers: &HeaderMap) -> bool {
    match (origin(p), host(headers)) {
        (Some(o), Ok(h)) => o.host == h.name,
        _ => false,
    }
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

/// The client: the TCP peer, or — when the peer is a trusted proxy — the rightmost
/// `X-Forwarded-For` hop that is not itself a trusted proxy. Leftmost hops are whatever the
/// client wrote and are never believed.
pub fn client<B>(state: &AppState, req: &Request<B>) -> Client {
    let headers = req.headers();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = peer.map(|p| client_ip(&state.settings.trusted_proxies, p, headers));
    Client {
        ip: ip.map(|ip| ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    }
}

pub fn client_ip(trusted: &[IpNet], peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Every X-Forwarded-For line, in order, hop by hop from the right.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            // A hop we cannot read: stop at the last one we could vouch for.
            Err(_) => return client,
        }
    }
    client
}

/// The `Domain` attribute for session cookies: the registrable domain of a verified custom
/// domain (`auth.customer.com` -> `customer.com`), so the customer's app sees the cookie.
/// Never set on `<slug>.<base domain>` hosts: a cookie there must not reach other tenants.
pub fn cookie_domain(project: &ProjectRef, headers: &HeaderMap) -> Option<String> {
    // The primary routed domain (the origin when it is one), else the legacy verified one.
    let o = origin(project)?;
    let custom = project.domains.first().is_some_and(|d| *d == o.host)
        || (project.domain_verified
            && project
                .custom_domain
                .as_deref()
                .is_some_and(|c| o.host.eq_ignore_ascii_case(c)));
    if !custom {
        return None;
    }
    if !on_canonical_host(project, headers) {
        return None;
    }
    // The registrable domain by the public suffix list: `auth.shop.co.uk` -> `shop.co.uk`,
    // `auth.me.github.io` -> `me.github.io`. An apex custom domain keeps a host-only cookie.
    let registrable = psl::domain_str(&o.host)?;
    (registrable != o.host).then(|| registrable.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use reauth_actors::model::Project;

    use super::*;

    fn project(custom: Option<&str>, verified: bool) -> ProjectRef {
        let mut p = Project {
            custom_domain: custom.map(String::from),
            domain_verified: verified,
            ..Project::new("prj_1", "shop", "Shop")
        };
        p.origin = Origin::of(&p, Some("reauth.example"), None);
        Arc::new(p)
    }

    fn on(host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        h
    }

    #[test]
    fn session_cookies_reach_the_customers_domain_only_from_a_verified_custom_domain() {
        let p = project(Some("auth.shop.example"), true);
        assert_eq!(
            cookie_domain(&p, &on("auth.shop.example")).as_deref(),
            Some("shop.example")
        );
        // The public suffix list, not "drop the first label".
        let p = project(Some("auth.shop.co.uk"), true);
        assert_eq!(
            cookie_domain(&p, &on("auth.shop.co.uk")).as_deref(),
            Some("shop.co.uk")
        );
        let p = project(Some("auth.me.github.io"), true);
        assert_eq!(
            cookie_domain(&p, &on("auth.me.github.io")).as_deref(),
            Some("me.github.io")
        );
        // On the shared base domain the cookie stays host-only: other tenants live there too.
        assert_eq!(cookie_domain(&p, &on("shop.reauth.example")), None);
        assert_eq!(
            cookie_domain(
                &project(Some("auth.shop.example"), false),
                &on("auth.shop.example")
            ),
            None
        );
        assert_eq!(
            cookie_domain(&project(Some("shop.example"), true), &on("shop.example")),
            None
        );
        assert_eq!(cookie_domain(&project(None, false), &on("localhost")), None);
    }

    #[test]
    fn the_origin_comes_from_configuration_never_from_the_request() {
        let p = project(Some("auth.shop.example"), true);
        assert_eq!(
            origin(&p).map(Origin::url).as_deref(),
            Some("https://auth.shop.example")
        );
        let p = project(Some("auth.shop.example"), false);
        assert_eq!(
            origin(&p).map(Origin::url).as_deref(),
            Some("https://shop.reauth.example")
        );
        let mut dev = Project::new("prj_2", "demo", "Demo");
        dev.dev_hosts = vec!["localhost:8080".into(), "127.0.0.1:8080".into()];
        let o = Origin::of(&dev, None, None).unwrap();
        assert_eq!(o.url(), "http://localhost:8080");
        assert!(!o.secure());
        assert_eq!(
            Origin::of(&dev, None, Some("https")).unwrap().url(),
            "https://localhost:8080"
        );
        assert_eq!(Origin::of(&Project::new("p", "s", "S"), None, None), None);
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let mut h = HeaderMap::new();
        // The client wrote the first entry; the proxy appended the address it saw.
        h.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        assert_eq!(client_ip(&trusted, proxy, &h).to_string(), "203.0.113.9");
        // Two proxies of ours in a row.
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.9, 10.1.1.1".parse().unwrap(),
        );
        assert_eq!(client_ip(&trusted, proxy, &h).to_string(), "203.0.113.9");
        // Not from a trusted peer: the header is ignored.
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(&trusted, stranger, &h), stranger);
        assert_eq!(client_ip(&[], proxy, &h), proxy);
        // Junk stops the walk at the last hop we vouch for.
        h.insert("x-forwarded-for", "203.0.113.9, garbage".parse().unwrap());
        assert_eq!(client_ip(&trusted, proxy, &h), proxy);
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
    }
}
