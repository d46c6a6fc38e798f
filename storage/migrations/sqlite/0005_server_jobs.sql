-- Per-server cap of open jobs (all members together; the service shares its workers fairly
-- between servers, this keeps one server from filling the queue). NULL: the default.
ALTER TABLE guild_limits ADD COLUMN max_server_jobs INTEGER;
