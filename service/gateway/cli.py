"""`swintormer gateway`: the gateway alone (uvicorn), for deployments that run Redis and the
workers elsewhere: the container image's default command. Needs `SWINTORMER_REDIS_URL`.
SIGTERM stops it after the requests in flight (uvicorn's graceful shutdown).

Never imports torch.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from service.config import Settings
from service.gateway.app import create_app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default: SWINTORMER_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (default: SWINTORMER_PORT)")


def with_address(settings: Settings, args: argparse.Namespace) -> Settings:
    """`settings` with --host/--port applied where given."""
    given = {key: value for key, value in (("host", args.host), ("port", args.port)) if value}
    return settings.model_copy(update=given)


def make_server(settings: Settings) -> uvicorn.Server:
    """A uvicorn server for the gateway of `settings` (which must name a Redis URL)."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )
    return uvicorn.Server(config)


def run(args: argparse.Namespace) -> int:
    settings = with_address(Settings(), args)
    if settings.redis_url is None:
        print(
            "swintormer gateway: set SWINTORMER_REDIS_URL (or run `swintormer serve`, which "
            "starts an embedded Redis and workers too)",
            file=sys.stderr,
        )
        return 2
    make_server(settings).run()
    return 0
