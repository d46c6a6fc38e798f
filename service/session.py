"""The start page's sign-in: the key is checked once, then an HttpOnly, SameSite=Strict
cookie stands for it, so no script on the origin ever holds a secretKey.

The cookie is `EXPIRES.SIGNATURE.SECRETID`, signed with the link secret under a name no
repository or player link can have; revoking the key ends its sessions. Sign-out drops the
cookie; a copy taken before that stays valid until it expires (SESSION_TTL).
"""

from __future__ import annotations

import hmac
import json
import time
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web

from service.auth import authenticate, link_signature
from service.bodies import read_body
from service.errors import AuthFailed, InvalidJson
from service.state import SERVICE
from service.store import Key

COOKIE = "stembot-session"
SESSION_TTL = 12 * 3600
SESSION = "@session"  # '@' is in no contentId: a session signature opens no file
session_routes = web.RouteTableDef()


def token(secret: bytes, secret_id: str, expires: int) -> str:
    return f"{expires}.{link_signature(secret, SESSION, secret_id, expires)}.{quote(secret_id)}"


def token_id(secret: bytes, value: str) -> str:
    """The secretId a well-formed, unexpired, genuine token names; AuthFailed otherwise."""
    expires, _, rest = value.partition(".")
    signature, _, quoted = rest.partition(".")
    if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        raise AuthFailed("the session is malformed: sign in again")
    secret_id = unquote(quoted)
    expected = link_signature(secret, SESSION, secret_id, int(expires))
    if not hmac.compare_digest(expected, signature):
        raise AuthFailed("the session is not genuine: sign in again")
    if int(expires) < time.time():
        raise AuthFailed("the session has expired: sign in again")
    return secret_id


def same_origin(request: web.Request) -> bool:
    """A browser names the page a request comes from (Origin; a same-origin GET sends only
    Sec-Fetch-Site); a cookie counts only from our own."""
    sent = request.headers.get("Origin")
    if sent is None:
        return request.headers.get("Sec-Fetch-Site") == "same-origin"
    return urlsplit(sent).netloc.lower() == request.host.lower()


async def session_key(request: web.Request) -> Key:
    """The key the request's session cookie stands for (from our own pages only)."""
    value = request.cookies.get(COOKIE)
    if not value:
        raise AuthFailed("secretId and secretKey are required (or sign in on the start page)")
    if not same_origin(request):
        raise AuthFailed("a session cookie counts only on requests from this service's pages")
    service = request.app[SERVICE]
    key = await service.store.key(token_id(service.link_secret, value))
    if key is None:
        raise AuthFailed("the session's key was revoked: sign in with another")
    return key


def described(key: Key, expires: int) -> dict[str, object]:
    return {"session": {"secretId": key.secret_id, "expiresAt": str(expires * 1000)}}


@session_routes.post("/session")
async def sign_in(request: web.Request) -> web.Response:
    """`{"secretId", "secretKey"}` checked once; the answer sets the session cookie."""
    service = request.app[SERVICE]
    try:
        body = json.loads(await read_body(request, 4096, service.settings.body_timeout))
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidJson("the body must be a JSON object")
    key = await authenticate(service.store, body.get("secretId"), body.get("secretKey"))
    expires = int(time.time()) + SESSION_TTL
    response = web.json_response(described(key, expires))
    secure = request.secure or service.base_url.startswith("https:")
    response.set_cookie(COOKIE, token(service.link_secret, key.secret_id, expires),
                        max_age=SESSION_TTL, path="/", httponly=True, samesite="Strict",
                        secure=secure)
    return response


@session_routes.get("/session")
async def current(request: web.Request) -> web.Response:
    key = await session_key(request)
    expires = int(request.cookies[COOKIE].partition(".")[0])
    return web.json_response(described(key, expires))


@session_routes.delete("/session")
async def sign_out(request: web.Request) -> web.Response:
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response
