-- The developer dashboard: members sign in by email (found in any org they belong to), and
-- each membership records who invited it and when its member last signed in.

CREATE INDEX org_members_email ON org_members (email);
ALTER TABLE org_members ADD COLUMN invited_by TEXT;
ALTER TABLE org_members ADD COLUMN last_sign_in_at BIGINT;
