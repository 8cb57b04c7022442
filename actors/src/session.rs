//! `SessionActor`: one per end user, started on demand through the registry and passivated
//! when idle. It caches the user's view (user + subscription) and their live sessions by token
//! hash, answers lookups, applies revocations and updates. It is the only writer of its state;
//! slow I/O (reloads, renewal writes) runs in spawned tasks that report back as messages.
//!
//! [`Sessions`] is the typed front: the hot path goes token hash -> in-memory index -> resident
//! actor -> reply, and only on a miss reads Redis, then SQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use reauth_runtime::crypto::{hash_token, is_token_shaped, random_token};
use reauth_runtime::metrics::ActorMetrics;
use reauth_runtime::registry::Registry;
use reauth_runtime::{BusMessage, now_ms};

use crate::model::{Project, SessionRecord, UserState, UserView};
use crate::services::Svc;
use crate::store;
use crate::tenants::Directory;

/// Sliding renewal is written at most this often per session.
const RENEW_EVERY_MS: i64 = 3_600_000;
/// How long a user's state stays in Redis.
const USER_CACHE_TTL: Duration = Duration::from_secs(3600);
const CALL_TIMEOUT_MS: u64 = 5_000;

pub type UserId = Arc<str>;

pub enum SessionMsg {
    /// Resolve a session this actor may already know. `None` in the reply means "not known
    /// here" (the caller then loads it); `Some(None)` means known and not valid.
    Lookup {
        hash: String,
        project_id: String,
        now: i64,
        reply: RpcReplyPort<Option<Option<Arc<UserView>>>>,
    },
    /// Adopt a session loaded from Redis/SQL and answer with its view.
    Learn {
        rec: SessionRecord,
        now: i64,
        reply: RpcReplyPort<Option<Arc<UserView>>>,
    },
    /// Forget a session (logout/revoke, here or on another instance).
    Revoke { hash: String },
    /// The user or their subscription changed: reload from the store.
    Refresh,
    /// A new user state, pushed by a writer (webhook) or a reload.
    Apply(Box<UserState>),
}

pub struct SessionActor;

pub struct SessionArgs {
    pub user_id: UserId,
    pub project_id: String,
    pub svc: Svc,
    pub directory: Arc<Directory>,
    pub index: Arc<DashMap<String, UserId>>,
    pub metrics: ActorMetrics,
}

struct Entry {
    rec: SessionRecord,
    view: Option<Arc<UserView>>,
}

pub struct SessionState {
    args: SessionArgs,
    user: UserState,
    sessions: HashMap<String, Entry>,
}

impl SessionState {
    fn project(&self) -> Option<Arc<Project>> {
        self.args.directory.project(&self.args.project_id)
    }

    fn view_of(
        &mut self,
        hash: &str,
        now: i64,
        me: &ActorRef<SessionMsg>,
    ) -> Option<Arc<UserView>> {
        let project = self.project()?;
        let entry = self.sessions.get_mut(hash)?;
        if !entry.rec.is_live(now) {
            self.sessions.remove(hash);
            self.args.index.remove(hash);
            return None;
        }
        // Sliding renewal, written at most once an hour.
        if now - entry.rec.last_seen_at >= RENEW_EVERY_MS {
            entry.rec.last_seen_at = now;
            entry.rec.expires_at = now + project.session_ttl_secs * 1000;
            entry.view = None;
            let svc = self.args.svc.clone();
            let rec = entry.rec.clone();
            let _me = me.clone();
            tokio::spawn(async move {
                if let Err(e) = store::renew_session(&svc.db, &rec.id, rec.expires_at, now).await {
                    tracing::warn!(error = %e, "session renewal not written; retried on a later lookup");
                }
                cache_session(&svc, &rec).await;
            });
        }
        if entry.view.is_none() {
            entry.view = Some(Arc::new(self.user.view(&project, &entry.rec)));
        }
        entry.view.clone()
    }
}

async fn load_user_state(svc: &Svc, project_id: &str, user_id: &str) -> anyhow::Result<UserState> {
    let key = format!("user:{user_id}");
    match svc.cache.get(&key).await {
        Ok(Some(s)) => {
            if let Ok(st) = serde_json::from_str::<UserState>(&s)
                && st.user.project_id == project_id
            {
                return Ok(st);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cache unavailable; reading the user from SQL"),
    }
    let st = load_user_state_sql(svc, project_id, user_id).await?;
    cache_user_state(svc, &st).await;
    Ok(st)
}

pub(crate) async fn load_user_state_sql(
    svc: &Svc,
    project_id: &str,
    user_id: &str,
) -> anyhow::Result<UserState> {
    let user = store::get_user(&svc.db, user_id)
        .await?
        .filter(|u| u.project_id == project_id)
        .ok_or_else(|| anyhow::anyhow!("user {user_id} not found"))?;
    let subscription = store::latest_subscription(&svc.db, project_id, user_id).await?;
    Ok(UserState { user, subscription })
}

pub(crate) async fn cache_user_state(svc: &Svc, st: &UserState) {
    if let Ok(s) = serde_json::to_string(st) {
        let _ = svc
            .cache
            .set(&format!("user:{}", st.user.id), &s, Some(USER_CACHE_TTL))
            .await;
    }
}

async fn cache_session(svc: &Svc, rec: &SessionRecord) {
    let ttl = rec.expires_at - now_ms();
    if ttl <= 0 {
        return;
    }
    if let Ok(s) = serde_json::to_string(rec) {
        let _ = svc
            .cache
            .set(
                &format!("sess:{}", rec.token_hash),
                &s,
                Some(Duration::from_millis(ttl as u64)),
            )
            .await;
    }
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let user = load_user_state(&args.svc, &args.project_id, &args.user_id).await?;
        Ok(SessionState {
            args,
            user,
            sessions: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _me: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        for hash in state.sessions.keys() {
            state.args.index.remove(hash);
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        let _timer = state.args.metrics.handling();
        match msg {
            SessionMsg::Lookup {
                hash,
                project_id,
                now,
                reply,
            } => {
                let answer = if project_id != state.args.project_id {
                    // A session of another project is worthless here.
                    Some(None)
                } else if state.sessions.contains_key(&hash) {
                    Some(state.view_of(&hash, now, &me))
                } else {
                    None
                };
                let _ = reply.send(answer);
            }
            SessionMsg::Learn { rec, now, reply } => {
                let hash = rec.token_hash.clone();
                if rec.user_id.as_str() == &*state.args.user_id
                    && rec.project_id == state.args.project_id
                    && rec.is_live(now)
                {
                    state
                        .args
                        .index
                        .insert(hash.clone(), state.args.user_id.clone());
                    state
                        .sessions
                        .insert(hash.clone(), Entry { rec, view: None });
                    let _ = reply.send(state.view_of(&hash, now, &me));
                } else {
                    let _ = reply.send(None);
                }
            }
            SessionMsg::Revoke { hash } => {
                state.sessions.remove(&hash);
                state.args.index.remove(&hash);
            }
            SessionMsg::Refresh => {
                let svc = state.args.svc.clone();
                let (pid, uid) = (state.args.project_id.clone(), state.args.user_id.clone());
                let metrics = state.args.metrics.clone();
                tokio::spawn(async move {
                    match load_user_state_sql(&svc, &pid, &uid).await {
                        Ok(st) => {
                            metrics.enqueued();
                            let _ = me.cast(SessionMsg::Apply(Box::new(st)));
                        }
                        Err(e) => tracing::warn!(error = %e, "user refresh failed"),
                    }
                });
            }
            SessionMsg::Apply(st) => {
                state.user = *st;
                for e in state.sessions.values_mut() {
                    e.view = None;
                }
            }
        }
        Ok(())
    }
}

/// The typed front of the session actors: lookups, creation, revocation.
#[derive(Clone)]
pub struct Sessions {
    registry: Registry<UserId, SessionMsg>,
    index: Arc<DashMap<String, UserId>>,
    svc: Svc,
    directory: Arc<Directory>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store unavailable: {0}")]
    Store(#[from] anyhow::Error),
}

impl Sessions {
    pub async fn start(svc: Svc, directory: Arc<Directory>) -> anyhow::Result<Self> {
        let idle = Duration::from_secs(svc.settings.session_idle_secs.max(1));
        let registry = Registry::start("session", Some(idle), None).await?;
        Ok(Self {
            registry,
            index: Arc::new(DashMap::new()),
            svc,
            directory,
        })
    }

    pub fn resident(&self) -> usize {
        self.registry.len()
    }

    /// Resolve a bearer/cookie token to the user's view at `project`, or `None`.
    pub async fn lookup(
        &self,
        project_id: &str,
        token: &str,
        now: i64,
    ) -> Result<Option<Arc<UserView>>, SessionError> {
        if !is_token_shaped(token) {
            return Ok(None);
        }
        let hash = hash_token(token);
        // Hot path: a resident actor knows this session.
        let uid = self.index.get(&hash).map(|e| e.value().clone());
        if let Some(uid) = uid
            && let Some(actor) = self.registry.get(&uid)
        {
            self.registry.metrics().enqueued();
            match ractor::call_t!(
                actor,
                |reply| SessionMsg::Lookup {
                    hash: hash.clone(),
                    project_id: project_id.to_string(),
                    now,
                    reply
                },
                CALL_TIMEOUT_MS
            ) {
                Ok(Some(answer)) => return Ok(answer),
                Ok(None) => {}
                Err(_) => self.registry.evict(&uid, &actor),
            }
        }
        // Miss: Redis, then SQL.
        let Some(rec) = self.load_session(&hash).await? else {
            return Ok(None);
        };
        if rec.project_id != project_id || !rec.is_live(now) {
            return Ok(None);
        }
        let uid: UserId = Arc::from(rec.user_id.as_str());
        for _attempt in 0..2 {
            let actor = self.activate(&uid, &rec.project_id).await?;
            self.registry.metrics().enqueued();
            match ractor::call_t!(
                actor,
                |reply| SessionMsg::Learn {
                    rec: rec.clone(),
                    now,
                    reply
                },
                CALL_TIMEOUT_MS
            ) {
                Ok(v) => return Ok(v),
                // The actor was stopping (passivated under us): start a fresh one.
                Err(_) => self.registry.evict(&uid, &actor),
            }
        }
        Err(SessionError::Store(anyhow::anyhow!(
            "session actor unavailable"
        )))
    }

    async fn activate(
        &self,
        uid: &UserId,
        project_id: &str,
    ) -> anyhow::Result<ActorRef<SessionMsg>> {
        let args = SessionArgs {
            user_id: uid.clone(),
            project_id: project_id.to_string(),
            svc: self.svc.clone(),
            directory: self.directory.clone(),
            index: self.index.clone(),
            metrics: self.registry.metrics().clone(),
        };
        Ok(self
            .registry
            .get_or_spawn(uid, move || (SessionActor, args))
            .await?)
    }

    async fn load_session(&self, hash: &str) -> anyhow::Result<Option<SessionRecord>> {
        match self.svc.cache.get(&format!("sess:{hash}")).await {
            Ok(Some(s)) => {
                if let Ok(rec) = serde_json::from_str::<SessionRecord>(&s) {
                    return Ok(Some(rec));
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cache unavailable; reading the session from SQL"),
        }
        let rec = store::session_by_hash(&self.svc.db, hash).await?;
        if let Some(r) = &rec
            && r.is_live(now_ms())
        {
            cache_session(&self.svc, r).await;
        }
        Ok(rec)
    }

    /// Start a session for a user: a fresh 256-bit token (returned once, stored only hashed).
    pub async fn create(
        &self,
        project: &Project,
        user_id: &str,
        user_agent: Option<&str>,
        ip: Option<&str>,
        now: i64,
    ) -> anyhow::Result<(String, SessionRecord)> {
        let token = random_token();
        let rec = store::create_session(
            &self.svc.db,
            &project.id,
            user_id,
            &hash_token(&token),
            project.session_ttl_secs,
            user_agent,
            ip,
            now,
        )
        .await?;
        cache_session(&self.svc, &rec).await;
        Ok((token, rec))
    }

    /// Revoke the session of `token` at `project` on every instance. Returns whether it was live.
    pub async fn revoke(&self, project_id: &str, token: &str, now: i64) -> anyhow::Result<bool> {
        if !is_token_shaped(token) {
            return Ok(false);
        }
        let hash = hash_token(token);
        let Some(rec) = store::revoke_session(&self.svc.db, project_id, &hash, now).await? else {
            return Ok(false);
        };
        if let Err(e) = self.svc.cache.del(&format!("sess:{hash}")).await {
            tracing::warn!(error = %e, "cache unavailable while revoking; SQL remains authoritative");
        }
        self.apply_revoke(&rec.user_id, &hash);
        self.publish(
            "session.revoked",
            serde_json::json!({ "user_id": rec.user_id, "hash": hash }),
        )
        .await;
        Ok(true)
    }

    /// Local effect of a revocation (also used by the bus bridge for other instances' revokes).
    pub fn apply_revoke(&self, user_id: &str, hash: &str) {
        self.index.remove(hash);
        if let Some(a) = self.registry.peek(&Arc::from(user_id)) {
            self.registry.metrics().enqueued();
            let _ = a.cast(SessionMsg::Revoke {
                hash: hash.to_string(),
            });
        }
    }

    /// The user's data changed in the store: cache the new state, push it to this instance's
    /// resident actor (ordered before any later message to it), and tell every other instance.
    pub async fn user_changed(&self, project_id: &str, user_id: &str) -> anyhow::Result<()> {
        match load_user_state_sql(&self.svc, project_id, user_id).await {
            Ok(st) => {
                cache_user_state(&self.svc, &st).await;
                // Other instances get the state itself: no store round trip before it shows.
                let payload = serde_json::to_value(&st)?;
                self.apply_user_state(st);
                self.publish("user.state", payload).await;
                Ok(())
            }
            Err(e) => {
                let _ = self.svc.cache.del(&format!("user:{user_id}")).await;
                self.publish("user.changed", serde_json::json!({ "user_id": user_id }))
                    .await;
                Err(e)
            }
        }
    }

    /// Push a new state to this instance's resident actor (no reload needed).
    pub fn apply_user_state(&self, st: UserState) {
        if let Some(a) = self.registry.peek(&Arc::from(st.user.id.as_str())) {
            self.registry.metrics().enqueued();
            let _ = a.cast(SessionMsg::Apply(Box::new(st)));
        }
    }

    pub fn user_changed_locally(&self, user_id: &str) {
        if let Some(a) = self.registry.peek(&Arc::from(user_id)) {
            self.registry.metrics().enqueued();
            let _ = a.cast(SessionMsg::Refresh);
        }
    }

    async fn publish(&self, topic: &str, payload: serde_json::Value) {
        let msg = BusMessage {
            origin: self.svc.instance_id.clone(),
            topic: topic.to_string(),
            payload: payload.to_string(),
        };
        if let Err(e) = self.svc.cache.publish(&msg).await {
            tracing::warn!(error = %e, topic, "bus publish failed; other instances catch up from the store");
        }
    }

    /// Drop index entries whose actor is gone (after a crash skipped `post_stop`).
    pub fn prune_index(&self) {
        self.index
            .retain(|_, uid| self.registry.peek(uid).is_some());
    }

    pub async fn shutdown(&self, timeout: Duration) {
        self.registry.shutdown(timeout).await;
    }
}
