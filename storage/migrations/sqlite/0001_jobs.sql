-- Job records: one row per /separate, from submission to delivery.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id        INTEGER NOT NULL,
    channel_id      INTEGER NOT NULL,
    thread_id       INTEGER,
    message_id      INTEGER,
    user_id         INTEGER NOT NULL,
    input_url       TEXT    NOT NULL,
    track_name      TEXT    NOT NULL,
    stems           INTEGER NOT NULL,
    format          TEXT    NOT NULL,
    service_job_id  TEXT    UNIQUE,
    callback_token  TEXT    NOT NULL UNIQUE,
    state           TEXT    NOT NULL,
    progress        INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    created_at      REAL    NOT NULL,
    updated_at      REAL    NOT NULL,
    finished_at     REAL
);
CREATE INDEX jobs_by_user ON jobs (guild_id, user_id, created_at);
CREATE INDEX jobs_by_state ON jobs (state);

-- One row per stem posted to the thread, so a restart never posts it twice.
CREATE TABLE delivered_stems (
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    stem        TEXT    NOT NULL,
    message_id  INTEGER,
    link        TEXT,
    PRIMARY KEY (job_id, stem)
);
