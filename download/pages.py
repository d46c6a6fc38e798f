"""Page links resolved by yt-dlp (used as a library), every connection through the guard.

yt-dlp is synchronous: it runs in a thread, while the guarded proxy (`download.proxy`) it
must use runs on the event loop. Before any media is requested the metadata decides, in
words: a playlist, a live stream, a track over the duration or size limit is refused and
nothing is kept. Only yt-dlp's native downloaders run (no ffmpeg, no other process but the
JavaScript runtime YouTube's challenges need); the file is then decoded by our own decoder
like any other input.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import shutil
import sys
import threading
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yt_dlp import YoutubeDL
from yt_dlp.compat import urllib_req_to_req
from yt_dlp.networking import Request
from yt_dlp.networking._urllib import UrllibRH
from yt_dlp.networking.exceptions import RequestError, UnsupportedRequest
from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor
from yt_dlp.utils import DownloadError as YtDlpDownloadError
from yt_dlp.utils import ExtractorError, GeoRestrictedError, UnsupportedError

from download.errors import DownloadError
from download.fetch import FetchLimits, rate_floor
from download.proxy import GuardProxy
from download.sites import LinkRules, Track, site_of_extractor

log = logging.getLogger("stembot.download")

# yt-dlp's own downloaders for these protocols run in-process; anything else (rtmp, ffmpeg's
# m3u8, websockets) is refused.
NATIVE = {"http", "https", "m3u8", "m3u8_native", "http_dash_segments",
          "http_dash_segments_generator"}
# Which of yt-dlp's extractors (IE_NAME, matched whole, any case) each kind may use. A page
# that embeds another site's player needs that site too; every other extractor stays off.
EXTRACTORS: dict[str, tuple[str, ...]] = {
    "youtube": ("youtube", "youtube:tab", "youtube:playlist", "youtubeytbe",
                "youtube:shorts:pivot:audio"),
    "soundcloud": ("soundcloud", "soundcloud:(set|playlist|user|user:permalink)",
                   "soundcloudembed"),
    "bandcamp": ("bandcamp", "bandcamp:(album|user)"),
    "vimeo": ("vimeo", "vimeo:(album|channel|group|ondemand|pro|user|review)"),
    "generic": ("generic", "html5", "generic:quoted-html"),
}
NO_FFMPEG = "/nonexistent/stembot-runs-no-ffmpeg"
NOWHERE = "/nonexistent/stembot-reads-metadata-only"
STOP_WAIT = 30.0  # seconds an aborted yt-dlp thread gets to notice and end


class _Aborted(Exception):
    """Raised in yt-dlp's thread from a progress hook: the download must stop."""

    def __init__(self, failure: DownloadError | None) -> None:
        super().__init__(failure.message if failure else "stopped")
        self.failure = failure


async def resolve_page(url: str, target: Path, limits: FetchLimits, rules: LinkRules
                       ) -> Track:
    """Download the audio a page link leads to into `target`, or raise DownloadError.

    Every connection goes through a guarded proxy; the whole resolution is bounded by
    `limits.timeout` and the rate floor, and leaving early (cancel, deadline) closes the
    proxy, which ends whatever the thread was waiting for.
    """
    return await _guarded(url, target, limits, rules)


async def read_page(url: str, limits: FetchLimits, rules: LinkRules) -> Track:
    """What a page link says of its track, read as `resolve_page` reads it (same guard, same
    refusals: playlist, live, too long, too large) but without requesting any media: the
    result cache recognises a song by its site and id before anything is downloaded."""
    return await _guarded(url, None, limits, rules)


async def _guarded(url: str, target: Path | None, limits: FetchLimits, rules: LinkRules
                   ) -> Track:
    if not rules.sites:
        raise DownloadError("LINK_NOT_SUPPORTED", "only direct links to audio files are accepted"
                         " here (STEMBOT_LINK_SITES)")
    stop = threading.Event()
    try:
        async with asyncio.timeout(limits.timeout), \
                rate_floor(limits.min_rate, limits.rate_window) as count, \
                GuardProxy(limits, count) as proxy:
            job = _Resolution(url, target, proxy.url, limits, rules, stop)
            run = asyncio.ensure_future(asyncio.to_thread(job.run))
            try:
                track = await asyncio.shield(run)
            except DownloadError:
                refused = proxy.traffic.refused
                if refused:  # whatever yt-dlp made of the proxy's refusal
                    raise DownloadError("URL_NOT_ALLOWED", refused[0]) from None
                raise
            finally:
                if not run.done():  # cancelled, past its deadline or too slow
                    stop.set()
                    await proxy.close()  # every connection of the thread ends now
                    with contextlib.suppress(BaseException):
                        await asyncio.wait_for(asyncio.shield(run), STOP_WAIT)
            return track
    except TimeoutError:
        raise DownloadError("DOWNLOAD_TIMEOUT",
                         f"download took longer than {limits.timeout:g} s") from None


class _Resolution:
    """One link's metadata, checks and download, all in yt-dlp's thread."""

    def __init__(self, url: str, target: Path | None, proxy: str, limits: FetchLimits,
                 rules: LinkRules, stop: threading.Event) -> None:
        self.url = url
        self.target = target
        self.proxy = proxy
        self.limits = limits
        self.rules = rules
        self.stop = stop

    def run(self) -> Track:
        # yt-dlp looks for ffmpeg here even where no option reaches; this thread's copy of
        # the context only (asyncio.to_thread gives it one)
        FFmpegPostProcessor._ffmpeg_location.set(NO_FFMPEG)
        folder = None if self.target is None else self.target.parent / f"{self.target.name}.page"
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        try:
            with GuardedYoutubeDL(self._params(folder), self.proxy) as ydl:
                return self._fetch(ydl)
        except _Aborted as stopped:
            raise stopped.failure or DownloadError("DOWNLOAD_FAILED", "stopped") from None
        except DownloadError:
            raise
        except Exception as error:
            raise failure_of(error) from None
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def _fetch(self, ydl: Any) -> Track:
        raw = ydl.extract_info(self.url, download=False, process=False)
        check_metadata(raw, self.rules, self.limits)  # before any media is asked for
        info = ydl.process_ie_result(raw, download=False)
        check_metadata(info, self.rules, self.limits)
        if self.target is None:  # the metadata alone (read_page)
            return track_of(info)
        protocol = str(info.get("protocol") or "")
        if any(p not in NATIVE for p in protocol.split("+")):
            raise DownloadError("LINK_NOT_SUPPORTED", f"the track is only offered over"
                             f" {protocol or 'an unknown protocol'}, which this service does"
                             " not download")
        done = ydl.process_ie_result(info, download=True)
        files = [Path(d["filepath"]) for d in done.get("requested_downloads") or ()
                 if d.get("filepath")]
        if not files or not files[0].is_file():
            raise DownloadError("DOWNLOAD_FAILED", "the site sent no file")
        files[0].replace(self.target)
        return track_of(done)

    def _params(self, folder: Path | None) -> dict[str, Any]:
        extractors = [name for site in sorted(self.rules.sites) for name in EXTRACTORS[site]]
        params: dict[str, Any] = {
            "proxy": self.proxy,
            "allowed_extractors": extractors,
            "noplaylist": True,  # a video link carrying &list= takes the video
            "format": "bestaudio/best",
            # no folder: metadata only, where nothing is written
            "outtmpl": {"default": str((folder or Path(NOWHERE)) / "media.%(ext)s")},
            "external_downloader": {"default": "native"},
            "hls_prefer_native": True,
            "fixup": "never",
            "postprocessors": [],
            "ffmpeg_location": NO_FFMPEG,
            "progress_hooks": [self._progress],
            "logger": _Logger(),
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "cachedir": False,
            "socket_timeout": 20,
            "retries": 2,
            "fragment_retries": 2,
            "extractor_retries": 1,
            "skip_unavailable_fragments": False,
            "overwrites": True,
            "check_formats": False,
            "remote_components": [],  # nothing is downloaded to run: the runtime is local
        }
        deno = find_deno()
        if deno is not None:
            params["js_runtimes"] = {"deno": {"path": deno}}
        return params

    def _progress(self, status: dict[str, Any]) -> None:
        if self.stop.is_set():
            raise _Aborted(None)
        done = status.get("downloaded_bytes") or 0
        if done > self.limits.max_bytes:
            raise _Aborted(DownloadError("INPUT_TOO_LARGE",
                                      f"the file is over the {self.limits.max_bytes} byte"
                                      " limit"))


@functools.cache
def find_deno() -> str | None:
    """The deno that PyPI's `deno` installed beside this Python, or one on the PATH."""
    beside = Path(sys.executable).parent / "deno"
    return str(beside) if beside.is_file() else shutil.which("deno")


class GuardedYoutubeDL(YoutubeDL):  # type: ignore[misc]
    """YoutubeDL talking only through the guard: one HTTP handler (urllib), every request
    sent to the guard proxy whatever an extractor asked for, http(s) and data: URLs only."""

    def __init__(self, params: dict[str, Any], proxy: str) -> None:
        self._guard_proxy = proxy
        super().__init__(params)

    @functools.cached_property
    def _request_director(self) -> Any:
        return self.build_request_director([UrllibRH])

    def urlopen(self, req: Any) -> Any:
        if isinstance(req, str):
            req = Request(req)
        elif isinstance(req, urllib.request.Request):
            req = urllib_req_to_req(req)
        scheme = urlsplit(req.url).scheme.lower()
        if scheme not in ("http", "https", "data"):
            raise UnsupportedRequest(f"only http and https URLs are fetched, not {scheme}")
        for header in ("Ytdl-request-proxy", "Ytdl-socks-proxy"):
            req.headers.pop(header, None)
        req.proxies = {"all": self._guard_proxy}
        return super().urlopen(req)


class _Logger:
    """yt-dlp's messages to our log, at debug level: the job's error says what matters."""

    def debug(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def info(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def warning(self, message: str) -> None:
        log.debug("yt-dlp warning: %s", message)

    def error(self, message: str) -> None:
        log.info("yt-dlp error: %s", message)


# --- the metadata's verdict -------------------------------------------------------------

def check_metadata(info: dict[str, Any], rules: LinkRules, limits: FetchLimits) -> None:
    """Refuse, in words, what must not be downloaded; `info` as yt-dlp extracted it."""
    kind = info.get("_type") or "video"
    if kind in ("playlist", "multi_video"):
        raise DownloadError("PLAYLIST_LINK", "the link is a playlist, an album or a channel, not"
                         " one track: share the track's own link")
    live = info.get("live_status")
    if info.get("is_live") or live in ("is_live", "is_upcoming", "post_live"):
        raise DownloadError("LIVE_STREAM", "the link is a live stream (or one not over yet);"
                         " only a finished recording can be separated")
    duration = _number(info.get("duration"))
    if rules.max_seconds and duration and duration > rules.max_seconds:
        raise DownloadError("AUDIO_TOO_LONG", f"the track is {_clock(duration)} long; the limit"
                         f" is {_clock(rules.max_seconds)}")
    size = _number(info.get("filesize")) or _number(info.get("filesize_approx"))
    if size and size > limits.max_bytes:
        raise DownloadError("INPUT_TOO_LARGE", f"the file is {int(size)} bytes, over the"
                         f" {limits.max_bytes} byte limit")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _clock(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60}:{rest % 60:02d}"


def track_of(info: dict[str, Any]) -> Track:
    site = site_of_extractor(str(info.get("extractor_key") or info.get("extractor") or ""))
    uploader = next((str(v) for v in _values(info, "artist", "creator", "uploader", "channel")
                     if v), "")
    if site == "generic" and uploader == urlsplit(str(info.get("webpage_url") or "")).netloc:
        uploader = ""  # the generic extractor names the host when it knows no one
    return Track(site=site, id=str(info.get("id") or ""),
                 title=str(info.get("track") or info.get("title") or "")[:300],
                 uploader=uploader[:200], page=str(info.get("webpage_url") or ""))


def _values(info: dict[str, Any], *keys: str) -> Iterable[Any]:
    for key in keys:
        value = info.get(key)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        yield value


# --- yt-dlp's errors, in words ----------------------------------------------------------

_CAUSES: tuple[tuple[str, str, str], ...] = (
    ("BOT_CHECK", r"not a bot|captcha|too many requests|http error 429|unusual traffic",
     "the site asked for its bot check instead of the track; try again later"),
    ("GEO_RESTRICTED", r"your country|your region|geo.?restrict|not available in .*(country"
     r"|location)", "the track is not available in this server's country"),
    ("MEDIA_UNAVAILABLE", r"\bprivate\b", "the track was removed, is private or does not"
     " exist"),
    ("SIGN_IN_REQUIRED", r"confirm your age|age.?restrict|inappropriate|sign in|log ?in|"
     r"registered users|members.only|premium|cookies|purchase|paid",
     "the track is age-restricted or needs a signed-in account"),
    ("LIVE_STREAM", r"live event will begin|premieres? in|is not live|this live event",
     "the link is a live stream (or one not over yet); only a finished recording can be"
     " separated"),
    ("MEDIA_UNAVAILABLE", r"unavailable|removed|deleted|does not exist|not found|"
     r"no longer|terminated|copyright|http error 40[34]|http error 410",
     "the track was removed, is private or does not exist"),
)


def failure_of(error: BaseException) -> DownloadError:
    """DownloadError for an exception yt-dlp raised: the code names the cause."""
    cause: BaseException = error
    if isinstance(error, YtDlpDownloadError) and error.exc_info and error.exc_info[1] is not None:
        cause = error.exc_info[1]
    detail = _detail(cause)
    if isinstance(cause, DownloadError):
        return cause
    if isinstance(cause, _Aborted):
        return cause.failure or DownloadError("DOWNLOAD_FAILED", "stopped")
    if isinstance(cause, UnsupportedError) or re.search(
            r"unsupported url|no suitable extractor", detail, re.I):
        return DownloadError("LINK_NOT_SUPPORTED", "no audio or video was found at that link, or"
                          " its site is not one this server accepts")
    if isinstance(cause, GeoRestrictedError):
        return DownloadError("GEO_RESTRICTED", "the track is not available in this server's"
                          f" country ({detail})")
    if isinstance(cause, ExtractorError) or isinstance(error, YtDlpDownloadError):
        for code, pattern, words in _CAUSES:
            if re.search(pattern, detail, re.I):
                return DownloadError(code, f"{words} ({detail})")
        if isinstance(cause, ExtractorError) and not isinstance(cause.cause, RequestError):
            return DownloadError("EXTRACTOR_FAILED", "the site's page could not be read: the site"
                              f" may have changed; updating yt-dlp may help ({detail})")
    return DownloadError("DOWNLOAD_FAILED", f"download failed: {detail}")


def _detail(error: BaseException) -> str:
    """yt-dlp's message, without its prefixes and hints, in one short line."""
    text = str(getattr(error, "orig_msg", None) or error)
    text = re.sub(r"^(ERROR: )?(\[[^\]]+\] )?([\w-]+: )?", "", text.strip())
    text = re.split(r"\. (Use --|Use --cookies|See  ?https?://|Confirm you are on the latest)",
                    text)[0]
    return " ".join(text.split())[:300]
