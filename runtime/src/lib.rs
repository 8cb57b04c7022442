//! reauth-runtime: the domain-agnostic foundation — supervision, a keyed actor registry with
//! idle passivation, actor metrics, configuration, storage backends (SQL, cache + bus) and
//! crypto helpers. Nothing here knows what a project or a session is.

pub mod apikey;
pub mod cache;
pub mod config;
pub mod crypto;
pub mod db;
pub mod ids;
pub mod metrics;
pub mod process;
pub mod registry;
pub mod supervisor;

pub use cache::{BusMessage, Cache};
pub use config::Settings;
pub use db::{Backend, Db};

/// Milliseconds since the Unix epoch; the one clock the store uses (portable across SQL backends).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
