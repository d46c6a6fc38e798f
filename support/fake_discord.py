"""A fake Discord for tests and benchmarks: the REST routes the bot calls and a gateway websocket.

It speaks just enough of Discord's API v10 for discord.py 2.x: login, HELLO / IDENTIFY /
READY / GUILD_CREATE, interactions (callback, original response, followups), threads and
channel messages with attachments. Everything the bot posts is kept for assertions. The
routes and their state are in support/discord_rest.py, the payloads in
support/discord_payloads.py; the names tests use are all importable from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterator

import discord
import yarl
from aiohttp import web

from support.discord_payloads import (
    APP_ID,
    BOT_ID,
    CHANNEL_ID,
    GUILD_ID,
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    MOD_ROLE_ID,
    OWNER_ID,
    Attachment,
    InteractionLog,
    Json,
    Message,
    now_iso,
    user_payload,
)
from support.discord_rest import DiscordRest

__all__ = ["BOT_ID", "CHANNEL_ID", "GUILD_ID", "MOD_ROLE_ID", "OWNER_ID", "Attachment",
           "FakeDiscord", "InteractionLog", "Json", "Message"]


class FakeDiscord(DiscordRest):
    """Run with `async with FakeDiscord() as fake:`, then `fake.installed()` points discord.py."""

    def __init__(self) -> None:
        super().__init__()
        self._sockets: list[web.WebSocketResponse] = []
        self._sequence = itertools.count(1)
        self._identified = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway)
        self.add_routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Point discord.py's REST base and gateway at this fake for the duration."""
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.base + "/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(
            self.base.replace("http", "ws", 1) + "/gateway")
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # --- what tests call -----------------------------------------------------------------

    def serve(self, name: str, data: bytes, content_type: str, later: bytes | None = None
              ) -> str:
        """Host a file (a song, a web page) at a URL the bot can download.

        With `later`, every download after the first gets those bytes instead (a link whose
        file changes); `downloads` counts the requests.
        """
        self.files[name] = (data, content_type)
        if later is not None:
            self.later[name] = later
        return f"{self.base}/files/{name}"

    def redirect(self, name: str, location: str) -> str:
        """A URL that answers 302 with `location` as it is (even a malformed one)."""
        self.redirects[name] = location
        return f"{self.base}/files/{name}"

    async def ready(self) -> None:
        await asyncio.wait_for(self._identified.wait(), 30)

    async def interact(self, name: str, options: list[Json], *, user_id: int,
                       roles: tuple[int, ...] = (), resolved: Json | None = None,
                       autocomplete: bool = False, guild_id: int = GUILD_ID) -> InteractionLog:
        """Send INTERACTION_CREATE for a slash command (or its autocomplete), as a member;
        `guild_id`: as from another server (the channel and its messages stay the one's)."""
        data: Json = {"id": str(next(self._ids)), "name": name, "type": 1, "options": options,
                      "guild_id": str(guild_id)}
        if resolved:
            data["resolved"] = resolved
        return await self._interaction(4 if autocomplete else 2, data, user_id, roles,
                                       guild_id=guild_id)

    async def message_command(self, name: str, message: Message, *, user_id: int
                              ) -> InteractionLog:
        """Apps → `name` on `message`: a message command (type 2, data type 3) whose target
        Discord sends resolved, as it does."""
        data: Json = {"id": str(next(self._ids)), "name": name, "type": 3,
                      "guild_id": str(GUILD_ID), "target_id": str(message.id),
                      "resolved": {"messages": {str(message.id): message.payload(self.base)}}}
        return await self._interaction(2, data, user_id, ())

    async def choose(self, log: InteractionLog, placeholder: str, value: str, *, user_id: int
                     ) -> InteractionLog:
        """Pick `value` in the select menu with `placeholder` of a command's answer."""
        assert log.callback is not None and log.original is not None
        menus = [c for row in log.callback["data"]["components"] for c in row["components"]]
        menu = next(m for m in menus if m.get("placeholder") == placeholder)
        assert value in [o["value"] for o in menu["options"]], menu
        chosen = await self._interaction(
            3, {"custom_id": menu["custom_id"], "component_type": 3, "values": [value]},
            user_id, (), message=log.original.payload(self.base))
        await self.wait_until(lambda: chosen.callback is not None, seconds=10)
        return chosen

    async def click(self, log: InteractionLog, label: str, *, user_id: int) -> InteractionLog:
        """Press the button labelled `label` on the message a command answered with."""
        assert log.callback is not None and log.original is not None
        buttons = [c for row in log.callback["data"]["components"] for c in row["components"]]
        custom_id = next(b["custom_id"] for b in buttons if b.get("label") == label)
        clicked = await self._interaction(
            3, {"custom_id": custom_id, "component_type": 2}, user_id, (),
            message=log.original.payload(self.base))
        await self.wait_until(lambda: clicked.callback is not None, seconds=10)
        return clicked

    def buttons(self, message: Message) -> list[Json]:
        return [c for row in message.components for c in row["components"]]

    async def press(self, message: Message, label: str, *, user_id: int) -> InteractionLog:
        """Press the button labelled `label` on a message the bot posted in a channel."""
        custom_id = next(b["custom_id"] for b in self.buttons(message)
                         if b.get("label") == label)
        pressed = await self._interaction(
            3, {"custom_id": custom_id, "component_type": 2}, user_id, (),
            message=message.payload(self.base))
        await self.wait_until(lambda: pressed.callback is not None, seconds=10)
        return pressed

    async def _interaction(self, kind: int, data: Json, user_id: int, roles: tuple[int, ...],
                           message: Json | None = None, guild_id: int = GUILD_ID
                           ) -> InteractionLog:
        interaction_id = next(self._ids)
        token = f"interaction-token-{interaction_id}"
        log = self.interactions[token] = InteractionLog(interaction_id, token)
        permissions = MEMBER_PERMISSIONS | (MANAGE_GUILD if user_id == OWNER_ID else 0)
        extra = {"message": message} if message else {}
        await self.dispatch("INTERACTION_CREATE", {
            **extra, "id": str(interaction_id), "application_id": str(APP_ID), "type": kind,
            "token": token, "version": 1, "guild_id": str(guild_id),
            "channel_id": str(CHANNEL_ID), "channel": self.channel_payload(),
            "member": {"user": user_payload(user_id, f"member{user_id % 1000}"),
                       "roles": [str(r) for r in roles], "joined_at": now_iso(),
                       "deaf": False, "mute": False, "flags": 0,
                       "permissions": str(permissions)},
            "app_permissions": str(MEMBER_PERMISSIONS), "locale": "en-US",
            "guild_locale": "en-US", "entitlements": [], "context": 0,
            "authorizing_integration_owners": {"0": str(guild_id)},
            "attachment_size_limit": self.upload_limit, "data": data,
        })
        return log

    async def wait_until(self, check: Callable[[], bool], seconds: float = 60) -> None:
        """Wait until `check()` holds after some request; fail the test on timeout."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(check), seconds)

    def add_message(self, channel_id: int, content: str = "",
                    attachments: list[Attachment] | None = None, author_id: int = BOT_ID
                    ) -> Message:
        """A message that exists in Discord already (e.g. a reply from a previous run, or a
        member's message with a song)."""
        message = self._store(channel_id, content, attachments or [])
        message.author_id = author_id
        return message

    def in_channel(self, channel_id: int) -> list[Message]:
        return [m for m in self.messages.values() if m.channel_id == channel_id]

    def channel_payload(self) -> Json:
        return {"id": str(CHANNEL_ID), "type": 0, "guild_id": str(GUILD_ID), "name": "music",
                "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None,
                "rate_limit_per_user": 0, "topic": None, "last_message_id": None}

    # --- gateway ---------------------------------------------------------------------------

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41_250}})
        async for raw in ws:
            message = json.loads(raw.data)
            if message["op"] == 1:
                await ws.send_json({"op": 11})
            elif message["op"] == 2:
                await self._identify(ws)
        return ws

    async def _identify(self, ws: web.WebSocketResponse) -> None:
        await self._send(ws, "READY", {
            "v": 10, "user": user_payload(BOT_ID, "stembot", bot=True), "guilds": [
                {"id": str(GUILD_ID), "unavailable": True}],
            "session_id": "fake-session", "resume_gateway_url": self.base + "/gateway",
            "application": {"id": str(APP_ID), "flags": 0},
        })
        await self._send(ws, "GUILD_CREATE", self.guild_payload())
        self._identified.set()

    def guild_payload(self) -> Json:
        tier = {10: 0, 50: 2, 100: 3}.get(self.upload_limit // (1024 * 1024), 0)
        return {
            "id": str(GUILD_ID), "name": "Stem Sharers", "icon": None, "owner_id": str(OWNER_ID),
            "roles": [
                {"id": str(GUILD_ID), "name": "@everyone", "permissions": str(MEMBER_PERMISSIONS),
                 "position": 0, "color": 0, "hoist": False, "managed": False,
                 "mentionable": False, "flags": 0},
                {"id": str(MOD_ROLE_ID), "name": "stem mods", "permissions": "0",
                 "position": 1, "color": 0, "hoist": False, "managed": False,
                 "mentionable": False, "flags": 0},
            ],
            "emojis": [], "stickers": [], "features": [], "channels": [
                {k: v for k, v in self.channel_payload().items() if k != "guild_id"}],
            "threads": [], "members": [], "member_count": 3, "premium_tier": tier,
            "large": False, "unavailable": False, "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
            "system_channel_flags": 0, "preferred_locale": "en-US", "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "voice_states": [], "presences": [],
            "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
            "joined_at": now_iso(),
        }

    async def dispatch(self, event: str, data: Json) -> None:
        for ws in self._sockets:
            if not ws.closed:
                await self._send(ws, event, data)

    async def _send(self, ws: web.WebSocketResponse, event: str, data: Json) -> None:
        await ws.send_json({"op": 0, "t": event, "s": next(self._sequence), "d": data})
