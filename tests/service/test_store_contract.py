"""The job store's contract, the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from separation.presets import StemPreset
from service.protocol import Job
from service.queue import fair_order, positions
from service.store import SCHEMA_VERSION, SchemaError, SignIn, Store, now_ms
from service.store_sql import SqlStore
from wire.enums import State, Tone
from wire.jobs import InputSpec, OutputSpec, Result

Opener = Callable[[], Awaitable[Store]]


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores on one database (several: nodes sharing it); closes them at the end."""
    opened: list[Store] = []
    if request.param == "sqlite":
        path = tmp_path / "db.sqlite3"

        async def open_one() -> Store:
            opened.append(await SqlStore.open(path))
            return opened[-1]
    else:
        url: str = request.getfixturevalue("pg_url")

        async def open_one() -> Store:
            opened.append(await SqlStore.open(url))
            return opened[-1]
    yield open_one
    for store in opened:
        await store.close()


@pytest_asyncio.fixture
async def store(opener: Opener) -> Store:
    return await opener()


def job(job_id: str, owner: str, callback: str = "http://h/cb", tenant: str = "") -> Job:
    return Job(id=job_id, owner=owner, custom_id="", callback=callback,
               state=State.SUBMITTED, inputs=(InputSpec(url="http://h/a.wav"),),
               outputs=(OutputSpec("repo", "/", (0,), StemPreset.TWO_STEMS),),
               created_at=now_ms(), deadline=now_ms() + 60_000,
               callback_state="NONE", tenant=tenant)


async def add(store: Store, owner: str, *names: str, tenant: str = "") -> None:
    for name in names:
        assert await store.insert_job(job(name, owner, tenant=tenant), max_open=100)


async def claimed(store: Store, node: str = "n1", lease_s: float = 30) -> Job:
    got = await store.claim_next(node, lease_s)
    assert got is not None
    return got


async def test_claim_sets_the_lease_and_fair_share_orders_the_queue(store: Store) -> None:
    await add(store, "alice", "a1", "a2", "a3")
    await add(store, "bob", "b1")
    first = await claimed(store, "n1", 30)
    assert (first.id, first.state, first.attempt, first.lease_node) == (
        "a1", State.PROCESSING, 1, "n1")
    assert now_ms() + 25_000 < first.lease_until <= now_ms() + 30_000
    # alice has one running, bob none: bob's single job goes before alice's older ones
    order = [(await claimed(store)).id for _ in range(3)]
    assert order == ["b1", "a2", "a3"]
    assert await store.claim_next("n1", 30) is None


async def test_the_tenants_of_one_key_share_fairly(store: Store) -> None:
    # one server of the bot's key queues five songs, then two others one each
    await add(store, "bot", "big1", "big2", "big3", "big4", "big5", tenant="guild-1")
    await add(store, "bot", "small2", tenant="guild-2")
    await add(store, "bot", "small3", tenant="guild-3")
    await add(store, "bot", "untenanted")  # no tenant: one more tenant of its own
    order = [(await claimed(store)).id for _ in range(8)]
    # fewest running first: each server's first song before any server's second
    assert order == ["big1", "small2", "small3", "untenanted", "big2", "big3", "big4", "big5"]
    current = await store.job("small2")
    assert current is not None and current.tenant == "guild-2"
    assert current.wire()["tenant"] == "guild-2"
    assert "tenant" not in (await store.job("untenanted")).wire()  # type: ignore[union-attr]


async def test_a_tenant_served_lately_waits_even_once_its_jobs_ended(store: Store) -> None:
    """One worker: each job ends before the next claim, so no tenant has one running; the
    claims of the last hour still put the big server's second song after the others'."""
    await add(store, "bot", "big1", "big2", "big3", tenant="guild-1")
    await add(store, "bot", "small2", tenant="guild-2")
    await add(store, "other", "o1", "o2")
    await add(store, "bot", "small3", tenant="guild-3")
    order = []
    for _ in range(7):
        job = await claimed(store)
        order.append(job.id)
        assert await store.finish(job.id, State.COMPLETED, attempt=job.attempt)
    # keys alternate (bot, other, ...); inside the bot's key each server's first song first
    assert order == ["big1", "o1", "small2", "o2", "small3", "big2", "big3"]
    state = await store.queue_state()
    assert state.served[("bot", "guild-1")] == 3 and state.served[("other", "")] == 2


async def test_keys_share_first_then_the_tenants_of_a_key(store: Store) -> None:
    await add(store, "bot", "g1-a", "g1-b", tenant="g1")
    await add(store, "other", "o1", "o2")
    await add(store, "bot", "g2-a", tenant="g2")
    # the bot's key and the other key alternate; inside the bot's key g2 goes before g1's
    # second job, though that one is older
    order = [(await claimed(store)).id for _ in range(5)]
    assert order == ["g1-a", "o1", "g2-a", "o2", "g1-b"]


async def test_the_tenant_filters_the_list(store: Store) -> None:
    await add(store, "bot", "a1", "a2", tenant="g1")
    await add(store, "bot", "b1", tenant="g2")
    jobs, total = await store.jobs_by_custom_id("bot", None, tenant="g1")
    assert [j.id for j in jobs] == ["a1", "a2"] and total == 2
    jobs, total = await store.jobs_by_custom_id("bot", "", 0, 10, tenant="g2")
    assert [j.id for j in jobs] == ["b1"] and total == 1


async def test_the_fair_order_is_the_order_of_the_claims(opener: Opener) -> None:
    """The queue positions (service/queue.py) agree with the claims that follow them,
    here from a queue with jobs already running and claims from two nodes in turn."""
    one, two = await opener(), await opener()
    await add(one, "bot", "r1", "r2", tenant="g1")
    await add(one, "bot", "r3", tenant="g2")
    await add(one, "other", "r4")
    for _ in range(4):
        await claimed(one)  # running: bot g1 x2, bot g2, other
    await add(one, "bot", *[f"g1-{n}" for n in range(6)], tenant="g1")
    await add(one, "other", "o-1", "o-2", "o-3")
    await add(two, "bot", "g3-1", "g3-2", tenant="g3")
    await add(one, "bot", "g2-1", tenant="g2")
    await add(two, "third", "t-1")
    await add(one, "bot", "none-1", "none-2")
    state = await one.queue_state()
    expected = fair_order(state)
    entries = positions(state, now_ms())
    assert [entries[job_id]["position"] for job_id in expected] == list(
        range(1, len(expected) + 1))
    got = [(await claimed(one if n % 2 else two)).id for n in range(len(expected))]
    assert got == expected
    assert await one.claim_next() is None


async def test_the_queue_state_counts_running_and_recent_separations(store: Store) -> None:
    await add(store, "bot", "a", "b", tenant="g1")
    await add(store, "bot", "c")
    first = await claimed(store)
    separated = (OutputSpec("repo", "/", (0,), StemPreset.TWO_STEMS,
                            (Result(Tone.VOCALS, "v.wav"),)),)
    assert await store.finish(first.id, State.COMPLETED, outputs=separated,
                              attempt=first.attempt)
    second = await claimed(store)
    cached = (OutputSpec("repo", "/", (0,), StemPreset.TWO_STEMS,
                         (Result(Tone.VOCALS, "v.wav", from_cache=True),)),)
    assert await store.finish(second.id, State.COMPLETED, outputs=cached,
                              attempt=second.attempt)
    await claimed(store)
    state = await store.queue_state()
    assert state.waiting == []
    # g1 was served first, so the untenanted job went before its second
    assert state.running == {("bot", "g1"): 1}
    assert state.served == {("bot", "g1"): 2, ("bot", ""): 1}
    assert len(state.recent) == 1  # the cached one measured no separation
    start, end = state.recent[0]
    assert 0 < start <= end


async def test_concurrent_claims_on_two_stores_are_disjoint(opener: Opener) -> None:
    one, two = await opener(), await opener()
    names = [f"j{n}" for n in range(24)]
    await add(one, "alice", *names[:12])
    await add(one, "bob", *names[12:])

    async def drain(store: Store, node: str) -> list[str]:
        got = []
        while (next_job := await store.claim_next(node, 30)) is not None:
            got.append(next_job.id)
        return got

    drained = await asyncio.gather(drain(one, "n1"), drain(two, "n2"),
                                   drain(one, "n1"), drain(two, "n2"))
    every = [job_id for got in drained for job_id in got]
    assert sorted(every) == sorted(names) and len(set(every)) == len(names)
    for job_id in names:
        current = await one.job(job_id)
        assert current is not None and current.attempt == 1


async def test_renewal_extends_the_lease_and_writes_progress(store: Store) -> None:
    await add(store, "alice", "a")
    got = await claimed(store, lease_s=1)
    assert await store.renew("a", got.attempt, 60, 42)
    current = await store.job("a")
    assert current is not None and current.progress == 42
    assert current.lease_until > now_ms() + 55_000
    assert current.wire()["progress"] == 42


async def test_an_expired_lease_requeues_in_place_then_gives_up(store: Store) -> None:
    await add(store, "alice", "a", "b")
    first = await claimed(store, lease_s=1)
    assert await store.expire_leases(2) == []  # not expired yet
    assert (await store.job("a")).state is State.PROCESSING  # type: ignore[union-attr]
    for attempt in (2, 3):
        assert await store.expire_leases(2, at=now_ms() + 2_000) == []
        again = await claimed(store, lease_s=1)
        assert (again.id, again.attempt, again.restarts) == ("a", attempt, attempt - 1)
    failed = await store.expire_leases(2, at=now_ms() + 2_000)
    assert [(j.id, j.state, j.error_code) for j in failed] == [
        ("a", State.ERROR, "RESTART_LIMIT")]
    assert failed[0].callback_state == "PENDING"
    assert (await claimed(store)).id == "b"
    assert first.attempt == 1


async def test_a_stale_attempt_is_fenced_out(store: Store) -> None:
    await add(store, "alice", "a")
    stale = await claimed(store, "n1", lease_s=1)
    await store.expire_leases(3, at=now_ms() + 2_000)
    fresh = await claimed(store, "n2")
    assert fresh.attempt == stale.attempt + 1
    assert not await store.renew("a", stale.attempt, 30, 77)
    assert await store.finish("a", State.COMPLETED, attempt=stale.attempt) is None
    assert await store.finish("a", State.ERROR, error_code="X", attempt=stale.attempt) is None
    await store.release("a", stale.attempt)  # the stale run's goodbye changes nothing either
    current = await store.job("a")
    assert current is not None
    assert (current.state, current.lease_node, current.progress) == (
        State.PROCESSING, "n2", 0)
    assert current.lease_until > now_ms()
    done = await store.finish("a", State.ERROR, error_code="X", attempt=fresh.attempt)
    assert done is not None and done.state is State.ERROR and done.lease_until == 0


async def test_cancel_is_seen_by_the_renewal_and_release_ends_the_lease(store: Store) -> None:
    await add(store, "alice", "a")
    got = await claimed(store)
    canceled = await store.finish("a", State.CANCELED)
    assert canceled is not None and canceled.state is State.CANCELED
    assert canceled.lease_until > now_ms()  # the run still holds it: DeleteJob waits for it
    assert not await store.renew("a", got.attempt, 30, 10)
    await store.release("a", got.attempt)
    current = await store.job("a")
    assert current is not None and (current.lease_until, current.lease_node) == (0, "")
    assert current.state is State.CANCELED


async def test_a_released_job_is_requeued_by_the_next_sweep(store: Store) -> None:
    await add(store, "alice", "a")
    got = await claimed(store)
    await store.release("a", got.attempt)
    assert await store.expire_leases(3) == []
    again = await claimed(store, "n2")
    assert (again.id, again.attempt, again.restarts) == ("a", 2, 1)


async def test_a_start_requeues_only_its_own_nodes_jobs(store: Store) -> None:
    await add(store, "alice", "a", "b")
    await claimed(store, "n1")
    await claimed(store, "n2")
    assert await store.recover(3, "n1") == []
    a, b = await store.job("a"), await store.job("b")
    assert a is not None and b is not None
    assert (a.state, a.restarts, b.state) == (State.SUBMITTED, 1, State.PROCESSING)


async def test_the_callback_outbox_leases_each_delivery(opener: Opener) -> None:
    one, two = await opener(), await opener()
    await add(one, "alice", "a")
    got = await claimed(one)
    assert await one.claim_callback(30) is None  # not final yet
    await one.finish("a", State.COMPLETED, attempt=got.attempt)
    leased = await one.claim_callback(5)
    assert leased is not None and leased.id == "a" and leased.callback_state == "PENDING"
    assert await two.claim_callback(5) is None  # held by the first node
    # the first node died mid-delivery: once the lease ends another node delivers
    again = await two.claim_callback(5, at=now_ms() + 6_000)
    assert again is not None and again.callback_attempts == 0
    await two.record_callback("a", "PENDING", 1, "HTTP 503", due=now_ms() + 60_000)
    assert await one.claim_callback(5) is None  # backing off
    due = await one.claim_callback(5, at=now_ms() + 61_000)
    assert due is not None and (due.callback_attempts, due.callback_error) == (1, "HTTP 503")
    await one.record_callback("a", "DELIVERED", 2, "")
    assert await two.claim_callback(5, at=now_ms() + 120_000) is None
    final = await two.job("a")
    assert final is not None and (final.callback_state, final.callback_attempts) == (
        "DELIVERED", 2)


def stems(job_id: str) -> tuple[OutputSpec, ...]:
    return (OutputSpec("repo", "/", (0,), StemPreset.TWO_STEMS,
                       results=(Result(Tone.VOCALS, f"{job_id}-0-vocals.wav"),)),)


async def test_a_publish_shows_processing_until_done_and_any_node_finishes_it(
        opener: Opener) -> None:
    one, two = await opener(), await opener()
    await add(one, "alice", "a")
    got = await claimed(one)
    done = await one.finish("a", State.COMPLETED, outputs=stems("a"), attempt=got.attempt,
                            publishing=True, lease_s=1)
    assert done is not None and done.state is State.COMPLETED and done.publishing
    seen = await two.job("a")
    assert seen is not None
    wire = seen.wire()
    assert (wire["state"], wire["progress"]) == (2, 99)
    assert "smartContentResult" not in wire["outputs"][0]
    assert await two.claim_callback(5) is None  # no callback before the files exist
    assert await two.unpublished(now_ms()) == []  # its publisher still holds it
    orphaned = await two.unpublished(now_ms() + 2_000)
    assert [j.id for j in orphaned] == ["a"] and orphaned[0].attempt == got.attempt
    finished = await two.published("a")
    assert finished is not None and not finished.publishing
    assert await one.published("a") is None  # once
    assert finished.wire()["state"] == 3
    assert finished.wire()["outputs"][0]["smartContentResult"]["musicSeperate"]
    assert (await one.claim_callback(5)) is not None


async def test_a_shared_value_is_set_once(opener: Opener) -> None:
    one, two = await opener(), await opener()
    assert await one.meta_default("link_secret", "first") == "first"
    assert await two.meta_default("link_secret", "second") == "first"


async def test_a_sign_in_link_is_used_once_and_only_before_it_expires(opener: Opener) -> None:
    one, two = await opener(), await opener()
    at = now_ms()
    await one.add_sign_in("d1", "AKID1", at + 600_000)
    await one.add_sign_in("d2", "AKID1", at - 1)  # already expired
    # two nodes use the same link at once: exactly one signs in
    uses = await asyncio.gather(*((one if n % 2 else two).use_sign_in("d1", at)
                                  for n in range(8)))
    assert [used for _, used in filter(None, uses)].count(True) == 1
    record, used = await two.use_sign_in("d1", at + 1) or (None, None)
    assert (record, used) == (SignIn("AKID1", at + 600_000, at), False)  # says when
    expired = await one.use_sign_in("d2", at)
    assert expired == (SignIn("AKID1", at - 1, 0), False)
    assert await one.use_sign_in("unknown", at) is None
    # links that ended over a day ago go when the next one is made
    await one.add_sign_in("d3", "AKID1", at + 600_000)
    assert await one.use_sign_in("d2", at) is not None
    await one.add_sign_in("old", "AKID1", at - 86_400_001)
    await one.add_sign_in("d4", "AKID1", at + 600_000)
    assert await one.use_sign_in("old", at) is None


async def test_reopening_changes_nothing(opener: Opener) -> None:
    store = await opener()
    await add(store, "alice", "a")
    again = await opener()
    current = await again.job("a")
    assert current is not None and current.state is State.SUBMITTED
    assert await again.meta_default("schema", "?") == str(SCHEMA_VERSION)


SCHEMA_2 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE keys (secret_id TEXT PRIMARY KEY, name TEXT NOT NULL, secret_key TEXT NOT NULL,
    default_content TEXT NOT NULL, created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0);
CREATE TABLE repos (content_id TEXT PRIMARY KEY, owner TEXT NOT NULL,
    created_at INTEGER NOT NULL);
CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL, custom_id TEXT NOT NULL, callback TEXT NOT NULL,
    state INTEGER NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL,
    created_at INTEGER NOT NULL, deadline INTEGER NOT NULL,
    started_at INTEGER NOT NULL DEFAULT 0, completed_at INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0, restarts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '', error_message TEXT NOT NULL DEFAULT '',
    callback_state TEXT NOT NULL DEFAULT 'NONE',
    callback_attempts INTEGER NOT NULL DEFAULT 0, callback_error TEXT NOT NULL DEFAULT '',
    deleted_at INTEGER NOT NULL DEFAULT 0, expired_at INTEGER NOT NULL DEFAULT 0,
    purging INTEGER NOT NULL DEFAULT 0);
INSERT INTO meta VALUES ('schema', '2');
INSERT INTO jobs (id, owner, custom_id, callback, state, inputs, outputs, created_at,
    deadline, attempt) VALUES ('old', 'alice', '', '', 2,
    '[{"url": "http://h/a.wav"}]', '[{"contentId": "repo", "destination": "/",
    "inputSelectors": [0], "smartContentDescriptor": {"musicSeperate": {"method": 1}}}]',
    1, 9999999999999, 1);
"""


def columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [str(row[1]) for row in db.execute("PRAGMA table_info(jobs)")]


async def test_a_schema_2_sqlite_file_upgrades_once(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_2)
    store = await SqlStore.open(path)
    try:
        old = await store.job("old")
        assert old is not None and old.state is State.PROCESSING and old.lease_until == 0
        # a job running when the old version stopped: no lease, so the first sweep requeues it
        assert await store.expire_leases(3) == []
        assert (await claimed(store)).id == "old"
    finally:
        await store.close()
    upgraded = columns(path)
    assert {"lease_node", "lease_until", "progress", "publishing", "callback_due",
            "callback_lease", "tenant"} <= set(upgraded)
    await (await SqlStore.open(path)).close()
    assert columns(path) == upgraded
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(
            SCHEMA_VERSION)


async def test_postgresql_starts_from_empty_and_refuses_a_newer_schema(pg_url: str) -> None:
    first = await SqlStore.open(pg_url)
    await add(first, "alice", "a")
    await first.close()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("UPDATE meta SET value=%s WHERE key='schema'",
                           (str(SCHEMA_VERSION + 1),))
    with pytest.raises(SchemaError, match="newer"):
        await SqlStore.open(pg_url)


async def test_two_postgresql_nodes_migrate_at_once(pg_url: str) -> None:
    stores = await asyncio.gather(*(SqlStore.open(pg_url) for _ in range(4)))
    try:
        await add(stores[0], "alice", "a")
        assert (await stores[3].job("a")) is not None
    finally:
        for one in stores:
            await one.close()


async def test_concurrent_inserts_on_two_stores_keep_the_open_job_limit(opener: Opener) -> None:
    one, two = await opener(), await opener()
    stored = await asyncio.gather(*(
        (one if n % 2 else two).insert_job(job(f"j{n}", "alice"), max_open=5)
        for n in range(16)))
    assert sum(stored) == 5 and await one.open_jobs("alice") == 5
