//! `SessionActor`: one per end user, started on demand through the registry and passivated
//! when idle. It caches the user's view (user + subscription) and their live sessions by token
//! hash, answers lookups, applies revocations and updates. It is the only writer of its state;
//! slow I/O (reloads, renewal writes) runs in spawned tasks that report back as messages.
//!
//! Reads do not queue in its mailbox: the actor publishes an immutable snapshot per live
//! session (`Arc<Published>`, replaced on every change) into a shared index keyed by token
//! hash, and [`Sessions::lookup`] answers from it after checking that the publishing actor is
//! still the resident one. The actor stays the only writer; every change arrives as a message.
//! (The `v1_user` benchmark decided this: the request/reply hop cost a third of throughput.)
//! On a miss the lookup reads Redis, then SQL, activates the actor and asks it to adopt the
//! session.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use reauth_runtime::crypto::{hash_token, is_token_shaped, random_token};
use reauth_runtime::metrics::ActorMetrics;
use reauth_runtime::registry::Registry;
use reauth_runtime::{BusMessage, now_ms};

use crate::directory::Directory;
use crate::model::{Project, SessionRecord, SubscriptionRecord, UserState, UserView};
use crate::revocation::{COPY_TTL, Revoked};
use crate::services::Svc;
use crate::store;

/// Sliding renewal is written at most this often per session.
const RENEW_EVERY_MS: i64 = 3_600_000;
/// How long a user's state stays in Redis.
const USER_CACHE_TTL: Duration = Duration::from_secs(3600);
const CALL_TIMEOUT_MS: u64 = 5_000;

pub type UserId = Arc<str>;

/// What a SessionActor publishes for one live session; immutable, replaced on every change.
pub struct Published {
    pub user_id: UserId,
    pub project_id: Arc<str>,
    /// The actor that published it: a snapshot of an actor that is no longer resident is stale.
    pub actor: ractor::ActorId,
    pub expires_at: i64,
    /// When the sliding renewal is due (the reader then asks the actor to renew).
    pub renew_at: i64,
    pub view: Arc<UserView>,
    /// `view` serialized once, at publish time: the `/v1/user` body, shared by every read.
    pub json: Option<Bytes>,
}

/// What the resident snapshots say about a token, without any I/O.
pub enum Resident {
    /// A live session of this project: its snapshot.
    Live(Arc<Published>),
    /// Known and worthless here: another project's session, or expired (revocation sent).
    Refused,
    /// No resident actor holds it (the token's hash): ask Redis/SQL ([`Sessions::lookup`]).
    Unknown(String),
}

impl Resident {
    pub fn is_live(&self) -> bool {
        matches!(self, Resident::Live(_))
    }
}

pub type Index = Arc<DashMap<String, Arc<Published>>>;

pub enum SessionMsg {
    /// Adopt a session loaded from Redis/SQL, publish it and answer with its view.
    Learn {
        rec: SessionRecord,
        now: i64,
        reply: RpcReplyPort<Option<Arc<UserView>>>,
    },
    /// A reader saw the session's renewal due: ask SQL to push its expiry out.
    Renew { hash: String, now: i64 },
    /// What SQL said to a renewal: only an expiry SQL extended is adopted.
    Renewed { hash: String, outcome: Renewal },
    /// Forget a session (logout/revoke here or on another instance, or expired).
    Revoke { hash: String },
    /// The user or their subscription changed: reload from the store.
    Refresh,
    /// A new user state, pushed by a writer (webhook) or a reload.
    Apply(Box<UserState>),
    /// A subscription of this user changed (webhook): it becomes the user's current one when it
    /// is at least as recent as the one held — the same rule as the store's "latest".
    Subscription(Box<SubscriptionRecord>),
    /// The project's configuration changed (plan mapping, features, branding, TTLs): rebuild
    /// and republish every view from the new snapshot.
    Republish,
    /// Answered once reached: everything sent before it has been applied.
    Sync(RpcReplyPort<()>),
}

/// How long a writer waits for this instance's resident actor to apply its change before it
/// answers anyway (the change is stored; the actor applies it when it gets there).
const SETTLE_MS: u64 = 1_000;

/// The answer of a renewal's SQL write.
pub enum Renewal {
    /// SQL extended it: this is the stored session now.
    Extended(SessionRecord),
    /// SQL did not extend it (revoked, expired or extended elsewhere): the stored session.
    Unchanged(SessionRecord),
    /// No such session any more.
    Missing,
    /// The store did not answer: try again later.
    Failed,
}

/// After a failed renewal write, the next attempt waits this long.
const RENEW_RETRY_MS: i64 = 30_000;

pub struct SessionActor;

pub struct SessionArgs {
    pub user_id: UserId,
    pub project_id: String,
    pub svc: Svc,
    pub directory: Arc<Directory>,
    pub index: Index,
    pub revoked: Arc<Revoked>,
    pub metrics: ActorMetrics,
}

pub struct SessionState {
    args: SessionArgs,
    me: ractor::ActorId,
    project_id: Arc<str>,
    user: UserState,
    sessions: HashMap<String, SessionRecord>,
    /// Renewals in flight or backing off: the earliest time another may start.
    renewing: HashMap<String, i64>,
}

impl SessionState {
    fn project(&self) -> Option<Arc<Project>> {
        self.args.directory.project(&self.args.project_id)
    }

    /// Build the view of one session and publish it (or drop it when no longer live).
    fn publish(&mut self, hash: &str, now: i64) -> Option<Arc<UserView>> {
        let project = self.project()?;
        let rec = self.sessions.get(hash)?;
        if !rec.is_live(now) {
            self.forget(hash);
            return None;
        }
        let view = Arc::new(self.user.view(&project, rec));
        let json = match serde_json::to_vec(&*view) {
            Ok(v) => Some(Bytes::from(v)),
            Err(e) => {
                tracing::error!(error = %e, "user view not serializable; served on the slow path");
                None
            }
        };
        self.args.index.insert(
            hash.to_string(),
            Arc::new(Published {
                user_id: self.args.user_id.clone(),
                project_id: self.project_id.clone(),
                actor: self.me,
                expires_at: rec.expires_at,
                renew_at: rec.last_seen_at + RENEW_EVERY_MS,
                view: view.clone(),
                json,
            }),
        );
        Some(view)
    }

    fn publish_all(&mut self, now: i64) {
        let hashes: Vec<String> = self.sessions.keys().cloned().collect();
        for h in hashes {
            self.publish(&h, now);
        }
    }

    fn forget(&mut self, hash: &str) {
        self.sessions.remove(hash);
        self.renewing.remove(hash);
        let me = self.me;
        self.args.index.remove_if(hash, |_, p| p.actor == me);
    }

    /// Sliding renewal: SQL pushes the expiry out in a spawned task, and only the expiry SQL
    /// wrote comes back here ([`SessionMsg::Renewed`]): a renewal never extends a session SQL
    /// did not extend, never revives a revoked one, and never writes a Redis copy (it deletes
    /// the old one, so a copy can't be resurrected after a concurrent logout's DEL).
    fn renew(&mut self, me: ActorRef<SessionMsg>, hash: &str, now: i64) {
        let Some(project) = self.project() else {
            return;
        };
        let Some(rec) = self.sessions.get(hash) else {
            return;
        };
        if now - rec.last_seen_at < RENEW_EVERY_MS || !rec.is_live(now) {
            return;
        }
        if self
            .renewing
            .get(hash)
            .is_some_and(|not_before| now < *not_before)
        {
            return;
        }
        self.renewing.insert(hash.to_string(), i64::MAX);
        let svc = self.args.svc.clone();
        let (id, hash) = (rec.id.clone(), hash.to_string());
        let expires_at = now + project.session_ttl_secs * 1000;
        let metrics = self.args.metrics.clone();
        tokio::spawn(async move {
            let outcome = match store::renew_session(&svc.db, &id, expires_at, now).await {
                Ok(extended) => match store::session_by_hash(&svc.db, &hash).await {
                    Ok(Some(rec)) if extended => Renewal::Extended(rec),
                    Ok(Some(rec)) => Renewal::Unchanged(rec),
                    Ok(None) => Renewal::Missing,
                    Err(e) => {
                        tracing::warn!(error = %e, "session re-read after renewal failed");
                        Renewal::Failed
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "session renewal not written; retried later");
                    Renewal::Failed
                }
            };
            if matches!(outcome, Renewal::Extended(_)) {
                let _ = svc.cache.del(&format!("sess:{hash}")).await;
            }
            metrics.enqueued();
            let _ = me.cast(SessionMsg::Renewed { hash, outcome });
        });
    }

    fn renewed(&mut self, hash: &str, outcome: Renewal, now: i64) {
        match outcome {
            Renewal::Failed => {
                self.renewing.insert(hash.to_string(), now + RENEW_RETRY_MS);
            }
            Renewal::Missing => self.forget(hash),
            Renewal::Extended(rec) | Renewal::Unchanged(rec) => {
                self.renewing.remove(hash);
                if let Some(at) = rec.revoked_at {
                    self.args.revoked.note(hash, at);
                }
                if !rec.is_live(now) {
                    self.forget(hash);
                    return;
                }
                if let Some(held) = self.sessions.get_mut(hash) {
                    held.expires_at = rec.expires_at;
                    held.last_seen_at = rec.last_seen_at;
                    self.publish(hash, now);
                }
            }
        }
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
    store::user_state(&svc.db, project_id, user_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {user_id} not found"))
}

pub(crate) async fn cache_user_state(svc: &Svc, st: &UserState) {
    if let Ok(s) = serde_json::to_string(st) {
        let _ = svc
            .cache
            .set(&format!("user:{}", st.user.id), &s, Some(USER_CACHE_TTL))
            .await;
    }
}

/// Drop the Redis copies of sessions revoked in SQL and tell every other instance (also what
/// the CLI does, having no actors). A lost message is covered by the revocations feed.
pub async fn announce_revocations(svc: &Svc, revoked: &[store::Revocation]) {
    for r in revoked {
        if let Err(e) = svc.cache.del(&format!("sess:{}", r.token_hash)).await {
            tracing::warn!(error = %e, "cache unavailable while revoking; the revocations feed covers it");
        }
        let msg = BusMessage {
            origin: svc.instance_id.clone(),
            topic: "session.revoked".into(),
            payload: serde_json::json!({ "user_id": r.user_id, "hash": r.token_hash, "revoked_at": r.revoked_at })
                .to_string(),
        };
        if let Err(e) = svc.cache.publish(&msg).await {
            tracing::warn!(error = %e, "bus publish failed; other instances catch up from the revocations feed");
        }
    }
}

/// Cache a session read from SQL. The copy lives at most [`COPY_TTL`]: the revoked hashes
/// every instance remembers outlast it, so a copy that missed its DEL is never adopted.
async fn cache_session(svc: &Svc, rec: &SessionRecord) {
    let ttl = (rec.expires_at - now_ms()).min(COPY_TTL.as_millis() as i64);
    if ttl <= 0 || rec.revoked_at.is_some() {
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
        me: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let user = load_user_state(&args.svc, &args.project_id, &args.user_id).await?;
        args.directory.stats.of(&args.project_id).session_started();
        Ok(SessionState {
            me: me.get_id(),
            project_id: Arc::from(args.project_id.as_str()),
            args,
            user,
            sessions: HashMap::new(),
            renewing: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _me: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(s) = state.args.directory.stats.get(&state.args.project_id) {
            s.session_stopped();
        }
        let me = state.me;
        for hash in state.sessions.keys() {
            state.args.index.remove_if(hash, |_, p| p.actor == me);
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
            SessionMsg::Learn { rec, now, reply } => {
                // A copy of a session revoked meanwhile (its Redis DEL failed, or the logout
                // came between the read and this message) is not adopted.
                if rec.user_id.as_str() == &*state.args.user_id
                    && rec.project_id == state.args.project_id
                    && rec.is_live(now)
                    && !state.args.revoked.contains(&rec.token_hash)
                {
                    let hash = rec.token_hash.clone();
                    // Keep a newer expiry we may already hold (renewed here).
                    let rec = match state.sessions.get(&hash) {
                        Some(known) if known.expires_at > rec.expires_at => known.clone(),
                        _ => rec,
                    };
                    state.sessions.insert(hash.clone(), rec);
                    let _ = reply.send(state.publish(&hash, now));
                } else {
                    let _ = reply.send(None);
                }
            }
            SessionMsg::Renew { hash, now } => state.renew(me, &hash, now),
            SessionMsg::Renewed { hash, outcome } => state.renewed(&hash, outcome, now_ms()),
            SessionMsg::Revoke { hash } => state.forget(&hash),
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
                state.publish_all(now_ms());
            }
            SessionMsg::Republish => state.publish_all(now_ms()),
            SessionMsg::Sync(reply) => {
                let _ = reply.send(());
            }
            SessionMsg::Subscription(sub) => {
                // The revalidation pass re-sends what changed in its window: nothing to do
                // for what is already held.
                if state.user.subscription.as_ref() == Some(&*sub) {
                    return Ok(());
                }
                let newer = state
                    .user
                    .subscription
                    .as_ref()
                    .is_none_or(|cur| sub.source_created >= cur.source_created);
                if newer {
                    state.user.subscription = Some(*sub);
                    state.publish_all(now_ms());
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
    index: Index,
    revoked: Arc<Revoked>,
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
            revoked: Arc::new(Revoked::default()),
            svc,
            directory,
        })
    }

    /// The hashes revoked recently, and the revalidation trigger.
    pub fn revoked(&self) -> Arc<Revoked> {
        self.revoked.clone()
    }

    pub fn resident(&self) -> usize {
        self.registry.len()
    }

    /// The shared services (for the bus bridge's status).
    pub fn svc(&self) -> &Svc {
        &self.svc
    }

    /// The hot path: the snapshot a resident actor published for `token`, checked to come from
    /// the actor that is resident now. No mailbox hop, no I/O; a due renewal or an expiry is
    /// sent to the actor as a message.
    pub fn published(&self, project_id: &str, token: &str, now: i64) -> Resident {
        if !is_token_shaped(token) {
            return Resident::Refused;
        }
        let hash = hash_token(token);
        let Some(p) = self.index.get(&hash).map(|e| e.value().clone()) else {
            return Resident::Unknown(hash);
        };
        match self.registry.get(&p.user_id) {
            Some(actor) if actor.get_id() == p.actor => {
                if &*p.project_id != project_id {
                    // A session of another project is worthless here.
                    return Resident::Refused;
                }
                if p.expires_at <= now {
                    self.cast(&actor, SessionMsg::Revoke { hash });
                    return Resident::Refused;
                }
                if now >= p.renew_at {
                    self.cast(&actor, SessionMsg::Renew { hash, now });
                }
                Resident::Live(p)
            }
            // Published by an actor that is gone: stale, take the slow path.
            _ => {
                self.index.remove_if(&hash, |_, q| q.actor == p.actor);
                Resident::Unknown(hash)
            }
        }
    }

    /// Resolve a bearer/cookie token to the user's view at `project`, or `None`: the published
    /// snapshot when there is one, else Redis, then SQL, and an activation.
    pub async fn lookup(
        &self,
        project_id: &str,
        token: &str,
        now: i64,
    ) -> Result<Option<Arc<UserView>>, SessionError> {
        let hash = match self.published(project_id, token, now) {
            Resident::Live(p) => return Ok(Some(p.view.clone())),
            Resident::Refused => return Ok(None),
            Resident::Unknown(hash) => hash,
        };
        // Miss: Redis, then SQL.
        let Some(rec) = self.load_session(&hash).await? else {
            return Ok(None);
        };
        if rec.project_id != project_id || !rec.is_live(now) || self.revoked.contains(&hash) {
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
            revoked: self.revoked.clone(),
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
        Ok(self.sign_out(project_id, token, now).await?.is_some())
    }

    /// [`Sessions::revoke`], answering with the session it revoked (whose user signed out: the
    /// audit log's logout entry).
    pub async fn sign_out(
        &self,
        project_id: &str,
        token: &str,
        now: i64,
    ) -> anyhow::Result<Option<SessionRecord>> {
        if !is_token_shaped(token) {
            return Ok(None);
        }
        let hash = hash_token(token);
        let Some(rec) = store::revoke_session(&self.svc.db, project_id, &hash, now).await? else {
            return Ok(None);
        };
        // Remembered before anything else: a lookup racing this logout can't adopt a copy.
        self.apply_revoke_at(&rec.user_id, &hash, now);
        if let Err(e) = self.svc.cache.del(&format!("sess:{hash}")).await {
            // The copy may stay in Redis until it expires; every instance refuses it (the
            // revocations feed), so SQL remains authoritative.
            tracing::warn!(error = %e, "cache unavailable while revoking; the revocations feed covers it");
        }
        self.publish(
            "session.revoked",
            serde_json::json!({ "user_id": rec.user_id, "hash": hash, "revoked_at": now }),
        )
        .await;
        Ok(Some(rec))
    }

    /// Sessions revoked in SQL by someone other than their holder (the Management API, a ban,
    /// a deletion): the same effect on every instance as [`Sessions::revoke`].
    pub async fn revoked_in_store(&self, revoked: &[store::Revocation]) {
        // Remembered here before anything else: a lookup racing this can't adopt a copy.
        for r in revoked {
            self.apply_revoke_at(&r.user_id, &r.token_hash, r.revoked_at);
        }
        announce_revocations(&self.svc, revoked).await;
    }

    fn cast(&self, actor: &ActorRef<SessionMsg>, msg: SessionMsg) {
        self.registry.metrics().enqueued();
        let _ = actor.cast(msg);
    }

    /// Local effect of a revocation (also used by the bus bridge for other instances' revokes
    /// and by the revocations feed): remembered, unpublished, and the actor forgets it.
    pub fn apply_revoke_at(&self, user_id: &str, hash: &str, revoked_at: i64) {
        self.revoked.note(hash, revoked_at);
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
                let uid = st.user.id.clone();
                self.apply_user_state(st);
                self.settle(&uid).await;
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

    /// A subscription changed (written by a webhook): drop the user's cached state, push the
    /// subscription to this instance's resident actor and to every other instance's. No store
    /// read: the actors merge it by recency, as the store's query would.
    pub async fn subscription_changed(&self, user_id: &str, sub: SubscriptionRecord) {
        let _ = self.svc.cache.del(&format!("user:{user_id}")).await;
        let payload = serde_json::json!({ "user_id": user_id, "subscription": &sub });
        self.apply_subscription(user_id, sub);
        self.settle(user_id).await;
        self.publish("user.subscription", payload).await;
    }

    /// Wait (briefly) until this instance's resident actor of the user has applied what was
    /// sent to it, so the writer's answer (a webhook's 200) comes after the change shows here:
    /// a read that follows it on this instance sees it.
    async fn settle(&self, user_id: &str) {
        if let Some(a) = self.registry.peek(&Arc::from(user_id)) {
            self.registry.metrics().enqueued();
            let _ = ractor::call_t!(a, SessionMsg::Sync, SETTLE_MS);
        }
    }

    pub fn apply_subscription(&self, user_id: &str, sub: SubscriptionRecord) {
        if let Some(a) = self.registry.peek(&Arc::from(user_id)) {
            self.registry.metrics().enqueued();
            let _ = a.cast(SessionMsg::Subscription(Box::new(sub)));
        }
    }

    /// Push a new state to this instance's resident actor (no reload needed).
    pub fn apply_user_state(&self, st: UserState) {
        if let Some(a) = self.registry.peek(&Arc::from(st.user.id.as_str())) {
            self.registry.metrics().enqueued();
            let _ = a.cast(SessionMsg::Apply(Box::new(st)));
        }
    }

    /// A project's snapshot changed on this instance: every resident actor of that project
    /// republishes its views (a plan renamed or a feature added shows at once, not after the
    /// actor passivates). Walks this instance's session index once per configuration change.
    pub fn project_changed(&self, project_id: &str) {
        let users: std::collections::HashSet<UserId> = self
            .index
            .iter()
            .filter(|e| &*e.value().project_id == project_id)
            .map(|e| e.value().user_id.clone())
            .collect();
        for u in users {
            if let Some(a) = self.registry.peek(&u) {
                self.registry.metrics().enqueued();
                let _ = a.cast(SessionMsg::Republish);
            }
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

    /// Drop snapshots whose actor is gone (after a crash skipped `post_stop`).
    pub fn prune_index(&self) {
        self.index.retain(|_, p| {
            self.registry
                .peek(&p.user_id)
                .is_some_and(|a| a.get_id() == p.actor)
        });
    }

    pub async fn shutdown(&self, timeout: Duration) {
        self.registry.shutdown(timeout).await;
    }
}
