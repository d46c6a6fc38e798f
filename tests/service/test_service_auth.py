"""The link-signing secret file: made once, atomically, and never used when it is too short."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import pytest

from service.auth import MIN_LINK_SECRET, link_secret


def test_made_once_and_kept(tmp_path: Path) -> None:
    first = link_secret(tmp_path / "data")
    assert len(first) >= MIN_LINK_SECRET
    assert link_secret(tmp_path / "data") == first
    path = tmp_path / "data" / "link-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["link-secret"]  # no temp file left


@pytest.mark.parametrize("content", [b"", b"\n", b"short-secret\n", b"x" * (MIN_LINK_SECRET - 1)])
def test_a_short_file_is_not_used_as_the_key(tmp_path: Path, content: bytes) -> None:
    # what a crash between creating the file and writing it used to leave behind
    tmp_path.joinpath("link-secret").write_bytes(content)
    secret = link_secret(tmp_path)
    assert len(secret) >= MIN_LINK_SECRET
    assert secret != content.strip()
    assert link_secret(tmp_path) == secret  # replaced on disk, not made anew at each start


def test_the_file_appears_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader racing the first start sees no file or the whole secret, never an empty one."""
    drawn = threading.Event()
    release = threading.Event()
    real_token = secrets.token_hex

    def slow_token(size: int) -> str:
        drawn.set()
        release.wait(5)
        return real_token(size)

    monkeypatch.setattr(secrets, "token_hex", slow_token)
    made: list[bytes] = []
    maker = threading.Thread(target=lambda: made.append(link_secret(tmp_path)))
    maker.start()
    assert drawn.wait(5)
    assert not tmp_path.joinpath("link-secret").exists()
    release.set()
    maker.join(5)
    assert made and tmp_path.joinpath("link-secret").read_bytes().strip() == made[0]


def test_a_crash_before_the_move_leaves_no_secret_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(size: int) -> str:
        raise KeyboardInterrupt  # or a kill: the process stops before the secret is written

    monkeypatch.setattr(secrets, "token_hex", crash)
    with pytest.raises(KeyboardInterrupt):
        link_secret(tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert len(link_secret(tmp_path)) >= MIN_LINK_SECRET


def test_configured_secret_is_used_as_given(tmp_path: Path) -> None:
    assert link_secret(tmp_path, "x" * 40) == b"x" * 40
    assert not tmp_path.joinpath("link-secret").exists()
