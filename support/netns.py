"""Hosts in Linux network namespaces on a private bridge: a small data centre for one test.

Every name carries `stembot-<pid>-<n>-` so parallel runs never collide and leftovers of a killed
run are recognised (and swept) by the next one. The bridge lives in a namespace of its own, so
the root namespace holds no address, route or interface of the test network.

    require_netns()                           # skip here, fail in CI, when namespaces can't be made
    with Network(["db", "api1", "w1", "client"]) as net:
        cluster = PostgresCluster().init().start(net["db"].address, netns=net["db"].netns)
        node = nodes.serve(net["api1"], {"STEMBOT_DATABASE_URL": cluster.url()}, log_path)
        net["w1"].link_down()                 # cut off; .kill_all(): the machine dies
        TCPConnector(socket_factory=net["client"].socket_factory)  # this process as a client
"""

from __future__ import annotations

import ctypes
import ipaddress
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest

PREFIX = "stembot-"
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_OURS = re.compile(rf"^{PREFIX}(\d+)-")
_HOST_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_runs = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)
Socket = socket.socket  # Host.socket (the method) shadows the module in the class body


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; a failure raises with ip's own message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


@cache
def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can (checked by making one)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); run the tests as root"
    if shutil.which("ip") is None:
        return "no `ip` command: install iproute2 (scripts/setup)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    ip("netns", "del", probe, check=False)  # a leftover of an earlier run with our pid
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return (f"`ip netns add` failed: {made.stderr.strip()}"
                " (a container without CAP_SYS_ADMIN / CAP_NET_ADMIN?)")
    ip("netns", "del", probe, check=False)
    return None


def require_netns() -> None:
    """Where namespaces can't be made: fail in CI (CI or STEMBOT_REQUIRE_NETNS=1), else skip."""
    reason = unavailable()
    if reason is None:
        return
    required = (os.environ.get(name, "").lower() in ("1", "true")
                for name in ("CI", "STEMBOT_REQUIRE_NETNS"))
    if any(required):
        pytest.fail(f"multi-host tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"multi-host tests need network namespaces: {reason}")


def our_namespaces() -> list[str]:
    """Every namespace named by a run of this harness, alive or not."""
    listed = ip("netns", "list").stdout.split("\n")
    return [line.split()[0] for line in listed if line.startswith(PREFIX)]


def namespace_pids(netns: str) -> list[int]:
    """Every process inside the namespace (what `ip netns pids` sees), never this one."""
    done = ip("netns", "pids", netns, check=False)
    return [pid for pid in map(int, done.stdout.split()) if pid != os.getpid()]


def kill_namespace(netns: str, within: float = 10) -> None:
    """SIGKILL every process in the namespace until none is left (they may fork meanwhile)."""
    end = time.monotonic() + within
    while pids := namespace_pids(netns):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > end:
            raise RuntimeError(f"processes {pids} in {netns} survive SIGKILL")
        time.sleep(0.02)


def process_state(pid: int) -> str:
    """The process's state letter from /proc (R, S, D, Z, ...), 'gone' when there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def sweep() -> list[str]:
    """Remove the namespaces (and so their veths and bridge) of runs whose process is gone."""
    removed = []
    for netns in our_namespaces():
        match = _OURS.match(netns)
        if match and process_state(int(match[1])) in ("gone", "Z"):  # a zombie is dead too
            kill_namespace(netns)
            ip("netns", "del", netns, check=False)
            removed.append(netns)
    return removed


def free_subnet() -> ipaddress.IPv4Network:
    """The first 10.213.X.0/24 that no address or route of the root namespace touches."""
    used = []
    for line in ip("-4", "-o", "addr").stdout.splitlines() + ip("-4", "route").stdout.splitlines():
        for word in line.split():
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    for third in range(256):
        candidate = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if not any(candidate.overlaps(net) for net in used if net.prefixlen > 0):
            return candidate
    raise RuntimeError("every 10.213.X.0/24 is in use on this machine")


def netns_command(netns: str, argv: Sequence[str], user: str | None = None) -> list[str]:
    """argv run inside the namespace, as `user` if given (`ip netns exec` itself needs root)."""
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv]
    return ["ip", "netns", "exec", netns, *argv]


@contextmanager
def inside(netns_fd: int) -> Iterator[None]:
    """Run the block with this thread in the namespace; sockets made there stay there."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(netns_fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the test namespace failed")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:  # a thread stuck outside: stop
                os.abort()
    finally:
        os.close(home)


class Host:
    """One machine: a namespace with `eth0` on the bridge at `address`, and its processes."""

    def __init__(self, name: str, netns: str, address: str, switch: str, port: str) -> None:
        self.name, self.netns, self.address = name, netns, address
        self._switch, self._port = switch, port
        self._fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
        self.processes: list[subprocess.Popen[bytes]] = []

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address})"

    def command(self, argv: Sequence[str], user: str | None = None) -> list[str]:
        return netns_command(self.netns, argv, user)

    def spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
              log: Path | None = None, *, cwd: Path | None = None,
              user: str | None = None) -> subprocess.Popen[bytes]:
        """Start a process on this host, in a process group of its own; env adds to ours."""
        out: IO[bytes] | int = log.open("ab") if log else subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                self.command(argv, user), env={**os.environ, **(env or {})}, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            if not isinstance(out, int):
                out.close()
        self.processes.append(process)
        return process

    def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            timeout: float = 30, check: bool = True,
            user: str | None = None) -> subprocess.CompletedProcess[str]:
        """A one-shot command on this host; output captured, failure raises with its stderr."""
        done = subprocess.run(self.command(argv, user), env={**os.environ, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(argv)} exited {done.returncode}:"
                               f" {done.stderr.strip()[-2000:]}")
        return done

    def pids(self) -> list[int]:
        """Every live process of this host, ours or not (a server's children included)."""
        return namespace_pids(self.netns)

    def kill_all(self) -> None:
        """The machine dies: SIGKILL every process in the namespace, at once, no goodbyes."""
        for process in self.processes:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        kill_namespace(self.netns)
        for process in self.processes:
            process.wait()

    def link_down(self) -> None:
        """The machine is cut off: its switch port goes down; its processes keep running."""
        ip("-n", self._switch, "link", "set", self._port, "down")

    def link_up(self) -> None:
        ip("-n", self._switch, "link", "set", self._port, "up")

    def socket(self, family: int = socket.AF_INET,
               kind: int = socket.SOCK_STREAM, proto: int = 0) -> Socket:
        """A socket of this host, made by the test process (a socket keeps its namespace)."""
        with inside(self._fd):
            return socket.socket(family, kind, proto)

    def socket_factory(self, addr_info: tuple[Any, ...]) -> Socket:
        """For aiohttp.TCPConnector(socket_factory=host.socket_factory): a client on this host."""
        family, kind, proto, _, _ = addr_info
        return self.socket(family, kind, proto)

    def connect(self, address: str, port: int, timeout: float = 5) -> Socket:
        """A TCP connection from this host (blocking, with `timeout`)."""
        sock = self.socket()
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except BaseException:
            sock.close()
            raise
        return sock

    def listen(self, port: int = 0) -> Socket:
        """A listening TCP socket on this host's address (aiohttp: web.SockSite(runner, sock))."""
        sock = self.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.address, port))
        sock.listen()
        return sock

    def free_port(self) -> int:
        """A TCP port free on this host's address."""
        with self.socket() as probe:
            probe.bind((self.address, 0))
            return int(probe.getsockname()[1])

    def close(self) -> None:
        try:
            self.kill_all()
        finally:
            os.close(self._fd)


class Network:
    """`with Network(["db", "api1", "w1"]) as net:` makes a bridge and one Host per name."""

    def __init__(self, names: Sequence[str]) -> None:
        bad = [n for n in names if not _HOST_NAME.match(n)]
        if bad or len(set(names)) != len(names) or not 0 < len(names) < 250:
            raise ValueError(f"host names must be unique, 1-250, [a-z][a-z0-9]{{0,11}}: {names}")
        self.names = list(names)
        self.tag = f"{PREFIX}{os.getpid()}-{next(_runs)}"
        self.switch = f"{self.tag}-switch"
        self.hosts: dict[str, Host] = {}
        self.subnet = ipaddress.IPv4Network("10.213.0.0/24")

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __enter__(self) -> Network:
        sweep()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _build(self) -> None:
        self.subnet = free_subnet()
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        addresses = self.subnet.hosts()
        for index, name in enumerate(self.names):
            netns, port, address = f"{self.tag}-{name}", f"p{index}-{name}", str(next(addresses))
            ip("netns", "add", netns)
            # Both ends are made in their namespaces: nothing ever appears in the root namespace.
            ip("link", "add", port, "netns", self.switch, "type", "veth",
               "peer", "name", "eth0", "netns", netns)
            ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            ip("-n", netns, "link", "set", "lo", "up")
            ip("-n", netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
            ip("-n", netns, "link", "set", "eth0", "up")
            self.hosts[name] = Host(name, netns, address, self.switch, port)

    def close(self) -> None:
        """Kill every host's processes, then remove every namespace: veths and bridge go too."""
        errors = []
        for host in self.hosts.values():
            try:
                host.close()
            except Exception as error:  # keep removing the rest; report at the end
                errors.append(error)
        for netns in our_namespaces():
            if netns.startswith(f"{self.tag}-"):
                kill_namespace(netns)
                ip("netns", "del", netns, check=False)
        self.hosts.clear()
        if errors:
            raise RuntimeError(f"teardown of {self.tag}: {errors}")
