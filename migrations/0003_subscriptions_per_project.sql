-- Subscriptions keyed per project: one Stripe account may be connected to several projects,
-- and each project keeps its own copy of the account's subscriptions (0001 keyed them by the
-- Stripe id alone, so the first endpoint to hear of one owned it for every project).
-- Portable between PostgreSQL and SQLite: SQLite cannot change a primary key, so the table is
-- rebuilt (create, copy every row, drop, rename) and its index made again.

CREATE TABLE subscriptions_v3 (
    id                   TEXT NOT NULL,
    project_id           TEXT NOT NULL REFERENCES projects(id),
    user_id              TEXT REFERENCES end_users(id),
    customer_id          TEXT NOT NULL,
    price_id             TEXT,
    status               TEXT NOT NULL,
    current_period_end   BIGINT,
    cancel_at_period_end BIGINT NOT NULL DEFAULT 0,
    source_created       BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    PRIMARY KEY (project_id, id)
);

INSERT INTO subscriptions_v3 (id, project_id, user_id, customer_id, price_id, status,
                              current_period_end, cancel_at_period_end, source_created, updated_at)
SELECT id, project_id, user_id, customer_id, price_id, status,
       current_period_end, cancel_at_period_end, source_created, updated_at
FROM subscriptions;

DROP TABLE subscriptions;
ALTER TABLE subscriptions_v3 RENAME TO subscriptions;
CREATE INDEX subscriptions_user ON subscriptions (project_id, user_id);

-- The ledger names what an event did: 0001's `error` is now `unreadable`.
UPDATE stripe_events SET status = 'unreadable' WHERE status = 'error';
