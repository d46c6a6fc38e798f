-- /job delete: who took a job down and when; which of its posted messages are removed.
ALTER TABLE jobs ADD COLUMN deleted_at REAL;
ALTER TABLE jobs ADD COLUMN deleted_by INTEGER;
ALTER TABLE delivered_stems ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
