"""The job store's keys, content repositories, settings (`meta`), sign-in links and mixes."""

from __future__ import annotations

import json
import secrets

from service.store import Key, MixRecord, NewKey, SignIn, now_ms
from service.store_base import SqlBase, Tx
from service.store_rows import load_key, load_mix


class KeysSql(SqlBase):
    """Who may call the API, what they own, and what they made besides jobs."""

    # --- keys ----------------------------------------------------------------------------

    async def create_key(self, name: str) -> NewKey:
        key = NewKey(secret_id="AKID" + secrets.token_hex(16),
                     secret_key=secrets.token_urlsafe(32),
                     default_content="repo-" + secrets.token_hex(8))
        created = now_ms()

        async def work(tx: Tx) -> None:
            await tx.run("INSERT INTO keys VALUES (?, ?, ?, ?, ?, 0)",
                         key.secret_id, name, key.secret_key, key.default_content, created)
            await tx.run("INSERT INTO repos VALUES (?, ?, ?)",
                         key.default_content, key.secret_id, created)
        await self._tx(work)
        return key

    async def keys(self) -> list[Key]:
        return [load_key(r) for r in await self._read_all(
            "SELECT * FROM keys ORDER BY created_at")]

    async def key(self, secret_id: str) -> Key | None:
        """The active (not revoked) key with this id."""
        row = await self._read_one("SELECT * FROM keys WHERE secret_id=? AND revoked_at=0",
                                   secret_id)
        return load_key(row) if row else None

    async def signing_key(self, secret_id: str) -> str | None:
        """The secretKey that signs this key's callbacks, revoked or not."""
        row = await self._read_one("SELECT secret_key FROM keys WHERE secret_id=?", secret_id)
        return str(row["secret_key"]) if row else None

    async def revoke_key(self, secret_id: str) -> bool:
        return await self._write("UPDATE keys SET revoked_at=? WHERE secret_id=? AND"
                                 " revoked_at=0", now_ms(), secret_id) == 1

    async def meta_default(self, key: str, value: str) -> str:
        async def work(tx: Tx) -> str:
            await tx.run("INSERT INTO meta VALUES (?, ?) ON CONFLICT DO NOTHING", key, value)
            row = await tx.one("SELECT value FROM meta WHERE key=?", key)
            assert row is not None
            return str(row["value"])
        return await self._tx(work)

    # --- one-click sign-in links ----------------------------------------------------------

    async def add_sign_in(self, digest: str, secret_id: str, expires_at: int) -> None:
        async def work(tx: Tx) -> None:
            await tx.run("DELETE FROM sign_ins WHERE expires_at<?", now_ms() - 86_400_000)
            await tx.run("INSERT INTO sign_ins VALUES (?, ?, ?, 0)", digest, secret_id,
                         expires_at)
        await self._tx(work)

    async def use_sign_in(self, digest: str, at: int) -> tuple[SignIn, bool] | None:
        async def work(tx: Tx) -> tuple[SignIn, bool] | None:
            # one statement decides: of two concurrent uses (any nodes) one updates the row
            row = await tx.one("UPDATE sign_ins SET used_at=? WHERE digest=? AND used_at=0 AND"
                               " expires_at>? RETURNING *", at, digest, at)
            used = row is not None
            if row is None:
                row = await tx.one("SELECT * FROM sign_ins WHERE digest=?", digest)
            if row is None:
                return None
            return SignIn(str(row["secret_id"]), int(row["expires_at"]),
                          int(row["used_at"])), used
        return await self._tx(work)

    # --- content repositories ----------------------------------------------------------

    async def repo_owner(self, content_id: str) -> str | None:
        row = await self._read_one("SELECT owner FROM repos WHERE content_id=?", content_id)
        return str(row["owner"]) if row else None

    async def create_repo(self, content_id: str, owner: str) -> bool:
        """Create the repository for `owner`; False if the id is taken (by anyone)."""
        return await self._write("INSERT INTO repos VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                 content_id, owner, now_ms()) == 1

    async def repos_of(self, owner: str) -> list[str]:
        rows = await self._read_all(
            "SELECT content_id FROM repos WHERE owner=? ORDER BY content_id", owner)
        return [str(r["content_id"]) for r in rows]

    # --- mixes ---------------------------------------------------------------------------

    async def add_mix(self, mix: MixRecord) -> None:
        """Record a mix; the same place written again replaces the older record."""
        await self._write(
            "INSERT INTO mixes VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, content_id,"
            " path) DO UPDATE SET digest=excluded.digest, name=excluded.name,"
            " gains=excluded.gains, format=excluded.format, created_at=excluded.created_at",
            mix.job_id, mix.digest, mix.name, json.dumps(mix.gains), mix.format,
            mix.content_id, mix.path, mix.created_at)

    async def mixes_of(self, job_id: str, digest: str | None = None) -> list[MixRecord]:
        """The job's mixes, oldest first; with `digest`, only those of that mix."""
        sql, args = "SELECT * FROM mixes WHERE job_id=?", [job_id]
        if digest is not None:
            sql, args = sql + " AND digest=?", [job_id, digest]
        return [load_mix(r) for r in await self._read_all(sql + " ORDER BY created_at, path",
                                                          *args)]
