"""The old name of the store on a SQLite file, for callers outside the service
(benchmarks/service_load.py) until they open `service.store_sql.SqlStore` themselves."""

from service.store_sql import SqlStore as SqliteStore

__all__ = ["SqliteStore"]
