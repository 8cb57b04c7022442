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
    #[serde(default)]
    revoked_at: Option<i64>,
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
struct KeyRevoked {
    key_id: String,
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
    api_keys: std::sync::Arc<crate::admin::KeyCache>,
) {
    let received = metrics::counter!("reauth_bus_messages_total");
    loop {
        let msg = match rx.recv().await {
            Ok(m) => m,
            Err(RecvError::Lagged(n)) => {
                sessions.svc().status.bus_gap(reauth_runtime::now_ms());
                // A gap: revocations among the skipped messages come from the feed, now.
                tracing::warn!(
                    skipped = n,
                    "bus bridge lagged; revalidating from the revocations feed"
                );
                sessions.revoked().kick();
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        if msg.topic == reauth_runtime::cache::BUS_SUBSCRIBED {
            sessions
                .svc()
                .status
                .bus_subscribed(reauth_runtime::now_ms());
            // (Re)subscribed: whatever was published while we were not is lost to us; the
            // feed has it.
            sessions.revoked().kick();
            continue;
        }
        if msg.origin == instance_id {
            continue;
        }
        received.increment(1);
        if msg.topic == "apikey.revoked" {
            if let Ok(k) = serde_json::from_str::<KeyRevoked>(&msg.payload) {
                api_keys.forget(&k.key_id);
            }
            continue;
        }
        apply(&msg, &sessions, &tenants).await;
    }
}

async fn apply(msg: &BusMessage, sessions: &Sessions, tenants: &Tenants) {
    match msg.topic.as_str() {
        "session.revoked" => {
            if let Ok(r) = serde_json::from_str::<Revoked>(&msg.payload) {
                let at = r.revoked_at.unwrap_or_else(reauth_runtime::now_ms);
                sessions.apply_revoke_at(&r.user_id, &r.hash, at);
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
