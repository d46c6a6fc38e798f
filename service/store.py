"""The job store's interface: keys, content repositories, jobs, leases, the callback outbox.

One implementation (service/store_sql.py, in parts) runs the same SQL on SQLite for one box
and on PostgreSQL for several nodes, over the ground floor's connection (db/); `open_store`
picks the database by STEMBOT_DATABASE_URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from db import SchemaError as SchemaError  # the service's callers catch it from here
from service.protocol import Job
from wire.enums import State
from wire.jobs import InputSpec, OutputSpec

if TYPE_CHECKING:
    from service.settings import ServiceSettings

# The number of the last migration in service/migrations/ (5: indexes for fair share's
# claims of the last hour); a test holds the two together.
SCHEMA_VERSION = 5


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Key:
    secret_id: str
    name: str
    secret_key: str
    default_content: str
    created_at: int
    revoked_at: int


@dataclass(frozen=True, slots=True)
class NewKey:
    secret_id: str
    secret_key: str
    default_content: str


@dataclass(frozen=True, slots=True)
class MixRecord:
    """One rendered mix of a job: where it is, and what it holds (gains by stem, format)."""

    job_id: str
    digest: str
    name: str
    gains: dict[str, float]
    format: str
    content_id: str
    path: str
    created_at: int


@dataclass(frozen=True, slots=True)
class SignIn:
    """A one-click sign-in link's record: the key it signs in as, until when (ms), and when
    it was used (0: not yet). Only the token's SHA-256 is stored, never the token."""

    secret_id: str
    expires_at: int
    used_at: int


@dataclass(frozen=True, slots=True)
class Gone:
    """A file of a deleted or expired job: its content repository and path there."""

    content_id: str
    path: str


# Claims within this window count for fair share: a key or tenant served lately waits behind
# one that was not, even once its own jobs have ended (with one worker, "fewest running"
# alone would be first come, first served again after every job).
FAIR_WINDOW_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class QueueState:
    """The queue at one moment: jobs PROCESSING per (key, tenant), the SUBMITTED jobs as
    (seq, id, key, tenant) oldest first, the recent separations' (started_at,
    completed_at) in ms, newest first, from jobs that separated (not all from the cache),
    and the claims per (key, tenant) within FAIR_WINDOW_MS."""

    running: dict[tuple[str, str], int]
    waiting: list[tuple[int, str, str, str]]
    recent: list[tuple[int, int]]
    served: dict[tuple[str, str], int] = field(default_factory=dict)


class Store(Protocol):
    """Every method is one short transaction; writes of a claimed job are fenced on `attempt`."""

    # True where several nodes share the database (the link secret is kept in it then).
    shared: bool

    async def close(self) -> None: ...

    # --- keys and repositories
    async def create_key(self, name: str) -> NewKey: ...
    async def keys(self) -> list[Key]: ...
    async def key(self, secret_id: str) -> Key | None: ...
    async def signing_key(self, secret_id: str) -> str | None: ...
    async def revoke_key(self, secret_id: str) -> bool: ...
    async def repo_owner(self, content_id: str) -> str | None: ...
    async def create_repo(self, content_id: str, owner: str) -> bool: ...
    async def repos_of(self, owner: str) -> list[str]: ...
    async def meta_default(self, key: str, value: str) -> str:
        """The stored value of `key`, storing `value` first if there is none."""
        ...

    # --- one-click sign-in links (single use, short-lived)
    async def add_sign_in(self, digest: str, secret_id: str, expires_at: int) -> None:
        """Store a link's token digest; links that ended over a day ago are dropped."""
        ...
    async def use_sign_in(self, digest: str, at: int) -> tuple[SignIn, bool] | None:
        """The link's record and whether this call used it (it was unused and unexpired at
        `at`; at most one call ever does); None for an unknown digest."""
        ...

    # --- mixes
    async def add_mix(self, mix: MixRecord) -> None: ...
    async def mixes_of(self, job_id: str, digest: str | None = None) -> list[MixRecord]: ...

    # --- jobs
    async def insert_job(self, job: Job, max_open: int) -> bool: ...
    async def open_jobs(self, owner: str) -> int: ...
    async def job(self, job_id: str, owner: str | None = None) -> Job | None: ...
    async def jobs_by_custom_id(self, owner: str, custom_id: str | None, offset: int = 0,
                                limit: int = -1, tenant: str | None = None
                                ) -> tuple[list[Job], int]: ...
    async def claim_next(self, node: str = "", lease_s: float = 30) -> Job | None:
        """The next SUBMITTED job (fair share between keys, then between a key's tenants,
        then oldest) as PROCESSING, leased to `node`."""
        ...
    async def queue_state(self) -> QueueState:
        """What the fair-share order of the waiting jobs is computed from, in one read."""
        ...
    async def renew(self, job_id: str, attempt: int, lease_s: float, progress: int) -> bool:
        """Extend the lease (also while the attempt publishes) and write progress; False once
        the attempt lost the job or its publish is done."""
        ...
    async def release(self, job_id: str, attempt: int) -> None:
        """Give the lease back now (a still PROCESSING job is requeued by the next sweep)."""
        ...
    async def set_inputs(self, job_id: str, attempt: int, inputs: tuple[InputSpec, ...]
                         ) -> bool:
        """Rewrite the inputs (a page link's track facts) while this attempt runs."""
        ...
    async def finish(
        self, job_id: str, state: State, *, outputs: Iterable[OutputSpec] | None = None,
        error_code: str = "", error_message: str = "", only_from: Iterable[State] = (),
        attempt: int | None = None, publishing: bool = False, lease_s: float = 30,
    ) -> Job | None: ...
    async def published(self, job_id: str) -> Job | None: ...
    async def unpublished(self, at: int) -> list[Job]:
        """COMPLETED jobs whose files are still in staging and whose publisher's lease ended."""
        ...
    async def recover(self, max_restarts: int, node: str = "") -> list[Job]: ...
    async def expire_leases(self, max_restarts: int, at: int | None = None) -> list[Job]: ...
    async def overdue(self, at: int) -> list[str]: ...
    async def open_job_ids(self) -> set[str]: ...

    # --- the callback outbox
    async def pending_callbacks(self) -> list[Job]: ...
    async def claim_callback(self, lease_s: float, at: int | None = None) -> Job | None: ...
    async def record_callback(self, job_id: str, state: str, attempts: int, error: str,
                              due: int = 0) -> None: ...

    # --- retention
    async def mark_gone(self, job_ids: list[str], column: str, files: dict[str, list[Gone]]
                        ) -> list[Job]: ...
    async def purged(self, job_ids: list[str]) -> None: ...
    async def purging(self) -> list[Job]: ...
    async def expirable(self, ended_before: int, limit: int) -> list[Job]: ...
    async def gone_files(self, job_id: str) -> list[Gone]: ...
    async def gone(self, content_id: str, path: str) -> Job | None: ...
    async def reuse_path(self, content_id: str, path: str) -> None: ...
    async def has_files(self, job_id: str) -> bool: ...


async def open_store(settings: ServiceSettings) -> Store:
    """The store STEMBOT_DATABASE_URL names: empty, the data folder's SQLite file."""
    from service.store_sql import SqlStore  # the implementation stands on this interface

    return await SqlStore.open(settings.database_url or settings.db_path, settings.result_ttl)
