//! Redis cache + bus: one multiplexed `ConnectionManager` (auto-reconnect) for commands, and
//! RESP3 push messages on the same manager for the bus, resubscribed automatically after a
//! reconnect. Every key and the bus channel carry the configured prefix.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushInfo, PushKind, Value};
use tokio::sync::broadcast;

use super::{BusMessage, CacheBackend, CacheError, CacheResult};

pub struct RedisCache {
    cm: ConnectionManager,
    prefix: String,
    channel: String,
    bus: broadcast::Sender<BusMessage>,
    incr: redis::Script,
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
        let push = move |info: PushInfo| -> Result<(), ()> {
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
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let mut cm = ConnectionManager::new_with_config(client, cfg)
            .await
            .context("connecting to Redis")?;
        let channel = format!("{prefix}bus");
        cm.subscribe(&channel)
            .await
            .context("subscribing to the bus channel")?;
        Ok(Self {
            cm,
            prefix: prefix.to_string(),
            channel,
            bus,
            incr: redis::Script::new(INCR_LUA),
        })
    }

    fn key(&self, k: &str) -> String {
        format!("{}{}", self.prefix, k)
    }
}

#[async_trait::async_trait]
impl CacheBackend for RedisCache {
    async fn get(&self, key: &str) -> CacheResult<Option<String>> {
        let mut cm = self.cm.clone();
        cm.get(self.key(key)).await.map_err(unavailable)
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> CacheResult<()> {
        let mut cm = self.cm.clone();
        let k = self.key(key);
        match ttl {
            Some(t) => cm
                .pset_ex::<_, _, ()>(k, value, t.as_millis().max(1) as u64)
                .await
                .map_err(unavailable),
            None => cm.set::<_, _, ()>(k, value).await.map_err(unavailable),
        }
    }

    async fn del(&self, key: &str) -> CacheResult<()> {
        let mut cm = self.cm.clone();
        cm.del::<_, ()>(self.key(key)).await.map_err(unavailable)
    }

    async fn take(&self, key: &str) -> CacheResult<Option<String>> {
        let mut cm = self.cm.clone();
        cm.get_del(self.key(key)).await.map_err(unavailable)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> CacheResult<(i64, Duration)> {
        let mut cm = self.cm.clone();
        let (n, left): (i64, i64) = self
            .incr
            .key(self.key(key))
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut cm)
            .await
            .map_err(unavailable)?;
        Ok((n, Duration::from_millis(left.max(0) as u64)))
    }

    async fn publish(&self, msg: &BusMessage) -> CacheResult<()> {
        let mut cm = self.cm.clone();
        let payload =
            serde_json::to_string(msg).map_err(|e| CacheError::Unavailable(e.to_string()))?;
        cm.publish::<_, _, ()>(&self.channel, payload)
            .await
            .map_err(unavailable)
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.bus.subscribe()
    }

    async fn ping(&self) -> CacheResult<()> {
        let mut cm = self.cm.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut cm)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
