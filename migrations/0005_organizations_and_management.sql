-- The customer layer: organizations with members and API keys, the Management API's
-- idempotency records, richer audit entries, end-user metadata and bans, and project domains.

ALTER TABLE organizations ADD COLUMN slug TEXT;
CREATE UNIQUE INDEX organizations_slug ON organizations (slug);

CREATE TABLE org_members (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations(id),
    email      TEXT NOT NULL,
    role       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, email)
);

-- `prefix` (0001) is the key's public lookup id; scopes are a JSON list.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '["*:write"]';
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE INDEX projects_org ON projects (org_id, id);

-- Idempotency-Key on POST (Stripe's semantics): the first complete answer for (org, key) is
-- replayed for 24 hours to a request with the same fingerprint.
CREATE TABLE idempotency_keys (
    org_id       TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       BIGINT NOT NULL,
    response     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

ALTER TABLE audit_log ADD COLUMN org_id TEXT;
ALTER TABLE audit_log ADD COLUMN target TEXT;
ALTER TABLE audit_log ADD COLUMN ip TEXT;
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
CREATE INDEX audit_log_org ON audit_log (org_id, id);
CREATE INDEX audit_log_project ON audit_log (project_id, id);
CREATE INDEX audit_log_created ON audit_log (created_at);

ALTER TABLE end_users ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE end_users ADD COLUMN banned_at BIGINT;
ALTER TABLE end_users ADD COLUMN deleted_at BIGINT;
CREATE INDEX end_users_project ON end_users (project_id, id);
CREATE INDEX end_users_created ON end_users (project_id, created_at);

CREATE TABLE domains (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    hostname    TEXT NOT NULL UNIQUE,
    is_primary  BIGINT NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,
    token       TEXT NOT NULL,
    reason      TEXT,
    verified_at BIGINT,
    checked_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX domains_project ON domains (project_id, id);

-- Cursor pagination orders by the sortable id within a project.
CREATE INDEX sessions_project ON sessions (project_id, id);
CREATE INDEX email_log_project_id ON email_log (project_id, id);
CREATE INDEX stripe_events_project ON stripe_events (project_id, received_at, event_id);
