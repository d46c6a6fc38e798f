-- Schema 4: fair share between the tenants of a key.
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_by_tenant_state ON jobs (owner, tenant, state);
-- One-click sign-in links (`stembot up` on a fresh data folder): the token's SHA-256 only.
-- The table arrived during schema 3 without a version bump: it may be there already.
CREATE TABLE IF NOT EXISTS sign_ins (
    digest TEXT PRIMARY KEY,
    secret_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NOT NULL DEFAULT 0
);
