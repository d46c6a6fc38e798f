"""The browser the pages' tests drive: Debian's chromium, headless, through Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
# no background networking: this machine reaches nothing, and Chromium would keep trying
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--autoplay-policy=no-user-gesture-required")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=list(FLAGS))
        try:
            yield launched
        finally:
            await launched.close()


async def shoot(page: Page, folder: Path, name: str, prefix: str = "") -> None:
    """A screenshot into `folder` (test-artifacts/, for the CI run and a person), and into the
    docs (`prefix` + name) when STEMBOT_SCREENSHOTS names their folder."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=folder / name, full_page=True)
    if docs := os.environ.get("STEMBOT_SCREENSHOTS"):
        await asyncio.to_thread(Path(docs).mkdir, parents=True, exist_ok=True)
        await page.screenshot(path=Path(docs) / f"{prefix}{name}", full_page=True)
