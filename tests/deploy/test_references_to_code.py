"""What the deployment files name in the code other parts deliver exists: the metrics the
dashboard and the alerts read, and the gateway and worker commands the image runs."""

from __future__ import annotations

import importlib.util
import json

from swintormer.cli import SUBCOMMANDS
from tests.deploy.checkers import ROOT
from tests.deploy.deployment_files import alert_expressions, dashboard_panels
from tests.deploy.dockerfile import DOCKERFILE, instructions
from tests.deploy.exported_metrics import BUILTIN_SERIES, metrics_in_promql, series_of_exporters


def test_every_panel_query_reads_exported_series() -> None:
    exported = series_of_exporters() | BUILTIN_SERIES
    unknown = {
        f"{panel['title']}: {name}"
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
        for name in metrics_in_promql(target["expr"])
        if name not in exported
    }
    assert not unknown, f"panels query series no exporter defines: {sorted(unknown)}"


def test_every_alert_reads_exported_series() -> None:
    exported = series_of_exporters() | BUILTIN_SERIES
    unknown = {
        f"{alert}: {name}"
        for alert, expression in alert_expressions().items()
        for name in metrics_in_promql(expression)
        if name not in exported
    }
    assert not unknown, f"alerts read series no exporter defines: {sorted(unknown)}"


def test_gateway_and_worker_commands_exist_in_the_code() -> None:
    steps = instructions(DOCKERFILE.read_text())
    command = json.loads([step.arguments for step in steps if step.keyword == "CMD"][-1])
    assert command[0] == "swintormer", command
    subcommands = {sub.name: sub.module for sub in SUBCOMMANDS}
    assert command[1] in subcommands, f"the image runs `swintormer {command[1]}`, which is unknown"
    assert importlib.util.find_spec(subcommands[command[1]]) is not None
    assert (ROOT / "worker" / "__main__.py").is_file(), "workers run `python -m worker`"
