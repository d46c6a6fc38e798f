"""The fake Discord's REST side: the routes discord.py calls, over the state they change.

Messages, threads, interactions and registered commands are kept as Discord would keep them;
every JSON body the bot sent is kept in `payloads`. `FakeDiscord` adds the gateway and what
tests call.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import time

from aiohttp import BodyPartReader, web

from support.discord_payloads import (
    APP_ID,
    BOT_ID,
    CHANNEL_ID,
    GUILD_ID,
    OWNER_ID,
    Attachment,
    InteractionLog,
    Json,
    Message,
    json_response,
    now_iso,
    too_long,
    user_payload,
)


class DiscordRest:
    """The REST routes and the state behind them; `add_routes` puts them on an application."""

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
        self._changed = asyncio.Condition()
        self.base = ""

    def add_routes(self, app: web.Application) -> None:
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

    # --- routes ----------------------------------------------------------------------------

    async def me(self, request: web.Request) -> web.Response:
        return json_response(user_payload(BOT_ID, "stembot", bot=True))

    async def application(self, request: web.Request) -> web.Response:
        return json_response({
            "id": str(APP_ID), "name": "stembot", "icon": None, "description": "",
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64,
            "owner": user_payload(OWNER_ID, "owner"), "flags": 0, "summary": "",
        })

    async def gateway_bot(self, request: web.Request) -> web.Response:
        return json_response({"url": self.base.replace("http", "ws", 1) + "/gateway",
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
        return json_response(registered)  # type: ignore[arg-type]

    async def callback(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (refused := too_long((body.get("data") or {}).get("content"))) is not None:
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
        return json_response({
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
            if (refused := too_long(content)) is not None:
                return refused
            if log.original is None:
                # The deferred "thinking…" reply becomes a message at its first edit.
                log.original = self._store(CHANNEL_ID, "", attachments)
            if content is not None:
                log.original.content = content
                log.original.edits.append(content)
            await self._notify()
        if log.original is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        return json_response(log.original.payload(self.base))

    async def followup(self, request: web.Request) -> web.Response:
        log = self.interactions[request.match_info["token"]]
        content, attachments = await self._read_body(request)
        if (refused := too_long(content)) is not None:
            return refused
        log.followups.append(content or "")
        message = self._store(CHANNEL_ID, content or "", attachments)
        await self._notify()
        return json_response(message.payload(self.base))

    async def thread(self, request: web.Request) -> web.Response:
        if self.fail_thread_creation:
            return json_response({"message": "Missing Permissions", "code": 50013}, status=403)
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
        return json_response(self.threads[thread_id], status=201)

    async def edit_channel(self, request: web.Request) -> web.Response:
        """Only threads exist here: a rename (Discord allows 1-100 characters)."""
        thread = self.threads.get(int(request.match_info["cid"]))
        if thread is None:
            return json_response({"message": "Unknown Channel", "code": 10003}, status=404)
        body = await request.json()
        if "name" in body:
            if not 1 <= len(body["name"]) <= 100:
                return json_response({"message": "Invalid Form Body", "code": 50035}, status=400)
            thread["name"] = body["name"]
        await self._notify()
        return json_response(thread)

    async def create_message(self, request: web.Request) -> web.Response:
        payload, attachments = await self._read_payload(request)
        content = payload.get("content")
        if (refused := too_long(content)) is not None:
            return refused
        nonce = payload.get("nonce") if payload.get("enforce_nonce") else None
        if nonce is not None and nonce in self.nonces:
            # Discord's enforce_nonce: a repeat gets the message the first request made
            return json_response(self.messages[self.nonces[nonce]].payload(self.base))
        message = self._store(int(request.match_info["cid"]), content or "", attachments)
        message.components = payload.get("components") or []
        if nonce is not None:
            self.nonces[nonce] = message.id
        await self._notify()
        return json_response(message.payload(self.base))

    async def edit_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(int(request.match_info["mid"]))
        if message is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
        content, _ = await self._read_body(request)
        if (refused := too_long(content)) is not None:
            return refused
        if content is not None:
            message.content = content
            message.edits.append(content)
        await self._notify()
        return json_response(message.payload(self.base))

    async def delete_message(self, request: web.Request) -> web.Response:
        message_id = int(request.match_info["mid"])
        self.deletions[message_id] += 1
        if self.messages.pop(message_id, None) is None:
            return json_response({"message": "Unknown Message", "code": 10008}, status=404)
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
