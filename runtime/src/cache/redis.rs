//! Redis cache + bus: one multiplexed `ConnectionManager` (auto-reconnect) for commands, and
//! RESP3 push messages on the same manager for the bus, resubscribed automatically after a
//! reconnect. Every key and the bus channel carry the configured prefix.
//!
//! Faults are bounded: every call has a short deadline ([`DEADLINE`]), and a circuit breaker
//! answers "unavailable" at once for [`OPEN_FOR`] after a failure, then lets calls probe again.
//! So a Redis that is down, flushed or cut off costs callers at most a few hundred
//! milliseconds, never the manager's reconnect loop. The connection is made lazily and the bus
//! subscription retried in the background: an instance starts with Redis down and recovers on
//! its own (`reauth_cache_up` says which).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushInfo, PushKind, Value};
use tokio::sync::broadcast;

use super::{BusMessage, CacheBackend, CacheError, CacheResult};

/// The longest any cache or bus call may take.
pub const DEADLINE: Duration = Duration::from_millis(300);
/// How long the breaker stays open after a failure before a call may probe again.
pub const OPEN_FOR: Duration = Duration::from_millis(1000);

pub struct RedisCache {
    cm: ConnectionManager,
    prefix: String,
    channel: String,
    bus: broadcast::Sender<BusMessage>,
    incr: redis::Script,
    breaker: Arc<Breaker>,
    subscriber: tokio::task::JoinHandle<()>,
    /// When the subscription was last confirmed (ms; 0: never).
    subscribed_at: Arc<std::sync::atomic::AtomicI64>,
}

impl Drop for RedisCache {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

/// Closed (calls go through) until a failure; then open (calls fail at once) until
/// `open_until`, after which calls probe again. `reauth_cache_up` and the log follow the
/// transitions only, not every call.
#[derive(Default)]
pub struct Breaker {
    open_until_ms: AtomicI64,
    /// 0: not known yet, 1: up, 2: down.
    state: AtomicU8,
}

const UP: u8 = 1;
const DOWN: u8 = 2;

impl Breaker {
    fn is_open(&self) -> bool {
        crate::now_ms() < self.open_until_ms.load(Ordering::Relaxed)
    }

    fn trip(&self, why: &str) {
        self.open_until_ms.store(
            crate::now_ms() + OPEN_FOR.as_millis() as i64,
            Ordering::Relaxed,
        );
        metrics::counter!("reauth_cache_failures_total").increment(1);
        if self.state.swap(DOWN, Ordering::Relaxed) != DOWN {
            tracing::warn!(
                error = why,
                "Redis unavailable; degraded to resident state and SQL"
            );
            metrics::gauge!("reauth_cache_up").set(0.0);
        }
    }

    fn ok(&self) {
        let was = self.state.swap(UP, Ordering::Relaxed);
        if was != UP {
            if was == DOWN {
                tracing::info!("Redis reachable again");
            }
            metrics::gauge!("reauth_cache_up").set(1.0);
        }
    }
}

fn unavailable(e: redis::RedisError) -> CacheError {
    CacheError::Unavailable(e.to_string())
}

const INCR_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
if t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {n, t}
";

impl RedisCache {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let url = if url.contains("protocol=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        let client = redis::Client::open(url.as_str()).context("parsing the Redis URL")?;
        let (bus, _) = broadcast::channel(4096);
        let tx = bus.clone();
        let subscribed_at = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let confirmed = subscribed_at.clone();
        let push = move |info: PushInfo| -> Result<(), ()> {
            if info.kind == PushKind::Subscribe {
                confirmed.store(crate::now_ms(), Ordering::Relaxed);
                // Subscribed, first or after a reconnect: tell local subscribers that messages
                // may have been missed meanwhile.
                let _ = tx.send(BusMessage {
                    origin: String::new(),
                    topic: super::BUS_SUBSCRIBED.into(),
                    payload: String::new(),
                });
                return Ok(());
            }
            if info.kind != PushKind::Message {
                return Ok(());
            }
            // data = [channel, payload]
            if let Some(Value::BulkString(bytes)) = info.data.get(1)
                && let Ok(msg) = serde_json::from_slice::<BusMessage>(bytes)
            {
                let _ = tx.send(msg);
            }
            Ok(())
        };
        let cfg = ConnectionManagerConfig::new()
            .set_push_sender(push)
            .set_automatic_resubscription()
            .set_response_timeout(Some(DEADLINE))
            .set_connection_timeout(Some(DEADLINE))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        // Lazy: a Redis that is down at startup must not keep the instance from serving.
        let cm = ConnectionManager::new_lazy_with_config(client, cfg)
            .context("configuring the Redis connection")?;
        let channel = format!("{prefix}bus");
        let breaker = Arc::new(Breaker::default());
        let subscriber = tokio::spawn(keep_subscribed(
            cm.clone(),
            channel.clone(),
            breaker.clone(),
        ));
        Ok(Self {
            cm,
            prefix: prefix.to_string(),
            channel,
            bus,
            incr: redis::Script::new(INCR_LUA),
            breaker,
            subscriber,
            subscribed_at,
        })
    }

    /// One bounded call through the breaker.
    async fn call<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> CacheResult<T> {
        if self.breaker.is_open() {
            return Err(CacheError::Unavailable(
                "Redis unavailable (circuit open)".into(),
            ));
        }
        match tokio::time::timeout(DEADLINE, f).await {
            Ok(Ok(v)) => {
                self.breaker.ok();
                Ok(v)
            }
            Ok(Err(e)) => {
                let e = unavailable(e);
                self.breaker.trip(&e.to_string());
                Err(e)
            }
            Err(_) => {
                self.breaker.trip("timed out");
                Err(CacheError::Unavailable(format!(
                    "Redis did not answer within {} ms",
                    DEADLINE.as_millis()
                )))
            }
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}{}", self.prefix, k)
    }
}

/// Subscribe to the bus channel, retrying each second until it works; after that the manager
/// resubscribes by itself on every reconnect. Then a heartbeat: an idle instance's connection
/// is checked every [`OPEN_FOR`], so a Redis that went away and came back is reconnected (and
/// the bus resubscribed) within about a second even when nothing else calls it.
async fn keep_subscribed(cm: ConnectionManager, channel: String, breaker: Arc<Breaker>) {
    loop {
        let mut c = cm.clone();
        match tokio::time::timeout(DEADLINE, c.subscribe(&channel)).await {
            Ok(Ok(())) => {
                breaker.ok();
                break;
            }
            Ok(Err(e)) => breaker.trip(&e.to_string()),
            Err(_) => breaker.trip("subscribe timed out"),
        }
        tokio::time::sleep(OPEN_FOR).await;
    }
    loop {
        tokio::time::sleep(OPEN_FOR).await;
        if breaker.is_open() {
            continue;
        }
        let mut c = cm.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(DEADLINE, ping.query_async::<String>(&mut c)).await {
            Ok(Ok(_)) => breaker.ok(),
            Ok(Err(e)) => breaker.trip(&e.to_string()),
            Err(_) => breaker.trip("heartbeat timed out"),
        }
    }
}

#[async_trait::async_trait]
impl CacheBackend for RedisCache {
    async fn get(&self, key: &str) -> CacheResult<Option<String>> {
        let mut cm = self.cm.clone();
        let k = self.key(key);
        self.call(async move { cm.get(k).await }).await
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> CacheResult<()> {
        let mut cm = self.cm.clone();
        let k = self.key(key);
        self.call(async move {
            match ttl {
                Some(t) => {
                    cm.pset_ex::<_, _, ()>(k, value, t.as_millis().max(1) as u64)
                        .await
                }
                None => cm.set::<_, _, ()>(k, value).await,
            }
        })
        .await
    }

    async fn del(&self, key: &str) -> CacheResult<()> {
        let mut cm = self.cm.clone();
        let k = self.key(key);
        self.call(async move { cm.del::<_, ()>(k).await }).await
    }

    async fn take(&self, key: &str) -> CacheResult<Option<String>> {
        let mut cm = self.cm.clone();
        let k = self.key(key);
        self.call(async move { cm.get_del(k).await }).await
    }

    async fn incr(&self, key: &str, ttl: Duration) -> CacheResult<(i64, Duration)> {
        let mut cm = self.cm.clone();
        let mut inv = self.incr.key(self.key(key));
        inv.arg(ttl.as_millis().max(1) as u64);
        let (n, left): (i64, i64) = self
            .call(async move { inv.invoke_async(&mut cm).await })
            .await?;
        Ok((n, Duration::from_millis(left.max(0) as u64)))
    }

    async fn publish(&self, msg: &BusMessage) -> CacheResult<()> {
        let mut cm = self.cm.clone();
        let payload =
            serde_json::to_string(msg).map_err(|e| CacheError::Unavailable(e.to_string()))?;
        let channel = self.channel.clone();
        self.call(async move { cm.publish::<_, _, ()>(channel, payload).await })
            .await
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.bus.subscribe()
    }

    async fn ping(&self) -> CacheResult<()> {
        let mut cm = self.cm.clone();
        self.call(async move { redis::cmd("PING").query_async::<String>(&mut cm).await })
            .await
            .map(|_| ())
    }

    fn bus_subscribed_at(&self) -> Option<i64> {
        Some(self.subscribed_at.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
