"""The `swintormer` command: a table of subcommands, each imported only when it runs.

`swintormer --help` and the gateway must never load torch, so this module knows each
subcommand only by name, one-line help and the dotted path of the module that implements it.
Such a module defines two functions:

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Protocol, cast

from swintormer import __version__


class SubcommandModule(Protocol):
    """What a subcommand's module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True)
class Subcommand:
    """One `swintormer NAME` entry: its help line and where its code lives."""

    name: str
    help: str
    module: str


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        "redis", "run the embedded Redis-compatible server in the foreground", "service.redis_cli"
    ),
    Subcommand("data", "prepare training photos from Debian packages (cached)", "model.cli.data"),
    Subcommand(
        "eval", "score a checkpoint beside classical baselines (PSNR/SSIM)", "model.cli.eval"
    ),
    Subcommand(
        "serve",
        "run the service: embedded Redis (unless configured), N workers and the gateway",
        "service.serve_cli",
    ),
    Subcommand(
        "gateway",
        "run the gateway alone (Redis and workers run elsewhere; the container default)",
        "service.gateway.cli",
    ),
    Subcommand(
        "submit",
        "deblur one image through a running service (upload, wait, download)",
        "service.submit_cli",
    ),
    Subcommand(
        "convert",
        "import a checkpoint of the released code (.pth) to safetensors",
        "model.cli.convert",
    ),
    Subcommand("profile", "parameters and GMACs of a network preset", "model.cli.profile"),
    Subcommand(
        "healthcheck",
        "exit 0 when a URL answers 200 (the container HEALTHCHECK)",
        "swintormer.healthcheck_cli",
    ),
    Subcommand(
        "lock",
        "pin the installed runtime dependencies for Dockerfile.gpu",
        "swintormer.lock_cli",
    ),
    Subcommand("deblur", "restore one image file locally (tiled, any size)", "worker.deblur_cli"),
    Subcommand("train", "train a model from a TOML configuration (resumable)", "model.cli.train"),
)


def _overview() -> str:
    width = max(len(sub.name) for sub in SUBCOMMANDS)
    lines = [f"  {sub.name:<{width}}  {sub.help}" for sub in SUBCOMMANDS]
    return "subcommands:\n" + "\n".join(lines)


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swintormer",
        description="Swintormer Serve: image deblurring as a service.",
        epilog=_overview() + "\n\nRun 'swintormer NAME --help' for a subcommand's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"swintormer {__version__}")
    parser.add_argument("command", choices=[sub.name for sub in SUBCOMMANDS], metavar="NAME")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: `sys.argv[1:]`), import the chosen subcommand and run it."""
    top = _top_parser().parse_args(sys.argv[1:] if argv is None else argv)
    sub = next(sub for sub in SUBCOMMANDS if sub.name == top.command)
    module = cast(SubcommandModule, importlib.import_module(sub.module))
    parser = argparse.ArgumentParser(prog=f"swintormer {sub.name}", description=sub.help)
    module.add_arguments(parser)
    return module.run(parser.parse_args(top.arguments))
