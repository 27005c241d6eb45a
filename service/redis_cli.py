"""`swintormer redis`: run the embedded Redis-compatible server in the foreground.

Useful to share one server between a gateway and workers started by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading

from service.redis_server import EmbeddedRedis


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=6380, help="port on 127.0.0.1 (default 6380)")


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedRedis(port=args.port) as server:
        print(f"embedded server {server.binary.name} at {server.url}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0
