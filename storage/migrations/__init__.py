"""Versioned SQL migrations, applied in file-name order; `PRAGMA user_version` is the version."""
