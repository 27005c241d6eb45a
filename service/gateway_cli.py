"""`swintormer gateway`: the gateway alone, for containers and hosts whose workers run elsewhere.

`swintormer serve` starts Redis, workers and the gateway together on one machine; in Docker
Compose and Kubernetes each runs in its own container, and this is the gateway's command.
Settings come from the environment (`SWINTORMER_REDIS_URL` is required); uvicorn serves one
process per container (scale with containers, so each keeps its own metrics registry) and
stops gracefully on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from service.app import create_app
from service.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default: SWINTORMER_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default: SWINTORMER_PORT)")


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    if settings.redis_url is None:
        print(
            "swintormer gateway: set SWINTORMER_REDIS_URL (or run `swintormer serve`, which"
            " starts its own Redis and workers)",
            file=sys.stderr,
        )
        return 2
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value}
    settings = settings.model_copy(update=overrides)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )
    return 0
