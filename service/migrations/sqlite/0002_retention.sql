-- Schema 2, retention: DeleteJob and STEMBOT_RESULT_TTL mark a job, list its files as gone,
-- then purge them (an order that survives a kill).
ALTER TABLE jobs ADD COLUMN deleted_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN expired_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN purging INTEGER NOT NULL DEFAULT 0;
CREATE TABLE gone (
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (content_id, path)
);
-- the per-key limit's index arrived during schema 1, without a version bump
CREATE INDEX IF NOT EXISTS jobs_by_owner_state ON jobs (owner, state);
CREATE INDEX jobs_by_end ON jobs (expired_at, deleted_at, completed_at);
CREATE INDEX jobs_purging ON jobs (purging);
