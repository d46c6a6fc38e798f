"""Long-running programs on a Host (`stembot serve`, `stembot worker`, ...) and their readiness."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from support.netns import Host

Ready = Callable[[], bool]


class NodeFailed(RuntimeError):
    """The program exited, or did not become ready in time; the message holds its log's tail."""


def stembot(*args: str) -> list[str]:
    """argv of the stembot CLI of this checkout, run by this interpreter (the venv's)."""
    return [sys.executable, "-m", "stembot", *args]


@dataclass
class Node:
    """One program on one host, with its log."""

    host: Host
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, within: float = 15) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL after `within` seconds; returns the exit status."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(within)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_node(host: Host, argv: Sequence[str], *, env: Mapping[str, str], log: Path,
               ready: Ready, within: float = 60, cwd: Path | None = None) -> Node:
    """Spawn argv on host, wait until `ready()`; an exit or a timeout raises NodeFailed."""
    node = Node(host, host.spawn(argv, env, log, cwd=cwd), log)
    end = time.monotonic() + within
    while not ready():
        if not node.alive:
            raise NodeFailed(f"{host.name}: {argv[-1]} exited {node.process.returncode}:\n"
                             f"{node.log_tail()}")
        if time.monotonic() > end:
            node.stop(within=2)
            raise NodeFailed(f"{host.name}: {' '.join(argv)} not ready after {within:.0f} s:\n"
                             f"{node.log_tail()}")
        time.sleep(0.1)
    return node


def http_ready(client: Host, address: str, port: int, path: str = "/") -> Ready:
    """Ready when GET path on address:port, asked from `client`, answers below 500."""
    def probe() -> bool:
        try:
            status = http_get(client, address, port, path, timeout=1)[0]
        except OSError:
            return False
        return status < 500
    return probe


def http_get(client: Host, address: str, port: int, path: str = "/",
             timeout: float = 5) -> tuple[int, bytes]:
    """A plain HTTP/1.0 GET from `client`: (status, body). Small on purpose: for probes."""
    with client.connect(address, port, timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {address}:{port}\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), body
    except (IndexError, ValueError):
        raise OSError(f"not an HTTP reply from {address}:{port}: {reply[:80]!r}") from None


def log_ready(log: Path, text: str) -> Ready:
    """Ready when the log holds `text` (a banner such as 'job service on http://')."""
    return lambda: log.exists() and text in log.read_text(errors="replace")


def file_ready(path: Path) -> Ready:
    """Ready when the program has written `path` (a ready file)."""
    return path.exists


def serve(host: Host, env: Mapping[str, str], log: Path, *, port: int = 8080,
          within: float = 60, cwd: Path | None = None) -> Node:
    """`stembot serve` on host's address:port, ready when GET / answers (asked from host itself)."""
    argv = stembot("serve", "--host", host.address, "--port", str(port))
    return start_node(host, argv, env=env, log=log, ready=http_ready(host, host.address, port),
                      within=within, cwd=cwd)


def tcp_open(client: Host, address: str, port: int) -> bool:
    """Whether a TCP connection from client to address:port is accepted within a second."""
    try:
        client.connect(address, port, timeout=1).close()
    except OSError:
        return False
    return True

