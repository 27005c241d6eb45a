"""Parameter and MAC counts, checked against the figures known for the released network."""

from __future__ import annotations

import pytest

from model.config import preset
from model.profile import profile_network
from swintormer.cli import main


def test_paper_counts_match_the_released_network() -> None:
    counts = profile_network(preset("paper"), 256, 256)
    assert counts.parameters == 25_177_224
    assert counts.macs_thop == 28_219_645_952  # the figure the authors left in their file
    assert round(counts.macs_total / 1e9, 2) == 33.15  # with attention matmuls
    assert counts.macs_conv_linear < counts.macs_thop < counts.macs_total


def test_lite_meets_the_papers_efficiency_claim() -> None:
    counts = profile_network(preset("lite"), 256, 256)
    assert counts.macs_total <= 8.0e9


def test_profile_command_prints_the_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--preset", "paper", "--size", "256", "256"]) == 0
    out = capsys.readouterr().out
    assert "25,177,224" in out
    assert "33.152" in out
