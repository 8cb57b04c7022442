//! The edge: the [`Front`] service in front of the router (the hot path of `GET /v1/user` and
//! `GET /v1/session`), and the edge middleware inside it, as one layer (each extra layer is
//! cloned per request). Both give every response a request id, the security headers, CORS for
//! `/v1/*` (the project's allowed origins only), and HTTP metrics
//! `reauth_http_requests_total{route,method,status}` and
//! `reauth_http_request_duration_seconds{route}` by matched route (bounded labels), the
//! project's own counters (`reauth_project_requests_total{project,class}`), and one access-log
//! line (target `reauth::access`: request id, project, route, method, status, duration,
//! outcome — the matched route, never the path or query, which may carry a token). Answers
//! from the fast path are logged at debug, the rest at info.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use bytes::Bytes;
use dashmap::DashMap;
use futures_util::future::Either;
use metrics::{Counter, Histogram};
use reauth_actors::model::UserView;
use reauth_actors::session::Resident;
use reauth_runtime::now_ms;
use tower::Service;
use tracing::Instrument;

use crate::app::AppState;
use crate::error::{ApiError, Code};
use crate::extract;
use crate::pages::Brand;

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

/// The request's id (`x-request-id`), for handlers that record it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

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

/// Request headers (names + values) beyond this are refused with a 431 in the envelope.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

fn header_bytes(h: &HeaderMap) -> usize {
    h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}

/// Which listener a request came in on: the public one routes by `Host` and refuses a
/// malformed one; the ops listener serves operators only and routes by path.
#[derive(Clone)]
pub struct EdgeState {
    pub app: AppState,
    pub public: bool,
}

pub async fn edge(State(es): State<EdgeState>, req: Request, next: Next) -> Response {
    let st = &es.app;
    let start = Instant::now();
    let id = request_id();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::debug_span!("request", id = %id, method = %method, route = %route);

    let cors = (es.public && path.starts_with("/v1/")).then(|| allowed_origin(st, &req));
    let preflight = method == Method::OPTIONS && cors.is_some();
    // The project, resolved after the handler: for its counters, the access log and an error
    // page's branding.
    let host = es
        .public
        .then(|| req.headers().get(header::HOST).cloned())
        .flatten();
    let mut res = if header_bytes(req.headers()) > MAX_HEADER_BYTES {
        refusal(
            st,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::HeadersTooLarge,
            format!(
                "the request headers are larger than {} KiB",
                MAX_HEADER_BYTES / 1024
            ),
            &path,
            None,
        )
    } else if let (true, Err(e)) = (es.public, extract::host(req.headers())) {
        // The Host only selects a project; one that is not a plain host[:port] selects nothing
        // and is refused before any handler could build a URL or a log line from it.
        refusal(
            st,
            StatusCode::BAD_REQUEST,
            Code::InvalidHost,
            e.to_string(),
            &path,
            None,
        )
    } else if preflight {
        match &cors {
            Some(Some(_)) => StatusCode::NO_CONTENT.into_response(),
            _ => ApiError::new(Code::Forbidden, "origin not allowed").into_response(),
        }
    } else {
        let mut req = req;
        if path.starts_with("/api/") {
            // The Management API records the request id in its audit entries.
            req.extensions_mut().insert(RequestId(id.clone()));
        }
        next.run(req).instrument(span).await
    };
    let project = host.and_then(|h| extract::project_at(st, &h));
    if res.status().is_client_error() || res.status().is_server_error() {
        res = envelope(st, res, &path, project.as_ref()).await;
    }
    decorate(&mut res, &id, cors, preflight);
    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    if let Some(p) = &project {
        p.stats.request(status);
    }
    let slug = project.as_ref().map_or("", |p| p.slug.as_str());
    if es.public {
        tracing::info!(target: "reauth::access", request_id = %id, project = slug, route = %route, method = %method, status, duration_ms = elapsed.as_secs_f64() * 1000.0, outcome = outcome(status), "request");
    } else {
        tracing::debug!(target: "reauth::access", request_id = %id, route = %route, method = %method, status, duration_ms = elapsed.as_secs_f64() * 1000.0, outcome = outcome(status), "ops request");
    }
    let (count, latency) = handles((route, method, status));
    count.increment(1);
    latency.record(elapsed.as_secs_f64());
    res
}

/// The access log's `outcome`: served, refused (the client's fault) or failed (ours).
fn outcome(status: u16) -> &'static str {
    match status {
        500.. => "failed",
        400.. => "refused",
        _ => "served",
    }
}

/// Errors made outside our handlers (extractor rejections, the body limit, the timeout, a
/// caught panic, axum's own 4xx) arrive as plain text or an empty body: give them the one
/// envelope — `{"error":{"code","message"}}` on API paths, a readable page on hosted ones.
/// Responses that already are JSON or a page pass unchanged.
async fn envelope(
    st: &AppState,
    res: Response,
    path: &str,
    project: Option<&reauth_actors::model::ProjectRef>,
) -> Response {
    let ours = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(b"application/json") || v.starts_with(b"text/html")
    });
    if ours {
        return res;
    }
    let status = res.status();
    let (code, generic) = match status.as_u16() {
        400 => (Code::InvalidRequest, "the request could not be read"),
        401 => (Code::Unauthenticated, "no valid session"),
        403 => (Code::Forbidden, "not allowed"),
        404 => (Code::NotFound, "no such endpoint"),
        405 => (Code::MethodNotAllowed, "this method is not allowed here"),
        408 => (Code::Timeout, "the request took too long; try again"),
        413 => (
            Code::PayloadTooLarge,
            "the request body is too large (64 KiB at most)",
        ),
        415 => (Code::InvalidRequest, "unsupported content type"),
        422 => (Code::InvalidRequest, "the request body could not be read"),
        429 => (Code::RateLimited, "too many requests; try again later"),
        500..=599 => (Code::Internal, "something went wrong on our side"),
        _ => (Code::InvalidRequest, "the request could not be served"),
    };
    // A rejection's own text says what was wrong with the input (axum's are about the
    // request, never about us); 5xx detail stays in the logs.
    let detail = if status.is_client_error() && !matches!(status.as_u16(), 408 | 413) {
        axum::body::to_bytes(res.into_body(), 1024)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(|t| t.trim().chars().take(200).collect::<String>())
            .filter(|t| !t.is_empty())
    } else {
        None
    };
    let message = detail.map_or_else(|| generic.to_string(), |d| format!("{generic}: {d}"));
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), path, "request failed");
    }
    refusal(st, status, code, message, path, project)
}

/// The error as JSON on API paths, as a page for people elsewhere.
fn refusal(
    st: &AppState,
    status: StatusCode,
    code: Code,
    message: String,
    path: &str,
    project: Option<&reauth_actors::model::ProjectRef>,
) -> Response {
    if crate::routes::wants_json(path) {
        let mut e = ApiError::new(code, message);
        e.status = Some(status);
        return e.into_response();
    }
    let brand = project.map_or_else(Brand::neutral, |p| Brand::of(p));
    let (heading, text) = match status.as_u16() {
        404 => (
            "Page not found",
            "There is nothing at this address.".to_string(),
        ),
        405 => (
            "Not allowed",
            "This page cannot be used that way.".to_string(),
        ),
        408 => (
            "Too slow",
            "The request took too long. Please try again.".to_string(),
        ),
        413 | 431 => ("Too large", "What was sent is too large.".to_string()),
        500..=599 => (
            "Something went wrong",
            "We could not complete this just now. Please try again in a moment.".to_string(),
        ),
        _ => ("Request not understood", {
            let mut m = message;
            if let Some(first) = m.get(..1) {
                let up = first.to_ascii_uppercase();
                m.replace_range(..1, &up);
            }
            format!("{m}.")
        }),
    };
    st.pages.message(
        status,
        &brand,
        heading,
        &text,
        Some(("/login", "Go to sign in")),
    )
}

/// What every response gets: the request id, the security headers (page headers on HTML),
/// and for `/v1/*` (`cors` is `Some`) `Vary: Origin` plus the CORS grant of an allowed origin.
fn decorate(res: &mut Response, id: &str, cors: Option<Option<HeaderValue>>, preflight: bool) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(id) {
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
}

/// The outermost service, in front of the router. `GET /v1/user` and `GET /v1/session` for a
/// session whose view a resident SessionActor has published are answered here, synchronously:
/// Host -> project snapshot -> token hash -> published snapshot -> the view's JSON serialized at
/// publish time. Everything else — other routes, CORS requests (`Origin` present), sessions not
/// resident, unknown hosts — goes through the router and its layers unchanged. The answer and
/// its headers and metrics are the same either way (the `v1_user` benchmark measured the
/// router, its extensions and per-route boxed services at about a third of the hot path).
#[derive(Clone)]
pub struct Front {
    state: AppState,
    router: Router,
    peer: SocketAddr,
}

impl Front {
    /// The service of one connection from `peer` (which handlers read as `ConnectInfo`).
    pub fn new(state: AppState, router: Router, peer: SocketAddr) -> Self {
        Self {
            state,
            router,
            peer,
        }
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let route = match (req.method(), req.uri().path()) {
            (&Method::GET, "/v1/user") => Some(FastRoute::User),
            (&Method::GET, "/v1/session") => Some(FastRoute::Session),
            _ => None,
        };
        if let Some(route) = route
            && !req.headers().contains_key(header::ORIGIN)
            && header_bytes(req.headers()) <= MAX_HEADER_BYTES
        {
            let start = Instant::now();
            let answered = std::panic::catch_unwind(AssertUnwindSafe(|| {
                fast(&self.state, route, req.headers())
            }));
            match answered {
                Ok(Some((res, project))) => {
                    return Either::Left(ready(Ok(finish(route, res, Some(&project), start))));
                }
                Ok(None) => {}
                Err(_) => {
                    let res = ApiError::internal("handler panicked").into_response();
                    return Either::Left(ready(Ok(finish(route, res, None, start))));
                }
            }
        }
        req.extensions_mut().insert(ConnectInfo(self.peer));
        Either::Right(self.router.call(req))
    }
}

#[derive(Debug, Clone, Copy)]
enum FastRoute {
    User,
    Session,
}

impl FastRoute {
    fn path(self) -> &'static str {
        match self {
            FastRoute::User => "/v1/user",
            FastRoute::Session => "/v1/session",
        }
    }
}

/// The answer from resident state (and the project it is for), or `None` to take the router.
fn fast(
    st: &AppState,
    route: FastRoute,
    headers: &HeaderMap,
) -> Option<(Response, reauth_actors::model::ProjectRef)> {
    let project = extract::project(st, headers)?;
    let token = extract::token(headers)?;
    let published = match st.core.sessions.published(&project.id, token, now_ms()) {
        Resident::Live(p) => p,
        Resident::Refused => {
            return Some((ApiError::unauthenticated().into_response(), project));
        }
        Resident::Unknown(_) => return None,
    };
    let body = match route {
        FastRoute::User => published.json.clone()?,
        FastRoute::Session => Bytes::from(serde_json::to_vec(&session_json(&published.view)).ok()?),
    };
    let mut res = Response::new(Body::from(body));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some((res, project))
}

/// The body of `GET /v1/session`.
pub fn session_json(v: &UserView) -> serde_json::Value {
    serde_json::json!({
        "id": v.session.id,
        "user_id": v.user_id,
        "created_at": v.session.created_at,
        "expires_at": v.session.expires_at,
    })
}

fn finish(
    route: FastRoute,
    mut res: Response,
    project: Option<&reauth_actors::model::ProjectRef>,
    start: Instant,
) -> Response {
    let id = request_id();
    decorate(&mut res, &id, Some(None), false);
    let status = res.status().as_u16();
    if let Some(p) = project {
        p.stats.request(status);
    }
    let elapsed = start.elapsed().as_secs_f64();
    tracing::debug!(target: "reauth::access", request_id = %id, project = project.map_or("", |p| p.slug.as_str()), route = route.path(), method = "GET", status, duration_ms = elapsed * 1000.0, outcome = outcome(status), "request");
    let (count, latency) = fast_handles(route, status);
    count.increment(1);
    latency.record(elapsed);
    res
}

/// The fast routes' metric handles, without building a key per request.
fn fast_handles(route: FastRoute, status: u16) -> (Counter, Histogram) {
    static HANDLES: [[OnceLock<(Counter, Histogram)>; 3]; 2] = [
        [OnceLock::new(), OnceLock::new(), OnceLock::new()],
        [OnceLock::new(), OnceLock::new(), OnceLock::new()],
    ];
    let slot = match status {
        200 => 0,
        401 => 1,
        _ => 2,
    };
    let make = || handles((route.path().to_string(), Method::GET, status));
    if slot == 2 {
        return make();
    }
    HANDLES[route as usize][slot].get_or_init(make).clone()
}

/// The request's `Origin` when it is on the project's allow-list.
fn allowed_origin(st: &AppState, req: &Request) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    let p = extract::project(st, req.headers())?;
    p.origin_allowed(origin)
        .then(|| HeaderValue::from_str(origin).ok())
        .flatten()
}
