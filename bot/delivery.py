"""Post a finished job's stems in its thread: one message per stem, then a summary."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord

from bot.fit import encode_to_fit
from bot.jobapi import ApiError, Job, JobApi, StemFile
from bot.messages import elapsed, headline, kept_for, ping, shown, stems_of
from bot.mixing import MixAsk, summary_view
from separation import OutputFormat
from separation.fact_line import line
from storage import DeliveredStem, JobRecord, JobStore
from wire.enums import TONES

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# Discord's per-message cap, whatever the guild's boosts allow per file.
MESSAGE_LIMIT = 25 * MIB
# Without boosts a guild takes 10 MiB; used when the guild is not in the cache.
DEFAULT_LIMIT = 10 * MIB
# Room for the multipart envelope around the file.
ENVELOPE = 64 * 1024
SUMMARY = "summary"


@dataclass(frozen=True, slots=True)
class Delivered:
    attached: tuple[str, ...]
    linked: tuple[str, ...]
    from_cache: bool = False  # every stem came from the service's result cache
    facts: tuple[dict[str, Any], ...] = ()  # the song facts of each separated input


class Delivery:
    """Downloads stems from the service, fits them to the guild's limit, posts them once."""

    def __init__(self, client: discord.Client, api: JobApi, jobs: JobStore, work_dir: Path):
        self._client = client
        self._api = api
        self._jobs = jobs
        self._work_dir = work_dir

    def upload_limit(self, guild_id: int) -> int:
        guild = self._client.get_guild(guild_id)
        limit = guild.filesize_limit if guild else DEFAULT_LIMIT
        return min(limit, MESSAGE_LIMIT) - ENVELOPE

    def destination(self, record: JobRecord) -> discord.PartialMessageable:
        """The thread when there is one, else the channel of the command."""
        channel_id = record.thread_id or record.channel_id
        return self._client.get_partial_messageable(channel_id, guild_id=record.guild_id)

    async def deliver(self, record: JobRecord, job: Job) -> Delivered:
        """Post every stem not yet posted, then the summary; safe to call again after a crash."""
        done = await self._jobs.delivered(record.id)
        by_stem = {stem: f for f in job.results for stem, tone in TONES.items() if tone == f.tone}
        missing = [stem for stem in stems_of(record) if stem not in by_stem]
        if missing:
            raise ApiError(f"the service returned no file for {', '.join(missing)}")
        target = self.destination(record)
        limit = self.upload_limit(record.guild_id)
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=self._work_dir))
        try:
            for stem in stems_of(record):
                if stem not in done:
                    done[stem] = await self._post_stem(record, stem, by_stem[stem], target,
                                                       limit, folder)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        result = Delivered(
            attached=tuple(s for s in stems_of(record) if done[s].link is None),
            linked=tuple(s for s in stems_of(record) if done[s].link is not None),
            from_cache=all(by_stem[s].from_cache for s in stems_of(record)),
            facts=job.facts,
        )
        if job.files_until is not None:
            record = await self._jobs.update(record.id, files_until=job.files_until)
        if SUMMARY not in done:
            await self._post_summary(record, result, done, target)
        return result

    async def _post_summary(self, record: JobRecord, result: Delivered,
                            done: dict[str, DeliveredStem],
                            target: discord.PartialMessageable) -> None:
        """The summary with its buttons (player, mixes) and the waveforms picture."""
        player = await self._player_link(record)
        picture = await self._waveforms(player, record)
        files = [discord.File(picture, filename="waveforms.png")] if picture else []
        try:
            message = await target.send(
                summary(record, result, done, with_picture=picture is not None),
                nonce=post_nonce(record, SUMMARY), view=summary_view(record, player),
                files=files, allowed_mentions=ping(record.user_id),  # "<@member>, your stems…"
            )
        finally:
            for file in files:
                file.close()
            if picture:
                await asyncio.to_thread(picture.unlink, True)
        await self._jobs.mark_delivered(record.id, SUMMARY, message.id, None)

    async def _post_stem(
        self, record: JobRecord, stem: str, source: StemFile,
        target: discord.PartialMessageable, limit: int, folder: Path,
    ) -> DeliveredStem:
        return await self._post_file(record, stem, shown(record, stem), source, target, limit,
                                     folder)

    async def post_mix(self, record: JobRecord, part: str, ask: MixAsk) -> None:
        """Render the asked mix through MixJob and post it like a stem, once."""
        assert record.service_job_id is not None
        source = await self._api.mix_job(record.service_job_id, ask.preset, record.format,
                                         ask.percent / 100, ask.semitones)
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=self._work_dir))
        try:
            await self._post_file(record, part, ask.label, source, self.destination(record),
                                  self.upload_limit(record.guild_id), folder)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def post_midi(self, record: JobRecord, part: str) -> None:
        """The job's MIDI files (CreateMidi), all in one message, once; a few KiB each."""
        assert record.service_job_id is not None
        made = await self._api.create_midi(record.service_job_id)
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=self._work_dir))
        try:
            files = [discord.File(await self._api.download(source, folder / f"{stem}.mid",
                                                           max_bytes=MESSAGE_LIMIT),
                                  filename=f"{record.track_name} - {stem}.mid")
                     for stem, source in made]
            try:
                message = await self.destination(record).send(
                    f"**MIDI** ({', '.join(shown(record, stem) for stem, _ in made)}): notes"
                    " at the song's tempo, for a DAW or notation program",
                    files=files, nonce=post_nonce(record, part))
            finally:
                for file in files:
                    file.close()
            await self._jobs.mark_delivered(record.id, part, message.id, None)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _post_file(
        self, record: JobRecord, part: str, label: str, source: StemFile,
        target: discord.PartialMessageable, limit: int, folder: Path,
    ) -> DeliveredStem:
        """Attach the file within the upload limit (bitrate steps), else post a link."""
        fmt = OutputFormat(record.format)
        raw = await self._api.download(source, folder / f"{part}.source", max_bytes=1 << 34)
        name = f"{record.track_name} - {label}.{fmt.extension}"
        fitted = await asyncio.to_thread(encode_to_fit, raw, folder / name, fmt, limit)
        if fitted is not None:
            message = await target.send(
                f"**{label}**",
                file=discord.File(fitted, filename=name),
                nonce=post_nonce(record, part),
            )
            await self._jobs.mark_delivered(record.id, part, message.id, None)
            return DeliveredStem(part, message.id, None)
        link, expires = await self._api.share_link(source)
        message = await target.send(
            f"**{label}**: too large for this server's {limit // MIB} MiB upload limit even"
            f" after encoding; download it here (link valid until <t:{expires}:f>): {link}",
            nonce=post_nonce(record, part),
        )
        await self._jobs.mark_delivered(record.id, part, message.id, link)
        return DeliveredStem(part, message.id, link)


    async def _player_link(self, record: JobRecord) -> str:
        assert record.service_job_id is not None
        return await self._api.player_link(record.service_job_id)

    async def _waveforms(self, player: str, record: JobRecord) -> Path | None:
        """The summary's picture; a summary without it beats no summary."""
        target = self._work_dir / f"waveforms-{record.id}.png"
        try:
            return await self._api.waveforms(player, target)
        except ApiError as error:
            log.warning("job #%d: posting the summary without waveforms: %s", record.id, error)
            return None


def post_nonce(record: JobRecord, part: str) -> str:
    """The same 24 characters every time this job posts this part.

    discord.py sends a nonce with `enforce_nonce`, so Discord answers a repeat within a few
    minutes with the message it already made: a bot killed between posting a stem and
    recording it does not post the stem twice when it comes back.
    """
    key = f"{record.id}:{record.created_at!r}:{part}".encode()
    return hashlib.blake2b(key, digest_size=12).hexdigest()


def summary(record: JobRecord, result: Delivered, done: dict[str, DeliveredStem], *,
            with_picture: bool = False) -> str:
    cached = ", from cache: this song was separated before" if result.from_cache else ""
    lines = [f"✅ {headline(record)}", f"<@{record.user_id}>, your stems are ready"
             f" ({elapsed(record)}{cached})."]
    lines += [f"🎵 {line(song)}" for song in result.facts]
    if result.attached:
        lines.append(f"attached above: {', '.join(shown(record, s) for s in result.attached)}")
    if with_picture:
        order = ", ".join(shown(record, stem) for stem in stems_of(record))
        lines.append(f"the picture: each stem's waveform, top to bottom: {order}")
    for stem in result.linked:
        lines.append(f"{shown(record, stem)} (as a link, too large to attach): {done[stem].link}")
    if record.files_until is not None:
        left = kept_for(record.files_until - (record.finished_at or time.time()))
        lines.append(f"files kept {left}, until <t:{int(record.files_until)}:f>;"
                     " `/job delete` removes them sooner")
    return "\n".join(lines)
