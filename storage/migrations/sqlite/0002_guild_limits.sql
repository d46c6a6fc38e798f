-- Per-guild overrides of the limits in the settings; NULL means "use the default".
CREATE TABLE guild_limits (
    guild_id            INTEGER PRIMARY KEY,
    max_concurrent      INTEGER,
    daily_quota         INTEGER,
    cooldown_seconds    INTEGER,
    max_seconds         INTEGER,
    max_mib             INTEGER,
    moderator_role_id   INTEGER
);
