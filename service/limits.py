"""Per-key limits on what one CreateJob or one key may ask of the service."""

from __future__ import annotations

from service.errors import InvalidParameter, TooManyJobs
from service.protocol import JobRequest
from service.store import Store


def separations(request: JobRequest) -> int:
    """Each selector of each output is one separation run."""
    return sum(len(output.selectors) for output in request.outputs)


def check_separations(request: JobRequest, limit: int) -> None:
    count = separations(request)
    if count > limit:
        raise InvalidParameter(
            f"outputs: the job asks for {count} separations (one per input selector of each"
            f" output); at most {limit} are allowed per job")


def too_many_jobs(limit: int) -> TooManyJobs:
    return TooManyJobs(f"this key already has {limit} jobs that are not finished, the most"
                       " allowed; try again when some have finished")


async def check_open_jobs(store: Store, owner: str, limit: int) -> None:
    """Early refusal, before repositories are claimed; the insert checks again atomically."""
    if await store.open_jobs(owner) >= limit:
        raise too_many_jobs(limit)
