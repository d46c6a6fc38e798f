"""The start page's sign-in: the key is checked once, then an HttpOnly, SameSite=Strict
cookie stands for it, so no script on the origin ever holds a secretKey.

The cookie is `EXPIRES.SIGNATURE.SECRETID`, signed with the link secret under a name no
repository or player link can have; revoking the key ends its sessions. Sign-out drops the
cookie; a copy taken before that stays valid until it expires (SESSION_TTL).

A one-click sign-in link, `BASE/#signin=TOKEN`, is the other way in: `stembot up` on a fresh
data folder makes the local owner a key and prints such a link (never logs it). The token is
random, stored only as its SHA-256, lasts SIGN_IN_TTL and signs in once: the page sends it to
POST /session as `{"signInToken"}` (a URL fragment never reaches the server or its logs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web

from service.auth import authenticate, link_signature
from service.bodies import read_body
from service.errors import AuthFailed, InvalidJson, StartupError
from service.settings import ServiceSettings
from service.state import SERVICE
from service.store import Key, SchemaError, Store, now_ms, open_store

COOKIE = "stembot-session"
SESSION_TTL = 12 * 3600
SESSION = "@session"  # '@' is in no contentId: a session signature opens no file
SIGN_IN_TTL = 600  # seconds a one-click sign-in link lasts
OWNER = "owner (stembot up)"  # the name of the key `stembot up` makes on a fresh data folder
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


async def session_key(request: web.Request, *, reads: bool = False) -> Key:
    """The key the request's session cookie stands for, from our own pages only; `reads`: a
    request that changes nothing and whose answer only our pages can read (no CORS), which a
    browser sends over plain http without Origin or Sec-Fetch-Site."""
    value = request.cookies.get(COOKIE)
    if not value:
        raise AuthFailed("secretId and secretKey are required (or sign in on the start page)")
    if not reads and not same_origin(request):
        raise AuthFailed("a session cookie counts only on requests from this service's pages")
    service = request.app[SERVICE]
    key = await service.store.key(token_id(service.link_secret, value))
    if key is None:
        raise AuthFailed("the session's key was revoked: sign in with another")
    return key


def _digest(sign_in_token: str) -> str:
    return hashlib.sha256(sign_in_token.encode()).hexdigest()


async def mint_sign_in(store: Store, secret_id: str, ttl: int = SIGN_IN_TTL) -> str:
    """A new single-use sign-in token for the key; the store keeps only its digest."""
    sign_in_token = secrets.token_urlsafe(32)
    await store.add_sign_in(_digest(sign_in_token), secret_id, now_ms() + ttl * 1000)
    return sign_in_token


AGAIN = "sign in with a key instead (`stembot keys create --name NAME` on the server)"


async def use_sign_in(store: Store, sign_in_token: object) -> Key:
    """The key a sign-in token stands for, using the token up; AuthFailed says why not."""
    if not isinstance(sign_in_token, str) or not 20 <= len(sign_in_token) <= 100:
        raise AuthFailed(f"this sign-in link is incomplete: copy all of it, or {AGAIN}")
    found = await store.use_sign_in(_digest(sign_in_token), now_ms())
    if found is None:
        raise AuthFailed(f"this sign-in link is not one this service made: {AGAIN}")
    record, used = found
    if not used and record.used_at:
        raise AuthFailed(f"this sign-in link was already used (it signs in once): {AGAIN}")
    if not used:
        raise AuthFailed(f"this sign-in link has expired (it lasts {SIGN_IN_TTL // 60}"
                         f" minutes): {AGAIN}")
    key = await store.key(record.secret_id)
    if key is None:
        raise AuthFailed(f"this sign-in link's key was revoked: {AGAIN}")
    return key


def browser_url(base_url: str) -> str:
    """The service's URL for a browser on this machine (a wildcard bind address is none)."""
    for wildcard in ("0.0.0.0", "[::]"):
        base_url = base_url.replace(f"//{wildcard}:", "//127.0.0.1:")
    return base_url


async def owner_link(settings: ServiceSettings) -> str | None:
    """On a data folder without keys: a key for the local owner and a one-click sign-in link
    for it, `BASE/#signin=TOKEN`, for `stembot up` to print; None where there are keys."""
    try:
        store = await open_store(settings)
    except (ConnectionError, SchemaError) as error:  # what the service's start would say
        raise StartupError(str(error)) from None
    try:
        if await store.keys():
            return None
        key = await store.create_key(OWNER)
        sign_in_token = await mint_sign_in(store, key.secret_id)
    finally:
        await store.close()
    return f"{browser_url(settings.base_url)}/#signin={sign_in_token}"


def described(key: Key, expires: int) -> dict[str, object]:
    return {"session": {"secretId": key.secret_id, "expiresAt": str(expires * 1000)}}


@session_routes.post("/session")
async def sign_in(request: web.Request) -> web.Response:
    """`{"secretId", "secretKey"}` checked once, or `{"signInToken"}` used up; the answer
    sets the session cookie."""
    service = request.app[SERVICE]
    try:
        body = json.loads(await read_body(request, 4096, service.settings.body_timeout))
    except (ValueError, UnicodeDecodeError):
        raise InvalidJson("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidJson("the body must be a JSON object")
    if "signInToken" in body:
        key = await use_sign_in(service.store, body["signInToken"])
    else:
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
    key = await session_key(request, reads=True)
    expires = int(request.cookies[COOKIE].partition(".")[0])
    return web.json_response(described(key, expires))


@session_routes.delete("/session")
async def sign_out(request: web.Request) -> web.Response:
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response
