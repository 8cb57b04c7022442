//! What operators see per tenant and per process: counters kept as plain atomics on each
//! project's snapshot (the hot path adds one relaxed increment, no label lookup), rendered as
//! Prometheus series with a bounded `project` label at scrape time, and the process's own
//! background jobs (bus bridge, janitor) for `/ops`.
//!
//! The `project` label is the project's slug, for at most `REAUTH_METRICS_PROJECTS` projects:
//! the busiest ones when a slot frees, kept for the process's life once given (a counter
//! series must not jump between labels); every other project is summed into
//! `project="_other"`. Never a user id.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// How a sign-in was attempted (`method` label).
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Email = 0,
    Google = 1,
}

const METHODS: [&str; 2] = ["email", "google"];
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// A Stripe delivery's fate (`outcome` label): the ledger's outcomes, plus `rejected` (bad
/// signature or body: 400, nothing stored) and `failed` (not recorded: 5xx, Stripe retries).
pub const WEBHOOK_OUTCOMES: [&str; 7] = [
    "applied",
    "stale",
    "duplicate",
    "ignored",
    "unreadable",
    "rejected",
    "failed",
];

/// Upper bounds (seconds) of the webhook lag histogram: Stripe's `created` is whole seconds.
const LAG_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// One project's counters. Shared by every snapshot of the project (and across its actor's
/// restarts) through the [`Stats`] registry.
#[derive(Debug, Default)]
pub struct ProjectStats {
    requests: [AtomicU64; 4],
    signins: [[AtomicU64; 2]; 2],
    magic_links: [AtomicU64; 2],
    webhooks: [AtomicU64; 7],
    lag_buckets: [AtomicU64; 12],
    lag_count: AtomicU64,
    lag_sum_ms: AtomicU64,
    sessions: AtomicI64,
    mailbox: AtomicI64,
    messages: AtomicU64,
}

impl ProjectStats {
    /// A response with this status was sent for the project.
    #[inline]
    pub fn request(&self, status: u16) {
        if let Some(c) = (status / 100)
            .checked_sub(2)
            .and_then(|i| self.requests.get(usize::from(i)))
        {
            c.fetch_add(1, Relaxed);
        }
    }

    pub fn sign_in(&self, method: Method, ok: bool) {
        self.signins[method as usize][usize::from(!ok)].fetch_add(1, Relaxed);
    }

    pub fn magic_link(&self, sent: bool) {
        self.magic_links[usize::from(!sent)].fetch_add(1, Relaxed);
    }

    /// A webhook delivery's outcome; `lag_ms` (event `created` to applied) for applied ones.
    pub fn webhook(&self, outcome: &str, lag_ms: Option<i64>) {
        if let Some(i) = WEBHOOK_OUTCOMES.iter().position(|o| *o == outcome) {
            self.webhooks[i].fetch_add(1, Relaxed);
        }
        if let Some(ms) = lag_ms {
            let ms = ms.max(0) as u64;
            let secs = ms as f64 / 1000.0;
            if let Some(i) = LAG_BUCKETS.iter().position(|b| secs <= *b) {
                self.lag_buckets[i].fetch_add(1, Relaxed);
            }
            self.lag_count.fetch_add(1, Relaxed);
            self.lag_sum_ms.fetch_add(ms, Relaxed);
        }
    }

    pub fn session_started(&self) {
        self.sessions.fetch_add(1, Relaxed);
    }

    pub fn session_stopped(&self) {
        self.sessions.fetch_sub(1, Relaxed);
    }

    /// A message was queued for the project's actor.
    pub fn enqueued(&self) {
        self.mailbox.fetch_add(1, Relaxed);
    }

    /// The project's actor picked a message up.
    pub fn handled(&self) {
        self.mailbox.fetch_sub(1, Relaxed);
        self.messages.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let load = |a: &AtomicU64| a.load(Relaxed);
        Snapshot {
            requests: self.requests.each_ref().map(load),
            signins: self.signins.each_ref().map(|m| m.each_ref().map(load)),
            magic_links: self.magic_links.each_ref().map(load),
            webhooks: self.webhooks.each_ref().map(load),
            lag_buckets: self.lag_buckets.each_ref().map(load),
            lag_count: load(&self.lag_count),
            lag_sum_ms: load(&self.lag_sum_ms),
            sessions: self.sessions.load(Relaxed).max(0) as u64,
            mailbox: self.mailbox.load(Relaxed).max(0) as u64,
            messages: load(&self.messages),
        }
    }
}

/// A point-in-time copy of a project's counters (summable, for `_other`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub requests: [u64; 4],
    pub signins: [[u64; 2]; 2],
    pub magic_links: [u64; 2],
    pub webhooks: [u64; 7],
    pub lag_buckets: [u64; 12],
    pub lag_count: u64,
    pub lag_sum_ms: u64,
    pub sessions: u64,
    pub mailbox: u64,
    pub messages: u64,
}

impl Snapshot {
    pub fn requests_total(&self) -> u64 {
        self.requests.iter().sum()
    }

    pub fn errors(&self) -> u64 {
        self.requests[3]
    }

    pub fn webhooks_total(&self) -> u64 {
        self.webhooks.iter().sum()
    }

    /// Mean webhook lag in seconds, when any was applied.
    pub fn mean_lag_secs(&self) -> Option<f64> {
        (self.lag_count > 0).then(|| self.lag_sum_ms as f64 / 1000.0 / self.lag_count as f64)
    }

    fn add(&mut self, o: &Snapshot) {
        fn sum<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        sum(&mut self.requests, &o.requests);
        for (a, b) in self.signins.iter_mut().zip(&o.signins) {
            sum(a, b);
        }
        sum(&mut self.magic_links, &o.magic_links);
        sum(&mut self.webhooks, &o.webhooks);
        sum(&mut self.lag_buckets, &o.lag_buckets);
        self.lag_count += o.lag_count;
        self.lag_sum_ms += o.lag_sum_ms;
        self.sessions += o.sessions;
        self.mailbox += o.mailbox;
        self.messages += o.messages;
    }
}

/// Every project's counters by project id, and which slugs have a label of their own.
#[derive(Default)]
pub struct Stats {
    by_id: dashmap::DashMap<String, std::sync::Arc<ProjectStats>>,
    labelled: Mutex<HashSet<String>>,
    /// The sample rates are measured from: when, and each project's counters then.
    sample: Mutex<Option<(i64, std::collections::HashMap<String, Snapshot>)>>,
}

/// Per-second rates of one project over the sampling window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rate {
    pub requests: f64,
    pub errors: f64,
    pub messages: f64,
}

/// Looks closer together than this reuse the previous sample's window.
const MIN_WINDOW_MS: i64 = 1_000;

/// One project as the scrape sees it.
pub struct Row<'a> {
    pub id: &'a str,
    pub slug: &'a str,
    /// Its actor is running.
    pub up: bool,
    pub restarts: u64,
}

impl Stats {
    /// The project's counters (created on first use; kept across reloads and restarts).
    pub fn of(&self, project_id: &str) -> std::sync::Arc<ProjectStats> {
        if let Some(s) = self.by_id.get(project_id) {
            return s.value().clone();
        }
        self.by_id
            .entry(project_id.to_string())
            .or_default()
            .value()
            .clone()
    }

    /// The project's counters if it has any (never creates them).
    pub fn get(&self, project_id: &str) -> Option<std::sync::Arc<ProjectStats>> {
        self.by_id.get(project_id).map(|s| s.value().clone())
    }

    pub fn remove(&self, project_id: &str) {
        self.by_id.remove(project_id);
    }

    /// Rates since the last sample at least a second old (the console's refresh interval, in
    /// practice), and the window's length in seconds; `None` on the first look. The sample
    /// then moves to now.
    pub fn rates(
        &self,
        ids: &[&str],
        now: i64,
    ) -> (Option<f64>, std::collections::HashMap<String, Rate>) {
        let current: std::collections::HashMap<String, Snapshot> = ids
            .iter()
            .map(|id| (id.to_string(), self.of(id).snapshot()))
            .collect();
        let Ok(mut sample) = self.sample.lock() else {
            return (None, Default::default());
        };
        let Some((at, before)) = sample.as_ref() else {
            *sample = Some((now, current));
            return (None, Default::default());
        };
        if now - at < MIN_WINDOW_MS {
            return (None, Default::default());
        }
        let secs = (now - at) as f64 / 1000.0;
        let per_sec = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
        let rates = current
            .iter()
            .filter_map(|(id, c)| {
                let b = before.get(id)?;
                Some((
                    id.clone(),
                    Rate {
                        requests: per_sec(c.requests_total(), b.requests_total()),
                        errors: per_sec(c.errors(), b.errors()),
                        messages: per_sec(c.messages, b.messages),
                    },
                ))
            })
            .collect();
        *sample = Some((now, current));
        (Some(secs), rates)
    }

    /// The per-project series in Prometheus' text format, `limit` projects labelled by slug and
    /// the rest summed as `_other`.
    pub fn render(&self, rows: &[Row<'_>], limit: usize) -> String {
        let snaps: Vec<(&Row<'_>, Snapshot)> =
            rows.iter().map(|r| (r, self.of(r.id).snapshot())).collect();
        let labelled = self.labels(&snaps, limit);
        // slug -> (up, restarts, counters); BTreeMap for a stable order.
        let mut series: BTreeMap<String, (Option<bool>, u64, Snapshot)> = BTreeMap::new();
        for (row, snap) in &snaps {
            if labelled.contains(row.slug) {
                series.insert(row.slug.to_string(), (Some(row.up), row.restarts, *snap));
            } else {
                let e =
                    series
                        .entry("_other".to_string())
                        .or_insert((None, 0, Snapshot::default()));
                e.1 += row.restarts;
                e.2.add(snap);
            }
        }
        let mut out = String::with_capacity(4096 + series.len() * 2048);
        family(
            &mut out,
            "reauth_project_up",
            "gauge",
            "1 when the project's actor is running.",
        );
        for (slug, (up, _, _)) in &series {
            if let Some(up) = up {
                let _ = writeln!(
                    out,
                    "reauth_project_up{{project=\"{}\"}} {}",
                    esc(slug),
                    u8::from(*up)
                );
            }
        }
        family(
            &mut out,
            "reauth_project_restarts_total",
            "counter",
            "Restarts of the project's actor after a failure.",
        );
        for (slug, (_, restarts, _)) in &series {
            let _ = writeln!(
                out,
                "reauth_project_restarts_total{{project=\"{}\"}} {restarts}",
                esc(slug)
            );
        }
        family(
            &mut out,
            "reauth_project_requests_total",
            "counter",
            "HTTP responses on the project's hosts by status class.",
        );
        for (slug, (_, _, s)) in &series {
            for (class, n) in CLASSES.iter().zip(s.requests) {
                let _ = writeln!(
                    out,
                    "reauth_project_requests_total{{project=\"{}\",class=\"{class}\"}} {n}",
                    esc(slug)
                );
            }
        }
        family(
            &mut out,
            "reauth_signins_total",
            "counter",
            "Sign-in attempts by method and outcome.",
        );
        for (slug, (_, _, s)) in &series {
            for (method, m) in METHODS.iter().zip(s.signins) {
                for (outcome, n) in ["success", "failure"].iter().zip(m) {
                    let _ = writeln!(
                        out,
                        "reauth_signins_total{{project=\"{}\",method=\"{method}\",outcome=\"{outcome}\"}} {n}",
                        esc(slug)
                    );
                }
            }
        }
        family(
            &mut out,
            "reauth_magic_links_total",
            "counter",
            "Magic-link emails by outcome.",
        );
        for (slug, (_, _, s)) in &series {
            for (outcome, n) in ["sent", "failed"].iter().zip(s.magic_links) {
                let _ = writeln!(
                    out,
                    "reauth_magic_links_total{{project=\"{}\",outcome=\"{outcome}\"}} {n}",
                    esc(slug)
                );
            }
        }
        family(
            &mut out,
            "reauth_webhook_events_total",
            "counter",
            "Stripe webhook deliveries by outcome.",
        );
        for (slug, (_, _, s)) in &series {
            for (outcome, n) in WEBHOOK_OUTCOMES.iter().zip(s.webhooks) {
                let _ = writeln!(
                    out,
                    "reauth_webhook_events_total{{project=\"{}\",outcome=\"{outcome}\"}} {n}",
                    esc(slug)
                );
            }
        }
        family(
            &mut out,
            "reauth_webhook_lag_seconds",
            "histogram",
            "From a Stripe event's creation to its being applied.",
        );
        for (slug, (_, _, s)) in &series {
            let slug = esc(slug);
            let mut cumulative = 0;
            for (le, n) in LAG_BUCKETS.iter().zip(s.lag_buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "reauth_webhook_lag_seconds_bucket{{project=\"{slug}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "reauth_webhook_lag_seconds_bucket{{project=\"{slug}\",le=\"+Inf\"}} {}",
                s.lag_count
            );
            let _ = writeln!(
                out,
                "reauth_webhook_lag_seconds_sum{{project=\"{slug}\"}} {}",
                s.lag_sum_ms as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "reauth_webhook_lag_seconds_count{{project=\"{slug}\"}} {}",
                s.lag_count
            );
        }
        family(
            &mut out,
            "reauth_project_sessions_resident",
            "gauge",
            "Session actors resident in memory for the project.",
        );
        for (slug, (_, _, s)) in &series {
            let _ = writeln!(
                out,
                "reauth_project_sessions_resident{{project=\"{}\"}} {}",
                esc(slug),
                s.sessions
            );
        }
        out
    }

    /// The slugs with a label of their own: those given one before (while their project
    /// exists), then the busiest unlabelled ones while there is room.
    fn labels(&self, snaps: &[(&Row<'_>, Snapshot)], limit: usize) -> HashSet<String> {
        let Ok(mut labelled) = self.labelled.lock() else {
            return HashSet::new();
        };
        let exists: HashSet<&str> = snaps.iter().map(|(r, _)| r.slug).collect();
        labelled.retain(|s| exists.contains(s.as_str()));
        if labelled.len() < limit {
            let mut rest: Vec<&(&Row<'_>, Snapshot)> = snaps
                .iter()
                .filter(|(r, _)| !labelled.contains(r.slug) && r.slug != "_other")
                .collect();
            rest.sort_by(|a, b| {
                b.1.requests_total()
                    .cmp(&a.1.requests_total())
                    .then_with(|| a.0.slug.cmp(b.0.slug))
            });
            let room = limit - labelled.len();
            for (r, _) in rest.into_iter().take(room) {
                labelled.insert(r.slug.to_string());
            }
        }
        labelled.clone()
    }
}

/// Series that only move on a fault, registered at zero so that dashboards and alert rules
/// see them (a missing series is not a zero to PromQL).
pub fn register_metrics() {
    for bucket in [
        "ml_ip",
        "ml_email",
        "verify_ip",
        "google_ip",
        "callback_ip",
        "billing_user",
    ] {
        metrics::counter!("reauth_ratelimit_fail_open_total", "bucket" => bucket).increment(0);
    }
    metrics::counter!("reauth_cache_failures_total").increment(0);
    metrics::counter!("reauth_bus_gaps_total").increment(0);
    for kind in ["project", "tenants", "root", "session"] {
        metrics::counter!("reauth_actor_escalations_total", "kind" => kind).increment(0);
        metrics::counter!("reauth_actor_restarts_total", "kind" => kind).increment(0);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped as the text format wants (slugs are `[a-z0-9-]`, but be safe).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The process's background jobs as operators see them.
#[derive(Default)]
pub struct Status {
    /// The bridge has seen a subscription already: the next one is a resubscription (when the
    /// subscription happened is the cache's to say: `Cache::bus_subscribed_at`).
    bus_seen_subscribe: std::sync::atomic::AtomicBool,
    /// Gaps: the bridge lagged or resubscribed, so messages may have been lost (the
    /// revocations feed covers them).
    pub bus_gaps: AtomicU64,
    pub bus_last_gap_at: AtomicI64,
    /// The last revalidation pass (ms) and how far behind the revocations feed it left this
    /// instance (ms; 0 when the pass read it).
    pub revalidated_at: AtomicI64,
    pub revalidation_lag_ms: AtomicI64,
    janitor: Mutex<BTreeMap<&'static str, JobRun>>,
}

/// The last run of a janitor job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRun {
    pub at: i64,
    pub ok: bool,
    pub detail: String,
}

impl Status {
    pub fn bus_subscribed(&self, now: i64) {
        if self.bus_seen_subscribe.swap(true, Relaxed) {
            self.bus_gap(now);
        }
    }

    pub fn revalidated(&self, at: i64, behind_ms: i64) {
        self.revalidated_at.store(at, Relaxed);
        self.revalidation_lag_ms.store(behind_ms, Relaxed);
    }

    pub fn bus_gap(&self, now: i64) {
        self.bus_gaps.fetch_add(1, Relaxed);
        self.bus_last_gap_at.store(now, Relaxed);
        metrics::counter!("reauth_bus_gaps_total").increment(1);
    }

    pub fn job_ran(&self, job: &'static str, ok: bool, detail: String, now: i64) {
        if let Ok(mut j) = self.janitor.lock() {
            j.insert(
                job,
                JobRun {
                    at: now,
                    ok,
                    detail,
                },
            );
        }
    }

    pub fn jobs(&self) -> Vec<(&'static str, JobRun)> {
        self.janitor
            .lock()
            .map(|j| j.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows<'a>(ids: &'a [(&'a str, &'a str)]) -> Vec<Row<'a>> {
        ids.iter()
            .map(|(id, slug)| Row {
                id,
                slug,
                up: true,
                restarts: 0,
            })
            .collect()
    }

    #[test]
    fn the_busiest_projects_get_labels_and_the_rest_are_summed_as_other() {
        let stats = Stats::default();
        let ids = [("p1", "quiet"), ("p2", "busy"), ("p3", "busier")];
        for _ in 0..5 {
            stats.of("p2").request(200);
        }
        for _ in 0..9 {
            stats.of("p3").request(503);
        }
        stats.of("p1").request(404);
        stats.of("p1").sign_in(Method::Google, false);
        let text = stats.render(&rows(&ids), 2);
        assert!(text.contains("reauth_project_requests_total{project=\"busier\",class=\"5xx\"} 9"));
        assert!(text.contains("reauth_project_requests_total{project=\"busy\",class=\"2xx\"} 5"));
        assert!(text.contains("reauth_project_requests_total{project=\"_other\",class=\"4xx\"} 1"));
        assert!(text.contains(
            "reauth_signins_total{project=\"_other\",method=\"google\",outcome=\"failure\"} 1"
        ));
        assert!(!text.contains("project=\"quiet\""), "{text}");
        // A label once given stays, even when another project becomes busier.
        for _ in 0..100 {
            stats.of("p1").request(200);
        }
        let text = stats.render(&rows(&ids), 2);
        assert!(text.contains("project=\"busy\""));
        assert!(!text.contains("project=\"quiet\""));
    }

    #[test]
    fn webhook_lag_is_a_cumulative_histogram() {
        let stats = Stats::default();
        let s = stats.of("p1");
        s.webhook("applied", Some(400));
        s.webhook("applied", Some(7_000));
        s.webhook("rejected", None);
        let text = stats.render(&rows(&[("p1", "one")]), 50);
        assert!(text.contains("reauth_webhook_lag_seconds_bucket{project=\"one\",le=\"0.5\"} 1"));
        assert!(text.contains("reauth_webhook_lag_seconds_bucket{project=\"one\",le=\"5\"} 1"));
        assert!(text.contains("reauth_webhook_lag_seconds_bucket{project=\"one\",le=\"10\"} 2"));
        assert!(text.contains("reauth_webhook_lag_seconds_bucket{project=\"one\",le=\"+Inf\"} 2"));
        assert!(text.contains("reauth_webhook_lag_seconds_sum{project=\"one\"} 7.4"));
        assert!(
            text.contains("reauth_webhook_events_total{project=\"one\",outcome=\"rejected\"} 1")
        );
    }
}
