"""One entry for every link an input names: a direct audio file keeps today's guarded
download; a page link (a known site, or a fetched file that turns out to be a web page or
a streaming manifest) is resolved by yt-dlp through the guard (`download.pages`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from download.errors import DownloadError
from download.fetch import FetchLimits, download
from download.pages import read_page, resolve_page
from download.sites import LinkRules, Track, site_of_url

SNIFF = 4096  # bytes of a fetched file that tell a page from audio
_PAGE_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"#extm3u")
_MARKUP_STARTS = (b"<?xml", b"<!--", b"<mpd")  # a page or a DASH manifest, if it says so


async def fetch_link(client: aiohttp.ClientSession, url: str, target: Path,
                     limits: FetchLimits, rules: LinkRules) -> Track | None:
    """The link's audio into `target`: the track's facts for a page link, None for a file."""
    site = site_of_url(url)
    if site is not None:
        if site not in rules.sites:
            raise DownloadError("LINK_NOT_SUPPORTED", f"{site} links are not accepted here"
                             " (STEMBOT_LINK_SITES)")
        return await resolve_page(url, target, limits, rules)
    await download(client, url, target, limits)
    if not await asyncio.to_thread(is_page, target):
        return None
    if "generic" not in rules.sites:
        raise DownloadError("LINK_NOT_SUPPORTED", "the link is a web page, not an audio file, and"
                         " page links are not accepted here (STEMBOT_LINK_SITES): link the"
                         " audio file itself")
    await asyncio.to_thread(target.unlink, missing_ok=True)
    return await resolve_page(url, target, limits, rules)


async def read_link(url: str, limits: FetchLimits, rules: LinkRules) -> Track | None:
    """The track a known site's link names, from its metadata alone (no media requested);
    None for any other link, whose song is known only from its bytes: a direct file, or a
    generic page, whose id is only the media's file name."""
    site = site_of_url(url)
    if site is None or site not in rules.sites:
        return None  # not a known site's, or refused as fetch_link refuses it
    return await read_page(url, limits, rules)


def is_page(path: Path) -> bool:
    """An HTML page, an HLS playlist or a DASH manifest rather than a media file."""
    with path.open("rb") as file:
        head = file.read(SNIFF)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(_PAGE_STARTS):
        return True
    return text.startswith(_MARKUP_STARTS) and (b"<mpd" in text or b"<html" in text)
