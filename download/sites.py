"""The kinds of link inputs may name (STEMBOT_LINK_SITES) and what a page says of its track;
light to import: yt-dlp itself is loaded only by `download.pages`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# The kinds of link STEMBOT_LINK_SITES names; `direct` (an audio file's own URL) is always
# accepted, so `direct` alone turns every page link off.
SITES = ("youtube", "soundcloud", "bandcamp", "vimeo", "generic")
KINDS = (*SITES, "direct")
DEFAULT_SITES = ",".join(SITES)

# Links of these hosts (and their subdomains) go to yt-dlp at once; others are fetched as
# a direct file first, and handed to yt-dlp's generic extractor only if they are a page.
HOSTS: dict[str, tuple[str, ...]] = {
    "youtube": ("youtube.com", "youtu.be", "youtube-nocookie.com"),
    "soundcloud": ("soundcloud.com", "snd.sc"),
    "bandcamp": ("bandcamp.com",),
    "vimeo": ("vimeo.com",),
}


def parse_sites(raw: str) -> frozenset[str]:
    """STEMBOT_LINK_SITES: a comma-separated list of KINDS; ValueError names a bad one."""
    found = {part.strip().lower() for part in raw.split(",") if part.strip()}
    unknown = sorted(found - set(KINDS))
    if unknown:
        raise ValueError(f"unknown kind(s) of link {', '.join(unknown)}; known: "
                         f"{', '.join(KINDS)}")
    return frozenset(found - {"direct"})


@dataclass(frozen=True, slots=True)
class LinkRules:
    """Which page links a resolver accepts, and the track length it allows (0: any)."""

    sites: frozenset[str] = frozenset(SITES)
    max_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Track:
    """What the page said about the track: it travels with the job."""

    site: str  # one of SITES
    id: str  # the site's own id (for `generic`, the page's)
    title: str
    uploader: str
    page: str  # the page's canonical URL

    @property
    def cache_name(self) -> str | None:
        """`site:id` for sites whose ids name one song whatever the link's form; None for
        generic pages, whose ids are only the page's file name."""
        return None if self.site == "generic" else f"{self.site}:{self.id}"

    @property
    def display(self) -> str:
        """"Artist – Title", or the title alone."""
        return f"{self.uploader} – {self.title}" if self.uploader else self.title

    def wire(self) -> dict[str, str]:
        return {"site": self.site, "id": self.id, "title": self.title,
                "uploader": self.uploader, "page": self.page}


def site_of_url(url: str) -> str | None:
    """The site a link's host belongs to, or None (a direct file or a generic page)."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for site, domains in HOSTS.items():
        if any(host == d or host.endswith("." + d) for d in domains):
            return site
    return None


def site_of_extractor(key: str) -> str:
    lowered = key.lower()
    for site in SITES[:-1]:
        if lowered.startswith(site):
            return site
    return "generic"
