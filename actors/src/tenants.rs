//! `Tenants` supervises one `ProjectActor` per project (one-for-one, restart with backoff).
//!
//! Policy: the project supervisor ("tenants") runs under a root supervisor. A ProjectActor that
//! fails is restarted with backoff; one that stops normally (its project was deleted) is not.
//! When the project supervisor exceeds its restart intensity it fails, ractor stops its
//! children, and the root starts a fresh one, which starts every stored project again (the
//! directory's snapshots keep serving reads meanwhile; dead actors leave it in `post_stop`).
//! When the root itself exceeds its intensity, [`Tenants::failed`] resolves and the process
//! exits non-zero for its orchestrator to restart — never a half-dead process.
//! A ProjectActor owns its project's configuration (secrets opened) and the clients built from
//! it, publishes an immutable snapshot to the [`Directory`] (which the hot path reads without a
//! mailbox hop), and serves login requests: it hands each to a spawned task with a snapshot of
//! what it needs, so its own mailbox never waits on Resend, Google or SQL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use reauth_runtime::metrics::ActorMetrics;
use reauth_runtime::supervisor::{ChildSpec, Policy, Restart, SupervisorHandle};

use crate::billing::{self, BillingError, CheckoutRequest, Outcome};
pub use crate::directory::Directory;
use crate::login::{self, GoogleCallback, LoginError, MagicLinkRequest};
use crate::model::{Project, ProjectRef};
use crate::services::Svc;
use crate::session::Sessions;
use crate::store;

/// The running ProjectActors by project id (the directory holds their snapshots).
#[derive(Default)]
pub(crate) struct ProjectActors(DashMap<String, ActorRef<ProjectMsg>>);

impl ProjectActors {
    /// The project's actor when it is running (a dead reference does not count).
    fn live(&self, id: &str) -> Option<ActorRef<ProjectMsg>> {
        self.0
            .get(id)
            .filter(|a| {
                matches!(
                    a.get_status(),
                    ractor::ActorStatus::Starting | ractor::ActorStatus::Running
                )
            })
            .map(|a| a.value().clone())
    }
}

pub enum ProjectMsg {
    /// Reload the configuration from the store (after a change here or on another instance).
    Reload,
    Loaded(Box<Project>),
    SendMagicLink(MagicLinkRequest, RpcReplyPort<Result<(), LoginError>>),
    GoogleStart {
        redirect_to: Option<String>,
        browser_hash: String,
        callback: Option<String>,
        reply: RpcReplyPort<Result<String, LoginError>>,
    },
    GoogleFinish(
        GoogleCallback,
        RpcReplyPort<Result<(String, String), LoginError>>,
    ),
    StripeWebhook {
        payload: String,
        signature: String,
        reply: RpcReplyPort<Result<Outcome, BillingError>>,
    },
    Checkout(CheckoutRequest, RpcReplyPort<Result<String, BillingError>>),
    Portal {
        user_id: String,
        return_url: String,
        reply: RpcReplyPort<Result<String, BillingError>>,
    },
    /// Fail the actor (fault injection: supervision tests and drills; not reachable over HTTP).
    Fail(String),
}

pub struct ProjectActor;

/// Injected start failures (operators' drills): project id -> until when (ms) its actor fails
/// to start.
pub(crate) type Faults = Arc<DashMap<String, i64>>;

/// The reason an injected failure gives.
pub const DRILL_FAILURE: &str = "injected failure (drill)";

pub struct ProjectArgs {
    pub id: String,
    faults: Faults,
    pub svc: Svc,
    pub directory: Arc<Directory>,
    actors: Arc<ProjectActors>,
    pub sessions: Sessions,
    pub metrics: ActorMetrics,
}

pub struct ProjectState {
    args: ProjectArgs,
    project: ProjectRef,
    /// The project's Stripe handle, rebuilt when its configuration changes.
    stripe: Option<stripe::Client>,
}

impl Actor for ProjectActor {
    type Msg = ProjectMsg;
    type State = ProjectState;
    type Arguments = ProjectArgs;

    async fn pre_start(
        &self,
        me: ActorRef<ProjectMsg>,
        args: ProjectArgs,
    ) -> Result<ProjectState, ActorProcessingErr> {
        if args
            .faults
            .get(&args.id)
            .is_some_and(|until| *until > reauth_runtime::now_ms())
        {
            return Err(DRILL_FAILURE.into());
        }
        let p = store::get_project(&args.svc.db, &args.svc.master_key, &args.id)
            .await?
            .ok_or_else(|| format!("project {} not found", args.id))?;
        args.directory.publish(p, &args.svc.settings);
        args.actors.0.insert(args.id.clone(), me);
        let project = args
            .directory
            .project(&args.id)
            .ok_or("project vanished while starting")?;
        let stripe = billing::client(&args.svc, &project);
        Ok(ProjectState {
            args,
            project,
            stripe,
        })
    }

    async fn post_stop(
        &self,
        me: ActorRef<ProjectMsg>,
        state: &mut ProjectState,
    ) -> Result<(), ActorProcessingErr> {
        // A dead reference must not look like a running project to `ensure`.
        let me = me.get_id();
        state
            .args
            .actors
            .0
            .remove_if(&state.args.id, |_, a| a.get_id() == me);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<ProjectMsg>,
        msg: ProjectMsg,
        state: &mut ProjectState,
    ) -> Result<(), ActorProcessingErr> {
        let _timer = state.args.metrics.handling();
        state.project.stats.handled();
        match msg {
            ProjectMsg::Fail(why) => return Err(why.into()),
            ProjectMsg::Reload => {
                let svc = state.args.svc.clone();
                let directory = state.args.directory.clone();
                let id = state.args.id.clone();
                let metrics = state.args.metrics.clone();
                tokio::spawn(async move {
                    match store::get_project(&svc.db, &svc.master_key, &id).await {
                        Ok(Some(p)) => {
                            metrics.enqueued();
                            directory.stats.of(&id).enqueued();
                            let _ = me.cast(ProjectMsg::Loaded(Box::new(p)));
                        }
                        Ok(None) => {
                            // Deleted: a normal stop (not restarted, not a failure).
                            directory.remove(&id);
                            me.stop(Some("project deleted".into()));
                        }
                        Err(e) => {
                            tracing::error!(project = %id, error = %e, "project reload failed")
                        }
                    }
                });
            }
            ProjectMsg::Loaded(p) => {
                if p.version >= state.project.version {
                    state.args.directory.publish(*p, &state.args.svc.settings);
                    if let Some(p) = state.args.directory.project(&state.args.id) {
                        state.stripe = billing::client(&state.args.svc, &p);
                        state.project = p;
                    }
                    // Resident views were built from the old snapshot. Finding them walks the
                    // session index: off this mailbox, which other requests queue behind.
                    let (sessions, id) = (state.args.sessions.clone(), state.args.id.clone());
                    tokio::spawn(async move { sessions.project_changed(&id) });
                }
            }
            ProjectMsg::SendMagicLink(req, reply) => {
                let (svc, project) = (state.args.svc.clone(), state.project.clone());
                tokio::spawn(async move {
                    let _ = reply.send(login::send_magic_link(&svc, &project, req).await);
                });
            }
            ProjectMsg::GoogleStart {
                redirect_to,
                browser_hash,
                callback,
                reply,
            } => {
                let (svc, project) = (state.args.svc.clone(), state.project.clone());
                tokio::spawn(async move {
                    let r =
                        login::google_start(&svc, &project, redirect_to, browser_hash, callback)
                            .await;
                    let _ = reply.send(r);
                });
            }
            ProjectMsg::GoogleFinish(cb, reply) => {
                let (svc, project) = (state.args.svc.clone(), state.project.clone());
                let sessions = state.args.sessions.clone();
                tokio::spawn(async move {
                    let _ = reply.send(login::google_finish(&svc, &sessions, &project, cb).await);
                });
            }
            ProjectMsg::StripeWebhook {
                payload,
                signature,
                reply,
            } => {
                let (svc, project) = (state.args.svc.clone(), state.project.clone());
                let sessions = state.args.sessions.clone();
                tokio::spawn(async move {
                    let r =
                        billing::handle_webhook(&svc, &sessions, &project, &payload, &signature)
                            .await;
                    let _ = reply.send(r);
                });
            }
            ProjectMsg::Checkout(req, reply) => {
                let (svc, project) = (state.args.svc.clone(), state.project.clone());
                let stripe = state.stripe.clone();
                tokio::spawn(async move {
                    let _ = reply.send(billing::checkout(&svc, stripe, &project, req).await);
                });
            }
            ProjectMsg::Portal {
                user_id,
                return_url,
                reply,
            } => {
                let (svc, project) = (state.args.svc.clone(), state.project.clone());
                let stripe = state.stripe.clone();
                tokio::spawn(async move {
                    let r = billing::portal(&svc, stripe, &project, &user_id, &return_url).await;
                    let _ = reply.send(r);
                });
            }
        }
        Ok(())
    }
}

/// The project supervisor (under its root) and the directory it keeps.
#[derive(Clone)]
pub struct Tenants {
    root: SupervisorHandle,
    inner: Arc<Inner>,
    pub directory: Arc<Directory>,
}

struct Inner {
    /// The current project supervisor: replaced when the root restarts it.
    sup: RwLock<Option<SupervisorHandle>>,
    directory: Arc<Directory>,
    actors: Arc<ProjectActors>,
    faults: Faults,
    svc: Svc,
    sessions: Sessions,
    metrics: ActorMetrics,
    /// Set once the first start finished: later starts of the supervisor are restarts.
    booted: AtomicBool,
    stopping: AtomicBool,
    /// Resolves when the root supervisor is gone (escalated, or stopped by `shutdown`).
    root_done: tokio::sync::watch::Receiver<bool>,
}

const CALL_TIMEOUT_MS: u64 = 30_000;

/// The root's policy: a project supervisor that fails more than this gives the process up.
fn root_policy() -> Policy {
    Policy {
        max_restarts: 5,
        window: Duration::from_secs(300),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
        ..Policy::default()
    }
}

/// The project supervisor's policy: a project failing more than five times a minute is parked
/// (retried every 30 s, shown as such on `/ops`) so one broken tenant cannot exhaust the
/// intensity the others depend on; failures across projects (the database gone) escalate.
fn tenants_policy() -> Policy {
    Policy {
        child_max_restarts: Some(5),
        park_for: Duration::from_secs(30),
        ..Policy::default()
    }
}

impl Inner {
    fn sup(&self) -> Option<SupervisorHandle> {
        self.sup.read().ok().and_then(|g| g.clone())
    }

    /// Start every stored project that has no running actor. One project that cannot load
    /// (e.g. a secret sealed with another key) must not keep the others from being served.
    async fn start_all(&self) -> anyhow::Result<()> {
        for (id, _) in store::project_versions(&self.svc.db).await? {
            if let Err(e) = self.ensure(&id).await {
                tracing::error!(project = %id, error = %e, "project failed to start");
            }
        }
        Ok(())
    }

    async fn ensure(&self, id: &str) -> anyhow::Result<()> {
        if self.actors.live(id).is_some() {
            return Ok(());
        }
        let sup = self
            .sup()
            .ok_or_else(|| anyhow::anyhow!("the project supervisor is restarting"))?;
        let (svc, directory, sessions, metrics, actors, faults) = (
            self.svc.clone(),
            self.directory.clone(),
            self.sessions.clone(),
            self.metrics.clone(),
            self.actors.clone(),
            self.faults.clone(),
        );
        let pid = id.to_string();
        // Transient: restarted after a failure, not after a normal stop (a deleted project).
        let spec = ChildSpec::new(id, Restart::Transient, self.metrics.clone(), move |sup| {
            let args = ProjectArgs {
                id: pid.clone(),
                faults: faults.clone(),
                svc: svc.clone(),
                directory: directory.clone(),
                actors: actors.clone(),
                sessions: sessions.clone(),
                metrics: metrics.clone(),
            };
            async move {
                let (r, _) = Actor::spawn_linked(None, ProjectActor, args, sup).await?;
                Ok(r.get_cell())
            }
        });
        sup.start_child(spec).await?;
        Ok(())
    }
}

impl Tenants {
    /// Start the root, the project supervisor under it, and one ProjectActor per stored project.
    pub async fn start(
        svc: Svc,
        directory: Arc<Directory>,
        sessions: Sessions,
    ) -> anyhow::Result<Self> {
        let (root, root_task) = SupervisorHandle::spawn_root("root", root_policy()).await?;
        let (done_tx, root_done) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _ = root_task.await;
            let _ = done_tx.send(true);
        });
        let inner = Arc::new(Inner {
            sup: RwLock::new(None),
            directory: directory.clone(),
            actors: Arc::default(),
            faults: Arc::default(),
            svc,
            sessions,
            metrics: ActorMetrics::new("project"),
            booted: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            root_done,
        });
        let weak = Arc::downgrade(&inner);
        let spec = ChildSpec::new(
            "tenants",
            Restart::Permanent,
            ActorMetrics::new("tenants"),
            move |root_cell| {
                let weak = weak.clone();
                async move {
                    let sup = SupervisorHandle::spawn("tenants", tenants_policy(), Some(root_cell))
                        .await?;
                    if let Some(inner) = weak.upgrade() {
                        if let Ok(mut g) = inner.sup.write() {
                            *g = Some(sup.clone());
                        }
                        if inner.booted.load(Ordering::SeqCst) {
                            tracing::warn!(
                                "project supervisor restarted; starting every project again"
                            );
                            tokio::spawn(async move {
                                if let Err(e) = inner.start_all().await {
                                    tracing::error!(error = %e, "projects not restarted; the version watcher retries");
                                }
                            });
                        }
                    }
                    Ok(sup.cell())
                }
            },
        );
        root.start_child(spec).await?;
        inner.start_all().await?;
        inner.booted.store(true, Ordering::SeqCst);
        Ok(Self {
            root,
            inner,
            directory,
        })
    }

    /// Start the project's actor if it is not running.
    pub async fn ensure(&self, id: &str) -> anyhow::Result<()> {
        self.inner.ensure(id).await
    }

    /// Reload a project here (after a local change) — starting it when new.
    pub async fn reload(&self, id: &str) -> anyhow::Result<()> {
        match self.actor(id) {
            Some(a) => {
                self.enqueued(id);
                a.cast(ProjectMsg::Reload)?;
                Ok(())
            }
            None => self.ensure(id).await,
        }
    }

    /// Stop serving a project that no longer exists.
    pub async fn remove(&self, id: &str) {
        if let Some(sup) = self.inner.sup() {
            let _ = sup.stop_child(id).await;
        }
        self.directory.remove(id);
        self.inner.actors.0.remove(id);
    }

    /// Whether the tree can serve: the root and the project supervisor are running.
    pub fn is_up(&self) -> bool {
        self.root.is_alive() && self.inner.sup().is_some_and(|s| s.is_alive())
    }

    /// Resolves when the root supervisor gave up (not when [`Tenants::shutdown`] stopped it).
    pub async fn failed(&self) {
        let mut rx = self.inner.root_done.clone();
        let _ = rx.wait_for(|done| *done).await;
        if self.inner.stopping.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    /// The running project supervisor's cell (operators' view; supervision tests).
    pub fn supervisor_cell(&self) -> Option<ractor::ActorCell> {
        self.inner.sup().map(|s| s.cell())
    }

    /// Make a project's actor fail, as a crash would (supervision drills and tests).
    #[doc(hidden)]
    pub fn inject_failure(&self, project_id: &str, why: &str) -> bool {
        self.actor(project_id).is_some_and(|a| {
            self.enqueued(project_id);
            a.cast(ProjectMsg::Fail(why.to_string())).is_ok()
        })
    }

    /// A message is about to be queued for the project's actor (its kind's and its own
    /// mailbox gauges).
    fn enqueued(&self, project_id: &str) {
        self.inner.metrics.enqueued();
        self.directory.stats.of(project_id).enqueued();
    }

    /// An operators' drill: the project's actor fails now and cannot start again for `for_ms`
    /// (0 ends a drill early). The project shows as failing, then parked, on `/ops`; its
    /// siblings keep serving.
    pub fn drill(&self, project_id: &str, for_ms: i64) {
        if for_ms <= 0 {
            self.inner.faults.remove(project_id);
            return;
        }
        self.inner
            .faults
            .insert(project_id.to_string(), reauth_runtime::now_ms() + for_ms);
        self.inject_failure(project_id, DRILL_FAILURE);
    }

    fn actor(&self, id: &str) -> Option<ActorRef<ProjectMsg>> {
        self.inner.actors.live(id)
    }

    async fn call<T, E>(
        &self,
        project_id: &str,
        f: impl FnOnce(RpcReplyPort<Result<T, E>>) -> ProjectMsg,
        unavailable: impl FnOnce() -> E,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let Some(actor) = self.actor(project_id) else {
            return Err(unavailable());
        };
        self.enqueued(project_id);
        match ractor::call_t!(actor, f, CALL_TIMEOUT_MS) {
            Ok(r) => r,
            Err(_) => Err(unavailable()),
        }
    }

    /// Hand a Stripe webhook delivery to the project's actor.
    pub async fn stripe_webhook(
        &self,
        project_id: &str,
        payload: String,
        signature: String,
    ) -> Result<Outcome, BillingError> {
        self.call(
            project_id,
            |reply| ProjectMsg::StripeWebhook {
                payload,
                signature,
                reply,
            },
            || {
                tracing::warn!(project = %project_id, outcome = "retried", "Stripe webhook: project actor unavailable; answered 503 so Stripe retries");
                BillingError::Store(anyhow::anyhow!("project unavailable"))
            },
        )
        .await
    }

    pub async fn checkout(
        &self,
        project_id: &str,
        req: CheckoutRequest,
    ) -> Result<String, BillingError> {
        self.call(
            project_id,
            |reply| ProjectMsg::Checkout(req, reply),
            || BillingError::Store(anyhow::anyhow!("project unavailable")),
        )
        .await
    }

    pub async fn portal(
        &self,
        project_id: &str,
        user_id: String,
        return_url: String,
    ) -> Result<String, BillingError> {
        self.call(
            project_id,
            |reply| ProjectMsg::Portal {
                user_id,
                return_url,
                reply,
            },
            || BillingError::Store(anyhow::anyhow!("project unavailable")),
        )
        .await
    }

    pub async fn send_magic_link(
        &self,
        project_id: &str,
        req: MagicLinkRequest,
    ) -> Result<(), LoginError> {
        self.call(
            project_id,
            |reply| ProjectMsg::SendMagicLink(req, reply),
            || LoginError::ProjectUnavailable,
        )
        .await
    }

    pub async fn google_start(
        &self,
        project_id: &str,
        redirect_to: Option<String>,
        browser_hash: String,
        callback: Option<String>,
    ) -> Result<String, LoginError> {
        self.call(
            project_id,
            |reply| ProjectMsg::GoogleStart {
                redirect_to,
                browser_hash,
                callback,
                reply,
            },
            || LoginError::ProjectUnavailable,
        )
        .await
    }

    pub async fn google_finish(
        &self,
        project_id: &str,
        cb: GoogleCallback,
    ) -> Result<(String, String), LoginError> {
        self.call(
            project_id,
            |reply| ProjectMsg::GoogleFinish(cb, reply),
            || LoginError::ProjectUnavailable,
        )
        .await
    }

    /// The supervision view: project actors with their restart counts.
    pub async fn children(&self) -> Vec<reauth_runtime::supervisor::ChildInfo> {
        match self.inner.sup() {
            Some(sup) => sup.children().await.unwrap_or_default(),
            None => vec![],
        }
    }

    /// Stop the root first (so nothing restarts what follows), then the project supervisor
    /// and its projects.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let _ = self
            .root
            .cell()
            .stop_and_wait(Some("shutdown".into()), Some(timeout))
            .await;
        if let Some(sup) = self.inner.sup() {
            sup.shutdown(timeout).await;
        }
    }
}
