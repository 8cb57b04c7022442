//! What every actor and task of the domain shares: the stores, settings, the master key, one
//! pooled HTTP client for third parties, email templates and (in dev) the outbox.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use reauth_runtime::crypto::MasterKey;
use reauth_runtime::{Cache, Db, Settings};
use serde::Serialize;

pub struct Services {
    pub db: Db,
    pub cache: Cache,
    pub settings: Settings,
    pub master_key: MasterKey,
    /// Distinguishes this process on the bus, so it skips its own messages.
    pub instance_id: String,
    pub http: reqwest::Client,
    /// Dev mode only: emails that would have been sent.
    pub outbox: Option<Outbox>,
    /// The background jobs' state, for operators.
    pub status: crate::stats::Status,
}

pub type Svc = Arc<Services>;

impl Services {
    pub fn new(
        db: Db,
        cache: Cache,
        settings: Settings,
        master_key: MasterKey,
        dev_outbox: bool,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()?;
        Ok(Self {
            db,
            cache,
            settings,
            master_key,
            instance_id: reauth_runtime::ids::new_id("ins"),
            http,
            outbox: dev_outbox.then(Outbox::default),
            status: Default::default(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxEmail {
    pub project_id: String,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub link: Option<String>,
    pub created_at: String,
}

/// A bounded list of the most recent emails (dev mode's stand-in for a mail provider).
#[derive(Default, Clone)]
pub struct Outbox(Arc<Mutex<VecDeque<OutboxEmail>>>);

const OUTBOX_CAP: usize = 200;

impl Outbox {
    pub fn push(&self, e: OutboxEmail) {
        if let Ok(mut q) = self.0.lock() {
            q.push_front(e);
            q.truncate(OUTBOX_CAP);
        }
    }

    /// Newest first.
    pub fn list(&self) -> Vec<OutboxEmail> {
        self.0
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}
