"""The web stem player: a page per job behind a signed player link, and its mix download."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from aiohttp import web

from separation import fact_line
from separation.midi_decoding import UNPITCHED
from service.auth import check_player, sign_link
from service.content import clean_path
from service.errors import InvalidParameter, JobNotFound
from service.midi import requested_stems
from service.mixes import (
    MixSpec,
    Stem,
    check_stretch,
    job_stems,
    make_spec,
    mix_file_name,
    parse_gains,
    parse_output_format,
    parse_semitones,
    parse_tempo,
)
from service.origins import media_sources
from service.pages import html_response, page
from service.palette import colour, css
from service.protocol import Job
from service.served import file_headers
from service.state import SERVICE, Service
from service.waveforms import waveforms_png

player_routes = web.RouteTableDef()


async def linked_job(request: web.Request) -> Job:
    """The job of a valid player link whose owner key is still active."""
    service = request.app[SERVICE]
    job_id = request.match_info["job_id"]
    check_player(service.link_secret, job_id, request.query.get("expires", ""),
                 request.query.get("signature", ""))
    job = await service.store.job(job_id)
    # A revoked key's links die with it, as content links do.
    if job is None or await service.store.key(job.owner) is None:
        raise JobNotFound(f"no job {job_id!r}")
    return job


def page_data(service: Service, job: Job, expires: int, signature: str) -> dict[str, Any]:
    """What the page's script needs: each stem's signed link, valid as long as the page's."""
    ttl = max(1, expires - int(time.time()))
    base = service.settings.content_url  # else relative: the page's own origin
    query = f"expires={expires}&signature={signature}"
    stems = [{"name": s.name, "colour": css(colour(s.name, index)),
              "url": sign_link(service.link_secret, base, s.content_id, s.path, ttl)[0],
              # drums have no notes: no MIDI link
              "midi": None if s.name in UNPITCHED else
              f"/player/{quote(job.id)}/midi/{quote(s.name)}?{query}"}
             for index, s in enumerate(job_stems(job))]
    facts = job.outputs[0].facts  # one per input: the first is the one the stems are of
    first = facts[0] if facts else {}
    return {"job": job.id, "title": title_of(job), "stems": stems,
            "facts": fact_line.line(first) if first else "",
            "bpm": (first.get("tempo") or {}).get("bpm"),  # the count-in's; None if unclear
            "chords": chords(first),
            "mix": f"/player/{quote(job.id)}/mix?{query}", "expiresAt": expires * 1000}


def title_of(job: Job) -> str:
    """The page's title: "Artist – Title" of the track a page link named (the first input's),
    else the job's customId, else its id."""
    track = job.inputs[0].track if job.inputs else None
    if track and track.get("title"):
        artist = track.get("uploader") or ""
        return f"{artist} – {track['title']}" if artist else track["title"]
    return job.custom_id or job.id


def chords(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The song's chords along its timeline, `{start, end, chord}` in seconds, where its facts
    hold them (empty otherwise: the page then draws no chord lane)."""
    found = facts.get("chords") or []
    return [{"start": float(c["start"]), "end": float(c["end"]), "chord": str(c["chord"])}
            for c in found if float(c["end"]) > float(c["start"])]


@player_routes.get("/player/{job_id}")
async def player(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    job = await linked_job(request)
    data = page_data(service, job, int(request.query["expires"]), request.query["signature"])
    styles = ("/vendor/pico/pico.min.css", "/static/player.css")  # Pico the base, then ours
    return html_response(page(data["title"], data, "player.js", styles),
                         media_sources(service))


@player_routes.get("/player/{job_id}/mix")
async def player_mix(request: web.Request) -> web.StreamResponse:
    """The mix as set in the player (`gains` JSON, `format`), then to its signed link."""
    service = request.app[SERVICE]
    job = await linked_job(request)
    stems = job_stems(job)
    try:
        raw = json.loads(request.query.get("gains", "{}"))
    except ValueError:
        raise InvalidParameter("gains must be a JSON object of stem: gain") from None
    gains = parse_gains(raw, [s.name for s in stems], "gains")
    fmt = parse_output_format(request.query.get("format", service.settings.output_format),
                              "format")
    output = job.outputs[0]
    destination = clean_path(output.destination, "destination", root_slash=True)
    tempo, semitones = practice(request)
    spec = make_spec(gains, fmt, output.content_id, destination, tempo, semitones)
    if spec.name.startswith("custom-") or tempo != 1.0 or semitones:
        return await custom_mix(service, job, stems, spec)
    # a plain named preset is one file per job and format, kept beside the stems as MixJob
    # keeps it
    record = await service.mixer.mix(job, stems, spec)
    url, _ = sign_link(service.link_secret, service.content_base, record.content_id,
                       record.path, service.settings.link_ttl)
    raise web.HTTPSeeOther(url)


@player_routes.get("/player/{job_id}/midi/{stem}")
async def player_midi(request: web.Request) -> web.StreamResponse:
    """One stem's MIDI file (CreateMidi's, made once, beside the stems), then to its signed
    link."""
    service = request.app[SERVICE]
    job = await linked_job(request)
    chosen = requested_stems({"stems": [request.match_info["stem"]]}, job_stems(job), "stem")
    [made] = await service.midi.make(job, chosen)
    url, _ = sign_link(service.link_secret, service.content_base, made.content_id, made.path,
                       service.settings.link_ttl)
    raise web.HTTPSeeOther(url)


def practice(request: web.Request) -> tuple[float, int]:
    """The player's `tempo` and `semitones` (JSON numbers), checked as MixJob checks them."""
    try:
        tempo = json.loads(request.query.get("tempo", "1"))
        semitones = json.loads(request.query.get("semitones", "0"))
    except ValueError:
        raise InvalidParameter("tempo and semitones must be numbers") from None
    checked = parse_tempo(tempo, "tempo"), parse_semitones(semitones, "semitones")
    check_stretch(*checked, "the player's mix")
    return checked


async def custom_mix(service: Service, job: Job, stems: list[Stem], spec: MixSpec
                     ) -> web.FileResponse:
    """Any other gains: rendered into the bounded player-mix cache, never the owner's
    repository, and sent from there (a player link only reads)."""
    name = mix_file_name(job, spec)
    cached = f"{job.id}-{spec.digest}{PurePosixPath(name).suffix}"
    path = await service.player_mixes.get(
        cached, lambda part: service.mixer.render(stems, spec, part))
    return web.FileResponse(path, headers=file_headers(name))


@player_routes.get("/player/{job_id}/waveforms.png")
async def waveforms(request: web.Request) -> web.Response:
    """The stems' waveforms stacked in one PNG, top to bottom in delivery order."""
    service = request.app[SERVICE]
    job = await linked_job(request)
    named = job_stems(job)
    stems = [(s.content_id, s.path) for s in named]
    for content_id, rel in stems:
        await service.content.existing_file(content_id, rel)
    async with service.content.local_files(stems) as paths:
        body = await asyncio.to_thread(
            waveforms_png, [(s.name, p) for s, p in zip(named, paths, strict=True)])
    headers = {**file_headers("waveforms.png", "image/png"),
               "Cache-Control": "private, max-age=3600"}
    return web.Response(body=body, headers=headers)
