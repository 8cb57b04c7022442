//! A keyed registry of "virtual actors": `get_or_spawn(key)` returns the live actor for a key or
//! starts one. Lookups are DashMap reads; activation is single-flight per key (concurrent callers
//! share one `OnceCell`, so exactly one actor starts); an idle sweeper passivates actors nobody
//! has looked up for `idle_after`; a failed actor leaves the registry and is started again lazily
//! by the next lookup.
//!
//! Every actor is linked to a small per-registry supervisor actor that only receives exit
//! events (it never sits on the request path), removes the dead actor's entry and counts
//! failures vs. normal exits.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::sync::OnceCell;

use crate::metrics::ActorMetrics;

struct Slot<M: ractor::Message> {
    actor: OnceCell<ActorRef<M>>,
    /// Milliseconds since the registry's epoch at the last lookup.
    last_used: AtomicU64,
}

struct Inner<K, M: ractor::Message> {
    slots: DashMap<K, Arc<Slot<M>>>,
    ids: DashMap<ActorId, K>,
    epoch: Instant,
    metrics: ActorMetrics,
}

impl<K: Eq + Hash + Clone, M: ractor::Message> Inner<K, M> {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Remove the entry of a stopped actor (only if it still maps to that actor).
    fn remove_actor(&self, id: ActorId) -> bool {
        let Some((_, key)) = self.ids.remove(&id) else {
            return false;
        };
        self.slots.remove_if(&key, |_, slot| {
            slot.actor.get().is_some_and(|a| a.get_id() == id)
        });
        self.metrics.alive.decrement(1.0);
        true
    }
}

/// A keyed registry for actors whose messages are `M`.
pub struct Registry<K, M: ractor::Message> {
    inner: Arc<Inner<K, M>>,
    supervisor: ActorRef<()>,
    sweeper: Option<Arc<tokio::task::JoinHandle<()>>>,
}

impl<K, M: ractor::Message> Clone for Registry<K, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            supervisor: self.supervisor.clone(),
            sweeper: self.sweeper.clone(),
        }
    }
}

struct RegistrySupervisor<K, M: ractor::Message>(std::marker::PhantomData<fn() -> (K, M)>);

impl<K, M> Actor for RegistrySupervisor<K, M>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    M: ractor::Message,
{
    type Msg = ();
    type State = Arc<Inner<K, M>>;
    type Arguments = Arc<Inner<K, M>>;

    async fn pre_start(
        &self,
        _me: ActorRef<()>,
        inner: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(inner)
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<()>,
        evt: SupervisionEvent,
        inner: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failure, reason) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err), None),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, None, reason),
            _ => return Ok(()),
        };
        if !inner.remove_actor(cell.get_id()) {
            return Ok(());
        }
        if let Some(err) = failure {
            inner.metrics.failures.increment(1);
            tracing::warn!(kind = inner.metrics.kind, error = %err, "actor failed; it restarts on next use");
        } else if reason.as_deref() == Some(IDLE) {
            inner.metrics.passivations.increment(1);
        }
        Ok(())
    }
}

const IDLE: &str = "idle";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("actor failed to start: {0}")]
    Spawn(String),
}

impl<K, M> Registry<K, M>
where
    K: Eq + Hash + Clone + Send + Sync + std::fmt::Debug + 'static,
    M: ractor::Message,
{
    /// Start a registry (and its exit-event supervisor, linked under `parent` when given).
    /// With `idle_after`, a sweeper stops actors not looked up for that long.
    pub async fn start(
        kind: &'static str,
        idle_after: Option<Duration>,
        parent: Option<ActorCell>,
    ) -> Result<Self, SpawnErr> {
        let inner = Arc::new(Inner {
            slots: DashMap::new(),
            ids: DashMap::new(),
            epoch: Instant::now(),
            metrics: ActorMetrics::new(kind),
        });
        let sup = RegistrySupervisor::<K, M>(std::marker::PhantomData);
        let (supervisor, _) = match parent {
            Some(p) => Actor::spawn_linked(None, sup, inner.clone(), p).await?,
            None => Actor::spawn(None, sup, inner.clone()).await?,
        };
        let sweeper = idle_after.map(|idle| {
            let weak = Arc::downgrade(&inner);
            let every = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(30));
            Arc::new(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    sweep(&inner, idle);
                }
            }))
        });
        Ok(Self {
            inner,
            supervisor,
            sweeper,
        })
    }

    pub fn metrics(&self) -> &ActorMetrics {
        &self.inner.metrics
    }

    /// The live actor for `key`, if resident. Counts as use (defers passivation).
    pub fn get(&self, key: &K) -> Option<ActorRef<M>> {
        let slot = self.inner.slots.get(key)?;
        let actor = slot.actor.get()?.clone();
        slot.last_used.store(self.inner.now(), Ordering::Relaxed);
        Some(actor)
    }

    /// The live actor for `key` without counting as use (for fan-out to resident actors only).
    pub fn peek(&self, key: &K) -> Option<ActorRef<M>> {
        self.inner.slots.get(key)?.actor.get().cloned()
    }

    /// The live actor for `key`, starting it with `make()` when there is none. Concurrent
    /// callers for one key wait on the same start and get the same actor.
    pub async fn get_or_spawn<A, F>(&self, key: &K, make: F) -> Result<ActorRef<M>, RegistryError>
    where
        A: Actor<Msg = M>,
        F: FnOnce() -> (A, A::Arguments),
    {
        if let Some(a) = self.get(key) {
            return Ok(a);
        }
        let slot = self
            .inner
            .slots
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    actor: OnceCell::new(),
                    last_used: AtomicU64::new(self.inner.now()),
                })
            })
            .clone();
        let sup = self.supervisor.get_cell();
        let inner = &self.inner;
        let res = slot
            .actor
            .get_or_try_init(|| async move {
                let (actor, args) = make();
                let (r, _) = Actor::spawn_linked(None, actor, args, sup)
                    .await
                    .map_err(|e| RegistryError::Spawn(e.to_string()))?;
                inner.ids.insert(r.get_id(), key.clone());
                inner.metrics.alive.increment(1.0);
                Ok::<_, RegistryError>(r)
            })
            .await;
        match res {
            Ok(a) => {
                slot.last_used.store(self.inner.now(), Ordering::Relaxed);
                Ok(a.clone())
            }
            Err(e) => {
                // Let the next caller try again with a fresh slot.
                self.inner
                    .slots
                    .remove_if(key, |_, s| Arc::ptr_eq(s, &slot));
                Err(e)
            }
        }
    }

    /// Forget `actor` for `key` (e.g. a send found it stopping) so the next lookup starts anew.
    pub fn evict(&self, key: &K, actor: &ActorRef<M>) {
        let id = actor.get_id();
        let removed = self
            .inner
            .slots
            .remove_if(key, |_, s| s.actor.get().is_some_and(|a| a.get_id() == id));
        if removed.is_some() {
            actor.stop(Some("evicted".into()));
        }
    }

    /// Stop the actor for `key` if resident.
    pub fn stop(&self, key: &K) {
        if let Some(a) = self.peek(key) {
            a.stop(Some("stopped".into()));
        }
    }

    /// Number of resident actors.
    pub fn len(&self) -> usize {
        self.inner.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resident keys (for fan-out and the supervision view).
    pub fn keys(&self) -> Vec<K> {
        self.inner.slots.iter().map(|e| e.key().clone()).collect()
    }

    /// Stop every resident actor and the registry's supervisor, waiting at most `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        if let Some(s) = &self.sweeper {
            s.abort();
        }
        let cell = self.supervisor.get_cell();
        cell.stop_children_and_wait(Some("shutdown".into()), Some(timeout))
            .await;
        let _ = cell
            .stop_and_wait(Some("shutdown".into()), Some(timeout))
            .await;
    }
}

fn sweep<K: Eq + Hash + Clone, M: ractor::Message>(inner: &Inner<K, M>, idle: Duration) {
    let now = inner.now();
    let idle_ms = idle.as_millis() as u64;
    for entry in inner.slots.iter() {
        let slot = entry.value();
        if now.saturating_sub(slot.last_used.load(Ordering::Relaxed)) >= idle_ms
            && let Some(a) = slot.actor.get()
        {
            a.stop(Some(IDLE.into()));
        }
    }
}
