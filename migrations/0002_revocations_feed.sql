-- The revocations feed: every instance reads the sessions revoked since its last read, each
-- revalidation interval. The partial index keeps that O(revocations), not O(sessions).
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
