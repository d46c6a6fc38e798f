"""The job store's versioned SQL migrations, one folder per dialect, applied in file-name order
by the ground floor's runner (db/migrate.py).

The version lives in the `meta` table (key 'schema'), as it always has: a database whose meta
says N had migrations 1..N applied. PostgreSQL came with schema 3, but its folder starts at 1
too, so both reach the same tables. Tables that arrived without a version bump (mixes during
schemas 1-2, sign_ins during schema 3) are created IF NOT EXISTS by the next migration.
"""
