"""What the fake Discord sends and keeps: its ids, the payloads discord.py reads, and the
records of messages, attachments and interactions that tests assert on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

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


def json_response(data: Json, status: int = 200) -> web.Response:
    # discord.py parses JSON only when the type is exactly `application/json` (no charset).
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


# Discord's limit on a message's content; longer is refused, as the real API does.
CONTENT_LIMIT = 2000


def too_long(content: str | None) -> web.Response | None:
    """The real API's 400 (Invalid Form Body, code 50035) for content over 2000 characters."""
    if content is None or len(content) <= CONTENT_LIMIT:
        return None
    return json_response({"message": "Invalid Form Body", "code": 50035, "errors": {"content": {
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
