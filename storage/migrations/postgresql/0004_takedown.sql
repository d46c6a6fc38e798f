-- Retention. /job delete: who took a job down and when, which of its posted messages are
-- removed; files_until: when the service's TTL removes the job's files (unix seconds).
ALTER TABLE jobs ADD COLUMN deleted_at DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN deleted_by BIGINT;
ALTER TABLE delivered_stems ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN files_until DOUBLE PRECISION;
