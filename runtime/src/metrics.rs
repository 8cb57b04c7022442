//! Actor metrics, all prefixed `reauth_`, labelled by actor kind. Handles are resolved once
//! per kind and cloned into actors, so the hot path never looks a metric up by name.
//!
//! - `reauth_actors_alive{kind}` gauge
//! - `reauth_actor_restarts_total{kind}` counter (a failed actor started again)
//! - `reauth_actor_failures_total{kind}` counter (panics / errors; normal exits excluded)
//! - `reauth_actor_escalations_total{kind}` counter (restart intensity exceeded)
//! - `reauth_actor_passivations_total{kind}` counter (idle actors stopped)
//! - `reauth_actor_messages_total{kind}` counter
//! - `reauth_actor_handle_seconds{kind}` histogram
//! - `reauth_actor_mailbox_depth{kind}` gauge: messages sent through a typed handle and not yet
//!   picked up, summed over the kind (ractor does not expose queue length; this is the proxy).

use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

/// Pre-resolved metric handles for one actor kind.
#[derive(Clone)]
pub struct ActorMetrics {
    pub kind: &'static str,
    pub alive: Gauge,
    pub restarts: Counter,
    pub failures: Counter,
    pub escalations: Counter,
    pub passivations: Counter,
    pub messages: Counter,
    pub handle_seconds: Histogram,
    pub mailbox: Gauge,
}

impl ActorMetrics {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            alive: gauge!("reauth_actors_alive", "kind" => kind),
            restarts: counter!("reauth_actor_restarts_total", "kind" => kind),
            failures: counter!("reauth_actor_failures_total", "kind" => kind),
            escalations: counter!("reauth_actor_escalations_total", "kind" => kind),
            passivations: counter!("reauth_actor_passivations_total", "kind" => kind),
            messages: counter!("reauth_actor_messages_total", "kind" => kind),
            handle_seconds: histogram!("reauth_actor_handle_seconds", "kind" => kind),
            mailbox: gauge!("reauth_actor_mailbox_depth", "kind" => kind),
        }
    }

    /// Call when a message is enqueued through a handle.
    pub fn enqueued(&self) {
        self.mailbox.increment(1.0);
    }

    /// Call at the top of `handle`; the returned guard records the handling time on drop.
    pub fn handling(&self) -> HandleTimer {
        self.mailbox.decrement(1.0);
        self.messages.increment(1);
        HandleTimer {
            histogram: self.handle_seconds.clone(),
            start: Instant::now(),
        }
    }
}

pub struct HandleTimer {
    histogram: Histogram,
    start: Instant,
}

impl Drop for HandleTimer {
    fn drop(&mut self) {
        self.histogram.record(self.start.elapsed().as_secs_f64());
    }
}
