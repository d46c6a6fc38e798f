"""Where a waiting job stands: its place in the fair-share order, and when it should be done.

`fair_order` applies the claim rule of the store (service/store_jobs.py `claim_next`) to the
whole queue at once, as if no running job ended meanwhile: each claim counts as one more job
PROCESSING for its key and tenant, exactly as the next claim would see it. The estimate
rests on the separations this service finished lately, never on a made-up speed: without
any, a job's queue entry has no `etaSeconds`.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field

from service.store import QueueState, Store, now_ms
from wire.jobs import QueueWire

RECENT_RUNS = 20  # separations the estimate averages over
RECENT_MS = 3600 * 1000  # ... of those that ended within the last hour


@dataclass(slots=True)
class _Owner:
    """One key's waiting jobs: per tenant, oldest first; and all of them, to find the
    key's oldest waiting job as its tenants' jobs go."""

    running: int = 0
    served: int = 0
    tenants: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # (running, served, seq of the oldest waiting, tenant)
    heads: list[tuple[int, int, int, str]] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    first: int = 0  # index into seqs of the oldest not yet ordered
    taken: set[int] = field(default_factory=set)

    def oldest(self) -> int:
        while self.seqs[self.first] in self.taken:
            self.first += 1
        return self.seqs[self.first]

    def take(self) -> str:
        """The next job of the tenant first in line; it counts as running and served."""
        running, served, _, tenant = heapq.heappop(self.heads)
        jobs = self.tenants[tenant]
        seq, job_id = jobs.pop()
        self.taken.add(seq)
        if jobs:
            heapq.heappush(self.heads, (running + 1, served + 1, jobs[-1][0], tenant))
        return job_id


def _owners(state: QueueState) -> dict[str, _Owner]:
    owners: dict[str, _Owner] = {}
    for seq, job_id, owner, tenant in sorted(state.waiting):
        entry = owners.setdefault(owner, _Owner())
        entry.tenants.setdefault(tenant, []).append((seq, job_id))
        entry.seqs.append(seq)
    for (owner, _tenant), count in state.running.items():
        if owner in owners:
            owners[owner].running += count
    for (owner, _tenant), count in state.served.items():
        if owner in owners:
            owners[owner].served += count
    for owner, entry in owners.items():
        for tenant, jobs in entry.tenants.items():
            jobs.reverse()  # pop() takes the oldest
            entry.heads.append((state.running.get((owner, tenant), 0),
                                state.served.get((owner, tenant), 0), jobs[-1][0], tenant))
        heapq.heapify(entry.heads)
    return owners


def fair_order(state: QueueState) -> list[str]:
    """The waiting jobs' ids in the order the claims would take them."""
    owners = _owners(state)
    keys = [(entry.running, entry.served, entry.oldest(), owner)
            for owner, entry in owners.items()]
    heapq.heapify(keys)
    order: list[str] = []
    while keys:
        running, served, _, owner = heapq.heappop(keys)
        entry = owners[owner]
        order.append(entry.take())
        if entry.heads:
            heapq.heappush(keys, (running + 1, served + 1, entry.oldest(), owner))
    return order


@dataclass(frozen=True, slots=True)
class Estimate:
    """Seconds per separation lately, and how many ran at once now."""

    mean_s: float
    runs: int
    parallel: int

    def eta(self, position: int) -> int:
        """Until the job at `position` should be done: the `position` completions it waits
        for (the running ones half done, on average), then its own run."""
        return max(1, round(self.mean_s * ((position - 0.5) / self.parallel + 1)))

    @property
    def basis(self) -> str:
        return (f"the mean of the last {self.runs} separations on this service"
                f" ({self.mean_s:.0f} s each, claim to results), {self.parallel} running at"
                " once now")


def estimate(state: QueueState, now: int) -> Estimate | None:
    """The estimate from the recent separations; None when there is none to go by."""
    recent = [(end - start) / 1000 for start, end in state.recent[:RECENT_RUNS]
              if end >= now - RECENT_MS and end > start]
    if not recent:
        return None
    return Estimate(sum(recent) / len(recent), len(recent),
                    max(1, sum(state.running.values())))


def positions(state: QueueState, now: int) -> dict[str, QueueWire]:
    """Every waiting job's queue entry, by job id."""
    guess = estimate(state, now)
    entries: dict[str, QueueWire] = {}
    for index, job_id in enumerate(fair_order(state)):
        entry: QueueWire = {"position": index + 1, "ahead": index}
        if guess is not None:
            entry["etaSeconds"] = guess.eta(index + 1)
            entry["etaBasis"] = guess.basis
        entries[job_id] = entry
    return entries


class QueueView:
    """The queue entries, computed at most about once a second per node however many
    GetJobs ask (one read of the waiting jobs), and again for a job newer than that."""

    def __init__(self, store: Store, max_age_ms: int = 1000) -> None:
        self._store = store
        self._max_age = max_age_ms
        self._entries: dict[str, QueueWire] = {}
        self._at = -max_age_ms
        self._lock = asyncio.Lock()

    async def entries(self, wanted: dict[str, int]) -> dict[str, QueueWire]:
        """By job id, for the waiting jobs `wanted` (id: created_at, ms) among others; a job
        missing from the entries has left the queue since it was read."""
        async with self._lock:
            # a job created about when the last entries were computed may not be in them
            # (another node's clock may differ a little): those entries are too old for it
            unseen = any(job_id not in self._entries and created >= self._at - self._max_age
                         for job_id, created in wanted.items())
            if unseen or now_ms() - self._at > self._max_age:
                at = now_ms()
                self._entries = positions(await self._store.queue_state(), at)
                self._at = at
            return self._entries
