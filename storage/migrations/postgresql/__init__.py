"""PostgreSQL migrations (the `bot_schema_version` table holds the version)."""
