"""A throwaway PostgreSQL cluster: Debian's server binaries, `initdb` in a temporary folder.

PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` system
user (created by Debian's package); otherwise to the user running the tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.netns import NETNS_DIR, inside, netns_command

SUPERUSER = "stembot"


class PostgresUnavailable(RuntimeError):
    """The server binaries or the unprivileged user are missing: setup was not run."""


def free_port(host: str = "127.0.0.1", netns: str | None = None) -> int:
    """A TCP port free on `host` (in network namespace `netns` if given: bound from inside it)."""
    if netns:
        fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
        try:
            with inside(fd):
                probe = socket.socket()
        finally:
            os.close(fd)
    else:
        probe = socket.socket()
    with probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def server_bin(name: str) -> str:
    """Debian puts initdb and postgres under /usr/lib/postgresql/<version>/bin, off PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise PostgresUnavailable(f"no {name}: install Debian's postgresql (scripts/setup)")
    return found[-1]


def _user() -> str | None:
    """The user the server runs as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("no postgres user to run the server as (scripts/setup)") from None
    return "postgres"


@dataclass
class PostgresCluster:
    """One cluster in its own folder; `start()` listens on host:port, `url(db)` connects."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stembot-pg-")))
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    host: str = "127.0.0.1"
    port: int = 0
    netns: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def init(self) -> PostgresCluster:
        user = _user()
        os.chmod(self.root, 0o755)
        if user:
            shutil.chown(self.root, user)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if user:
            shutil.chown(pwfile, user)
        subprocess.run(
            [server_bin("initdb"), "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(pwfile),
             "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
            check=True, capture_output=True, user=user)
        pwfile.unlink()
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 scram-sha-256\nhost all all ::/0 scram-sha-256\n")
        return self

    def start(self, host: str = "127.0.0.1", port: int = 0, *,
              netns: str | None = None) -> PostgresCluster:
        """Start the server (inside network namespace `netns` if given); wait until it answers.

        Readiness and createdb go over the unix socket in `root`, which works from any namespace.
        """
        self.host, self.netns = host, netns
        self.port = port or self.port or free_port(host, netns)
        command = [server_bin("postgres"), "-D", str(self.data), "-h", self.host,
                   "-p", str(self.port), "-k", str(self.root), "-c", "fsync=off",
                   "-c", "max_connections=200"]
        user = _user()
        if netns:  # `ip netns exec` needs root: it runs first, then drops to the user
            command, user = netns_command(netns, command, user), None
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, user=user,
                                            start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self, within: float = 30) -> None:
        end = time.monotonic() + within
        while time.monotonic() < end:
            ready = subprocess.run(
                [server_bin("pg_isready"), "-h", self.root.as_posix(), "-p", str(self.port),
                 "-U", SUPERUSER], capture_output=True)
            if ready.returncode == 0:
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"

    def stop(self, *, fast: bool = True) -> None:
        """Stop the server (fast: open connections are cut, as in a restart)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(2 if fast else 15)  # SIGINT: fast shutdown
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start(self.host, self.port, netns=self.netns)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", host: str | None = None) -> str:
        return (f"postgresql://{SUPERUSER}:{self.password}@{host or self.host}:{self.port}"
                f"/{database}")

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its URL (each test gets its own)."""
        name = name or "t_" + secrets.token_hex(6)
        env = {**os.environ, "PGPASSWORD": self.password}
        subprocess.run(
            [server_bin("createdb"), "-h", self.root.as_posix(), "-p", str(self.port),
             "-U", SUPERUSER, name], check=True, capture_output=True, env=env)
        return self.url(name)
