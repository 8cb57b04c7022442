//! A one-for-one supervisor on plain ractor.
//!
//! Policy (vocabulary from OTP / ractor-supervisor):
//! - Each child has a [`Restart`] mode. `Permanent` children are restarted after a failure and
//!   after a normal exit; `Transient` children only after a failure; `Temporary` never.
//! - A failure (panic or `Err` from a handler) schedules a restart after an exponential backoff:
//!   `backoff_base * 2^(n-1)` capped at `backoff_max`, where `n` counts this child's failures in
//!   the current window.
//! - Restart intensity: more than `max_restarts` failures of the supervisor's children within
//!   `window` escalates — the supervisor fails itself, so its own supervisor sees
//!   `ActorFailed`, and `reauth_actor_escalations_total` is incremented.
//! - Per-child intensity (optional, for supervisors of independent tenants): a child that fails
//!   more than `child_max_restarts` times within `window` is *parked* — retried every `park_for`
//!   without counting towards the supervisor's intensity — so one tenant that cannot start does
//!   not take its healthy siblings down with it. Failures spread over several children still
//!   escalate.
//! - A normal exit is never counted as a failure (ractor's default handler would stop the
//!   supervisor on any child exit; this one overrides it).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent,
};

use crate::metrics::ActorMetrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    Permanent,
    Transient,
    Temporary,
}

type StartFn = Arc<
    dyn Fn(ActorCell) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>
        + Send
        + Sync,
>;

/// How to (re)start one child: `start` receives the supervisor's cell and must spawn the child
/// linked to it (`Actor::spawn_linked(.., supervisor)`).
#[derive(Clone)]
pub struct ChildSpec {
    pub id: String,
    pub restart: Restart,
    pub metrics: ActorMetrics,
    pub start: StartFn,
}

impl ChildSpec {
    pub fn new<F, Fut>(
        id: impl Into<String>,
        restart: Restart,
        metrics: ActorMetrics,
        start: F,
    ) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        Self {
            id: id.into(),
            restart,
            metrics,
            start: Arc::new(move |cell| Box::pin(start(cell))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_restarts: usize,
    pub window: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Park a child failing more than this within `window` (None: never park).
    pub child_max_restarts: Option<usize>,
    /// How long a parked child waits between attempts.
    pub park_for: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_restarts: 10,
            window: Duration::from_secs(60),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(10),
            child_max_restarts: None,
            park_for: Duration::from_secs(30),
        }
    }
}

pub enum SupervisorMsg {
    /// Start a child unless one with this id exists; replies with its cell.
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, String>>),
    /// Stop a child for good (no restart).
    StopChild(String, RpcReplyPort<()>),
    /// Look a child up by id.
    Child(String, RpcReplyPort<Option<ActorCell>>),
    /// Ids of the live children and their restart counts (for the supervision-tree view).
    Children(RpcReplyPort<Vec<ChildInfo>>),
    /// Internal: a backoff elapsed; start this child again.
    Restart(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChildInfo {
    pub id: String,
    pub kind: &'static str,
    pub alive: bool,
    /// `running`, `restarting` (waiting out its backoff) or `parked` (failing repeatedly;
    /// retried every `park_for`).
    pub state: &'static str,
    pub restarts: u64,
    pub failures: u64,
    /// The last failure's reason and when it happened (milliseconds since the epoch).
    pub last_failure: Option<String>,
    pub last_failure_at: Option<i64>,
}

pub struct Supervisor;

pub struct SupervisorArgs {
    pub name: &'static str,
    pub policy: Policy,
}

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    recent_failures: VecDeque<Instant>,
    restarts: u64,
    failures: u64,
    parked: bool,
    last_failure: Option<(String, i64)>,
}

impl Child {
    fn failed(&mut self, why: String) {
        self.failures += 1;
        // Bounded: a reason is for a person to read, not a dump.
        let why: String = why.chars().take(300).collect();
        self.last_failure = Some((why, crate::now_ms()));
    }
}

pub struct SupervisorState {
    name: &'static str,
    policy: Policy,
    children: HashMap<String, Child>,
    by_actor: HashMap<ractor::ActorId, String>,
    failures: VecDeque<Instant>,
    metrics: ActorMetrics,
}

impl SupervisorState {
    fn forget_cell(&mut self, cell: &ActorCell) -> Option<String> {
        let id = self.by_actor.remove(&cell.get_id())?;
        if let Some(c) = self.children.get_mut(&id) {
            c.cell = None;
            c.spec.metrics.alive.decrement(1.0);
        }
        Some(id)
    }

    async fn start(&mut self, me: &ActorRef<SupervisorMsg>, id: &str) -> Result<ActorCell, String> {
        let Some(child) = self.children.get_mut(id) else {
            return Err(format!("no child {id}"));
        };
        let cell = (child.spec.start)(me.get_cell())
            .await
            .map_err(|e| format!("{e}"))?;
        child.spec.metrics.alive.increment(1.0);
        child.cell = Some(cell.clone());
        self.by_actor.insert(cell.get_id(), id.to_string());
        Ok(cell)
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            name: args.name,
            policy: args.policy,
            children: HashMap::new(),
            by_actor: HashMap::new(),
            failures: VecDeque::new(),
            metrics: ActorMetrics::new(args.name),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartChild(spec, reply) => {
                let id = spec.id.clone();
                // One live child per id: starting an id that is running (or waiting out its
                // restart backoff) answers with what is there instead of starting a second.
                if let Some(existing) = state.children.get(&id) {
                    let _ = reply.send(
                        existing
                            .cell
                            .clone()
                            .ok_or_else(|| format!("child {id} is restarting")),
                    );
                    return Ok(());
                }
                state.children.insert(
                    id.clone(),
                    Child {
                        spec,
                        cell: None,
                        recent_failures: VecDeque::new(),
                        restarts: 0,
                        failures: 0,
                        parked: false,
                        last_failure: None,
                    },
                );
                let res = state.start(&me, &id).await;
                if res.is_err() {
                    state.children.remove(&id);
                }
                let _ = reply.send(res);
            }
            SupervisorMsg::StopChild(id, reply) => {
                if let Some(child) = state.children.remove(&id)
                    && let Some(cell) = child.cell
                {
                    state.by_actor.remove(&cell.get_id());
                    child.spec.metrics.alive.decrement(1.0);
                    cell.stop(Some("stopped by supervisor".into()));
                }
                let _ = reply.send(());
            }
            SupervisorMsg::Child(id, reply) => {
                let _ = reply.send(state.children.get(&id).and_then(|c| c.cell.clone()));
            }
            SupervisorMsg::Children(reply) => {
                let mut list: Vec<ChildInfo> = state
                    .children
                    .iter()
                    .map(|(id, c)| ChildInfo {
                        id: id.clone(),
                        kind: c.spec.metrics.kind,
                        alive: c.cell.is_some(),
                        state: match (c.cell.is_some(), c.parked) {
                            (true, _) => "running",
                            (false, true) => "parked",
                            (false, false) => "restarting",
                        },
                        restarts: c.restarts,
                        failures: c.failures,
                        last_failure: c.last_failure.as_ref().map(|f| f.0.clone()),
                        last_failure_at: c.last_failure.as_ref().map(|f| f.1),
                    })
                    .collect();
                list.sort_by(|a, b| a.id.cmp(&b.id));
                let _ = reply.send(list);
            }
            SupervisorMsg::Restart(id) => {
                let Some(child) = state.children.get_mut(&id) else {
                    return Ok(());
                };
                if child.cell.is_some() {
                    return Ok(());
                }
                child.restarts += 1;
                child.spec.metrics.restarts.increment(1);
                match state.start(&me, &id).await {
                    Ok(_) => {
                        if let Some(c) = state.children.get_mut(&id) {
                            c.parked = false;
                        }
                    }
                    Err(e) => {
                        // A child that cannot even start counts as another failure: retry with
                        // backoff.
                        tracing::warn!(supervisor = state.name, child = %id, error = %e, "restart failed");
                        if let Some(c) = state.children.get_mut(&id) {
                            c.failed(format!("start failed: {e}"));
                        }
                        on_failure(&me, state, &id)?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(id) = state.forget_cell(&cell) else {
                    return Ok(());
                };
                if let Some(c) = state.children.get_mut(&id) {
                    c.spec.metrics.failures.increment(1);
                    c.failed(err.to_string());
                }
                tracing::warn!(supervisor = state.name, child = %id, error = %err, "child failed");
                let restart = state.children.get(&id).map(|c| c.spec.restart);
                match restart {
                    Some(Restart::Permanent | Restart::Transient) => on_failure(&me, state, &id)?,
                    _ => {
                        state.children.remove(&id);
                    }
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let Some(id) = state.forget_cell(&cell) else {
                    return Ok(());
                };
                tracing::debug!(supervisor = state.name, child = %id, ?reason, "child exited");
                let restart = state.children.get(&id).map(|c| c.spec.restart);
                if restart == Some(Restart::Permanent) {
                    let _ = me.cast(SupervisorMsg::Restart(id));
                } else {
                    state.children.remove(&id);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Record a failure of `id` and schedule its restart, or escalate when the intensity is exceeded.
fn on_failure(
    me: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    id: &str,
) -> Result<(), ActorProcessingErr> {
    let now = Instant::now();
    let window = state.policy.window;
    let Some(child) = state.children.get_mut(id) else {
        return Ok(());
    };
    child.recent_failures.push_back(now);
    while child
        .recent_failures
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        child.recent_failures.pop_front();
    }
    let n = child.recent_failures.len();
    if state.policy.child_max_restarts.is_some_and(|max| n > max) {
        // This child alone is failing: park it instead of letting it exhaust the intensity
        // its healthy siblings depend on.
        if !child.parked {
            tracing::error!(
                supervisor = state.name,
                child = id,
                failures = n,
                retry_secs = state.policy.park_for.as_secs(),
                "child keeps failing; parked"
            );
        }
        child.parked = true;
        me.send_after(state.policy.park_for, {
            let id = id.to_string();
            move || SupervisorMsg::Restart(id)
        });
        return Ok(());
    }
    let delay = state
        .policy
        .backoff_base
        .saturating_mul(2u32.saturating_pow((n.max(1) as u32).saturating_sub(1).min(16)))
        .min(state.policy.backoff_max);
    state.failures.push_back(now);
    while state
        .failures
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        state.failures.pop_front();
    }
    if state.failures.len() > state.policy.max_restarts {
        state.metrics.escalations.increment(1);
        tracing::error!(
            supervisor = state.name,
            child = id,
            failures = state.failures.len(),
            "restart intensity exceeded; escalating"
        );
        return Err(format!(
            "supervisor {}: more than {} restarts within {:?}",
            state.name, state.policy.max_restarts, window
        )
        .into());
    }
    me.send_after(delay, {
        let id = id.to_string();
        move || SupervisorMsg::Restart(id)
    });
    Ok(())
}

/// Typed handle over a running [`Supervisor`].
#[derive(Clone)]
pub struct SupervisorHandle(ActorRef<SupervisorMsg>);

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("supervisor is not running")]
    Down,
    #[error("child failed to start: {0}")]
    Start(String),
}

impl SupervisorHandle {
    /// Spawn a supervisor, linked under `parent` when given.
    pub async fn spawn(
        name: &'static str,
        policy: Policy,
        parent: Option<ActorCell>,
    ) -> Result<Self, SpawnErr> {
        let args = SupervisorArgs { name, policy };
        let (r, _) = match parent {
            Some(p) => Actor::spawn_linked(None, Supervisor, args, p).await?,
            None => Actor::spawn(None, Supervisor, args).await?,
        };
        Ok(Self(r))
    }

    /// Spawn a root supervisor: nothing supervises it, so the returned task ends when it does
    /// (its children escalated past its own intensity, or it was stopped) — the owner decides.
    pub async fn spawn_root(
        name: &'static str,
        policy: Policy,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), SpawnErr> {
        let (r, done) = Actor::spawn(None, Supervisor, SupervisorArgs { name, policy }).await?;
        Ok((Self(r), done))
    }

    /// Whether the supervisor is running (not stopping or stopped).
    pub fn is_alive(&self) -> bool {
        matches!(
            self.0.get_status(),
            ractor::ActorStatus::Starting | ractor::ActorStatus::Running
        )
    }

    pub fn cell(&self) -> ActorCell {
        self.0.get_cell()
    }

    pub async fn start_child(&self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        ractor::call_t!(
            self.0,
            SupervisorMsg::StartChild,
            CALL_TIMEOUT.as_millis() as u64,
            spec
        )
        .map_err(|_| SupervisorError::Down)?
        .map_err(SupervisorError::Start)
    }

    pub async fn stop_child(&self, id: &str) -> Result<(), SupervisorError> {
        ractor::call_t!(
            self.0,
            SupervisorMsg::StopChild,
            CALL_TIMEOUT.as_millis() as u64,
            id.to_string()
        )
        .map_err(|_| SupervisorError::Down)
    }

    pub async fn child(&self, id: &str) -> Result<Option<ActorCell>, SupervisorError> {
        ractor::call_t!(
            self.0,
            SupervisorMsg::Child,
            CALL_TIMEOUT.as_millis() as u64,
            id.to_string()
        )
        .map_err(|_| SupervisorError::Down)
    }

    pub async fn children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        ractor::call_t!(
            self.0,
            SupervisorMsg::Children,
            CALL_TIMEOUT.as_millis() as u64
        )
        .map_err(|_| SupervisorError::Down)
    }

    /// Stop the supervisor and its children, waiting at most `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        let cell = self.0.get_cell();
        cell.stop_children_and_wait(Some("shutdown".into()), Some(timeout))
            .await;
        let _ = cell
            .stop_and_wait(Some("shutdown".into()), Some(timeout))
            .await;
    }
}
