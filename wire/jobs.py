"""The job protocol's shapes: a job's inputs, outputs and results, and the Job as JSON.

The `*Wire` TypedDicts are the JSON as sent; the dataclasses render themselves into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from separation.presets import StemPreset
from wire.enums import Tone


class SourceWire(TypedDict):
    contentId: str
    path: str


class InputWire(TypedDict, total=False):
    url: str
    source: SourceWire
    track: dict[str, str]  # an extension: what a page link said of its track (set by the run)


class ResultWire(TypedDict):
    tone: int
    fileName: str
    fromCache: NotRequired[bool]


class OutputWire(TypedDict):
    contentId: str
    destination: str
    inputSelectors: list[int]
    smartContentDescriptor: dict[str, dict[str, int]]
    smartContentResult: NotRequired[dict[str, Any]]


class TimingWire(TypedDict):
    createdAt: str
    startedAt: str
    completedAt: str


class CallbackStatusWire(TypedDict):
    state: str
    attempts: int
    lastError: str


class QueueWire(TypedDict):
    """An extension, while a job waits: its place in the order jobs are claimed in (1: next),
    how many jobs go before it, and, once the service has measured its recent separations,
    the seconds until its results are expected and what that estimate rests on."""

    position: int
    ahead: int
    etaSeconds: NotRequired[int]
    etaBasis: NotRequired[str]


class JobWire(TypedDict):
    id: str
    state: int
    customId: str
    callback: str
    inputs: list[InputWire]
    outputs: list[OutputWire]
    timing: TimingWire
    progress: NotRequired[int]
    errorCode: NotRequired[str]
    errorMessage: NotRequired[str]
    callbackStatus: NotRequired[CallbackStatusWire]
    deletedAt: NotRequired[str]
    resultsExpiredAt: NotRequired[str]
    resultsExpireAt: NotRequired[str]
    tenant: NotRequired[str]
    queue: NotRequired[QueueWire]


@dataclass(frozen=True, slots=True)
class InputSpec:
    """Exactly one of `url` or (`content_id`, `path`)."""

    url: str = ""
    content_id: str = ""
    path: str = ""
    # site, id, title, uploader, page: what a page link said of its track, once it was read
    track: dict[str, str] | None = None

    def wire(self) -> InputWire:
        out: InputWire = {"url": self.url} if self.url else {
            "source": {"contentId": self.content_id, "path": self.path}}
        if self.track:
            out["track"] = dict(self.track)
        return out


@dataclass(frozen=True, slots=True)
class Result:
    tone: Tone
    file_name: str
    from_cache: bool = False  # the stems of an earlier, identical separation

    def wire(self) -> ResultWire:
        out: ResultWire = {"tone": int(self.tone), "fileName": self.file_name}
        if self.from_cache:
            out["fromCache"] = True
        return out


@dataclass(frozen=True, slots=True)
class OutputSpec:
    content_id: str
    destination: str
    selectors: tuple[int, ...]
    method: StemPreset  # the protocol's `method` number is the preset's value
    results: tuple[Result, ...] | None = None
    shifts: int = 1
    facts: tuple[dict[str, Any], ...] | None = None  # one per selector: SongFacts.wire()

    def wire(self) -> OutputWire:
        descriptor = {"method": int(self.method)}
        if self.shifts > 1:  # an extension: absent unless asked for, as in the original
            descriptor["shifts"] = self.shifts
        out: OutputWire = {
            "contentId": self.content_id,
            "destination": self.destination,
            "inputSelectors": list(self.selectors),
            "smartContentDescriptor": {"musicSeperate": descriptor},
        }
        if self.results is not None:
            out["smartContentResult"] = {"musicSeperate": [
                r.wire() for r in self.results
            ]}
            if self.facts is not None:  # an extension: the song facts of each input
                out["smartContentResult"]["facts"] = list(self.facts)
        return out
