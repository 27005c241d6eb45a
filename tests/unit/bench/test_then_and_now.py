"""bench/then_and_now.py: an earlier tree unpacked from git and both sides timed through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import then_and_now
from tests.factories import save_tiny_checkpoint


def test_unpack_commit_writes_that_commits_tree(tmp_path: Path) -> None:
    then_and_now.unpack_commit("HEAD", tmp_path)
    assert (tmp_path / "swintormer" / "__main__.py").is_file()
    assert (tmp_path / "pyproject.toml").is_file()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_prints_both_sides_and_their_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.safetensors")
    sizes = ["--image-px", "64", "--repeats", "1", "--threads", "1"]
    then_and_now.main(["--commit", "HEAD", *sizes, "--checkpoint", str(checkpoint)])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| HEAD |", "| today |"))]
    assert len(rows) == 2
    assert rows[0].endswith("| 1.00x |")
    assert all(float(row.split("|")[2]) > 0 for row in rows)
    assert "today's output against HEAD's:" in out
