//! Logging: `tracing` to stderr, pretty or JSON, filtered by the configured level
//! (`RUST_LOG` overrides it). JSON lines carry the event's fields at the top level beside
//! `timestamp`, `level`, `target` and `message`; each request has one line from target
//! `reauth::access` (request id, project, route, method, status, duration, outcome).

use reauth_runtime::config::LogFormat;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub fn init(level: &str, format: LogFormat) {
    init_with_writer(level, format, std::io::stderr);
}

/// The same subscriber writing elsewhere (the log-scanning tests capture it).
pub fn init_with_writer<W>(level: &str, format: LogFormat, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
