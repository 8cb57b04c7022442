//! In-process cache + bus for the embedded default: a DashMap with lazy expiry and a broadcast
//! channel. Holds for one process only — use Redis for several instances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::broadcast;

use super::{BusMessage, CacheBackend, CacheResult};

struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

pub struct MemoryCache {
    map: Arc<DashMap<String, Entry>>,
    bus: broadcast::Sender<BusMessage>,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCache {
    pub fn new() -> Self {
        let map: Arc<DashMap<String, Entry>> = Arc::new(DashMap::new());
        // Expired entries are dropped on access; a sweep bounds memory for keys never read again.
        let weak = Arc::downgrade(&map);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(30));
                loop {
                    tick.tick().await;
                    let Some(map) = weak.upgrade() else { break };
                    let now = Instant::now();
                    map.retain(|_, e| e.live(now));
                }
            });
        }
        let (bus, _) = broadcast::channel(4096);
        Self { map, bus }
    }
}

#[async_trait::async_trait]
impl CacheBackend for MemoryCache {
    async fn get(&self, key: &str) -> CacheResult<Option<String>> {
        let now = Instant::now();
        Ok(self
            .map
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> CacheResult<()> {
        self.map.insert(
            key.to_string(),
            Entry {
                value: value.to_string(),
                expires: ttl.map(|t| Instant::now() + t),
            },
        );
        Ok(())
    }

    async fn del(&self, key: &str) -> CacheResult<()> {
        self.map.remove(key);
        Ok(())
    }

    async fn take(&self, key: &str) -> CacheResult<Option<String>> {
        let now = Instant::now();
        Ok(self
            .map
            .remove(key)
            .filter(|(_, e)| e.live(now))
            .map(|(_, e)| e.value))
    }

    async fn incr(&self, key: &str, ttl: Duration) -> CacheResult<(i64, Duration)> {
        let now = Instant::now();
        let mut e = self.map.entry(key.to_string()).or_insert_with(|| Entry {
            value: "0".into(),
            expires: Some(now + ttl),
        });
        if !e.live(now) {
            e.value = "0".into();
            e.expires = Some(now + ttl);
        }
        let n = e.value.parse::<i64>().unwrap_or(0) + 1;
        e.value = n.to_string();
        let left = e.expires.map_or(ttl, |x| x.saturating_duration_since(now));
        Ok((n, left))
    }

    async fn publish(&self, msg: &BusMessage) -> CacheResult<()> {
        // No receivers is not an error: nobody is listening yet.
        let _ = self.bus.send(msg.clone());
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.bus.subscribe()
    }

    async fn ping(&self) -> CacheResult<()> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
