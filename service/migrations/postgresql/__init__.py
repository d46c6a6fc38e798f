"""PostgreSQL migrations of the job store (the `meta` table holds the version)."""
