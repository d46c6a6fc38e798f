"""What members read: the status line of a job and its summary."""

from __future__ import annotations

import time

from separation import StemPreset
from storage import JobRecord, JobState

STEM_CHOICES = {
    2: "2 — vocals / accompaniment",
    4: "4 — vocals / drums / bass / other",
    5: "5 — vocals / drums / bass / piano / other",
}


def stems_of(record: JobRecord) -> tuple[str, ...]:
    return StemPreset.from_count(record.stems).stems


def headline(record: JobRecord) -> str:
    return (f"**{record.track_name}** → {record.stems} stems"
            f" ({' / '.join(stems_of(record))}), {record.format} · job #{record.id}")


def status_text(record: JobRecord) -> str:
    """The reply message's text for the record's current state."""
    return f"{headline(record)}\n{state_line(record)}"


def state_line(record: JobRecord) -> str:
    match record.state:
        case JobState.DOWNLOADING:
            return "⏬ downloading and checking the track…"
        case JobState.QUEUED:
            return "⏳ queued"
        case JobState.SEPARATING:
            return f"🎛️ separating… {record.progress}%"
        case JobState.UPLOADING:
            return "⏫ uploading the stems…"
        case JobState.DONE:
            where = f" in <#{record.thread_id}>" if record.thread_id else ""
            return f"✅ done: {record.stems} stems delivered{where} ({elapsed(record)})"
        case JobState.FAILED:
            return f"❌ failed: {record.error or 'unknown error'}"
        case JobState.CANCELED:
            return f"🚫 canceled{': ' + record.error if record.error else ''}"


def elapsed(record: JobRecord) -> str:
    end = record.finished_at or time.time()
    seconds = round(end - record.created_at)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def history_line(record: JobRecord) -> str:
    """One job in `/jobs history`: member, link, stems, state, times, error."""
    created = f"<t:{int(record.created_at)}:f>"
    finished = f", finished <t:{int(record.finished_at)}:R>" if record.finished_at else ""
    error = f"\n  error: {record.error}" if record.error else ""
    return (f"**#{record.id}** <@{record.user_id}> · {record.stems} stems · {record.format}"
            f" · **{record.state.value}**\n  <{record.input_url}>\n"
            f"  submitted {created}{finished}{error}")
