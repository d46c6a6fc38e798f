-- The job store's SQLite schema 3 as stembot 9e5f448 left a new file (service/store_sqlite.py).
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE keys (
    secret_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_key TEXT NOT NULL,
    default_content TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE repos (
    content_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    callback TEXT NOT NULL,
    state INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    outputs TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    started_at INTEGER NOT NULL DEFAULT 0,
    completed_at INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    callback_state TEXT NOT NULL DEFAULT 'NONE',
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_error TEXT NOT NULL DEFAULT ''
, deleted_at INTEGER NOT NULL DEFAULT 0, expired_at INTEGER NOT NULL DEFAULT 0, purging INTEGER NOT NULL DEFAULT 0, lease_node TEXT NOT NULL DEFAULT '', lease_until INTEGER NOT NULL DEFAULT 0, progress INTEGER NOT NULL DEFAULT 0, publishing INTEGER NOT NULL DEFAULT 0, callback_due INTEGER NOT NULL DEFAULT 0, callback_lease INTEGER NOT NULL DEFAULT 0);
CREATE TABLE gone (
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (content_id, path)
);
CREATE INDEX jobs_by_custom_id ON jobs (owner, custom_id, seq);
CREATE INDEX jobs_by_state ON jobs (state, seq);
CREATE INDEX jobs_by_owner_state ON jobs (owner, state);
CREATE TABLE mixes (
    job_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    name TEXT NOT NULL,
    gains TEXT NOT NULL,
    format TEXT NOT NULL,
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, content_id, path)
);
CREATE INDEX mixes_by_digest ON mixes (job_id, digest);
CREATE INDEX jobs_by_end ON jobs (expired_at, deleted_at, completed_at);
CREATE INDEX jobs_purging ON jobs (purging);
CREATE INDEX jobs_by_lease ON jobs (state, lease_until);
CREATE INDEX jobs_publishing ON jobs (publishing);
CREATE INDEX jobs_callbacks ON jobs (callback_state, callback_due);
INSERT INTO meta VALUES ('schema', '3');
