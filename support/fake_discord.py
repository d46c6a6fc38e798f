"""A fake Discord for tests: the REST routes the bot calls and a gateway websocket.

It speaks just enough of Discord's API v10 for discord.py 2.x: login, HELLO / IDENTIFY /
READY / GUILD_CREATE, interactions (callback, original response, followups), threads and
channel messages with attachments. Everything the bot posts is kept for assertions.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
import yarl
from aiohttp import BodyPartReader, web

Json = dict[str, Any]
APP_ID = 900_000_000_000_000_001
BOT_ID = APP_ID
GUILD_ID = 900_000_000_000_000_010
CHANNEL_ID = 900_000_000_000_000_020
MOD_ROLE_ID = 900_000_000_000_000_030
OWNER_ID = 900_000_000_000_000_040
MANAGE_GUILD = 1 << 5
# What a plain member may do in the channel: view, send, threads, attach, history, use commands.
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 38) | (1 << 15) | (1 << 16) | (1 << 31)


def user_payload(user_id: int, name: str, bot: bool = False) -> Json:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name,
            "avatar": None, "bot": bot, "flags": 0, "public_flags": 0}


def _json(data: Json, status: int = 200) -> web.Response:
    # discord.py parses JSON only when the type is exactly `application/json` (no charset).
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


# Discord's limit on a message's content; longer is refused, as the real API does.
CONTENT_LIMIT = 2000


def _too_long(content: str | None) -> web.Response | None:
    """The real API's 400 (Invalid Form Body, code 50035) for content over 2000 characters."""
    if content is None or len(content) <= CONTENT_LIMIT:
        return None
    return _json({"message": "Invalid Form Body", "code": 50035, "errors": {"content": {
        "_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                     "message": f"Must be {CONTENT_LIMIT} or fewer in length."}]}}}, status=400)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Attachment:
    filename: str
    data: bytes
    content_type: str


@dataclass
class Message:
    id: int
    channel_id: int
    content: str
    attachments: list[Attachment] = field(default_factory=list)
    edits: list[str] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    author_id: int = BOT_ID  # a member's own message (add_message) names the member

    def payload(self, base: str) -> Json:
        author = user_payload(BOT_ID, "stembot", bot=True) if self.author_id == BOT_ID \
            else user_payload(self.author_id, f"member{self.author_id % 1000}")
        return {
            "id": str(self.id), "channel_id": str(self.channel_id), "guild_id": str(GUILD_ID),
            "author": author, "content": self.content,
            "timestamp": now_iso(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "embeds": [],
            "pinned": False, "type": 0, "flags": 0, "components": self.components,
            "attachments": [
                {"id": str(self.id * 10 + i), "filename": a.filename, "size": len(a.data),
                 "url": f"{base}/attachments/{self.id}/{i}/{a.filename}",
                 "proxy_url": f"{base}/attachments/{self.id}/{i}/{a.filename}",
                 "content_type": a.content_type}
                for i, a in enumerate(self.attachments)
            ],
        }


@dataclass
class InteractionLog:
    """What one interaction's user saw: the callback, the original reply, followups."""

    id: int
    token: str
    callback: Json | None = None
    original: Message | None = None
    followups: list[str] = field(default_factory=list)


class FakeDiscord:
    """Run with `async with FakeDiscord() as fake:`, then `fake.install()` points discord.py."""

    def __init__(self) -> None:
        self._ids = itertools.count(int(time.time() * 1000) << 22)
        self.messages: dict[int, Message] = {}
        self.nonces: dict[str, int] = {}  # enforced nonce -> the message it made
        self.threads: dict[int, Json] = {}
        self.interactions: dict[str, InteractionLog] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.later: dict[str, bytes] = {}  # what a file becomes after its first download
        self.downloads: collections.Counter[str] = collections.Counter()
        self.redirects: dict[str, str] = {}
        self.deletions: collections.Counter[int] = collections.Counter()  # message id -> DELETEs
        self.upload_limit = 10 * 1024 * 1024
        self.fail_thread_creation = False
        # The JSON of every message the bot sent or edited (callbacks, replies, followups,
        # channel posts), as Discord received it: tests read its `allowed_mentions`.
        self.payloads: list[Json] = []
        # Registered application commands: guild id (None: global) to the payloads.
        self.commands: dict[int | None, list[Json]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._sequence = itertools.count(1)
        self._changed = asyncio.Condition()
        self._identified = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base = ""

    # --- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway)
        app.router.add_get("/files/{name}", self.serve_file)
        app.router.add_get("/attachments/{mid}/{index}/{name}", self.serve_attachment)
        api = "/api/v10"
        app.router.add_get(api + "/users/@me", self.me)
        app.router.add_get(api + "/oauth2/applications/@me", self.application)
        app.router.add_get(api + "/gateway/bot", self.gateway_bot)
        app.router.add_put(api + "/applications/{app}/commands", self.put_commands)
        app.router.add_put(api + "/applications/{app}/guilds/{gid}/commands", self.put_commands)
        app.router.add_post(api + "/interactions/{id}/{token}/callback", self.callback)
        app.router.add_route("*", api + "/webhooks/{app}/{token}/messages/@original",
                             self.original)
        app.router.add_post(api + "/webhooks/{app}/{token}", self.followup)
        app.router.add_post(api + "/channels/{cid}/messages/{mid}/threads", self.thread)
        app.router.add_patch(api + "/channels/{cid}", self.edit_channel)
        app.router.add_post(api + "/channels/{cid}/messages", self.create_message)
        app.router.add_patch(api + "/channels/{cid}/messages/{mid}", self.edit_message)
        app.router.add_delete(api + "/channels/{cid}/messages/{mid}", self.delete_message)
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

    # --- REST ------------------------------------------------------------------------------

    async def me(self, request: web.Request) -> web.Response:
        return _json(user_payload(BOT_ID, "stembot", bot=True))

    async def application(self, request: web.Request) -> web.Response:
        return _json({
            "id": str(APP_ID), "name": "stembot", "icon": None, "description": "",
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64,
            "owner": user_payload(OWNER_ID, "owner"), "flags": 0, "summary": "",
        })

    async def gateway_bot(self, request: web.Request) -> web.Response:
        return _json({"url": self.base.replace("http", "ws", 1) + "/gateway",
                                  "shards": 1, "session_start_limit": {
                                      "total": 1000, "remaining": 1000, "reset_after": 0,
                                      "max_concurrency": 1}})

    async def put_commands(self, request: web.Request) -> web.Response:
        guild = request.match_info.get("gid")
        # a message command has no description; Discord answers it as ""
        registered = [{"description": "", **command, "id": str(next(self._ids)),
                       "application_id": str(APP_ID),
                       "version": "1", **({"guild_id": guild} if guild else {})}
                      for command in await request.json()]
        self.commands[int(guild) if guild else None] = registered
        return _json(registered)  # type: ignore[arg-type]

    async def callback(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (refused := _too_long((body.get("data") or {}).get("content"))) is not None:
            return refused
        log = self.interactions[request.match_info["token"]]
        log.callback = body
        if body["type"] in (4, 7):  # a message, new or edited (5 and 6 only defer)
            self.payloads.append(body.get("data") or {})
        resource: Json = {"type": body["type"]}
        data = body.get("data") or {}
        if body["type"] == 4:
            log.original = self._store(CHANNEL_ID, data.get("content", ""), [])
            resource["message"] = log.original.payload(self.base)
        elif body["type"] == 7 and log.original is None:
            log.original = self._store(CHANNEL_ID, data.get("content", ""), [])
        await self._notify()
        return _json({
            "interaction": {"id": str(log.id), "type": 2,
                            "response_message_id": str(log.original.id) if log.original else None,
                            "response_message_loading": body["type"] == 5,
                            "response_message_ephemeral": bool(data.get("flags", 0) & 64)},
            "resource": resource,
        })

    async def original(self, request: web.Request) -> web.Response:
        log = self.interactions[request.match_info["token"]]
        if request.method == "PATCH":
            content, attachments = await self._read_body(request)
            if (refused := _too_long(content)) is not None:
                return refused
            if log.original is None:
                # The deferred "thinking…" reply becomes a message at its first edit.
                log.original = self._store(CHANNEL_ID, "", attachments)
            if content is not None:
                log.original.content = content
                log.original.edits.append(content)
            await self._notify()
        if log.original is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        return _json(log.original.payload(self.base))

    async def followup(self, request: web.Request) -> web.Response:
        log = self.interactions[request.match_info["token"]]
        content, attachments = await self._read_body(request)
        if (refused := _too_long(content)) is not None:
            return refused
        log.followups.append(content or "")
        message = self._store(CHANNEL_ID, content or "", attachments)
        await self._notify()
        return _json(message.payload(self.base))

    async def thread(self, request: web.Request) -> web.Response:
        if self.fail_thread_creation:
            return _json({"message": "Missing Permissions", "code": 50013},
                                     status=403)
        body = await request.json()
        thread_id = int(request.match_info["mid"])  # Discord gives the thread the message's id
        self.threads[thread_id] = {
            "id": str(thread_id), "guild_id": str(GUILD_ID),
            "parent_id": request.match_info["cid"], "owner_id": str(BOT_ID),
            "name": body["name"], "type": 11, "last_message_id": None, "message_count": 0,
            "member_count": 1, "rate_limit_per_user": 0, "flags": 0,
            "thread_metadata": {"archived": False, "locked": False,
                                "auto_archive_duration": body.get("auto_archive_duration", 1440),
                                "archive_timestamp": now_iso()},
        }
        await self._notify()
        return _json(self.threads[thread_id], status=201)

    async def edit_channel(self, request: web.Request) -> web.Response:
        """Only threads exist here: a rename (Discord allows 1-100 characters)."""
        thread = self.threads.get(int(request.match_info["cid"]))
        if thread is None:
            return _json({"message": "Unknown Channel", "code": 10003}, status=404)
        body = await request.json()
        if "name" in body:
            if not 1 <= len(body["name"]) <= 100:
                return _json({"message": "Invalid Form Body", "code": 50035}, status=400)
            thread["name"] = body["name"]
        await self._notify()
        return _json(thread)

    async def create_message(self, request: web.Request) -> web.Response:
        payload, attachments = await self._read_payload(request)
        content = payload.get("content")
        if (refused := _too_long(content)) is not None:
            return refused
        nonce = payload.get("nonce") if payload.get("enforce_nonce") else None
        if nonce is not None and nonce in self.nonces:
            # Discord's enforce_nonce: a repeat gets the message the first request made
            return _json(self.messages[self.nonces[nonce]].payload(self.base))
        message = self._store(int(request.match_info["cid"]), content or "", attachments)
        message.components = payload.get("components") or []
        if nonce is not None:
            self.nonces[nonce] = message.id
        await self._notify()
        return _json(message.payload(self.base))

    async def edit_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(int(request.match_info["mid"]))
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        content, _ = await self._read_body(request)
        if (refused := _too_long(content)) is not None:
            return refused
        if content is not None:
            message.content = content
            message.edits.append(content)
        await self._notify()
        return _json(message.payload(self.base))

    async def delete_message(self, request: web.Request) -> web.Response:
        message_id = int(request.match_info["mid"])
        self.deletions[message_id] += 1
        if self.messages.pop(message_id, None) is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        await self._notify()
        return web.Response(status=204)

    async def serve_file(self, request: web.Request) -> web.Response:
        location = self.redirects.get(request.match_info["name"])
        if location is not None:
            return web.Response(status=302, headers={"Location": location})
        name = request.match_info["name"]
        data, kind = self.files[name]
        self.downloads[name] += 1
        if self.downloads[name] > 1 and name in self.later:
            data = self.later[name]
        return web.Response(body=data, content_type=kind)

    async def serve_attachment(self, request: web.Request) -> web.Response:
        message = self.messages[int(request.match_info["mid"])]
        attachment = message.attachments[int(request.match_info["index"])]
        return web.Response(body=attachment.data, content_type=attachment.content_type)

    # --- helpers -------------------------------------------------------------------------

    def _store(self, channel_id: int, content: str, attachments: list[Attachment]) -> Message:
        message = Message(next(self._ids), channel_id, content, attachments)
        self.messages[message.id] = message
        return message

    async def _read_body(self, request: web.Request) -> tuple[str | None, list[Attachment]]:
        payload, attachments = await self._read_payload(request)
        return payload.get("content"), attachments

    async def _read_payload(self, request: web.Request) -> tuple[Json, list[Attachment]]:
        """JSON, or multipart with `payload_json` and `files[n]`, as discord.py sends them;
        the JSON is kept in `payloads`."""
        if not request.content_type.startswith("multipart/"):
            payload: Json = await request.json()
            self.payloads.append(payload)
            return payload, []
        payload = {}
        attachments: list[Attachment] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader)
            data = await part.read()
            if part.name == "payload_json":
                payload = json.loads(data)
            else:
                attachments.append(Attachment(part.filename or "file", bytes(data),
                                              part.headers.get("Content-Type", "")))
        self.payloads.append(payload)
        return payload, attachments

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
