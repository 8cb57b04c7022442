//! The cache + bus: key/value with TTL, atomic counters with TTL (rate limits), single-use
//! takes, and publish/subscribe. Two implementations behind one trait: Redis (many instances)
//! and in-process (the embedded default). One conformance suite runs against both.

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

/// A message on the bus. `origin` is the publishing instance, so an instance can skip its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BusMessage {
    pub origin: String,
    pub topic: String,
    pub payload: String,
}

/// The topic of a message the bus itself delivers to local subscribers (never published) when
/// its subscription is made or remade: anything published meanwhile was lost to this instance.
pub const BUS_SUBSCRIBED: &str = "bus.subscribed";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

pub type CacheResult<T> = Result<T, CacheError>;

#[async_trait::async_trait]
pub trait CacheBackend: Send + Sync + 'static {
    async fn get(&self, key: &str) -> CacheResult<Option<String>>;
    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> CacheResult<()>;
    async fn del(&self, key: &str) -> CacheResult<()>;
    /// Get and delete in one atomic step (single-use values).
    async fn take(&self, key: &str) -> CacheResult<Option<String>>;
    /// Increment a counter; the TTL is set when the counter is created and not extended.
    /// Returns the new count and the remaining TTL.
    async fn incr(&self, key: &str, ttl: Duration) -> CacheResult<(i64, Duration)>;
    async fn publish(&self, msg: &BusMessage) -> CacheResult<()>;
    /// Every message published on the bus (by any instance) from now on.
    fn subscribe(&self) -> broadcast::Receiver<BusMessage>;
    async fn ping(&self) -> CacheResult<()>;
    fn kind(&self) -> &'static str;
    /// When the bus last (re)subscribed, in ms (`None`: not subscribed yet, or no such notion —
    /// the in-process bus is always there).
    fn bus_subscribed_at(&self) -> Option<i64> {
        None
    }
}

/// A shared cache handle.
pub type Cache = Arc<dyn CacheBackend>;

/// Connect to Redis when `redis_url` is set, else the in-process cache.
pub async fn connect(redis_url: Option<&str>, prefix: &str) -> anyhow::Result<Cache> {
    Ok(match redis_url {
        Some(url) => Arc::new(redis::RedisCache::connect(url, prefix).await?),
        None => Arc::new(memory::MemoryCache::new()),
    })
}
