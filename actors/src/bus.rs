//! The bus bridge: messages from other instances (Redis pub/sub, or in-process) applied to
//! this instance's actors — revoked sessions, changed users, changed projects.

use reauth_runtime::BusMessage;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::session::Sessions;
use crate::tenants::Tenants;

#[derive(Deserialize)]
struct Revoked {
    user_id: String,
    hash: String,
}

#[derive(Deserialize)]
struct SubscriptionChanged {
    user_id: String,
    subscription: crate::model::SubscriptionRecord,
}

#[derive(Deserialize)]
struct UserChanged {
    user_id: String,
}

#[derive(Deserialize)]
struct ProjectChanged {
    project_id: String,
}

/// Run until the bus closes. Messages this instance published are skipped (already applied).
pub async fn run(
    instance_id: String,
    mut rx: tokio::sync::broadcast::Receiver<BusMessage>,
    sessions: Sessions,
    tenants: Tenants,
) {
    let received = metrics::counter!("reauth_bus_messages_total");
    loop {
        let msg = match rx.recv().await {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    skipped = n,
                    "bus bridge lagged; some remote changes arrive via TTL expiry"
                );
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        if msg.origin == instance_id {
            continue;
        }
        received.increment(1);
        apply(&msg, &sessions, &tenants).await;
    }
}

async fn apply(msg: &BusMessage, sessions: &Sessions, tenants: &Tenants) {
    match msg.topic.as_str() {
        "session.revoked" => {
            if let Ok(r) = serde_json::from_str::<Revoked>(&msg.payload) {
                sessions.apply_revoke(&r.user_id, &r.hash);
            }
        }
        "user.state" => {
            if let Ok(st) = serde_json::from_str::<crate::model::UserState>(&msg.payload) {
                sessions.apply_user_state(st);
            }
        }
        "user.subscription" => {
            if let Ok(s) = serde_json::from_str::<SubscriptionChanged>(&msg.payload) {
                sessions.apply_subscription(&s.user_id, s.subscription);
            }
        }
        "user.changed" => {
            if let Ok(u) = serde_json::from_str::<UserChanged>(&msg.payload) {
                sessions.user_changed_locally(&u.user_id);
            }
        }
        "project.changed" => {
            if let Ok(p) = serde_json::from_str::<ProjectChanged>(&msg.payload)
                && let Err(e) = tenants.reload(&p.project_id).await
            {
                tracing::warn!(project = %p.project_id, error = %e, "project reload from bus failed");
            }
        }
        other => tracing::debug!(topic = other, "unknown bus topic ignored"),
    }
}
