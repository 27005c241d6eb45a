"""`swintormer healthcheck URL`: exit 0 when URL answers 200; the image's HEALTHCHECK command.

Standard library only, so a probe costs one interpreter start and never loads torch. With
`--metric NAME` the body must be Prometheus text holding a sample of NAME with a value above 0:
a worker is healthy once its model is loaded, not merely once its metrics port answers.
"""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="URL to GET, e.g. http://127.0.0.1:8000/healthz")
    parser.add_argument(
        "--metric", default=None, help="also require a sample of this metric with a value > 0"
    )
    parser.add_argument("--timeout-s", type=float, default=5.0, help="request timeout (default 5)")


def metric_is_positive(exposition: str, metric: str) -> bool:
    """Whether the Prometheus text `exposition` holds a sample of `metric` with a value > 0."""
    for line in exposition.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_and_labels, _, rest = line.rpartition("}") if "}" in line else line.partition(" ")
        name = name_and_labels.split("{", 1)[0].strip()
        if name != metric:
            continue
        try:
            if float(rest.split()[0]) > 0:
                return True
        except (IndexError, ValueError):
            continue
    return False


def run(args: argparse.Namespace) -> int:
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout_s) as response:
            body = response.read().decode("utf-8", errors="replace")
            status = response.status
    except (urllib.error.URLError, OSError) as error:
        print(f"unhealthy: GET {args.url}: {error}")
        return 1
    if status != 200:
        print(f"unhealthy: GET {args.url} answered {status}")
        return 1
    if args.metric is not None and not metric_is_positive(body, args.metric):
        print(f"unhealthy: {args.url} has no sample of {args.metric} above 0")
        return 1
    return 0
