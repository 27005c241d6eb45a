"""The GPU session sizes its training run from the check's probe and reads the check's JSON."""

from __future__ import annotations

import json
from pathlib import Path

from bench.gpu_session import STAGE1_SHARE, probe_result, stage_steps


def test_stage_steps_fit_the_time_at_the_probed_rate() -> None:
    stage1, stage2 = stage_steps(steps_per_s=10.0, train_s=300.0)
    assert stage1 == int(10.0 * 300.0 * STAGE1_SHARE)
    # stage 2 gets the rest of the time less a margin for validations, at its faster rate
    assert 0 < stage2 / 12.0 < 300.0 * (1 - STAGE1_SHARE)
    assert stage_steps(steps_per_s=0.01, train_s=10.0) == (50, 20)  # floors, never zero steps


def test_probe_result_reads_the_training_row_or_none(tmp_path: Path) -> None:
    path = tmp_path / "check.json"
    assert probe_result(path) is None  # the check wrote nothing (killed before its first row)
    path.write_text("{not json")
    assert probe_result(path) is None
    rows = [
        {"check": "environment", "status": "PASS"},
        {"check": "training probe", "status": "PASS", "steps_per_s": 4.5},
    ]
    path.write_text(json.dumps({"results": rows}))
    assert probe_result(path) == rows[1]
