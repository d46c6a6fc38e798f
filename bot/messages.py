"""What members read: the status line of a job and its summary."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import discord

from separation import StemPreset
from separation.presets import shown_name
from storage import JobRecord, JobState
from wire.jobs import QueueWire

# "2 — vocals / accompaniment", "4 — vocals / drums / bass / other", ...
STEM_CHOICES = {
    preset.count: f"{preset.count} — " + " / ".join(shown_name(preset, s) for s in preset.stems)
    for preset in StemPreset
}


# Mention syntax in any text: @everyone, @here, and <@id>, <@!id>, <@&id> with ids of any
# length. discord.utils.escape_mentions matches only 17-20 digit ids, so `<@&123>` would
# still be drawn as a (deleted) role.
_MENTION = re.compile(r"@(everyone|here|[!&]?[0-9]+)")
# What ends a `<link>` early; inside one, Discord reads no Markdown and no mention.
_LINK_BREAKERS = re.compile(r"[\s<>]")


def plain(text: str) -> str:
    """Text a member controls (a track name, a file name, a link, an error quoting them) shown
    as it is: Markdown escaped, mentions broken by a zero-width space.

    The client's default AllowedMentions.none() already stops the pings; this stops
    `@everyone`, `**…**` or a masked link from looking like the bot's own words. Links in the
    text stay clickable: escape_markdown leaves http(s) URLs alone.
    """
    return _MENTION.sub("@\u200b\\1", discord.utils.escape_markdown(text))


def shown_link(url: str, limit: int) -> str:
    """A member's link as a clickable `<link>` (no preview), at most `limit` characters inside.

    Escaping its Markdown would change the address, so whatever could end the `<…>` early is
    percent-encoded instead: then the whole link is one autolink, and nothing in it renders.
    """
    safe = _LINK_BREAKERS.sub(lambda match: quote(match.group(), safe=""), url)
    return f"<{shorten(safe, limit)}>"


def ping(user_id: int) -> discord.AllowedMentions:
    """The mentions a message that calls its member may make: that member, nobody else."""
    return discord.AllowedMentions(everyone=False, roles=False, replied_user=False,
                                   users=[discord.Object(user_id)])


def stems_of(record: JobRecord) -> tuple[str, ...]:
    return StemPreset.from_count(record.stems).stems


def shown(record: JobRecord, stem: str) -> str:
    """The stem's name in messages and file names: two stems' `other` is `accompaniment`."""
    return shown_name(StemPreset.from_count(record.stems), stem)


# `high` is Demucs' shifts: benchmarks/engine_quality.py measured what each count buys.
QUALITY_SHIFTS = {"standard": 1, "high": 2}


def headline(record: JobRecord) -> str:
    quality = ", high quality" if record.shifts > 1 else ""
    names = " / ".join(shown(record, stem) for stem in stems_of(record))
    return (f"**{plain(record.shown_title)}** → {record.stems} stems"
            f" ({names}), {record.format}{quality} · job #{record.id}")


def status_text(record: JobRecord, queue: str = "") -> str:
    """The reply message's text for the record's current state; `queue`: while queued, where
    the job stands (queue_note)."""
    return f"{headline(record)}\n{state_line(record, queue)}"


def queue_note(queue: QueueWire | None) -> str:
    """' · 3 songs ahead · about 2 min' from the service's job.queue; '' without one. The
    estimate is the service's, from its recent separations: absent, none is shown."""
    if queue is None:
        return ""
    ahead = queue["ahead"]
    note = (" · next in line" if ahead == 0 else
            f" · {ahead} song{'' if ahead == 1 else 's'} ahead")
    eta = queue.get("etaSeconds")
    if eta is not None:
        note += f" · about {about(eta)}"
    return note


def about(seconds: int) -> str:
    """A wait as people say it: '40 s', '2 min', '1 h 10 min'."""
    if seconds < 60:
        return f"{max(10, round(seconds / 10) * 10)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def state_line(record: JobRecord, queue: str = "") -> str:
    match record.state:
        case JobState.DOWNLOADING:
            return "⏬ downloading and checking the track…"
        case JobState.QUEUED:
            return f"⏳ queued{queue}"
        case JobState.SEPARATING:
            return f"🎛️ separating… {record.progress}%"
        case JobState.UPLOADING:
            return "⏫ uploading the stems…"
        case JobState.DONE:
            where = f" in <#{record.thread_id}>" if record.thread_id else ""
            return (f"✅ done: {record.stems} stems delivered{where} ({elapsed(record)})"
                    f"{files_note(record)}")
        case JobState.FAILED:
            return f"❌ failed: {plain(record.error or 'unknown error')}"
        case JobState.CANCELED:
            # The bot's own note ("by <@member>"): escaping would spoil its mention.
            return f"🚫 canceled{': ' + record.error if record.error else ''}"


def kept_for(seconds: float) -> str:
    """A retention period in the unit people use for it: '7 days', '12 hours', '5 minutes'."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{round(seconds / size)} {unit}"
    return f"{max(1, round(seconds))} seconds"


def files_note(record: JobRecord) -> str:
    """Where the files stand: deleted, expired, or kept until when."""
    if record.deleted_at is not None:
        return f" · deleted by <@{record.deleted_by}> <t:{int(record.deleted_at)}:R>"
    if record.files_until is None:
        return ""
    if record.files_expired():
        return f" · files expired <t:{int(record.files_until)}:R>"
    return f" · files kept until <t:{int(record.files_until)}:f>"


def elapsed(record: JobRecord) -> str:
    end = record.finished_at or time.time()
    seconds = round(end - record.created_at)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


# Discord refuses message content over 2000 characters (HTTP 400, code 50035).
MESSAGE_LIMIT = 2000
# A history line shows at most this much of the link and of the error: then a line is
# under 390 characters, and a page of five (cogs/jobs.py) fits in one message.
URL_LIMIT = 150
ERROR_LIMIT = 100
TITLE_LIMIT = 60


def shorten(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters with an ellipsis when it is longer."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def history_line(record: JobRecord, mixes: tuple[str, ...] = ()) -> str:
    """One job in `/jobs history`: member, link, stems, state, times, error, mixes posted."""
    created = f"<t:{int(record.created_at)}:f>"
    finished = f", finished <t:{int(record.finished_at)}:R>" if record.finished_at else ""
    error = f"\n  error: {shown_error(record)}" if record.error else ""
    error += f"\n  mixes: {', '.join(mixes)}" if mixes else ""
    state = record.state.value + files_note(record).replace(" · ", ", ")
    # a page's title takes room from its link: the line stays as long as before
    title = f"{plain(shorten(record.title, TITLE_LIMIT))} · " if record.title else ""
    link = shown_link(record.input_url, max(TITLE_LIMIT, URL_LIMIT - len(title)))
    return (f"**#{record.id}** <@{record.user_id}> · {record.stems} stems · {record.format}"
            f" · **{state}**\n  {title}{link}\n"
            f"  submitted {created}{finished}{error}")


def shown_error(record: JobRecord) -> str:
    """A history line's error: a failure's reason quotes members' text, a cancel is the bot's."""
    error = shorten(record.error or "", ERROR_LIMIT)
    return plain(error) if record.state is JobState.FAILED else error
