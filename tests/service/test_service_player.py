"""The stem player in a real browser (Debian's chromium, headless, driven by Playwright) on a
real job's player link; and CreatePlayerLink's refusals over plain HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from browsing import shoot
from playwright.async_api import Browser, Page
from service_harness import Separated

from separation import decode, fact_line
from service import player
from service.auth import link_secret, sign_player
from service.mixes import mixed
from service.palette import STEM_COLOURS
from service.protocol import Job
from service.state import SERVICE
from wire.enums import State
from wire.jobs import InputSpec

pytestmark = pytest.mark.asyncio(loop_scope="module")
# screenshots land here for the CI run (and a person) to look at; git-ignored
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "player"


async def player_link(separated: Separated, **fields: Any) -> str:
    made = await separated.api.ok("CreatePlayerLink", {"id": separated.job["id"], **fields})
    assert re.fullmatch(r"[0-9]+", made["expiresAt"])
    url: str = made["url"]
    return url


class Watched:
    """A page with its console errors and every URL it requested."""

    def __init__(self, page: Page) -> None:
        self.page, self.errors, self.requests = page, list[str](), list[str]()
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    async def state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self.page.evaluate("window.stemPlayer.state()")
        return state

    async def until(self, condition: str, within: float = 20) -> dict[str, Any]:
        """Wait until a JS condition over `s` (the player's state) holds; the state then.

        Polled with evaluate: wait_for_function evaluates a string, which the page's
        Content-Security-Policy (no 'unsafe-eval') rightly refuses."""
        check = f"() => (s => ({condition}))(window.stemPlayer.state())"
        async with asyncio.timeout(within):
            while not await self.page.evaluate(check):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        return await self.state()


def gains(state: dict[str, Any]) -> dict[str, float]:
    return {s["name"]: s["effective"] for s in state["stems"]}


async def test_the_player_plays_mutes_and_solos_in_a_real_browser(
        separated: Separated, browser: Browser) -> None:
    url = await player_link(separated)
    page = await browser.new_page(viewport={"width": 1000, "height": 800})
    watched = Watched(page)
    response = await page.goto(url)
    assert response is not None and response.status == 200
    state = await watched.until("s.ready")
    assert [s["name"] for s in state["stems"]] == ["vocals", "drums", "bass", "other"]
    assert state["duration"] == pytest.approx(5.0, abs=0.05)
    # the song facts, worded as in the Discord summary
    facts = separated.job["outputs"][0]["smartContentResult"]["facts"][0]
    shown = await page.locator("#facts").text_content() or ""
    assert shown == fact_line.line(facts) and "LUFS" in shown, shown

    await page.keyboard.press("Space")
    state = await watched.until("s.playing && s.time > 0.5 && s.level > 0.001")
    await shoot(page, ARTIFACTS, "playing.png", "player-")

    await page.keyboard.press("1")  # mute vocals
    state = await watched.until("s.stems[0].muted && s.stems[0].gain === 0")
    assert gains(state) == {"vocals": 0, "drums": 1, "bass": 1, "other": 1}
    await page.click("[data-stem=drums] .solo")
    state = await watched.until("s.stems[1].solo && s.stems.map(x => x.gain).join() == '0,1,0,0'")
    assert gains(state) == {"vocals": 0, "drums": 1, "bass": 0, "other": 0}
    assert [s["gain"] for s in state["stems"]] == [0, 1, 0, 0]  # the audio graph itself
    await page.click("[data-stem=drums] .mute")  # soloed and muted: nothing sounds
    state = await watched.until("s.level < 0.0001 && s.playing")
    assert set(gains(state).values()) == {0}
    await page.click("[data-stem=drums] .mute")
    await page.screenshot(path=ARTIFACTS / "drums-solo.png")
    await page.keyboard.press("Space")
    state = await watched.until("!s.playing")

    # the stems came through signed content links only, and nothing left the service
    stems = [u for u in watched.requests if "/content/" in u]
    assert len(stems) == 4 and all("signature=" in u for u in stems), watched.requests
    files = separated.running.settings.content_url
    assert all(u.startswith(files) for u in stems), stems  # from the content origin
    assert all(u.startswith((separated.running.service.url, files)) for u in watched.requests)
    assert watched.errors == [] and state["errors"] == []
    await page.close()


async def test_the_mix_download_is_the_mix_as_set(separated: Separated, browser: Browser,
                                                  tmp_path: Path) -> None:
    page = await browser.new_page()
    watched = Watched(page)
    await page.goto(await player_link(separated))
    await watched.until("s.ready")
    await page.click("[data-stem=drums] .solo")
    await page.select_option("#mix-format", "wav-float")
    await watched.until("s.stems[1].solo")
    async with page.expect_download() as info:
        await page.click("#mix-download")
    saved = tmp_path / "mix.wav"
    await (await info.value).save_as(saved)
    mix = await asyncio.to_thread(decode, saved)
    drums = await asyncio.to_thread(decode, separated.folder() / separated.results["drums"])
    np.testing.assert_array_equal(mix, drums)  # drums solo: the drums alone, sample for sample
    assert watched.errors == []
    await page.close()


async def test_the_player_fits_a_phone_and_the_keyboard(separated: Separated,
                                                        browser: Browser) -> None:
    page = await browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
    watched = Watched(page)
    await page.goto(await player_link(separated))
    await watched.until("s.ready")
    fits = await page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert fits, "the page scrolls sideways on a phone"
    await page.keyboard.press("2")
    await page.keyboard.press("ArrowRight")
    await watched.until("s.stems[1].muted && s.time >= 5 - 0.01")
    await page.screenshot(path=ARTIFACTS / "phone.png", full_page=True)
    await page.emulate_media(color_scheme="dark")  # Pico follows the system's scheme
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 255, 255)", background
    await shoot(page, ARTIFACTS, "phone-dark.png", "player-")
    assert watched.errors == []
    await page.close()


async def test_a_tampered_or_expired_player_link_is_refused(separated: Separated,
                                                            browser: Browser) -> None:
    url = await player_link(separated)
    query = parse_qs(urlsplit(url).query)
    signature = query["signature"][0]
    forged = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    secret = await asyncio.to_thread(link_secret, separated.running.settings.data_dir)
    expired, _ = sign_player(secret, separated.running.service.url, separated.job["id"], -60)
    other_job = url.replace(separated.job["id"], separated.job["id"][:-1] + "x")
    page = await browser.new_page()
    for link, message in [(forged, "the link's signature is wrong"),
                          (expired, "the link has expired"),
                          (other_job, "the link's signature is wrong")]:
        response = await page.goto(link)
        assert response is not None and response.status == 401
        body = json.loads(await response.text())
        assert body["error"] == {"code": "AUTH_FAILED", "message": message}
    await page.screenshot(path=ARTIFACTS / "refused.png")
    for link in (forged, expired):  # the waveforms picture is behind the same link
        path, _, query = link.partition("?")
        async with separated.api.client.get(f"{path}/waveforms.png?{query}") as response:
            assert response.status == 401
    await page.close()


async def test_create_player_link_refuses_bad_requests(separated: Separated) -> None:
    api, job_id = separated.api, separated.job["id"]
    status, body = await api.call("CreatePlayerLink", {"id": job_id, "expiresIn": 0})
    assert status == 400 and body["error"]["message"] == (
        "createPlayerLinkRequest.expiresIn must be 1..31536000 seconds")
    status, body = await api.call("CreatePlayerLink", {"id": job_id},
                                  key=separated.running.other)
    assert (status, body["error"]["code"]) == (404, "JOB_NOT_FOUND")
    status, body = await api.call("CreatePlayerLink", {})
    assert (status, body["error"]["message"]) == (400, "createPlayerLinkRequest.id is required")


async def test_a_player_link_only_reads(separated: Separated) -> None:
    """Anyone holding the link may ask for any gains: each custom mix goes to a bounded cache
    off the owner's storage; a named preset is stored once for the job."""
    url = await player_link(separated)
    path, _, query = url.partition("?")
    service = separated.running.service.runner.app[SERVICE]
    mixes = service.player_mixes
    before = separated.files()
    one_mix = 5 * 44_100 * 2 * 4  # 5 s of stereo float32
    mixes.max_bytes = int(2.5 * one_mix)  # room for two
    stems = [(separated.folder() / separated.results[name], name)
             for name in ("vocals", "drums", "bass", "other")]
    try:
        for step in range(5):
            gains = {"vocals": step / 10, "drums": 1, "bass": 0.5, "other": 1}
            mix = f"{path}/mix?{query}&format=wav-float&gains={json.dumps(gains)}"
            async with separated.api.client.get(mix, allow_redirects=False) as answer:
                assert answer.status == 200, await answer.text()
                assert answer.headers["X-Content-Type-Options"] == "nosniff"
                body = await answer.read()
            held = list(mixes.folder.iterdir())  # earlier tests' mixes among them
            assert len(held) <= 2, held
            assert sum(f.stat().st_size for f in held) <= mixes.max_bytes
        assert separated.files() == before  # nothing written into the owner's repository
        got = separated.folder().parent / "last-mix.wav"  # outside the repository
        got.write_bytes(body)
        expected = await asyncio.to_thread(mixed, [(p, gains[n]) for p, n in stems])
        np.testing.assert_allclose(await asyncio.to_thread(decode, got), expected, atol=1e-6)
        for _ in range(2):  # a named preset: one file for the job, however often asked
            mix = f'{path}/mix?{query}&format=wav&gains={json.dumps({"vocals": 0})}'
            async with separated.api.client.get(mix, allow_redirects=False) as answer:
                assert answer.status == 303
        added = separated.files() - before
        assert len(added) == 1 and next(iter(added)).endswith("-mix-instrumental.wav")
    finally:
        mixes.max_bytes = separated.running.settings.player_mix_cache


async def test_each_pitched_stem_has_a_midi_download(separated: Separated,
                                                     browser: Browser) -> None:
    """A MIDI link beside each stem's Download, none for drums; it makes the file once
    (CreateMidi's, beside the stems) and sends it there through a signed link."""
    url = await player_link(separated)
    page = await browser.new_page(viewport={"width": 1000, "height": 800})
    await page.goto(url)
    await Watched(page).until("s.ready")
    links = {name: await page.locator(f"[data-stem={name}] a.midi").count()
             for name in ("vocals", "drums", "bass", "other")}
    assert links == {"vocals": 1, "drums": 0, "bass": 1, "other": 1}
    href = await page.locator("[data-stem=bass] a.midi").get_attribute("href")
    await page.close()
    assert href is not None
    client, base = separated.api.client, separated.running.service.url
    for _ in range(2):
        async with client.get(base + href, allow_redirects=False) as answer:
            assert answer.status == 303, await answer.text()
            location = answer.headers["Location"]
        async with client.get(location) as answer:
            assert answer.status == 200 and (await answer.read()).startswith(b"MThd")
    made = [name for name in separated.files() if name.endswith(".mid")]
    assert made == [f"{separated.job['id']}-0-bass.mid"]  # once, beside the stems
    path, _, query = url.partition("?")
    async with client.get(f"{path}/midi/drums?{query}") as answer:
        assert answer.status == 400
        assert "stem: drums are not pitched" in (await answer.json())["error"]["message"]


async def test_each_stem_has_one_colour_in_the_player_and_the_picture(
        separated: Separated, browser: Browser) -> None:
    """The Discord waveforms picture and the player's lanes draw a stem in the same colour,
    service/palette.py's."""
    url = await player_link(separated)
    path, _, query = url.partition("?")
    async with separated.api.client.get(f"{path}/waveforms.png?{query}") as answer:
        assert answer.status == 200
        picture = await answer.read()
    width, height = struct.unpack(">II", picture[16:24])
    raw = zlib.decompress(picture[41:-16])  # the one IDAT chunk
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * 3)[:, 1:]
    pixels = rows.reshape(height, width, 3)
    names = ["vocals", "drums", "bass", "other"]
    for lane, name in enumerate(names):
        drawn = {tuple(int(c) for c in p) for p in pixels[lane * 78:lane * 78 + 72].reshape(-1, 3)}
        assert drawn == {(255, 255, 255), STEM_COLOURS[name]}, name
    page = await browser.new_page()
    watched = Watched(page)
    await page.goto(url)
    await watched.until("s.ready")
    shown = await page.evaluate(
        "[...document.querySelectorAll('.lane .wave')].map(c => getComputedStyle(c).color)")
    assert shown == ["rgb({}, {}, {})".format(*STEM_COLOURS[n]) for n in names]
    assert watched.errors == []
    await page.close()


TEMPO = {"bpm": 120.0, "confidence": 0.9}
CHORDS = [{"start": 0.0, "end": 1.25, "chord": "F"}, {"start": 1.25, "end": 2.5, "chord": "Dm"},
          {"start": 2.5, "end": 3.75, "chord": "B♭"}, {"start": 3.75, "end": 5.0, "chord": "C7"}]


@pytest.fixture
def practice_facts(separated: Separated, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job's song facts as the facts of a song with a clear tempo and its chords (the
    5 s test clip's own tempo is unclear, and its chords are what the estimator reads)."""
    facts_as(separated, monkeypatch, TEMPO, CHORDS)


@pytest.fixture
def bare_facts(separated: Separated, monkeypatch: pytest.MonkeyPatch) -> None:
    """The facts of a song whose tempo is unclear and whose chords none could read."""
    facts_as(separated, monkeypatch, None, [])


def facts_as(separated: Separated, monkeypatch: pytest.MonkeyPatch,
             tempo: dict[str, float] | None, chords: list[dict[str, Any]]) -> None:
    store = separated.running.service.runner.app[SERVICE].store
    real = store.job

    async def job(job_id: str, owner: str | None = None) -> Job | None:
        found = await real(job_id, owner)
        if found is None or found.id != separated.job["id"]:
            return found
        output = found.outputs[0]
        assert output.facts is not None
        facts = ({**output.facts[0], "tempo": tempo, "chords": chords},)
        return dataclasses.replace(found, outputs=(dataclasses.replace(output, facts=facts),))

    monkeypatch.setattr(store, "job", job)


async def set_range(page: Page, selector: str, value: float) -> None:
    """Move a slider as a person does: its value, then its input event."""
    await page.locator(selector).evaluate(
        "(e, v) => { e.value = String(v); e.dispatchEvent(new Event('input', {bubbles: true})) }",
        value)


async def drag(page: Page, selector: str, start: float, end: float, duration: float) -> None:
    """Drag across a lane from song second `start` to `end`."""
    box = await page.locator(selector).bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + box["width"] * start / duration, y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * (start + end) / 2 / duration, y, steps=4)
    await page.mouse.move(box["x"] + box["width"] * end / duration, y, steps=4)
    await page.mouse.up()


async def test_speed_and_transpose_change_the_graph_live_and_the_download(
        separated: Separated, browser: Browser, practice_facts: None, tmp_path: Path) -> None:
    page = await browser.new_page(viewport={"width": 1000, "height": 900})
    watched = Watched(page)
    await page.goto(await player_link(separated))
    state = await watched.until("s.ready && s.graph.stretcher")
    assert (state["speed"], state["semitones"]) == (1, 0)
    assert state["graph"]["stretcher"] == {"playbackRate": 1, "pitchSemitones": 0}
    await page.click("#play")
    await watched.until("s.playing && s.time > 0.3 && s.level > 0.001")

    await set_range(page, "#speed", 80)  # live, while playing
    state = await watched.until("s.graph.stretcher.playbackRate > 0.79 && s.playing")
    assert state["speed"] == 0.8 and state["semitones"] == 0
    assert state["graph"]["stretcher"]["playbackRate"] == pytest.approx(0.8)
    sources = state["graph"]["sources"]
    assert len(sources) == 4 and all(s["playbackRate"] == pytest.approx(0.8) for s in sources)
    assert await page.locator("#speed-shown").text_content() == "80 %"
    # the playhead moves at 0.8 song seconds a second
    before = await watched.state()
    await asyncio.sleep(0.5)
    after = await watched.state()
    assert after["playing"] and after["time"] > before["time"]
    rate = (after["time"] - before["time"]) / (after["contextTime"] - before["contextTime"])
    assert rate == pytest.approx(0.8, abs=0.01)

    await set_range(page, "#pitch", -3)
    state = await watched.until("s.graph.stretcher.pitchSemitones === -3")
    assert state["speed"] == 0.8  # transposing keeps the speed
    assert all(s["playbackRate"] == pytest.approx(0.8) for s in state["graph"]["sources"])
    assert await page.locator("#pitch-shown").text_content() == "−3 st"
    # mute and solo still act on every stem, through the one stretcher
    await page.click("[data-stem=bass] .solo")
    # the audio graph follows the click: wait for it, then check it
    state = await watched.until("s.stems[2].solo && s.stems.map(x => x.gain).join() == '0,0,1,0'")
    assert [s["gain"] for s in state["stems"]] == [0, 0, 1, 0]
    await watched.until("!s.playing || s.level > 0.001")
    await shoot(page, ARTIFACTS, "practice-speed-pitch.png", "player-")
    await page.keyboard.press("Space")
    await watched.until("!s.playing")

    # the mix download is the mix as heard: bass alone, at 80 % and 3 semitones down
    href = await page.locator("#mix-download").get_attribute("href") or ""
    query = parse_qs(urlsplit(href).query)
    assert (query["tempo"], query["semitones"]) == (["0.8"], ["-3"])
    async with page.expect_download() as info:
        await page.click("#mix-download")
    saved = tmp_path / "mix.wav"
    await (await info.value).save_as(saved)
    mix = await asyncio.to_thread(decode, saved)
    assert mix.shape[-1] / 44_100 == pytest.approx(5 / 0.8, rel=0.02)

    await page.click("#practice-reset")
    state = await watched.until("s.speed === 1 && s.semitones === 0")
    assert state["graph"]["stretcher"] == {"playbackRate": 1, "pitchSemitones": 0}
    href = await page.locator("#mix-download").get_attribute("href") or ""
    assert "tempo=" not in href and "semitones=" not in href
    assert watched.errors == [] and state["errors"] == []
    await page.close()


async def test_the_loop_wraps_counts_in_and_the_chords_follow(
        separated: Separated, browser: Browser, practice_facts: None) -> None:
    page = await browser.new_page(viewport={"width": 1000, "height": 1000})
    watched = Watched(page)
    await page.goto(await player_link(separated))
    state = await watched.until("s.ready && s.graph.stretcher")
    duration = state["duration"]
    # the chords under the waveforms, as wide as they last
    chords = page.locator("#chords .chord")
    assert await chords.all_text_contents() == ["F", "Dm", "B♭", "C7"]
    assert state["chord"] == "F"

    # A and B by a drag across a lane; the loop repeats seamlessly, every source looping it
    await drag(page, "[data-stem=drums] .track", 1.0, 2.0, duration)
    state = await watched.until("s.loop !== null")
    assert state["loop"]["a"] == pytest.approx(1.0, abs=0.05)
    assert state["loop"]["b"] == pytest.approx(2.0, abs=0.05)
    assert await page.locator("#lanes.looping").count() == 1
    await page.click("#play")
    state = await watched.until("s.playing && s.graph.sources.length === 4")
    loop = state["loop"]
    assert all(s["loop"] and s["loopStart"] == pytest.approx(loop["a"])
               and s["loopEnd"] == pytest.approx(loop["b"]) for s in state["graph"]["sources"])
    state = await watched.until("s.time > s.loop.b - 0.2")
    assert state["wraps"] == 0
    await shoot(page, ARTIFACTS, "loop.png", "player-")
    state = await watched.until("s.wraps >= 2 && s.playing", within=10)
    assert loop["a"] <= state["time"] < loop["b"]  # back at A each time, never past B
    # the chord playing is the one highlighted: F before 1.25 s, Dm after, in the loop
    state = await watched.until("s.chord === 'Dm' && s.playing")
    assert state["time"] >= 1.25
    assert await page.locator(".chord.current").all_text_contents() in (["Dm"], ["F"])
    state = await watched.until("s.chord === 'F' && s.wraps >= 3", within=10)
    assert state["time"] < 1.25

    # the keys: \ no loop, then [ at the playhead and ] a moment later
    await page.keyboard.press("\\")
    state = await watched.until("s.loop === null")
    assert not any(s["loop"] for s in state["graph"]["sources"])
    await page.keyboard.press("Space")
    await watched.until("!s.playing")
    await page.keyboard.press("ArrowLeft")  # to the start (seeks clamp)
    await page.keyboard.press("Space")
    await watched.until("s.playing && s.time > 0.5")
    await page.keyboard.press("[")
    await watched.until("s.time > 1.5")
    await page.keyboard.press("]")
    state = await watched.until("s.loop !== null")
    assert 0.4 < state["loop"]["a"] < state["loop"]["b"] - 0.5 < 1.5
    await watched.until("s.wraps >= 1", within=10)

    # count-in: one bar of clicks at the song's tempo at the speed set, then the loop from A
    await page.keyboard.press("Space")
    await watched.until("!s.playing")
    await page.check("#count-in")
    await set_range(page, "#speed", 80)
    await page.click("#play")  # (Space would flip the switch that has the focus)
    state = await watched.until("s.playing")
    beat = 60 / (TEMPO["bpm"] * 0.8)
    assert state["countIn"]["counting"]
    assert state["countIn"]["until"] - state["contextTime"] == pytest.approx(4 * beat, abs=0.1)
    assert state["time"] == pytest.approx(state["loop"]["a"])  # waiting at A
    await page.screenshot(path=ARTIFACTS / "count-in.png")
    state = await watched.until("!s.countIn.counting", within=5)
    await watched.until(f"s.time > {state['loop']['a'] + 0.1}")
    assert watched.errors == [] and state["errors"] == []
    await page.close()


async def test_without_chords_or_tempo_there_is_no_chord_lane_nor_count_in(
        separated: Separated, browser: Browser, bare_facts: None) -> None:
    page = await browser.new_page()
    watched = Watched(page)
    await page.goto(await player_link(separated))
    state = await watched.until("s.ready")
    assert state["chord"] is None and state["countIn"]["bpm"] is None  # tempo unclear
    assert await page.locator("#chords").count() == 0
    assert await page.locator("#count-in").is_disabled()
    assert watched.errors == []
    await page.close()


async def test_the_page_data_holds_the_chords_only_where_the_facts_do() -> None:
    assert player.chords({"tempo": None}) == []
    assert player.chords({"chords": None}) == []
    assert player.chords({"chords": [{"start": 0, "end": 2, "chord": "A"},
                                     {"start": 2, "end": 2, "chord": "E"}]}) == [
        {"start": 0.0, "end": 2.0, "chord": "A"}]  # nothing that lasts no time


async def test_the_page_is_titled_after_a_page_links_track() -> None:
    url = InputSpec(url="https://youtu.be/x")
    job = Job(id="j1", owner="k", custom_id="my upload", callback="", state=State.COMPLETED,
              inputs=(url,), outputs=(), created_at=0, deadline=0)
    assert player.title_of(job) == "my upload"
    assert player.title_of(dataclasses.replace(job, custom_id="")) == "j1"
    track = {"site": "youtube", "id": "x", "title": "Song", "uploader": "Band", "page": ""}
    titled = dataclasses.replace(job, inputs=(dataclasses.replace(url, track=track),))
    assert player.title_of(titled) == "Band – Song"
    track["uploader"] = ""
    assert player.title_of(titled) == "Song"
