"""yt-dlp's own exceptions, as the site extractors raise them, mapped to our error codes.

The site extractors (YouTube, SoundCloud, Bandcamp, Vimeo) cannot be reached offline, so
their failures are built here from the messages they raise (yt-dlp wraps an extractor's
error in a DownloadError carrying it in `exc_info`).
"""

from __future__ import annotations

import pytest
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import DownloadError as YtDlpDownloadError
from yt_dlp.utils import ExtractorError, GeoRestrictedError, UnsupportedError

from download.errors import DownloadError
from download.fetch import FetchLimits
from download.pages import check_metadata, failure_of
from download.sites import LinkRules


def wrapped(error: Exception) -> YtDlpDownloadError:
    """As YoutubeDL.extract_info raises it."""
    return YtDlpDownloadError(f"ERROR: {error}", (type(error), error, None))


@pytest.mark.parametrize(("raised", "code", "words"), [
    (UnsupportedError("https://example.com/nothing"), "LINK_NOT_SUPPORTED",
     "no audio or video was found"),
    (ExtractorError("[youtube] abc: Video unavailable. This video has been removed by the"
                    " uploader", expected=True), "MEDIA_UNAVAILABLE", "removed, is private"),
    (ExtractorError("[youtube] abc: Private video. Sign in if you've been granted access to"
                    " this video", expected=True), "MEDIA_UNAVAILABLE", "is private"),
    (ExtractorError("[youtube] abc: Join this channel to get access to members-only content"
                    " like this video", expected=True), "SIGN_IN_REQUIRED", "signed-in account"),
    (ExtractorError("[youtube] abc: Sign in to confirm your age. This video may be"
                    " inappropriate for some users.", expected=True), "SIGN_IN_REQUIRED",
     "age-restricted"),
    (ExtractorError("[youtube] abc: Sign in to confirm you’re not a bot. Use --cookies",
                    expected=True), "BOT_CHECK", "bot check"),
    (GeoRestrictedError("The uploader has not made this video available in your country."),
     "GEO_RESTRICTED", "not available in this server's country"),
    (ExtractorError("[vimeo] 1: This video is not available in your country.",
                    expected=True), "GEO_RESTRICTED", "country"),
    (ExtractorError("[soundcloud] a/b: Unable to download JSON metadata: HTTP Error 404: Not"
                    " Found", expected=True), "MEDIA_UNAVAILABLE", "does not exist"),
    (ExtractorError("[youtube] abc: This live event will begin in 3 hours.", expected=True),
     "LIVE_STREAM", "live stream"),
    (ExtractorError("[Bandcamp] x: Unable to extract track info; please report this issue"),
     "EXTRACTOR_FAILED", "the site may have changed; updating yt-dlp may help"),
])
def test_extractor_errors_name_their_cause(raised: Exception, code: str, words: str) -> None:
    for error in (raised, wrapped(raised)):
        failure = failure_of(error)
        assert failure.code == code, (error, failure.message)
        assert words in failure.message
        assert "ERROR:" not in failure.message and "--cookies" not in failure.message


def test_network_errors_are_download_failures() -> None:
    for raised in (TransportError("Connection reset by peer"),
                   ExtractorError("Unable to download webpage: timed out",
                                  cause=TransportError("timed out"))):
        failure = failure_of(wrapped(raised))
        assert failure.code == "DOWNLOAD_FAILED", failure.message
    assert failure_of(YtDlpDownloadError("ERROR: No suitable extractor found for URL x")).code == \
        "LINK_NOT_SUPPORTED"
    assert HTTPError  # imported for the reader: a 403 from the guard becomes URL_NOT_ALLOWED


LIMITS = FetchLimits(max_bytes=1000, timeout=5, max_redirects=0, allow_private=False)
RULES = LinkRules(max_seconds=600)


@pytest.mark.parametrize(("info", "code"), [
    ({"_type": "playlist", "entries": []}, "PLAYLIST_LINK"),
    ({"_type": "multi_video"}, "PLAYLIST_LINK"),
    ({"is_live": True}, "LIVE_STREAM"),
    ({"live_status": "is_upcoming"}, "LIVE_STREAM"),
    ({"duration": 601}, "AUDIO_TOO_LONG"),
    ({"filesize": 1001}, "INPUT_TOO_LARGE"),
    ({"filesize_approx": 5000.5}, "INPUT_TOO_LARGE"),
])
def test_metadata_refusals(info: dict[str, object], code: str) -> None:
    with pytest.raises(DownloadError) as failed:
        check_metadata(info, RULES, LIMITS)
    assert failed.value.code == code


def test_metadata_within_limits_passes() -> None:
    check_metadata({"duration": 600, "filesize": 1000, "live_status": "was_live"}, RULES,
                   LIMITS)
    check_metadata({"_type": "url_transparent", "duration": None}, RULES, LIMITS)
