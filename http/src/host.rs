//! Strict `Host` parsing (RFC 3986 §3.2.2 / RFC 9110 §7.2): a reg-name, an IPv4 address or a
//! bracketed IPv6 literal, then an optional numeric port. Anything else is refused at the edge
//! with a 400; the request's host only ever *selects* a project and is never copied into a URL.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed `Host`: `name` is lower-case, IPv6 literals keep their brackets (`[::1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host<'a> {
    pub name: Cow<'a, str>,
    pub port: Option<u16>,
}

/// Why a `Host` was refused (for the 400's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the request has no Host header")]
    Missing,
    #[error("the Host header is not a valid host name")]
    Invalid,
}

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Parse a `Host` header value.
pub fn parse(raw: &str) -> Result<Host<'_>, HostError> {
    if raw.is_empty() || raw.len() > MAX_NAME + 8 {
        return Err(HostError::Invalid);
    }
    let (name, port) = if raw.starts_with('[') {
        let end = raw.find(']').ok_or(HostError::Invalid)?;
        let (lit, rest) = raw.split_at(end + 1);
        let port = match rest {
            "" => None,
            r => Some(parse_port(r.strip_prefix(':').ok_or(HostError::Invalid)?)?),
        };
        let inner = &lit[1..lit.len() - 1];
        // No zone ids, no IPvFuture: only what `Ipv6Addr` reads.
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(HostError::Invalid);
        }
        (lit, port)
    } else {
        match raw.rsplit_once(':') {
            Some((n, p)) => (n, Some(parse_port(p)?)),
            None => (raw, None),
        }
    };
    if !name.starts_with('[') {
        check_reg_name(name)?;
    }
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    Ok(Host { name, port })
}

fn parse_port(p: &str) -> Result<u16, HostError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::Invalid);
    }
    p.parse().map_err(|_| HostError::Invalid)
}

/// A DNS name (letters, digits, hyphens; labels of 1..=63 not starting or ending with a hyphen)
/// or a dotted-quad IPv4 address. One trailing dot is refused rather than normalized: no
/// project is configured with one.
fn check_reg_name(name: &str) -> Result<(), HostError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(HostError::Invalid);
    }
    let mut all_numeric = true;
    for label in name.split('.') {
        let b = label.as_bytes();
        if b.is_empty()
            || b.len() > MAX_LABEL
            || b[0] == b'-'
            || b[b.len() - 1] == b'-'
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        {
            return Err(HostError::Invalid);
        }
        all_numeric &= b.iter().all(u8::is_ascii_digit);
    }
    // `1.2.3` or `999.1.1.1` are neither names nor addresses.
    if all_numeric && name.parse::<Ipv4Addr>().is_err() {
        return Err(HostError::Invalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, Option<u16>) {
        let h = parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        (h.name.into_owned(), h.port)
    }

    #[test]
    fn names_addresses_and_ports_are_read_and_lower_cased() {
        assert_eq!(ok("Auth.Example.com"), ("auth.example.com".into(), None));
        assert_eq!(
            ok("auth.example.com:443"),
            ("auth.example.com".into(), Some(443))
        );
        assert_eq!(ok("localhost:8080"), ("localhost".into(), Some(8080)));
        assert_eq!(ok("127.0.0.1:1"), ("127.0.0.1".into(), Some(1)));
        assert_eq!(ok("[::1]:8080"), ("[::1]".into(), Some(8080)));
        assert_eq!(ok("[2001:DB8::1]"), ("[2001:db8::1]".into(), None));
        assert_eq!(
            ok("xn--bcher-kva.example"),
            ("xn--bcher-kva.example".into(), None)
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "[localhost]",
            "[localhost]@evil.example",
            "[localhost]:8080@evil.example:443",
            "localhost@evil.example",
            "user:pass@host",
            "evil.com/path",
            "evil.com?x",
            "evil.com#x",
            "a b",
            "host:",
            "host:99999",
            "host:80:80",
            "host:-1",
            "host:+80",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[fe80::1%25eth0]",
            "[v1.x]",
            "-a.com",
            "a-.com",
            "a..com",
            ".a.com",
            "a.com.",
            "1.2.3",
            "999.1.1.1",
            "a_b.com",
            "é.com",
            "\u{0}",
            "exa\tmple.com",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse(&"a".repeat(64)).is_err());
        assert!(parse(&format!("{}.com", "a.".repeat(130))).is_err());
    }
}
