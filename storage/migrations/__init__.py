"""Versioned SQL migrations, one folder per dialect, applied in file-name order by
the ground floor's runner (db/migrate.py).

Both folders hold the same versions 0001..N and reach the same schema: a change is one new
file in each. SQLite keeps the version in `PRAGMA user_version`, PostgreSQL in a table.
"""
