//! Shared test helpers: one Prometheus recorder per test binary, polling with a deadline.

#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub fn recorder() -> &'static PrometheusHandle {
    static H: OnceLock<PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        let rec = PrometheusBuilder::new().build_recorder();
        let handle = rec.handle();
        metrics::set_global_recorder(rec).expect("recorder installed once");
        handle
    })
}

/// The value of a counter/gauge line `name{kind="kind"} value` in the Prometheus text.
pub fn metric(name: &str, kind: &str) -> f64 {
    let text = recorder().render();
    let needle = format!("{name}{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Poll `cond` until it holds or `deadline` passes.
pub async fn eventually(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
