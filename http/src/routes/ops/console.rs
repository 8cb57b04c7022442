//! The operator console: one view of the supervision tree and the process, gathered from the
//! actors' own state and counters, served as a page (`/ops`: refreshes itself, sortable and
//! filterable by links, no JavaScript) and as JSON (`/ops/supervision`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reauth_actors::model::rfc3339;
use reauth_actors::stats::Row;
use serde::{Deserialize, Serialize};

use crate::app::{AppState, Mode};
use crate::error::{ApiError, Code};

/// How long a dependency may take to answer a probe before it counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Above this share of 5xx answers (over the sampling window) a running project is degraded.
const DEGRADED_ERROR_RATE: f64 = 0.05;

#[derive(Serialize)]
pub struct View {
    pub process: Process,
    pub projects: Vec<ProjectRow>,
    pub bus: Bus,
    pub janitor: Vec<Job>,
    /// Seconds the rates are measured over (none yet: the first look only starts the clock).
    pub window_secs: Option<f64>,
}

#[derive(Serialize)]
pub struct Process {
    pub version: &'static str,
    pub mode: &'static str,
    pub started_at: String,
    pub uptime_secs: u64,
    pub tree_up: bool,
    pub database: Dependency,
    pub cache: Dependency,
    pub sessions_resident: usize,
}

#[derive(Serialize)]
pub struct Dependency {
    pub backend: &'static str,
    pub up: bool,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct ProjectRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// `ok`, `degraded` (running, but answering errors) or `failing` (its actor is down).
    pub health: &'static str,
    /// The actor: `running`, `restarting`, `parked` or `stopped`.
    pub state: &'static str,
    pub restarts: u64,
    pub failures: u64,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<String>,
    pub mailbox: u64,
    pub messages_per_sec: Option<f64>,
    pub sessions_resident: u64,
    pub requests_per_sec: Option<f64>,
    /// Share of 5xx answers over the window (or since start when there is no window yet).
    pub error_rate: Option<f64>,
    pub requests_total: u64,
    pub webhooks_total: u64,
    pub webhook_lag_mean_secs: Option<f64>,
}

#[derive(Serialize)]
pub struct Bus {
    pub backend: &'static str,
    pub connected: bool,
    pub subscribed_at: Option<String>,
    pub gaps: u64,
    pub last_gap_at: Option<String>,
    /// The revocations feed backs the bus: its last pass, and how far behind it is (seconds).
    pub revalidated_at: Option<String>,
    pub revalidation_lag_secs: f64,
}

#[derive(Serialize)]
pub struct Job {
    pub name: &'static str,
    pub last_run_at: String,
    pub ok: bool,
    pub detail: String,
}

async fn probe<F>(f: F) -> (bool, Option<f64>, Option<String>)
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(Ok(())) => (true, Some(start.elapsed().as_secs_f64() * 1000.0), None),
        Ok(Err(e)) => (false, None, Some(e)),
        Err(_) => (
            false,
            None,
            Some(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
        ),
    }
}

/// Everything `/ops`, `/ops/supervision` and the scrape show; rates only for people (the
/// scrape must not move the console's sampling window — Prometheus takes its own rates).
pub async fn gather(st: &AppState, with_rates: bool) -> View {
    let core = &st.core;
    let now = reauth_runtime::now_ms();
    let ((db_up, db_ms, db_err), (cache_up, cache_ms, cache_err), children) = tokio::join!(
        probe(async { core.svc.db.ping().await.map_err(|e| e.to_string()) }),
        probe(async { core.svc.cache.ping().await.map_err(|e| e.to_string()) }),
        core.tenants.children(),
    );
    let children: HashMap<String, _> = children.into_iter().map(|c| (c.id.clone(), c)).collect();
    let projects = core.directory.projects();
    let ids: Vec<&str> = projects.iter().map(|p| p.id.as_str()).collect();
    let (window, rates) = if with_rates {
        core.directory.stats.rates(&ids, now)
    } else {
        (None, HashMap::new())
    };
    let tree_up = core.tenants.is_up();
    let rows = projects
        .iter()
        .map(|p| {
            let snap = p.stats.snapshot();
            let child = children.get(&p.id);
            let state = match child {
                Some(c) => c.state,
                None => "stopped",
            };
            let rate = rates.get(&p.id);
            let error_rate = match rate {
                Some(r) if r.requests > 0.0 => Some(r.errors / r.requests),
                Some(_) => None,
                None => share(snap.errors(), snap.requests_total()),
            };
            let health = if state != "running" || !tree_up {
                "failing"
            } else if error_rate.is_some_and(|e| e > DEGRADED_ERROR_RATE) {
                "degraded"
            } else {
                "ok"
            };
            ProjectRow {
                id: p.id.clone(),
                slug: p.slug.clone(),
                name: p.name.clone(),
                health,
                state,
                restarts: child.map_or(0, |c| c.restarts),
                failures: child.map_or(0, |c| c.failures),
                last_failure: child.and_then(|c| c.last_failure.clone()),
                last_failure_at: child.and_then(|c| c.last_failure_at).map(rfc3339),
                mailbox: snap.mailbox,
                messages_per_sec: rate.map(|r| r.messages),
                sessions_resident: snap.sessions,
                requests_per_sec: rate.map(|r| r.requests),
                error_rate,
                requests_total: snap.requests_total(),
                webhooks_total: snap.webhooks_total(),
                webhook_lag_mean_secs: snap.mean_lag_secs(),
            }
        })
        .collect();
    let status = &core.svc.status;
    let at = |ms: i64| (ms > 0).then(|| rfc3339(ms));
    let started = reauth_runtime::process::start_time();
    let cache_kind = core.svc.cache.kind();
    let subscribed = core.svc.cache.bus_subscribed_at();
    View {
        process: Process {
            version: env!("CARGO_PKG_VERSION"),
            mode: match st.mode {
                Mode::Dev => "dev",
                Mode::Serve => "serve",
            },
            started_at: rfc3339((started * 1000.0) as i64),
            uptime_secs: ((now as f64 / 1000.0) - started).max(0.0) as u64,
            tree_up,
            database: Dependency {
                backend: match core.svc.db.backend {
                    reauth_runtime::db::Backend::Postgres => "postgres",
                    reauth_runtime::db::Backend::Sqlite => "sqlite",
                },
                up: db_up,
                latency_ms: db_ms,
                error: db_err,
            },
            cache: Dependency {
                backend: cache_kind,
                up: cache_up,
                latency_ms: cache_ms,
                error: cache_err,
            },
            sessions_resident: core.sessions.resident(),
        },
        projects: rows,
        bus: Bus {
            backend: cache_kind,
            // In process, the bus is a channel: always there. On Redis: reachable and
            // subscribed.
            connected: cache_kind == "memory" || (cache_up && subscribed.is_some()),
            subscribed_at: subscribed.map(rfc3339),
            gaps: status.bus_gaps.load(Ordering::Relaxed),
            last_gap_at: at(status.bus_last_gap_at.load(Ordering::Relaxed)),
            revalidated_at: at(status.revalidated_at.load(Ordering::Relaxed)),
            revalidation_lag_secs: status.revalidation_lag_ms.load(Ordering::Relaxed) as f64
                / 1000.0,
        },
        janitor: status
            .jobs()
            .into_iter()
            .map(|(name, run)| Job {
                name,
                last_run_at: rfc3339(run.at),
                ok: run.ok,
                detail: run.detail,
            })
            .collect(),
        window_secs: window,
    }
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The per-project series of the scrape, from the view's rows.
pub fn project_series(st: &AppState, view: &View) -> String {
    let rows: Vec<Row<'_>> = view
        .projects
        .iter()
        .map(|p| Row {
            id: &p.id,
            slug: &p.slug,
            up: p.state == "running",
            restarts: p.restarts,
        })
        .collect();
    st.core
        .directory
        .stats
        .render(&rows, st.settings.metrics_projects)
}

#[derive(Deserialize, Default)]
pub struct Sort {
    /// `health` (default: failing first), `slug`, `requests`, `errors`, `restarts`, `sessions`.
    sort: Option<String>,
    /// Only projects whose slug, name or id contains this.
    q: Option<String>,
}

fn sorted(mut view: View, q: &Sort) -> View {
    if let Some(f) =
        q.q.as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_lowercase)
    {
        view.projects.retain(|p| {
            p.slug.contains(&f) || p.name.to_lowercase().contains(&f) || p.id.contains(&f)
        });
    }
    let rank = |h: &str| match h {
        "failing" => 0,
        "degraded" => 1,
        _ => 2,
    };
    let desc = |a: f64, b: f64| b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal);
    match q.sort.as_deref().unwrap_or("health") {
        "slug" => view.projects.sort_by(|a, b| a.slug.cmp(&b.slug)),
        "requests" => view.projects.sort_by(|a, b| {
            desc(
                a.requests_per_sec.unwrap_or(0.0),
                b.requests_per_sec.unwrap_or(0.0),
            )
            .then(b.requests_total.cmp(&a.requests_total))
        }),
        "errors" => view
            .projects
            .sort_by(|a, b| desc(a.error_rate.unwrap_or(0.0), b.error_rate.unwrap_or(0.0))),
        "restarts" => view
            .projects
            .sort_by(|a, b| b.restarts.cmp(&a.restarts).then(a.slug.cmp(&b.slug))),
        "sessions" => view
            .projects
            .sort_by_key(|p| std::cmp::Reverse(p.sessions_resident)),
        _ => view.projects.sort_by(|a, b| {
            rank(a.health)
                .cmp(&rank(b.health))
                .then(a.slug.cmp(&b.slug))
        }),
    }
    view
}

pub async fn page(State(st): State<AppState>, Query(q): Query<Sort>) -> Response {
    let view = sorted(gather(&st, true).await, &q);
    let failing = view
        .projects
        .iter()
        .filter(|p| p.health == "failing")
        .count();
    st.pages.render(
        StatusCode::OK,
        "ops.html",
        minijinja::context! {
            view => minijinja::value::Serde(&view),
            sort => q.sort.clone().unwrap_or_else(|| "health".into()),
            q => q.q.clone().unwrap_or_default(),
            failing,
        },
    )
}

pub async fn json(State(st): State<AppState>, Query(q): Query<Sort>) -> Json<View> {
    Json(sorted(gather(&st, true).await, &q))
}

#[derive(Deserialize)]
pub struct Drill {
    /// The project's slug or id.
    project: String,
    /// How long its actor keeps failing to start (default 60; 0 ends the drill).
    #[serde(default = "default_drill_secs")]
    secs: u64,
}

fn default_drill_secs() -> u64 {
    60
}

/// `POST /ops/drills/project-failure?project=<slug>&secs=60`: make one project's actor fail
/// and keep failing to start, to rehearse what `/ops`, the metrics and the alerts show. Only
/// when `REAUTH_OPS_DRILLS` is on; never on the public listener.
pub async fn drill(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(d): Query<Drill>,
) -> Response {
    // The ops listener is on loopback, which any web page the operator has open can POST to
    // (a simple cross-site request needs no preflight): a browser's cross-site request is
    // refused. Tools (curl, scripts) send neither header.
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v != "same-origin" && v != "none");
    let foreign_origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            o.split_once("://").map(|(_, h)| h) != Some(host)
        });
    if cross_site || foreign_origin {
        return ApiError::new(
            Code::Forbidden,
            "drills are not accepted from another site's page",
        )
        .into_response();
    }
    if !st.settings.ops_drills {
        return ApiError::new(
            Code::Forbidden,
            "drills are off; start reauth with REAUTH_OPS_DRILLS=true to allow them",
        )
        .into_response();
    }
    let Some(p) = st
        .core
        .directory
        .projects()
        .into_iter()
        .find(|p| p.slug == d.project || p.id == d.project)
    else {
        return ApiError::new(Code::NotFound, "no such project").into_response();
    };
    let secs = d.secs.min(86_400);
    tracing::warn!(project = %p.slug, secs, "drill: the project's actor is made to fail");
    st.core.tenants.drill(&p.id, (secs * 1000) as i64);
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "project": p.slug, "failing_for_secs": secs })),
    )
        .into_response()
}
