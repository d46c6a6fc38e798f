"""Check a member's input before submitting it: is it audio, and within the guild's limits?"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
import av
import av.error

from download.errors import BodyTooLarge, DownloadError, UrlNotAllowed
from download.fetch import FetchLimits, guard_hop, session, stream_to_file
from download.pages import resolve_page
from download.sites import SITES, LinkRules, Track, site_of_url
from storage import GuildLimits

MIB = 1024 * 1024
DOWNLOAD_SECONDS = 120.0
MAX_REDIRECTS = 5
_UNSAFE = re.compile(r"[^\w\-. ()\[\]]+")


class InputRefusedError(Exception):
    """The input cannot be separated; the message is one line for the member."""


@dataclass(frozen=True, slots=True)
class Probe:
    """A checked input: the downloaded file, its decoded duration and its size."""

    path: Path
    seconds: float
    size: int
    track: Track | None = None  # what a page link said of its track


def track_name(url: str, filename: str | None = None) -> str:
    """A file-name-safe track name from an attachment name or the link's last path part."""
    raw = filename or unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or "track"
    stem = raw.rsplit(".", 1)[0] if "." in raw else raw
    return _UNSAFE.sub("_", stem).strip(" ._")[:80] or "track"


def file_title(track: Track) -> str:
    """A file-name-safe "Artist - Title" for a page link's stems and upload."""
    raw = f"{track.uploader} - {track.title}" if track.uploader else track.title
    return _UNSAFE.sub("_", raw).strip(" ._")[:80] or "track"


class InputFetcher:
    """Fetches members' links with the service's guard: public addresses only, unless allowed.

    Without it any member could make the bot request addresses inside its own network.
    """

    def __init__(self, allow_private: bool, sites: frozenset[str] = frozenset(SITES)) -> None:
        self._guard = FetchLimits(max_bytes=0, timeout=DOWNLOAD_SECONDS,
                                  max_redirects=MAX_REDIRECTS, allow_private=allow_private)
        self._sites = sites
        self._session = session(self._guard)

    async def close(self) -> None:
        await self._session.close()

    @contextlib.asynccontextmanager
    async def checked(self, url: str, limits: GuildLimits, work_dir: Path
                      ) -> AsyncIterator[Probe]:
        """Download the input (within the size limit), decode it (within the duration limit).

        Refuses clearly; otherwise yields the file, so that exactly these bytes are submitted.
        `work_dir` must exist; the download is deleted on leaving.
        """
        max_bytes = limits.max_mib * MIB if limits.max_mib else None
        # Files are touched only off the event loop, which `stembot up` shares with the
        # job service.
        target = await asyncio.to_thread(_temporary, work_dir)
        try:
            track = None
            try:
                if site_of_url(url) is not None:
                    raise _PageLink
                size = await self._download(url, target, max_bytes)
            except _PageLink:  # the same guarded resolver as the service's
                track = await self._resolve(url, target, max_bytes, limits.max_seconds)
                size = (await asyncio.to_thread(target.stat)).st_size
            seconds = await asyncio.to_thread(_duration, target, limits.max_seconds)
            yield Probe(target, seconds, size, track)
        finally:
            await asyncio.to_thread(target.unlink, missing_ok=True)

    async def _download(self, url: str, target: Path, max_bytes: int | None) -> int:
        pages = "generic" in self._sites
        try:
            async with asyncio.timeout(DOWNLOAD_SECONDS):
                response = await self._follow(url)
                async with response:
                    return await _save(response, target, max_bytes, pages)
        except UrlNotAllowed as error:
            raise InputRefusedError(
                f"the link leads to a private network address ({error.message}); only public"
                " links can be separated") from None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise InputRefusedError(
                f"could not download the link ({error or 'timed out'})") from None
        except ValueError as error:
            # E.g. a redirect to `http://[::1/`: urljoin and yarl refuse such addresses.
            raise InputRefusedError(
                f"the link leads to an invalid address ({error})") from None

    async def _resolve(self, url: str, target: Path, max_bytes: int | None,
                       max_seconds: int) -> Track:
        site = site_of_url(url) or "generic"
        if site not in self._sites:
            raise InputRefusedError(f"{site} links are not accepted here")
        limits = dataclasses.replace(self._guard, max_bytes=max_bytes or 1 << 40)
        try:
            return await resolve_page(url, target, limits, LinkRules(self._sites, max_seconds))
        except DownloadError as failure:
            if failure.code == "URL_NOT_ALLOWED":
                raise InputRefusedError(
                    f"the link leads to a private network address ({failure.message}); only"
                    " public links can be separated") from None
            if failure.code == "LINK_NOT_SUPPORTED" and site == "generic":
                raise InputRefusedError("the link is a web page (text/html), not an audio"
                                        " file, and no audio or video was found in it: link"
                                        " the file itself") from None
            raise InputRefusedError(failure.message) from None

    async def _follow(self, url: str) -> aiohttp.ClientResponse:
        """GET with every redirect checked, so that none leads inside the network."""
        for _ in range(MAX_REDIRECTS + 1):
            guard_hop(url, self._guard)
            response = await self._session.get(url, allow_redirects=False)
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                response.release()
                url = urljoin(url, response.headers["Location"])
                continue
            return response
        raise InputRefusedError(f"the link redirects more than {MAX_REDIRECTS} times")


class _PageLink(Exception):
    """The link is a page (a known site, or it answered with HTML or a manifest)."""


_MANIFESTS = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl",
              "audio/x-mpegurl", "application/dash+xml")


async def _save(response: aiohttp.ClientResponse, target: Path, max_bytes: int | None,
                pages: bool = False) -> int:
    if response.status != 200:
        raise InputRefusedError(f"the link answered HTTP {response.status}, not a file")
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    if pages and (kind in ("text/html", "application/xhtml+xml") or kind in _MANIFESTS):
        raise _PageLink
    if kind.startswith("text/"):
        raise InputRefusedError(
            f"the link is a web page ({kind}), not an audio file: link the file itself"
        )
    _check_size(response.content_length, max_bytes)
    try:
        return await stream_to_file(response, target, max_bytes)
    except BodyTooLarge:
        raise _too_large(max_bytes or 0) from None  # only raised when there is a limit


def _temporary(work_dir: Path) -> Path:
    """A new empty file in `work_dir` for the download; the caller deletes it."""
    handle, name = tempfile.mkstemp(dir=work_dir, suffix=".input")
    os.close(handle)
    return Path(name)


def _check_size(size: int | None, max_bytes: int | None) -> None:
    if size is not None and max_bytes is not None and size > max_bytes:
        raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> InputRefusedError:
    return InputRefusedError(f"the file is over this server's {max_bytes // MIB} MiB limit")


def _duration(path: Path, max_seconds: int) -> float:
    """Seconds of audio in `path`, counted by decoding; refuses past `max_seconds` (0: none).

    A header can lie (a FLAC declaring 1 s may hold an hour), so only the declared duration's
    refusal is trusted; decoding stops as soon as the limit is passed, keeping nothing.
    """
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InputRefusedError("the file has no audio in it")
            if container.duration and max_seconds:
                _check_seconds(float(container.duration) / 1_000_000, max_seconds)
            seconds = _decoded_seconds(container, container.streams.audio[0], max_seconds)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise InputRefusedError("that is not an audio file (it cannot be decoded)") from None
    if seconds == 0:
        raise InputRefusedError("the file contains no audio samples")
    return seconds


def _decoded_seconds(container: av.container.InputContainer,
                     stream: av.audio.stream.AudioStream, max_seconds: int) -> float:
    seconds = 0.0
    for frame in container.decode(stream):
        seconds += frame.samples / (frame.sample_rate or stream.rate or 1)
        if max_seconds and seconds > max_seconds:
            raise InputRefusedError(
                f"the track is over this server's {_clock(max_seconds)} limit")
    return seconds


def _check_seconds(seconds: float, max_seconds: int) -> None:
    if seconds > max_seconds:
        raise InputRefusedError(
            f"the track is {_clock(seconds)} long; this server allows at most"
            f" {_clock(max_seconds)}"
        )


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
