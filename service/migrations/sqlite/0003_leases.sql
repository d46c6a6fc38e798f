-- Schema 3, several nodes: leases fenced on the attempt, progress in the row, staged
-- publishing, the callback outbox's due time and lease.
ALTER TABLE jobs ADD COLUMN lease_node TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN progress INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN publishing INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN callback_due INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN callback_lease INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_lease ON jobs (state, lease_until);
CREATE INDEX jobs_publishing ON jobs (publishing);
CREATE INDEX jobs_callbacks ON jobs (callback_state, callback_due);
-- A mix is a result derived from a job: it goes when its job goes. The table arrived during
-- schemas 1 and 2 without a version bump, so such a database may have it already.
CREATE TABLE IF NOT EXISTS mixes (
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
CREATE INDEX IF NOT EXISTS mixes_by_digest ON mixes (job_id, digest);
