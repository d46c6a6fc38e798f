"""Refusals and failures a member meets: each one clear, refusals ephemeral."""

from __future__ import annotations

from pathlib import Path

from storage import JobState, NewJob
from support.discord_bot import BotFactory, Service, answered, read_bytes, refusal, running_job
from support.fake_discord import GUILD_ID, MOD_ROLE_ID, OWNER_ID, FakeDiscord, InteractionLog

MEMBER = 900_000_000_000_000_100
OTHER = 900_000_000_000_000_103


async def separate(fake: FakeDiscord, url: str, user_id: int = MEMBER,
                   stems: int = 2) -> InteractionLog:
    return await fake.interact("separate", [
        {"name": "stems", "type": 4, "value": stems}, {"name": "url", "type": 3, "value": url},
    ], user_id=user_id)


async def finished(fake: FakeDiscord, log: InteractionLog, word: str) -> str:
    await fake.wait_until(lambda: log.original is not None and word in log.original.content,
                          seconds=60)
    assert log.original is not None
    return log.original.content


async def test_non_audio_link_fails_clearly(fake: FakeDiscord, service: Service,
                                            bot_factory: BotFactory) -> None:
    page = fake.serve("song.html", b"<html>not a song</html>", "text/html")
    junk = fake.serve("song.mp3", b"\x00garbage" * 500, "application/octet-stream")
    async with bot_factory(service) as bot:
        log = await separate(fake, page)
        text = await finished(fake, log, "failed")
        assert log.callback is not None and log.callback["type"] == 5  # deferred in time
        assert "web page (text/html), not an audio file" in text
        record = await bot.jobs.require(1)
        assert record.state is JobState.FAILED and record.service_job_id is None
        # The thread was opened at submission and carries the failure too.
        assert record.thread_id in fake.threads
        assert any("failed" in m.content for m in fake.in_channel(record.thread_id))
        log = await separate(fake, junk)
        assert "not an audio file (it cannot be decoded)" in await finished(fake, log, "failed")


async def test_service_down_at_submission(fake: FakeDiscord, bot_factory: BotFactory,
                                          demo_wav: Path) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(None, api_url="http://127.0.0.1:9/release/job") as bot:
        log = await separate(fake, song)
        text = await finished(fake, log, "failed")
        assert "the separation service at http://127.0.0.1:9/release/job is not reachable" in text
        assert (await bot.jobs.require(1)).state is JobState.FAILED


async def test_service_error_from_an_attachment(fake: FakeDiscord, service: Service,
                                                bot_factory: BotFactory,
                                                demo_wav: Path) -> None:
    """An attachment goes to the service; a job it ends in ERROR shows the service's reason."""
    url = fake.serve("upload.wav", read_bytes(demo_wav), "audio/wav")
    attachment = {"id": "77", "filename": "My Song.wav", "size": 1000, "url": url,
                  "proxy_url": url, "content_type": "audio/wav"}
    async with bot_factory(service, job_timeout=1) as bot:
        log = await fake.interact("separate", [
            {"name": "stems", "type": 4, "value": 4}, {"name": "file", "type": 11, "value": "77"},
        ], user_id=MEMBER, resolved={"attachments": {"77": attachment}})
        text = await finished(fake, log, "failed")
        assert "the job did not finish before its timeout" in text
        record = await bot.jobs.require(1)
        assert record.track_name == "My Song" and record.input_url == url


async def test_input_must_be_one_link_or_one_audio_file(fake: FakeDiscord,
                                                        bot_factory: BotFactory) -> None:
    pdf = {"id": "78", "filename": "score.pdf", "size": 10, "url": "http://x/score.pdf",
           "proxy_url": "http://x/score.pdf", "content_type": "application/pdf"}
    async with bot_factory(None):
        log = await fake.interact("separate", [{"name": "stems", "type": 4, "value": 2}],
                                  user_id=MEMBER)
        await answered(fake, log)
        assert refusal(log).startswith("give exactly one of `url`")
        log = await fake.interact("separate", [
            {"name": "stems", "type": 4, "value": 2}, {"name": "file", "type": 11, "value": "78"},
        ], user_id=MEMBER, resolved={"attachments": {"78": pdf}})
        await answered(fake, log)
        assert refusal(log) == "score.pdf is not an audio file (application/pdf)."
        log = await separate(fake, "ftp://example.com/a.mp3")
        await answered(fake, log)
        assert "is not an http(s) link" in refusal(log)


async def test_limits_refuse_with_the_reason(fake: FakeDiscord, bot_factory: BotFactory) -> None:
    page = fake.serve("page.html", b"<html></html>", "text/html")
    async with bot_factory(None) as bot:
        # A job of the same member in another guild counts only there.
        await running_job(bot, 1, MEMBER)
        await bot.limits.set(GUILD_ID, max_concurrent=1)
        log = await separate(fake, page)
        assert "failed" in await finished(fake, log, "failed")
        job_id = await running_job(bot, GUILD_ID, MEMBER)
        log = await separate(fake, page)
        await answered(fake, log)
        assert refusal(log) == "you have 1 job running; try again when one finishes."
        await bot.jobs.finish(job_id, JobState.DONE)

        await bot.limits.set(GUILD_ID, cooldown_seconds=600)
        log = await separate(fake, page)
        await answered(fake, log)
        assert "this server allows one /separate every 600 s; try again in" in refusal(log)

        await bot.limits.set(GUILD_ID, cooldown_seconds=0, daily_quota=2)
        log = await separate(fake, page)
        await answered(fake, log)
        assert refusal(log) == ("you have used this server's quota of 2 separations in the"
                                " last 24 hours; try again later.")
        # Another member is not affected.
        log = await separate(fake, page, user_id=OTHER)
        assert "failed" in await finished(fake, log, "failed")


async def test_history_needs_a_real_permission(fake: FakeDiscord,
                                               bot_factory: BotFactory) -> None:
    async with bot_factory(None) as bot:
        for _ in range(7):
            await bot.jobs.create(NewJob(GUILD_ID, 1, MEMBER,
                                         "https://x/a.mp3", "a", 2, "mp3"))
        log = await fake.interact("jobs", [{"name": "history", "type": 1, "options": []}],
                                  user_id=MEMBER)
        await answered(fake, log)
        assert refusal(log) == "this needs the Manage Server permission."

        log = await fake.interact("jobs", [{"name": "history", "type": 1, "options": []}],
                                  user_id=OWNER_ID)
        await answered(fake, log)
        first = refusal(log)
        assert "page 1/2 (7 jobs)" in first and "#7" in first and "#3" in first
        assert "#2" not in first and f"<@{MEMBER}>" in first and "https://x/a.mp3" in first
        page = await fake.click(log, "Next", user_id=OWNER_ID)
        assert page.callback is not None and page.callback["type"] == 7
        second = page.callback["data"]["content"]
        assert "page 2/2" in second and "#2" in second and "#7" not in second

        # A configured moderator role is enough.
        await bot.limits.set(GUILD_ID, moderator_role_id=MOD_ROLE_ID)
        log = await fake.interact("jobs", [{"name": "history", "type": 1, "options": [
            {"name": "status", "type": 3, "value": "downloading"}]}],
            user_id=OTHER, roles=(MOD_ROLE_ID,))
        await answered(fake, log)
        assert "(7 jobs)" in refusal(log)


async def test_cancel_own_job_only(fake: FakeDiscord, service: Service,
                                   bot_factory: BotFactory, demo_wav: Path) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(service) as bot:
        log = await separate(fake, song)
        await finished(fake, log, "queued")
        cancel = [{"name": "cancel", "type": 1, "options": [
            {"name": "id", "type": 4, "value": 1}]}]
        other = await fake.interact("job", cancel, user_id=OTHER)
        await answered(fake, other)
        assert refusal(other) == (f"job #1 belongs to <@{MEMBER}>; only they or a moderator"
                                  " may cancel it.")
        mine = await fake.interact("job", cancel, user_id=MEMBER)
        await fake.wait_until(lambda: bool(mine.followups), seconds=10)
        assert mine.followups == ["job #1 canceled."]
        text = await finished(fake, log, "canceled")
        assert f"canceled: by <@{MEMBER}>" in text
        record = await bot.jobs.require(1)
        assert record.state is JobState.CANCELED
        job = await service.store.job(record.service_job_id or "")
        assert job is not None and job.state.name == "CANCELED"
        # The ended follower leaves nothing behind: no entries pile up, one per job.
        await bot.tracker.wait(1)
        tracker = bot.tracker
        assert all(1 not in entries for entries in (
            tracker._tasks, tracker._wake, tracker._pushed, tracker._locks))
        again = await fake.interact("job", cancel, user_id=MEMBER)
        await answered(fake, again)
        assert refusal(again) == "job #1 is already canceled; nothing to cancel."


async def test_links_into_the_bots_network_are_refused(fake: FakeDiscord,
                                                       bot_factory: BotFactory,
                                                       demo_wav: Path) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")
    async with bot_factory(None, allow_private_networks=False):
        log = await separate(fake, song)
        text = await finished(fake, log, "failed")
        assert ("the link leads to a private network address (127.0.0.1 is not a public"
                " address); only public links can be separated") in text
    assert "demo.wav" in song


async def test_without_thread_permission_the_channel_is_used(fake: FakeDiscord,
                                                             bot_factory: BotFactory) -> None:
    fake.fail_thread_creation = True
    page = fake.serve("page.html", b"<html></html>", "text/html")
    async with bot_factory(None) as bot:
        log = await separate(fake, page)
        assert "web page" in await finished(fake, log, "failed")
        record = await bot.jobs.require(1)
        assert record.thread_id is None and record.message_id is not None
        assert fake.threads == {}
        assert bot.delivery.destination(record).id == record.channel_id


async def test_duration_and_size_limits(fake: FakeDiscord, bot_factory: BotFactory,
                                        demo_wav: Path) -> None:
    song = fake.serve("demo.wav", read_bytes(demo_wav), "audio/wav")  # 7 s, 1.2 MB
    async with bot_factory(None) as bot:
        await bot.limits.set(GUILD_ID, max_seconds=5)
        log = await separate(fake, song)
        text = await finished(fake, log, "failed")
        assert "the track is 0:07 long; this server allows at most 0:05" in text
        await bot.limits.set(GUILD_ID, max_seconds=600, max_mib=1)
        log = await separate(fake, song)
        assert "the file is over this server's 1 MiB limit" in await finished(fake, log, "failed")
        records = [await bot.jobs.require(i) for i in (1, 2)]
        assert all(r.service_job_id is None for r in records)  # refused before submission
