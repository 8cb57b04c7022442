-- reauth schema, portable between PostgreSQL and SQLite:
-- ids are TEXT with a prefix (usr_, prj_, ...), times are BIGINT milliseconds since the epoch,
-- flags are BIGINT 0/1, structured values are TEXT holding JSON, secrets are TEXT sealed with
-- AES-256-GCM under the master key ("v1:<base64>").

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    key_hash     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE projects (
    id                        TEXT PRIMARY KEY,
    org_id                    TEXT REFERENCES organizations(id),
    slug                      TEXT NOT NULL UNIQUE,
    name                      TEXT NOT NULL,
    custom_domain             TEXT UNIQUE,
    domain_token              TEXT,
    domain_verified_at        BIGINT,
    dev_hosts                 TEXT NOT NULL DEFAULT '[]',
    allowed_origins           TEXT NOT NULL DEFAULT '[]',
    logo_url                  TEXT,
    accent_color              TEXT,
    email_from                TEXT,
    google_client_id          TEXT,
    magic_link_ttl_secs       BIGINT NOT NULL DEFAULT 900,
    session_ttl_secs          BIGINT NOT NULL DEFAULT 2592000,
    plans                     TEXT NOT NULL DEFAULT '[]',
    google_client_secret_enc  TEXT,
    resend_api_key_enc        TEXT,
    stripe_secret_key_enc     TEXT,
    stripe_webhook_secret_enc TEXT,
    version                   BIGINT NOT NULL DEFAULT 1,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL
);

CREATE TABLE end_users (
    id                 TEXT PRIMARY KEY,
    project_id         TEXT NOT NULL REFERENCES projects(id),
    email              TEXT NOT NULL,
    email_verified     BIGINT NOT NULL DEFAULT 0,
    name               TEXT,
    avatar_url         TEXT,
    google_sub         TEXT,
    stripe_customer_id TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    last_login_at      BIGINT,
    UNIQUE (project_id, email)
);
CREATE UNIQUE INDEX end_users_google_sub ON end_users (project_id, google_sub) WHERE google_sub IS NOT NULL;
CREATE UNIQUE INDEX end_users_stripe_customer ON end_users (project_id, stripe_customer_id) WHERE stripe_customer_id IS NOT NULL;

CREATE TABLE subscriptions (
    id                   TEXT PRIMARY KEY,
    project_id           TEXT NOT NULL REFERENCES projects(id),
    user_id              TEXT REFERENCES end_users(id),
    customer_id          TEXT NOT NULL,
    price_id             TEXT,
    status               TEXT NOT NULL,
    current_period_end   BIGINT,
    cancel_at_period_end BIGINT NOT NULL DEFAULT 0,
    source_created       BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX subscriptions_user ON subscriptions (project_id, user_id);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    project_id   TEXT NOT NULL REFERENCES projects(id),
    user_id      TEXT NOT NULL REFERENCES end_users(id),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    revoked_at   BIGINT,
    user_agent   TEXT,
    ip           TEXT
);
CREATE INDEX sessions_user ON sessions (project_id, user_id);

CREATE TABLE magic_links (
    token_hash  TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    email       TEXT NOT NULL,
    redirect_to TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE oauth_states (
    state_hash    TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id),
    browser_hash  TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    redirect_to   TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE email_log (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    to_email    TEXT NOT NULL,
    from_email  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    provider_id TEXT,
    error       TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX email_log_project ON email_log (project_id, created_at);

CREATE TABLE stripe_events (
    project_id  TEXT NOT NULL REFERENCES projects(id),
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    created     BIGINT NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT,
    payload     TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, event_id)
);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    project_id  TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL
);
