//! `Core`: the domain's root — services, the project supervisor (`Tenants`), the session
//! registry (`Sessions`), the bus bridge and the janitor — started and stopped as one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use reauth_runtime::{BusMessage, now_ms};

use crate::directory::Directory;
use crate::services::{Services, Svc};
use crate::session::Sessions;
use crate::store;
use crate::tenants::Tenants;

#[derive(Clone)]
pub struct Core {
    pub svc: Svc,
    pub tenants: Tenants,
    pub sessions: Sessions,
    pub directory: Arc<Directory>,
    /// Verified Management API keys (dropped on every instance when one is revoked).
    pub api_keys: Arc<crate::admin::KeyCache>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Core {
    pub async fn start(services: Services) -> anyhow::Result<Self> {
        let svc: Svc = Arc::new(services);
        crate::stats::register_metrics();
        let directory = Arc::new(Directory::default());
        let sessions = Sessions::start(svc.clone(), directory.clone()).await?;
        // Subscribe before projects start so no change published meanwhile is missed.
        let rx = svc.cache.subscribe();
        // Revocations that may still have a Redis copy are known before the first request.
        let now = now_ms();
        crate::revocation::catch_up(&svc, &sessions, now - crate::revocation::REMEMBER_MS)
            .await
            .context("loading recent revocations")?;
        let api_keys = Arc::new(crate::admin::KeyCache::default());
        let revalidate = tokio::spawn(crate::revocation::run(
            svc.clone(),
            sessions.clone(),
            sessions.revoked(),
            api_keys.clone(),
            Duration::from_secs(svc.settings.revalidate_secs.max(1)),
        ));
        let tenants = Tenants::start(svc.clone(), directory.clone(), sessions.clone()).await?;
        let bridge = tokio::spawn(crate::bus::run(
            svc.instance_id.clone(),
            rx,
            sessions.clone(),
            tenants.clone(),
            api_keys.clone(),
        ));
        let janitor = tokio::spawn(crate::janitor::run(
            svc.clone(),
            sessions.clone(),
            tenants.clone(),
        ));
        let watcher = tokio::spawn(watch_projects(
            svc.clone(),
            tenants.clone(),
            directory.clone(),
        ));
        Ok(Self {
            svc,
            tenants,
            sessions,
            directory,
            api_keys,
            tasks: Arc::new(std::sync::Mutex::new(vec![
                bridge, janitor, watcher, revalidate,
            ])),
        })
    }

    /// A project's settings changed in the store (CLI, dashboard): reload it here and tell
    /// every other instance.
    pub async fn project_changed(&self, project_id: &str) -> anyhow::Result<()> {
        self.tenants.reload(project_id).await?;
        let msg = BusMessage {
            origin: self.svc.instance_id.clone(),
            topic: "project.changed".into(),
            payload: serde_json::json!({ "project_id": project_id }).to_string(),
        };
        if let Err(e) = self.svc.cache.publish(&msg).await {
            tracing::warn!(error = %e, "bus publish failed");
        }
        Ok(())
    }

    /// One janitor prune pass now (also run every five minutes in the background).
    pub async fn prune(&self, now: i64) -> anyhow::Result<crate::store::Pruned> {
        crate::janitor::prune(&self.svc, now).await
    }

    /// One custom-domain re-check pass at `now` (no lease; the janitor's runs take one):
    /// every routed domain not checked within `REAUTH_DOMAIN_RECHECK_SECS`. Returns the
    /// projects whose routing changed (reloaded here and announced on the bus).
    pub async fn recheck_domains(&self, now: i64) -> anyhow::Result<Vec<String>> {
        crate::janitor::recheck_domains(&self.svc, &self.tenants, now).await
    }

    /// Stop the actor tree (waiting at most `timeout`), then the background tasks.
    pub async fn shutdown(&self, timeout: Duration) {
        self.tenants.shutdown(timeout).await;
        self.sessions.shutdown(timeout).await;
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        self.svc.db.pool.close().await;
    }
}

/// Reload projects whose stored version moved (or that appeared) without a bus message, e.g.
/// changed by `reauth project update` against the embedded store. A backstop for the bus.
async fn watch_projects(svc: Svc, tenants: Tenants, directory: Arc<Directory>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(versions) = store::project_versions(&svc.db).await else {
            continue;
        };
        for (id, version) in &versions {
            let known = directory.project(id).map(|p| p.version);
            if known.is_none_or(|v| v < *version)
                && let Err(e) = tenants.reload(id).await
            {
                tracing::warn!(project = %id, error = %e, "project reload failed");
            }
        }
        for p in directory.projects() {
            if !versions.iter().any(|(id, _)| *id == p.id) {
                tenants.remove(&p.id).await;
            }
        }
    }
}
