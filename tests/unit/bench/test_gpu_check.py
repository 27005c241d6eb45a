"""bench/gpu_check.py: the whole check on the CPU (quick), and its isolation and time budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bench import gpu_check
from bench.gpu_check import QUICK, Check, Context, Row, run_checks

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_run_on_the_cpu_passes_every_check(tmp_path: Path) -> None:
    report = tmp_path / "check.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--quick"),
            *("--budget-s", "150", "--json", str(report), "--threads", "1"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(report.read_text())
    assert document["finished"] is True
    rows = document["results"]
    assert {row["check"] for row in rows} == set(gpu_check.CHECKS)
    assert {row["status"] for row in rows} <= {"PASS", "SKIPPED"}
    parity = next(row for row in rows if row["check"] == "parity" and row["case"] == "fp32")
    assert parity["status"] == "PASS"
    assert parity["max_abs"] <= gpu_check.PARITY_TOLERANCE
    probe = next(row for row in rows if row["check"].startswith("train"))  # as gpu_session
    assert probe["status"] == "PASS"
    assert probe["steps_per_s"] > 0
    assert next(row for row in rows if row["check"] == "oom")["halvings"] == [2]
    assert [row["status"] for row in rows if row["check"] == "compile"] == ["SKIPPED"]
    table = result.stdout
    assert "| check | case | status | value | detail | s |" in table
    assert table.count("\n| ") == len(rows) + 1  # the header, then one line a row


def _context(budget_s: float) -> Context:
    return Context(torch.device("cpu"), QUICK, deadline=time.monotonic() + budget_s)


def _passing(ctx: Context) -> Iterator[Row]:
    yield Row("", "one", "PASS", 1.0)


def _broken(ctx: Context) -> Iterator[Row]:
    yield Row("broken", "before the error", "PASS")
    raise RuntimeError("the device fell over\nsecond line")


def _until_spent(ctx: Context) -> Iterator[Row]:
    while ctx.left_s() > 0:  # a cooperative check uses what it is given
        time.sleep(0.05)
    yield Row("slow", "spent", "PASS")


def _stuck(ctx: Context) -> Iterator[Row]:
    while True:  # ignores its budget: the hard stop ends it
        time.sleep(0.05)
        yield from ()


def test_a_check_that_raises_is_a_fail_row_and_the_next_still_runs() -> None:
    rows: list[Row] = []
    checks: list[tuple[str, Check, float]] = [
        ("broken", _broken, 10.0),
        ("after", _passing, 10.0),
    ]
    run_checks(checks, _context(60.0), rows.append)
    assert [(row.case, row.status) for row in rows] == [
        ("before the error", "PASS"),
        ("-", "FAIL"),
        ("one", "PASS"),
    ]
    assert rows[1].check == "broken"
    assert rows[1].detail == "RuntimeError: the device fell over"
    assert "Traceback" in rows[1].extra["traceback"]
    assert rows[2].check == "after"  # a row without a check name takes the check's


def test_a_spent_budget_skips_the_remaining_checks() -> None:
    rows: list[Row] = []
    checks: list[tuple[str, Check, float]] = [
        ("slow", _until_spent, 100.0),
        ("later", _passing, 10.0),
        ("last", _passing, 10.0),
    ]
    start = time.monotonic()
    run_checks(checks, _context(gpu_check.MIN_CHECK_S + 0.5), rows.append)
    assert time.monotonic() - start < 10
    assert [(row.check, row.status) for row in rows] == [
        ("slow", "PASS"),
        ("later", "SKIPPED"),
        ("last", "SKIPPED"),
    ]
    assert rows[1].detail.startswith("(time)")


def test_a_check_past_its_hard_stop_fails_and_the_next_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gpu_check, "HARD_STOP_GRACE_S", 0.5)
    rows: list[Row] = []
    checks: list[tuple[str, Check, float]] = [("stuck", _stuck, 0.5), ("next", _passing, 10.0)]
    run_checks(checks, _context(60.0), rows.append)
    assert [(row.check, row.status) for row in rows] == [("stuck", "FAIL"), ("next", "PASS")]
    assert rows[0].detail.startswith("(time) ran past its")
