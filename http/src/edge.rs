//! The edge middleware, as one layer (each extra layer is cloned per request): request id,
//! security headers, CORS for `/v1/*` (the project's allowed origins only), and HTTP metrics
//! `reauth_http_requests_total{route,method,status}` and
//! `reauth_http_request_duration_seconds{route}` by matched route (bounded labels).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use metrics::{Counter, Histogram};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::app::AppState;
use crate::error::{ApiError, Code};
use crate::extract;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// On every response.
const SECURITY_HEADERS: [(HeaderName, &str); 2] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    ),
];

/// On pages (HTML) only: framing, referrer and content policy mean nothing to a JSON client.
const PAGE_HEADERS: [(HeaderName, &str); 3] = [
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self' https://accounts.google.com; frame-ancestors 'none'; base-uri 'none'",
    ),
];

/// Request ids: a per-process random prefix and a counter (no syscall per request).
fn request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let id = reauth_runtime::ids::new_id("req");
        id[id.len() - 12..].to_string()
    });
    format!("req_{prefix}{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Metric handles per (route, method, status), resolved once: label formatting and the
/// recorder's registry lookup stay off the per-request path.
type HandleKey = (String, Method, u16);

fn handles(key: HandleKey) -> (Counter, Histogram) {
    static CACHE: OnceLock<DashMap<HandleKey, (Counter, Histogram)>> = OnceLock::new();
    let cache = CACHE.get_or_init(DashMap::new);
    if let Some(h) = cache.get(&key) {
        return h.value().clone();
    }
    let (route, method, status) = &key;
    let h = (
        metrics::counter!("reauth_http_requests_total", "route" => route.clone(), "method" => method.as_str().to_string(), "status" => status.to_string()),
        metrics::histogram!("reauth_http_request_duration_seconds", "route" => route.clone()),
    );
    cache.insert(key, h.clone());
    h
}

pub async fn edge(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = req.method().clone();
    let span = tracing::debug_span!("request", id = %id, method = %method, route = %route);

    let cors = req
        .uri()
        .path()
        .starts_with("/v1/")
        .then(|| allowed_origin(&st, &req));
    let preflight = method == Method::OPTIONS && cors.is_some();
    let mut res = if preflight {
        match &cors {
            Some(Some(_)) => StatusCode::NO_CONTENT.into_response(),
            _ => ApiError::new(Code::Forbidden, "origin not allowed").into_response(),
        }
    } else {
        next.run(req).instrument(span).await
    };

    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert(X_REQUEST_ID.clone(), v);
    }
    let is_page = h
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let extra: &[(HeaderName, &str)] = if is_page { &PAGE_HEADERS } else { &[] };
    for (name, value) in SECURITY_HEADERS.iter().chain(extra) {
        if !h.contains_key(name) {
            h.insert(name.clone(), HeaderValue::from_static(value));
        }
    }
    if let Some(allowed) = cors {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = allowed {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            if preflight {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, OPTIONS"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("authorization, content-type"),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
            }
        }
    }

    let (count, latency) = handles((route, method, res.status().as_u16()));
    count.increment(1);
    latency.record(start.elapsed().as_secs_f64());
    res
}

/// The request's `Origin` when it is on the project's allow-list.
fn allowed_origin(st: &AppState, req: &Request) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    let p = extract::project(st, req.headers())?;
    p.allowed_origins
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        .then(|| HeaderValue::from_str(origin).ok())
        .flatten()
}
