"""Refusals a member meets: bad input, limits, permissions; each one clear and ephemeral."""

from __future__ import annotations

from fake_discord import CHANNEL_ID, FakeDiscord
from harness import BotFactory, Service

MEMBER = 900_000_000_000_000_100


async def test_non_audio_link_fails_clearly(fake: FakeDiscord, service: Service,
                                            bot_factory: BotFactory) -> None:
    page = fake.serve("song.html", b"<html>not a song</html>", "text/html")
    async with bot_factory(service) as bot:
        log = await fake.interact("separate", [
            {"name": "stems", "type": 4, "value": 2}, {"name": "url", "type": 3, "value": page},
        ], user_id=MEMBER)
        await fake.wait_until(lambda: log.original is not None and "failed" in
                              log.original.content)
        assert log.callback is not None and log.callback["type"] == 5  # deferred in time
        assert log.original is not None
        assert "web page (text/html), not an audio file" in log.original.content
        record = await bot.jobs.require(1)
        assert record.state.value == "failed" and record.service_job_id is None
        # The thread was opened at submission and carries the failure too.
        assert record.thread_id in fake.threads
        assert any("failed" in m.content for m in fake.in_channel(record.thread_id))
    assert CHANNEL_ID
