"""SQLite migrations (`PRAGMA user_version` is the version)."""
