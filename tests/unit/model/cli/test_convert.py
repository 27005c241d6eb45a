"""`swintormer convert`: a released checkpoint in, a loadable safetensors checkpoint out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import read_checkpoint
from model.config import preset
from model.released import to_released_state_dict
from model.restorer import load_restorer
from model.swintormer import Swintormer
from swintormer.cli import main


def test_convert_command_writes_a_loadable_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network = Swintormer(preset("tiny")).eval()
    released = tmp_path / "net_g_latest.pth"
    torch.save({"params": to_released_state_dict(network.state_dict())}, released)
    output = tmp_path / "tiny.safetensors"
    assert main(["convert", str(released), str(output), "--preset", "tiny"]) == 0
    assert "tensors" in capsys.readouterr().out
    assert read_checkpoint(output).metadata["provenance"]["weights"] == "params"
    loaded = load_restorer(output)
    assert loaded.prior is None
    assert loaded.defocus is None
    blurry = torch.rand(1, 3, 30, 30)
    with torch.no_grad():
        assert torch.equal(loaded(blurry), network(blurry))
    assert main(["convert", str(released), str(output), "--preset", "lite"]) == 1
    assert "cannot load" in capsys.readouterr().out
