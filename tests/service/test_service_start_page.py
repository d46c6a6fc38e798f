"""The start page in a real browser (Debian's chromium, headless, driven by Playwright): sign
in with a key or once with the one-click link `stembot up` prints, separate an upload, follow
its stages, land on its player; the recent jobs. Its screenshots go to test-artifacts/start/,
and with STEMBOT_SCREENSHOTS=docs/screenshots also there (the README shows those)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import browsing
import pytest
from playwright.async_api import Browser, Page
from service_harness import Separated, free_port

from separation import fact_line
from service.session import OWNER, SIGN_IN_TTL, mint_sign_in
from service.store_sql import SqlStore

pytestmark = pytest.mark.asyncio(loop_scope="module")
ROOT = Path(__file__).parents[2]
# screenshots land here for the CI run (and a person) to look at; git-ignored
ARTIFACTS = ROOT / "test-artifacts" / "start"
AGAIN = "sign in with a key instead (`stembot keys create --name NAME` on the server)"


async def shoot(page: Page, name: str) -> None:
    await browsing.shoot(page, ARTIFACTS, name)


def errors_of(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


async def signed_in(page: Page, separated: Separated, secret_key: str) -> None:
    await page.goto(separated.running.service.url + "/")
    await page.fill("[name=secretId]", separated.api.key.secret_id)
    await page.fill("[name=secretKey]", secret_key)
    await page.click("#signin button[type=submit]")


async def test_the_start_page_refuses_a_wrong_key(separated: Separated,
                                                  browser: Browser) -> None:
    page = await browser.new_page(viewport={"width": 1000, "height": 700})
    await page.goto(separated.running.service.url + "/")
    await page.locator("#signin").wait_for()
    # the two fields are one size, side by side
    boxes = [await page.locator(f"[name={name}]").bounding_box()
             for name in ("secretId", "secretKey")]
    assert boxes[0] and boxes[1] and boxes[0]["width"] == boxes[1]["width"] > 150
    assert boxes[0]["height"] == boxes[1]["height"]
    await shoot(page, "start-signed-out.png")
    await signed_in(page, separated, "not-the-key")
    status = page.locator("#status")
    await status.filter(has_text="Sign-in failed").wait_for()
    assert await status.text_content() == "Sign-in failed: unknown secretId or wrong secretKey"
    assert await page.locator("#separate").count() == 0
    await page.close()


async def test_the_start_page_separates_an_upload_and_lands_on_its_player(
        separated: Separated, browser: Browser, short_wav: Path) -> None:
    context = await browser.new_context(viewport={"width": 1000, "height": 900})
    page = await context.new_page()
    errors = errors_of(page)
    await signed_in(page, separated, separated.api.key.secret_key)
    earlier = page.locator(f"#jobs li[data-job='{separated.job['id']}']")
    await earlier.wait_for()  # the key's recent jobs, the one made by the fixture among them
    text = await earlier.text_content() or ""
    facts = separated.job["outputs"][0]["smartContentResult"]["facts"][0]
    short = fact_line.line(facts).rsplit(" · ", 1)[0]  # the Discord line without the LUFS
    assert "clip.wav" in text and "done" in text and "4 stems" in text, text
    assert await earlier.locator(".facts").text_content() == short, short
    await page.set_input_files("[name=file]", short_wav)
    assert "clip.wav" in (await page.locator("#chosen").text_content() or "")
    await page.click("label.stem-choice:has([value='2'])")
    assert await page.is_checked("[name=stems][value='2']")
    await page.click("#separate button[type=submit]")
    # the stages in words while it runs: separating (or already saving)
    stage = page.locator("#job[data-stage=separate], #job[data-stage=save]")
    await stage.wait_for(timeout=120_000)
    words = await page.locator("#stage-text").text_content() or ""
    assert re.fullmatch(r"Separating the stems…( \d+ %)?|Saving the stems…", words), words
    await shoot(page, "start-separating.png")
    await page.wait_for_url("**/player/**", timeout=240_000)
    await page.locator("[data-stem=accompaniment]").wait_for(timeout=30_000)

    await page.emulate_media(color_scheme="dark")  # the system's dark mode
    await page.goto(separated.running.service.url + "/")  # the session stays for the browser
    await page.locator("#jobs li").nth(1).wait_for()
    newest = page.locator("#jobs li").first
    assert "done" in (await newest.text_content() or "")
    assert await newest.get_attribute("data-job") != separated.job["id"]
    await newest.locator(".facts").wait_for()
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert sum(map(int, re.findall(r"\d+", background)[:3])) < 200, background  # dark
    await shoot(page, "start-recent-jobs-dark.png")
    assert errors == []
    await context.close()


async def test_the_start_page_fits_a_phone(separated: Separated, browser: Browser) -> None:
    context = await browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = await context.new_page()
    await signed_in(page, separated, separated.api.key.secret_key)
    await page.locator("#jobs li[data-job]").first.wait_for()
    fits = await page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert fits, "the page scrolls sideways on a phone"
    await shoot(page, "start-phone.png")
    await context.close()


async def test_a_sign_in_link_signs_in_once_in_a_real_browser(
        separated: Separated, browser: Browser, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the access log among them
    store = separated.store()
    key = separated.api.key
    token = await mint_sign_in(store, key.secret_id)
    link = f"{separated.running.service.url}/#signin={token}"

    first = await browser.new_context()
    page = await first.new_page()
    errors = errors_of(page)
    await page.goto(link)
    await page.locator("#separate").wait_for()  # signed in: no key typed
    assert await page.evaluate("location.href") == separated.running.service.url + "/"
    await page.reload()
    await page.locator("#separate").wait_for()  # the session cookie stays
    assert errors == []

    second = await browser.new_context()  # another browser without the session
    page = await second.new_page()
    for used, reason in [(link, "this sign-in link was already used (it signs in once)"),
                         (link + "x", "this sign-in link is not one this service made")]:
        await page.goto("about:blank")  # a fragment alone would not load the page again
        await page.goto(used)
        await page.locator("#status").filter(has_text="Sign-in failed").wait_for()
        assert await page.locator("#status").text_content() == (
            f"Sign-in failed: {reason}: {AGAIN}")
        assert await page.locator("#signin").count() == 1
    expired = await mint_sign_in(store, key.secret_id, ttl=-1)
    await page.goto("about:blank")
    await page.goto(f"{separated.running.service.url}/?x#signin={expired}")
    await page.locator("#status").filter(has_text="expired").wait_for()
    assert await page.locator("#status").text_content() == (
        f"Sign-in failed: this sign-in link has expired (it lasts {SIGN_IN_TTL // 60} minutes):"
        f" {AGAIN}")
    assert await page.evaluate("location.href") == separated.running.service.url + "/?x"
    await first.close()
    await second.close()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "POST /session" in logged  # the access log saw the sign-ins, not the tokens
    assert token not in logged and expired not in logged


async def test_a_sign_in_link_is_refused_with_a_reason(separated: Separated) -> None:
    client, url = separated.api.client, separated.running.service.url + "/session"
    store = separated.store()
    other = separated.running.other
    revoked = await mint_sign_in(store, other.secret_id)
    assert await store.revoke_key(other.secret_id)
    for token, reason in [
        (5, f"this sign-in link is incomplete: copy all of it, or {AGAIN}"),
        ("short", f"this sign-in link is incomplete: copy all of it, or {AGAIN}"),
        ("x" * 43, f"this sign-in link is not one this service made: {AGAIN}"),
        (revoked, f"this sign-in link's key was revoked: {AGAIN}"),
    ]:
        async with client.post(url, json={"signInToken": token}) as answer:
            assert answer.status == 401
            body = await answer.json()
            assert body["error"] == {"code": "AUTH_FAILED", "message": reason}
            assert "Set-Cookie" not in answer.headers


async def test_stembot_up_on_a_fresh_data_folder_prints_a_one_click_link(
        tmp_path: Path, browser: Browser) -> None:
    port = free_port()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BOT_", "STEMBOT_", "DISCORD_"))}
    env |= {"STEMBOT_DATA_DIR": str(tmp_path / "data"), "STEMBOT_PORT": str(port),
            "STEMBOT_WORKERS": "1"}
    url = f"http://127.0.0.1:{port}"
    for start in ("fresh", "again"):
        log = tmp_path / f"{start}.err"
        up = await asyncio.to_thread(start_up, env, log)
        try:
            printed = await asyncio.to_thread(read_until_listening, up, url)
            links = re.findall(rf"{re.escape(url)}/#signin=([A-Za-z0-9_-]+)", printed)
            if start == "fresh":
                assert len(links) == 1, printed
                assert f"once, within {SIGN_IN_TTL // 60} minutes" in printed
                page = await (context := await browser.new_context()).new_page()
                await page.goto(f"{url}/#signin={links[0]}")
                await page.locator("#separate").wait_for()
                await context.close()
            else:
                assert links == [] and "signin" not in printed, printed  # keys exist now
        finally:
            up.terminate()
            await asyncio.to_thread(up.wait, 30)
        logged = log.read_text()
        assert "job service listening" in logged and "signin" not in logged, logged
        if start == "fresh":
            assert links[0] not in logged and "POST /session" in logged
    store = await SqlStore.open(tmp_path / "data" / "service.sqlite3")
    try:
        assert [key.name for key in await store.keys()] == [OWNER]  # one, made once
    finally:
        await store.close()


def start_up(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """`stembot up`: what it prints in a pipe, its log (stderr) in `log`."""
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "stembot", "up"], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)


def read_until_listening(up: subprocess.Popen[str], url: str) -> str:
    """What `stembot up` printed at its start (the banner, the link, the Discord steps),
    once the service answers."""
    assert up.stdout is not None
    printed = ""
    while "/separate in your server" not in printed:  # the last start-up line without a token
        line = up.stdout.readline()
        if not line:
            raise AssertionError(f"stembot up ended: {printed}")
        printed += line
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return printed
        except OSError:
            time.sleep(0.1)
    raise AssertionError("stembot up did not start")


async def test_the_start_page_uses_pico(separated: Separated) -> None:
    async with aiohttp.ClientSession() as client, client.get(
            separated.running.service.url + "/") as answer:
        page = await answer.text()
    assert '<link rel="stylesheet" href="/vendor/pico/pico.min.css">' in page
    assert '<link rel="stylesheet" href="/static/start.css">' in page
