"""The bot's SQLite storage: job records and per-guild limits, with versioned migrations."""

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
