"""`stembot sync` registers the commands once, in one guild or globally."""

from __future__ import annotations

from pathlib import Path

from stembot.commands.sync import sync
from support.discord_bot import bot_settings
from support.fake_discord import GUILD_ID, FakeDiscord


async def test_sync_registers_commands_in_a_guild_and_globally(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    settings = bot_settings(tmp_path, None)
    names = await sync(settings, GUILD_ID)
    assert sorted(names) == ["/job", "/jobs", "/mix", "/separate", "Apps → Separate stems"]
    commands = {c["name"]: c for c in fake.commands[GUILD_ID]}
    # the message command (Apps → Separate stems): type 3, no options, not in DMs
    menu = commands["Separate stems"]
    assert menu["type"] == 3 and not menu.get("options") and menu.get("contexts") in (None, [0])
    separate = {o["name"]: o for o in commands["separate"]["options"]}
    assert [c["name"] for c in separate["stems"]["choices"]] == [
        "2 — vocals / accompaniment", "4 — vocals / drums / bass / other",
        "5 — vocals / drums / bass / piano / other"]
    assert [c["value"] for c in separate["format"]["choices"]] == ["mp3", "flac", "wav", "opus"]
    assert separate["stems"]["required"] and not separate["url"].get("required")
    assert separate["file"]["type"] == 11  # an attachment
    # Hidden from members by default, and checked again when run (see test_refusals).
    assert int(commands["jobs"]["default_member_permissions"]) == 1 << 5  # Manage Server
    assert {o["name"] for o in commands["job"]["options"]} == {"status", "cancel", "delete"}

    await sync(settings, None)
    assert sorted(c["name"] for c in fake.commands[None]) == [
        "Separate stems", "job", "jobs", "mix", "separate"]
    # Syncing opened no database and no listener: it is a pure registration.
    assert not (tmp_path / "bot").exists()
