"""The bot's storage: job records and per-guild limits in SQLite or PostgreSQL, with versioned
migrations per dialect."""

from storage.connection import Connection, Dialect, database_dialect
from storage.database import Database
from storage.jobs import DeliveredStem, HistoryFilter, JobRecord, JobState, JobStore, NewJob
from storage.limits import LIMIT_FIELDS, GuildLimits, LimitStore

__all__ = [
    "LIMIT_FIELDS",
    "Connection",
    "Database",
    "DeliveredStem",
    "Dialect",
    "GuildLimits",
    "HistoryFilter",
    "JobRecord",
    "JobState",
    "JobStore",
    "LimitStore",
    "NewJob",
    "database_dialect",
]
