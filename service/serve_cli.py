"""`swintormer serve`: the whole service on one machine, in one command.

With no `SWINTORMER_REDIS_URL` it starts an embedded Redis-compatible server that keeps an
append-only file in `data_dir` (a restarted service still has its queue); then N worker
processes (`python -m worker`, each loading the model once; 0: the gateway alone, for
deployments that run workers elsewhere) and the gateway (uvicorn) in this process. Worker i
gets `SWINTORMER_WORKER_INDEX=i`, so with `SWINTORMER_DEVICE` auto or cuda the workers take
the GPUs in turn (GPU i mod the count, or `SWINTORMER_CUDA_DEVICES[i mod its length]`), each
sizing its tile batch to its own GPU.

Supervision. A worker that dies (killed, out of memory, crashed) is restarted, after a
back-off that doubles from 1 s to `worker_restart_max_s` while it keeps dying soon after its
start; each exit is logged, and five quick exits in a row are reported as a crash loop. Its
job is not lost: it stopped heartbeating, so it is retried at the front of the queue two
`abandoned_grace_s` after its last heartbeat (this process reaps such jobs every few seconds; see
`service.jobs.reap_abandoned`). A worker that
exits with status 2 (a configuration error: no checkpoint, no such device) is not restarted:
everything stops and the exit status is 1; the worker's own message says why.

Stopping. Ctrl-C or SIGTERM stops the gateway, asks every worker for a warm shutdown (its job
finishes within `worker_stop_grace_s`, else it is killed and its job retried at the next
start; a second Ctrl-C kills at once), then stops Redis: nothing is left running.

Ports. The gateway's port must be free (else a clear message names the setting that moves
it); worker i serves metrics on `worker_metrics_port + i`, or on a free port when that is
taken (a second `serve` on the same machine), and says which.

This module never imports torch: the model lives in the worker processes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import redis
import uvicorn

from service.config import Settings
from service.gateway.cli import add_arguments as add_gateway_arguments
from service.gateway.cli import make_server, with_address
from service.jobs import make_queue, reap_abandoned
from service.redis_server import EmbeddedRedis, EmbeddedRedisError, free_port, port_is_free

log = logging.getLogger("swintormer.serve")

# A worker that exits within this long of its start counts as a quick exit (back-off grows).
QUICK_EXIT_S = 60.0
# Quick exits in a row reported as a crash loop.
CRASH_LOOP_EXITS = 5
# Exit status of a worker that cannot run as configured: restarting it would not help.
CONFIG_ERROR_STATUS = 2
# How often the supervisor checks its workers, and reaps abandoned jobs.
SUPERVISE_EVERY_S = 0.5
REAP_EVERY_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_gateway_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1; 0: the gateway alone); worker i runs on GPU i mod the"
        " GPU count, or on SWINTORMER_CUDA_DEVICES[i mod its length]",
    )


def metrics_port(settings: Settings, index: int) -> int:
    """Worker `index`'s metrics port: `worker_metrics_port + index`, or a free one if taken."""
    if not settings.worker_metrics_port:
        return 0
    wanted = settings.worker_metrics_port + index
    if wanted <= 65535 and port_is_free(settings.worker_metrics_host, wanted):
        return wanted
    chosen = free_port(settings.worker_metrics_host)
    log.warning(
        "worker %d: metrics port %d is taken (SWINTORMER_WORKER_METRICS_PORT); using %d",
        index,
        wanted,
        chosen,
    )
    return chosen


def worker_environment(
    settings: Settings, redis_url: str, port: int, index: int = 0
) -> dict[str, str]:
    """The environment of worker `index`: the shared Redis, its own metrics port, and its number,
    from which it picks its GPU (`SWINTORMER_DEVICE` auto or cuda: GPU index mod the count)."""
    env = dict(os.environ)
    env["SWINTORMER_WORKER_INDEX"] = str(index)
    env["SWINTORMER_REDIS_URL"] = redis_url
    env["SWINTORMER_WORKER_METRICS_PORT"] = str(port)
    env["SWINTORMER_WORKER_METRICS_HOST"] = settings.worker_metrics_host
    return env


class WorkerSlot:
    """One supervised `python -m worker`, restarted with back-off when it dies."""

    def __init__(self, settings: Settings, redis_url: str, index: int) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.index = index
        self.port = metrics_port(settings, index)
        self.starts = 0
        self.quick_exits = 0
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        self.started_at = time.monotonic()
        # a new name per start: RQ refuses a name whose earlier owner died without unregistering
        name = f"serve-{os.getpid()}-{self.index}-{self.starts}"
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "--name", name],
            env=worker_environment(self.settings, self.redis_url, self.port, self.index),
            start_new_session=True,  # Ctrl-C reaches only `serve`, which stops workers warmly
        )

    def check(self) -> int | None:
        """Restart the worker when it is due; return its status if it cannot be restarted."""
        now = time.monotonic()
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restart_at = None
                self.process = self._spawn()
            return None
        status = self.process.poll()
        if status is None:
            return None
        if status == CONFIG_ERROR_STATUS:
            log.error("worker %d cannot run as configured (status %d)", self.index, status)
            return status
        ran_s = now - self.started_at
        self.quick_exits = self.quick_exits + 1 if ran_s < QUICK_EXIT_S else 1
        delay = min(2.0 ** (self.quick_exits - 1), self.settings.worker_restart_max_s)
        log.error(
            "worker %d (pid %d) exited with status %d after %.0f s; restarting in %.0f s",
            self.index,
            self.process.pid,
            status,
            ran_s,
            delay,
        )
        if self.quick_exits >= CRASH_LOOP_EXITS:
            log.error(
                "worker %d is in a crash loop: %d exits in a row, each within %.0f s of its"
                " start; see its output above",
                self.index,
                self.quick_exits,
                QUICK_EXIT_S,
            )
        self.restart_at = now + delay
        return None

    def signal(self, signum: signal.Signals) -> None:
        if self.restart_at is None and self.process.poll() is None:
            self.process.send_signal(signum)


class WorkerGroup:
    """N supervised workers."""

    def __init__(self, settings: Settings, redis_url: str, count: int) -> None:
        self.settings = settings
        self.slots = [WorkerSlot(settings, redis_url, index) for index in range(count)]

    def check(self) -> list[int]:
        """Restart what is due; return the statuses of workers that cannot be restarted."""
        return [status for slot in self.slots if (status := slot.check()) is not None]

    def stop(self) -> None:
        """Warm shutdown (SIGTERM); SIGKILL what still runs after the grace or a second Ctrl-C."""
        grace_s = self.settings.worker_stop_grace_s
        for slot in self.slots:
            slot.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        try:
            for slot in self.slots:
                if slot.restart_at is not None:
                    continue
                try:
                    slot.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    log.warning(
                        "worker %d did not finish its job within %.0f s"
                        " (SWINTORMER_WORKER_STOP_GRACE_S); killing it, the job is retried"
                        " at the next start",
                        slot.index,
                        grace_s,
                    )
        except KeyboardInterrupt:
            log.warning("second interrupt: killing the workers now")
        for slot in self.slots:
            slot.signal(signal.SIGKILL)
            if slot.restart_at is None:
                slot.process.wait()


@contextlib.contextmanager
def redis_for(settings: Settings) -> Iterator[str]:
    """The configured Redis URL, or an embedded server's for the duration of the block."""
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    with EmbeddedRedis(data_dir=settings.data_dir) as server:
        log.info("embedded %s at %s, data in %s", server.binary.name, server.url, settings.data_dir)
        yield server.url


def _supervise(
    workers: WorkerGroup, settings: Settings, server: uvicorn.Server, failed: threading.Event
) -> None:
    assert settings.redis_url is not None
    connection = redis.Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout_s)
    queue = make_queue(connection, settings)
    last_reap = 0.0
    while not server.should_exit:
        if workers.check():
            log.error("a worker cannot start; stopping the service")
            failed.set()
            server.should_exit = True
            return
        if time.monotonic() - last_reap >= REAP_EVERY_S:
            last_reap = time.monotonic()
            with contextlib.suppress(redis.RedisError):
                reap_abandoned(queue, settings.abandoned_grace_s)
        time.sleep(SUPERVISE_EVERY_S)


def run(args: argparse.Namespace) -> int:
    if args.workers < 0:
        print("swintormer serve: --workers must be 0 or more", file=sys.stderr)
        return 2
    base = with_address(Settings(), args)
    logging.basicConfig(level=base.log_level, format="%(asctime)s %(name)s %(message)s")
    if not port_is_free(base.host, base.port):
        print(
            f"swintormer serve: {base.host}:{base.port} is in use (another swintormer serve?);"
            " choose another port with --port or SWINTORMER_PORT",
            file=sys.stderr,
        )
        return 1
    # SIGTERM is handled like Ctrl-C: uvicorn stops, then the `finally` blocks below run.
    signal.signal(signal.SIGTERM, lambda *_: None)
    failed = threading.Event()
    try:
        with redis_for(base) as redis_url:
            settings = base.model_copy(update={"redis_url": redis_url})
            workers = WorkerGroup(settings, redis_url, args.workers)
            supervisor: threading.Thread | None = None
            try:
                server = make_server(settings)
                supervisor = threading.Thread(
                    target=_supervise, args=(workers, settings, server, failed), daemon=True
                )
                supervisor.start()
                print(
                    f"swintormer serve: http://{settings.host}:{settings.port} "
                    f"({args.workers} worker(s), Redis {redis_url}); Ctrl-C stops",
                    flush=True,
                )
                with contextlib.suppress(KeyboardInterrupt):
                    server.run()
            finally:
                signal.signal(signal.SIGTERM, signal.default_int_handler)
                if supervisor is not None:
                    supervisor.join(timeout=5)
                workers.stop()
    except EmbeddedRedisError as error:
        print(f"swintormer serve: {error}", file=sys.stderr)
        return 1
    return 1 if failed.is_set() else 0
