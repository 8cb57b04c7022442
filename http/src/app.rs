//! Building and running the server: storage, the actor tree, the router with its layers, and
//! the root handle that shuts everything down in order (listener, actor tree, tasks).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use reauth_actors::Core;
use reauth_actors::services::Services;
use reauth_runtime::crypto::MasterKey;
use reauth_runtime::{Db, Settings, cache};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::pages::Pages;
use crate::routes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Production: refuses to start without a master key.
    Serve,
    /// Embedded default: dev outbox, demo project on localhost, generated master key.
    Dev,
}

/// Shared by every request. One `Arc`: axum clones the state for each extractor and layer, and
/// cloning a struct of many `Arc`s per request showed up as the top cost in a profile.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

pub struct AppInner {
    pub core: Core,
    pub pages: Pages,
    pub settings: Settings,
    pub metrics: PrometheusHandle,
    pub mode: Mode,
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// The process-wide Prometheus recorder (installed once; later calls share it).
pub fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    // Two apps starting at once in one process (tests) must not both build a recorder: the
    // loser's handle would render an empty registry forever.
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _init = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let buckets = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
    ];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        let h = handle.clone();
        tokio::spawn(async move {
            // Often, so each drain of the histogram buckets is short (it runs on a worker).
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                h.run_upkeep();
            }
        });
    }
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The master key: from settings; in dev, generated once and kept in the data dir.
fn master_key(settings: &Settings, mode: Mode) -> anyhow::Result<MasterKey> {
    if let Some(k) = &settings.master_key {
        return MasterKey::from_base64(k.expose()).context("REAUTH_MASTER_KEY");
    }
    if mode == Mode::Serve {
        anyhow::bail!(
            "REAUTH_MASTER_KEY is required for `reauth serve` (32 random bytes, base64: `openssl rand -base64 32`); use `reauth dev` to run with a generated one"
        );
    }
    let path = settings.data_dir.join("master.key");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return MasterKey::from_base64(&s).with_context(|| format!("reading {}", path.display()));
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let (key, b64) = MasterKey::generate();
    std::fs::write(&path, b64).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    tracing::info!(path = %path.display(), "generated a dev master key");
    Ok(key)
}

/// Open the configured SQL store (or the embedded SQLite) and apply migrations.
pub async fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let db = match &settings.database_url {
        Some(url) => Db::connect(url.expose()).await?,
        None => Db::embedded(&settings.data_dir).await?,
    };
    db.migrate().await?;
    Ok(db)
}

/// Everything a request needs, minus the listener.
pub async fn build(mut settings: Settings, mode: Mode) -> anyhow::Result<AppState> {
    let metrics = metrics_handle()?;
    if let Some(issuer) = settings.google_issuer.clone() {
        let e = reauth_actors::login::discover_oidc(&issuer)
            .await
            .with_context(|| format!("REAUTH_GOOGLE_ISSUER {issuer}: OIDC discovery"))?;
        tracing::info!(issuer = %issuer, "Google endpoints from OIDC discovery");
        settings.google_auth_url = e.authorization_endpoint;
        settings.google_token_url = e.token_endpoint;
        settings.google_userinfo_url = e.userinfo_endpoint;
    }
    let key = master_key(&settings, mode)?;
    let db = open_db(&settings).await?;
    let cache = cache::connect(
        settings.redis_url.as_ref().map(|s| s.expose()),
        &settings.redis_prefix,
    )
    .await?;
    let services = Services::new(db, cache, settings.clone(), key, mode == Mode::Dev)?;
    let core = Core::start(services).await?;
    Ok(AppState(Arc::new(AppInner {
        core,
        pages: Pages::new()?,
        settings,
        metrics,
        mode,
    })))
}

/// The public listener's router: hosted pages, SDK, billing, `/healthz` and `/readyz`, and in
/// dev the outbox. Never `/metrics` or `/ops/*` (those 404 here).
pub fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .merge(routes::hosted::router())
        .merge(routes::sdk::router())
        .merge(routes::billing::router())
        .merge(routes::api::router(state.clone()))
        .merge(routes::api::openapi::router())
        .merge(crate::dashboard::router())
        .merge(routes::ops::health());
    if state.mode == Mode::Dev {
        app = app.merge(routes::dev::router());
    }
    layered(app, state, true)
}

/// The operator listener's router: `/metrics`, `/ops/*`, `/healthz`, `/readyz`.
pub fn ops_router(state: AppState) -> Router {
    let app = Router::new()
        .merge(routes::ops::router())
        .merge(routes::ops::health());
    layered(app, state, false)
}

/// The layers every listener shares. The edge is outermost so that whatever an inner layer
/// answers (413 from the body limit, 408 from the timeout, 500 from a caught panic) still gets
/// the error envelope, the request id, the security headers and a metric.
pub fn layered(app: Router<AppState>, state: AppState, public: bool) -> Router {
    let timeout = Duration::from_secs(state.settings.request_timeout_secs.max(1));
    let edge = crate::edge::EdgeState {
        app: state.clone(),
        public,
    };
    app.fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                // A bare 500: the edge turns it into the JSON error or the page.
                tracing::error!("handler panicked");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            },
        ))
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::from_fn_with_state(edge, crate::edge::edge))
        .with_state(state)
}

/// Dev mode: the demo project on `localhost`/`127.0.0.1`, redirecting to this server by default.
pub async fn ensure_demo_project(state: &AppState, addr: SocketAddr) -> anyhow::Result<()> {
    let port = addr.port();
    let origins = vec![
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        "http://localhost:3000".to_string(),
    ];
    // With the port: the first dev host is the demo's canonical origin.
    let hosts = vec![format!("localhost:{port}"), format!("127.0.0.1:{port}")];
    let id = reauth_actors::admin::Admin::new(&state.core)
        .ensure_dev_project("demo", "Demo", &hosts, &origins)
        .await?;
    // Wait until the directory serves the new configuration.
    for _ in 0..200 {
        if state.core.directory.project(&id).is_some_and(|p| {
            p.allowed_origins.first() == origins.first() && p.dev_hosts.first() == hosts.first()
        }) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("demo project did not load")
}

/// A running server. `shutdown()` stops the listeners, then the actor tree, then background
/// tasks.
pub struct AppHandle {
    pub addr: SocketAddr,
    /// The operator listener, when configured.
    pub ops_addr: Option<SocketAddr>,
    pub state: AppState,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

impl AppHandle {
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        for server in self.servers.drain(..) {
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await;
        }
        self.state.core.shutdown(SHUTDOWN_TIMEOUT).await;
    }

    /// Serve until `signal` resolves, then shut down in order. If the actor tree's root gives
    /// up first, shut down too and return the reason: the process must exit non-zero so its
    /// orchestrator restarts it, rather than limp on half dead.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let core = self.state.core.clone();
        let gave_up = tokio::select! {
            _ = signal => false,
            _ = core.tenants.failed() => true,
        };
        if gave_up {
            tracing::error!("the root supervisor gave up (restart intensity exceeded); exiting");
        } else {
            tracing::info!("shutting down");
        }
        self.shutdown().await;
        if gave_up {
            anyhow::bail!(
                "the actor tree's root supervisor gave up: the project supervisor failed more than its restart intensity allows"
            );
        }
        Ok(())
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener on {addr}"))
}

/// Bind `settings.listen` and `settings.ops_listen` (port 0 allowed) and serve.
pub async fn start(settings: Settings, mode: Mode) -> anyhow::Result<AppHandle> {
    let listener = bind(settings.listen, "public").await?;
    let addr = listener.local_addr()?;
    let ops = match settings.ops_listen {
        Some(a) => Some(bind(a, "ops (REAUTH_OPS_LISTEN)").await?),
        None => None,
    };
    let ops_addr = ops.as_ref().map(|l| l.local_addr()).transpose()?;
    let state = build(settings, mode).await?;
    if mode == Mode::Dev {
        ensure_demo_project(&state, addr).await?;
    }
    let limits = crate::listener::Limits {
        header_timeout: Duration::from_secs(state.settings.header_timeout_secs.max(1)),
        max_connections: state.settings.max_connections.max(1),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let front_state = state.clone();
    let public_router = router(state.clone());
    let mut servers = vec![tokio::spawn(crate::listener::serve(
        listener,
        "public",
        limits,
        move |peer| crate::edge::Front::new(front_state.clone(), public_router.clone(), peer),
        until_stopped(stopped.clone()),
        SHUTDOWN_TIMEOUT,
    ))];
    if let Some(ops) = ops {
        let ops_router = ops_router(state.clone());
        servers.push(tokio::spawn(crate::listener::serve(
            ops,
            "ops",
            limits,
            move |_| ops_router.clone(),
            until_stopped(stopped),
            SHUTDOWN_TIMEOUT,
        )));
    }
    Ok(AppHandle {
        addr,
        ops_addr,
        state,
        stop: Some(stop),
        servers,
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
