-- The job store's PostgreSQL schema 4 as stembot bb0e00b made it (service/store_pg.py).
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    secret_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_key TEXT NOT NULL,
    default_content TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS repos (
    content_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    callback TEXT NOT NULL,
    state INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    started_at BIGINT NOT NULL DEFAULT 0,
    completed_at BIGINT NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    callback_state TEXT NOT NULL DEFAULT 'NONE',
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_error TEXT NOT NULL DEFAULT '',
    deleted_at BIGINT NOT NULL DEFAULT 0,
    expired_at BIGINT NOT NULL DEFAULT 0,
    purging INTEGER NOT NULL DEFAULT 0,
    lease_node TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    progress INTEGER NOT NULL DEFAULT 0,
    publishing INTEGER NOT NULL DEFAULT 0,
    callback_due BIGINT NOT NULL DEFAULT 0,
    callback_lease BIGINT NOT NULL DEFAULT 0,
    tenant TEXT NOT NULL DEFAULT ''
);
-- schema 4: a database made by schema 3 gets the tenant column in place
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS tenant TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS jobs_by_tenant_state ON jobs (owner, tenant, state);
CREATE TABLE IF NOT EXISTS gone (
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (content_id, path)
);
CREATE INDEX IF NOT EXISTS gone_by_job ON gone (job_id);
CREATE INDEX IF NOT EXISTS jobs_by_custom_id ON jobs (owner, custom_id, seq);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, seq);
CREATE INDEX IF NOT EXISTS jobs_by_owner_state ON jobs (owner, state);
CREATE INDEX IF NOT EXISTS jobs_by_end ON jobs (expired_at, deleted_at, completed_at);
CREATE INDEX IF NOT EXISTS jobs_purging ON jobs (purging);
CREATE INDEX IF NOT EXISTS jobs_by_lease ON jobs (state, lease_until);
CREATE INDEX IF NOT EXISTS jobs_publishing ON jobs (publishing);
CREATE INDEX IF NOT EXISTS jobs_callbacks ON jobs (callback_state, callback_due);
CREATE TABLE IF NOT EXISTS mixes (
    job_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    gains TEXT NOT NULL,
    format TEXT NOT NULL,
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, content_id, path)
);
CREATE INDEX IF NOT EXISTS mixes_by_digest ON mixes (job_id, digest);
-- one-click sign-in links (`stembot up` on a fresh data folder): the token's SHA-256 only
CREATE TABLE IF NOT EXISTS sign_ins (
    digest TEXT PRIMARY KEY,
    secret_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT NOT NULL DEFAULT 0
);
INSERT INTO meta VALUES ('schema', '4');
