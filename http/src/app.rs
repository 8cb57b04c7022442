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
use reauth_runtime::{Db, Settings, cache, now_ms};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::error::ApiError;
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

pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.settings.request_timeout_secs.max(1));
    let mut app = Router::new()
        .merge(routes::hosted::router())
        .merge(routes::sdk::router())
        .merge(routes::billing::router())
        .merge(routes::ops::router());
    if state.mode == Mode::Dev {
        app = app.merge(routes::dev::router());
    }
    app.fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::edge::edge,
        ))
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal("handler panicked").into_response()
            },
        ))
        .with_state(state)
}

/// Dev mode: the demo project on `localhost`/`127.0.0.1`, redirecting to this server by default.
pub async fn ensure_demo_project(state: &AppState, addr: SocketAddr) -> anyhow::Result<()> {
    use reauth_actors::store;
    let db = &state.core.svc.db;
    let key = &state.core.svc.master_key;
    let port = addr.port();
    let origins = vec![
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        "http://localhost:3000".to_string(),
    ];
    let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let id = match store::get_project_by_slug(db, key, "demo").await? {
        Some(p) => {
            let mut merged = origins.clone();
            for o in p.allowed_origins {
                if !merged.contains(&o) {
                    merged.push(o);
                }
            }
            let patch = store::ProjectPatch {
                allowed_origins: Some(merged),
                dev_hosts: Some(hosts),
                ..Default::default()
            };
            store::update_project(db, key, &p.id, &patch, now_ms()).await?;
            p.id
        }
        None => store::create_project(db, "demo", "Demo", &hosts, &origins, now_ms()).await?,
    };
    state.core.project_changed(&id).await?;
    // Wait until the directory serves the new configuration.
    for _ in 0..200 {
        if state
            .core
            .directory
            .project(&id)
            .is_some_and(|p| p.allowed_origins.first() == origins.first())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("demo project did not load")
}

/// A running server. `shutdown()` stops the listener, then the actor tree, then background tasks.
pub struct AppHandle {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

impl AppHandle {
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await;
        }
        self.state.core.shutdown(SHUTDOWN_TIMEOUT).await;
    }

    /// Serve until `signal` resolves, then shut down in order.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Bind `settings.listen` (port 0 allowed) and serve.
pub async fn start(settings: Settings, mode: Mode) -> anyhow::Result<AppHandle> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let state = build(settings, mode).await?;
    if mode == Mode::Dev {
        ensure_demo_project(&state, addr).await?;
    }
    let svc = crate::edge::MakeFront {
        state: state.clone(),
        router: router(state.clone()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, svc)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
        {
            tracing::error!(error = %e, "server error");
        }
    });
    Ok(AppHandle {
        addr,
        state,
        stop: Some(stop),
        server: Some(server),
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
