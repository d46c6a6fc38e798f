"""The bot's storage: job records and per-guild limits in SQLite or PostgreSQL, with versioned
migrations per dialect, on the ground floor's connection and migration runner (db/)."""

from storage.database import Database
from storage.jobs import DeliveredStem, HistoryFilter, JobRecord, JobState, JobStore, NewJob
from storage.limits import LIMIT_FIELDS, GuildLimits, LimitStore

__all__ = [
    "LIMIT_FIELDS",
    "Database",
    "DeliveredStem",
    "GuildLimits",
    "HistoryFilter",
    "JobRecord",
    "JobState",
    "JobStore",
    "LimitStore",
    "NewJob",
]
