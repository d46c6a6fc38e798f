"""Downloads run before, and apart from, separation; a download too slow for too long fails."""

from __future__ import annotations

from pathlib import Path

from service_harness import Origin, serving


async def test_a_slow_download_does_not_hold_the_worker(tmp_path: Path, origin: Origin) -> None:
    """One worker: key A's 1 byte/s-ish link downloads while key B's job separates."""
    async with serving(tmp_path / "data", fetch_timeout=300, fetch_min_rate=0) as running:
        api = running.api
        slow = await api.create([{"url": origin.url + "/trickle?n=3000&every=0.1"}])
        await api.wait(slow["id"], states=(2,))
        quick = await api.create([{"url": origin.url + "/files/clip.wav"}], key=running.other)
        done = await api.wait(quick["id"], within=120, key=running.other)
        assert done["state"] == 3, done
        still = await api.job(slow["id"])
        assert (still["state"], still["progress"]) == (2, 0)  # downloading: progress 0
        assert (await api.ok("CancelJob", {"id": slow["id"]}))["job"]["state"] == 5


async def test_a_download_under_the_minimum_rate_fails(tmp_path: Path, origin: Origin) -> None:
    async with serving(tmp_path / "data", fetch_min_rate=100, fetch_rate_window=1) as running:
        api = running.api
        crawl = await api.create([{"url": origin.url + "/trickle?n=600&every=0.1"}])
        done = await api.wait(crawl["id"], within=10)
        assert (done["state"], done["errorCode"]) == (4, "DOWNLOAD_FAILED"), done
        assert "too slow: under 100 bytes/s for 1 s" in done["errorMessage"]
        took = int(done["timing"]["completedAt"]) - int(done["timing"]["startedAt"])
        assert 1000 <= took < 4000
        # a long download that keeps above the floor is not cut: it arrives, and is no audio
        steady = await api.create([{"url": origin.url + "/trickle?n=2500&every=0.001"}])
        done = await api.wait(steady["id"], within=30)
        assert done["errorCode"] == "INVALID_AUDIO", done
        took = int(done["timing"]["completedAt"]) - int(done["timing"]["startedAt"])
        assert took > 1000
