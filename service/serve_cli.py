"""`swintormer serve`: the whole service on one machine, in one command.

With no `SWINTORMER_REDIS_URL` it starts an embedded Redis-compatible server; then N worker
processes (`python -m worker`, each loading the model once; 0: the gateway alone, for
deployments that run workers elsewhere) and the gateway (uvicorn) in this process. Ctrl-C
or SIGTERM stops the gateway, asks every worker for a warm shutdown (SIGTERM: the current
job finishes), waits for them, then stops Redis: nothing is left running. If a worker
exits on its own (say, no checkpoint), everything stops and the exit status is 1; the
worker's own message says why.

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

import uvicorn

from service.config import Settings
from service.gateway.cli import add_arguments as add_gateway_arguments
from service.gateway.cli import make_server, with_address
from service.redis_server import EmbeddedRedis

log = logging.getLogger("swintormer.serve")

# How long a stopping worker may take to finish its job before it is killed.
WORKER_STOP_GRACE_S = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_gateway_arguments(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, one per GPU (default 1; 0: the gateway alone)",
    )


def worker_environment(settings: Settings, redis_url: str, index: int) -> dict[str, str]:
    """The environment of worker `index`: the shared Redis and its own metrics port."""
    env = dict(os.environ)
    env["SWINTORMER_REDIS_URL"] = redis_url
    if settings.worker_metrics_port:
        env["SWINTORMER_WORKER_METRICS_PORT"] = str(settings.worker_metrics_port + index)
    return env


class WorkerGroup:
    """N `python -m worker` child processes, each in its own session (Ctrl-C reaches only us)."""

    def __init__(self, settings: Settings, redis_url: str, count: int) -> None:
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "worker", "--name", f"serve-{os.getpid()}-{index}"],
                env=worker_environment(settings, redis_url, index),
                start_new_session=True,
            )
            for index in range(count)
        ]

    def exited(self) -> list[int]:
        return [code for process in self.processes if (code := process.poll()) is not None]

    def stop(self, grace_s: float = WORKER_STOP_GRACE_S) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL whatever is still running after `grace_s`."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in %.0f s; killing it", process.pid, grace_s)
                process.kill()
                process.wait()


@contextlib.contextmanager
def redis_for(settings: Settings) -> Iterator[str]:
    """The configured Redis URL, or an embedded server's for the duration of the block."""
    if settings.redis_url is not None:
        yield settings.redis_url
        return
    with EmbeddedRedis() as server:
        log.info("embedded %s at %s", server.binary.name, server.url)
        yield server.url


def _watch_workers(workers: WorkerGroup, server: uvicorn.Server, failed: threading.Event) -> None:
    while not server.should_exit:
        if workers.exited():
            log.error("a worker exited (status %s); stopping the service", workers.exited())
            failed.set()
            server.should_exit = True
            return
        time.sleep(0.5)


def run(args: argparse.Namespace) -> int:
    if args.workers < 0:
        print("swintormer serve: --workers must be 0 or more", file=sys.stderr)
        return 2
    base = with_address(Settings(), args)
    logging.basicConfig(level=base.log_level, format="%(asctime)s %(name)s %(message)s")
    # SIGTERM is handled like Ctrl-C: uvicorn stops, then the `finally` blocks below run.
    signal.signal(signal.SIGTERM, lambda *_: None)
    failed = threading.Event()
    with redis_for(base) as redis_url:
        settings = base.model_copy(update={"redis_url": redis_url})
        workers = WorkerGroup(settings, redis_url, args.workers)
        try:
            server = make_server(settings)
            watcher = threading.Thread(
                target=_watch_workers, args=(workers, server, failed), daemon=True
            )
            watcher.start()
            print(
                f"swintormer serve: http://{settings.host}:{settings.port} "
                f"({args.workers} worker(s), Redis {redis_url}); Ctrl-C stops",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                server.run()
        finally:
            workers.stop()
    return 1 if failed.is_set() else 0
