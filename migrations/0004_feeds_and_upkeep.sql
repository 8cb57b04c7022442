-- Revalidation also reads the subscriptions changed since its last pass (a plan change whose
-- bus message was lost); the janitor prunes by time in bounded batches and takes a lease on
-- daily jobs so one instance of many runs them.
CREATE INDEX subscriptions_updated ON subscriptions (updated_at);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX stripe_events_received ON stripe_events (received_at);
CREATE TABLE job_leases (
    job    TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
CREATE INDEX email_log_created ON email_log (created_at);
CREATE INDEX magic_links_expires ON magic_links (expires_at);
