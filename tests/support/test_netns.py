"""The multi-host harness itself: hosts talk over the bridge, die, get cut off, leave nothing."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from support.netns import (
    PREFIX,
    Host,
    Network,
    ip,
    our_namespaces,
    process_state,
    require_netns,
)
from support.nodes import (
    NodeFailed,
    http_get,
    log_ready,
    serve,
    start_node,
    tcp_open,
)
from support.postgres import PostgresCluster

# A line echo server: prints its peers, answers each line with the line.
ECHO = """
import socket, sys, threading
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1]))); server.listen()
def serve(conn, peer):
    print("peer", peer[0], flush=True)
    with conn, conn.makefile("rwb", buffering=0) as f:
        for line in f:
            f.write(line)
while True:
    threading.Thread(target=serve, args=server.accept(), daemon=True).start()
"""
PORT = 7000


@pytest.fixture
def net() -> Iterator[Network]:
    require_netns()
    with Network(["a", "b"]) as network:
        yield network


def echo_server(host: Host, log: Path) -> subprocess.Popen[bytes]:
    process = host.spawn([sys.executable, "-c", ECHO, str(PORT)], log=log)
    end = time.monotonic() + 10
    while not tcp_open(host, host.address, PORT):
        assert process.poll() is None and time.monotonic() < end, log.read_text()
        time.sleep(0.05)
    return process


def ask(host: Host, to: Host, line: str, timeout: float = 5) -> str:
    with host.connect(to.address, PORT, timeout) as sock:
        sock.sendall(line.encode() + b"\n")
        return sock.recv(100).decode()


def test_two_hosts_talk_over_tcp(net: Network, tmp_path: Path) -> None:
    a, b = net["a"], net["b"]
    assert ipaddress.ip_address(a.address) in net.subnet and a.address != b.address
    echo_server(a, tmp_path / "echo.log")
    client = ("import socket, sys; s = socket.create_connection((sys.argv[1], int(sys.argv[2])),"
              " timeout=5); s.sendall(b'hello\\n'); print(s.recv(100).decode(), end='')")
    done = b.run([sys.executable, "-c", client, a.address, str(PORT)])
    assert done.stdout == "hello\n"
    assert f"peer {b.address}" in (tmp_path / "echo.log").read_text()  # b's own address, no NAT


def test_the_root_namespace_is_off_the_test_network(net: Network, tmp_path: Path) -> None:
    a = net["a"]
    echo_server(a, tmp_path / "echo.log")
    root_words = (ip("-o", "addr").stdout + ip("route").stdout + ip("-o", "link").stdout).split()
    assert not [w for w in root_words if w.startswith(str(net.subnet.network_address)[:-1])]
    assert not [w for w in root_words if net.tag in w or "br0" in w]
    # The host's server, asked from the root namespace: whatever answers there (a default
    # route may lead to some proxy), it is not the host, which never sees the root's address.
    echoed = False
    with contextlib.suppress(OSError), socket.create_connection((a.address, PORT), 1) as sock:
        sock.settimeout(1)
        sock.sendall(b"root\n")
        echoed = sock.recv(100) == b"root\n"
    assert not echoed
    peers = [line.split()[1] for line in (tmp_path / "echo.log").read_text().splitlines()]
    assert peers and all(ipaddress.ip_address(peer) in net.subnet for peer in peers)
    # ...and a host has no way out: its only route is the test subnet.
    assert a.run(["ip", "-4", "route"]).stdout.split()[0] == str(net.subnet)
    with pytest.raises(OSError, match="unreachable"):
        a.connect("192.0.2.1", 80, timeout=1)


def test_link_down_times_out_and_link_up_restores(net: Network, tmp_path: Path) -> None:
    a, b = net["a"], net["b"]
    server = echo_server(a, tmp_path / "echo.log")
    assert ask(b, a, "before") == "before\n"
    with b.connect(a.address, PORT) as held:
        held.sendall(b"1\n")
        assert held.recv(100) == b"1\n"
        a.link_down()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            ask(b, a, "new", timeout=1)
        assert time.monotonic() - started >= 0.9  # a timeout, not a refusal
        held.settimeout(1)
        held.sendall(b"2\n")
        with pytest.raises(TimeoutError):
            held.recv(100)
        assert server.poll() is None and a.pids()  # cut off, not dead
        a.link_up()
        held.settimeout(10)  # TCP retransmits the held line once the link is back
        assert held.recv(100) == b"2\n"
    assert ask(b, a, "after") == "after\n"


def test_kill_all_leaves_no_process_of_that_host(net: Network) -> None:
    a, b = net["a"], net["b"]
    # A child in the group, one that left it (setsid) and the leader: all of them must die.
    a.spawn(["sh", "-c", "sleep 300 & setsid sleep 300 & exec sleep 300"])
    survivor = b.spawn(["sleep", "300"])
    end = time.monotonic() + 5
    while len(pids := a.pids()) < 3:
        assert time.monotonic() < end, pids
        time.sleep(0.02)
    a.kill_all()
    assert a.pids() == []
    assert {process_state(pid) for pid in pids} <= {"gone", "Z"}
    assert survivor.poll() is None and b.pids() == [survivor.pid]


def test_postgres_in_one_host_is_reached_from_another(net: Network) -> None:
    a, b = net["a"], net["b"]
    cluster = PostgresCluster().init()
    try:
        cluster.start(a.address, netns=a.netns)
        query = "SELECT host(inet_server_addr()) || ' ' || host(inet_client_addr())"
        seen = b.run(["psql", cluster.url(), "-tAc", query]).stdout.strip()
        assert seen == f"{a.address} {b.address}"
        cluster.restart()  # scenario 5: it comes back in its namespace, on the same address
        assert b.run(["psql", cluster.url(), "-tAc", "SELECT 1"]).stdout.strip() == "1"
        a.kill_all()
        assert cluster.process is not None and cluster.process.poll() is not None
        refused = b.run(["psql", cluster.url(), "-tAc", "SELECT 1"], check=False)
        assert refused.returncode != 0 and "refused" in refused.stderr
    finally:
        cluster.remove()


async def test_the_test_process_joins_as_client_and_server(net: Network, tmp_path: Path) -> None:
    a, b = net["a"], net["b"]
    echo_server(a, tmp_path / "echo.log")
    # A server of host b run by this process (a callback receiver, say), asked from host a.
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hi {request.remote}")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.SockSite(runner, b.listen(8081)).start()
        fetch = f"import urllib.request; print(urllib.request.urlopen('http://{b.address}:8081/')" \
                ".read().decode())"
        done = await asyncio.to_thread(a.run, [sys.executable, "-c", fetch])
        assert done.stdout.strip() == f"hi {a.address}"
        # A client of host b: aiohttp with b's sockets.
        connector = aiohttp.TCPConnector(socket_factory=b.socket_factory)
        async with aiohttp.ClientSession(connector=connector) as session, session.get(
                f"http://{b.address}:8081/") as reply:
            assert await reply.text() == f"hi {b.address}"
    finally:
        await runner.cleanup()


def test_serve_answers_from_another_host_and_dies_with_its_host(net: Network,
                                                                  tmp_path: Path) -> None:
    a, b = net["a"], net["b"]
    env = {"STEMBOT_DATA_DIR": str(tmp_path / "data"), "STEMBOT_WORKERS": "1"}
    node = serve(a, env, tmp_path / "serve.log", port=8080, cwd=tmp_path)
    status, body = http_get(b, a.address, 8080, "/")
    assert status == 200 and b"Separate a song" in body
    assert "job service on http://" + a.address in node.log_tail()
    a.kill_all()
    assert not node.alive and not tcp_open(b, a.address, 8080)


def test_start_node_says_why_a_program_did_not_come_up(net: Network, tmp_path: Path) -> None:
    a = net["a"]
    log = tmp_path / "node.log"
    with pytest.raises(NodeFailed, match="exited 3:\nno database"):
        start_node(a, [sys.executable, "-c", "print('no database'); raise SystemExit(3)"],
                   env={}, log=log, ready=lambda: False)
    started = start_node(a, [sys.executable, "-c", "import time; print('ready', flush=True);"
                             " time.sleep(300)"], env={}, log=log, ready=log_ready(log, "ready"))
    assert started.alive and started.stop() == -15


def test_teardown_leaves_nothing_even_after_a_failure() -> None:
    require_netns()
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = f"{PREFIX}{dead.pid}-0-switch"  # what a killed run left behind
    ip("netns", "add", leftover)
    ip("-n", leftover, "link", "add", "br0", "type", "bridge")
    with pytest.raises(ZeroDivisionError), Network(["a", "b"]) as net:
        assert leftover not in our_namespaces()  # swept on the way in
        sleeper = net["a"].spawn(["sleep", "300"])
        tag = net.tag
        assert [n for n in our_namespaces() if n.startswith(tag)]
        1 / 0  # noqa: B018  # a test failing inside the network
    assert sleeper.poll() is not None
    assert not [n for n in our_namespaces() if n.startswith(tag + "-")]
    assert tag not in ip("-o", "link").stdout
