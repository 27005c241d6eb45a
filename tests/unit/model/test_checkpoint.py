"""Checkpoints: our safetensors format round trip and every error of the loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from model.config import SwintormerConfig
from model.swintormer import Swintormer


def test_round_trip_keeps_weights_config_prior_and_provenance(
    tmp_path: Path, tiny_config: SwintormerConfig
) -> None:
    config = SwintormerConfig(**{**tiny_config.to_dict(), "cond_channels": 2})
    network = Swintormer(config).eval()
    prior = nn.Linear(3, 2)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, network, prior, {"steps": 4}, provenance={"recipe": "unit test"})
    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert loaded.prior_config == {"steps": 4}
    assert loaded.metadata["provenance"] == {"recipe": "unit test"}
    assert loaded.metadata["format_version"] == 1
    assert loaded.prior_state is not None
    assert torch.equal(loaded.prior_state["weight"], prior.weight)
    assert not loaded.network.training
    blurry, z = torch.rand(1, 3, 40, 40), torch.randn(1, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(loaded.network(blurry, z), network(blurry, z))


def test_round_trip_without_prior(tmp_path: Path, tiny_config: SwintormerConfig) -> None:
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, Swintormer(tiny_config))
    loaded = load_checkpoint(path)
    assert loaded.prior_state is None
    assert loaded.prior_config is None
    assert loaded.metadata["provenance"] == {}
    assert not list(tmp_path.glob("*.partial*"))
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a container's other user


def test_a_pickle_is_refused_with_a_pointer_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "released.pth"
    torch.save({"params": {}}, path)
    with pytest.raises(CheckpointError, match="swintormer convert"):
        load_checkpoint(path)


def _write(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None) -> Path:
    save_file(tensors, str(path), metadata=metadata)
    return path


def _metadata(config: SwintormerConfig, version: int = 1) -> dict[str, str]:
    return {"format_version": str(version), "architecture": json.dumps(config.to_dict())}


def test_foreign_and_future_safetensors_are_refused(
    tmp_path: Path, tiny_config: SwintormerConfig
) -> None:
    state = {"network." + k: v for k, v in Swintormer(tiny_config).state_dict().items()}
    with pytest.raises(CheckpointError, match="without Swintormer metadata"):
        load_checkpoint(_write(tmp_path / "a.safetensors", state, None))
    with pytest.raises(CheckpointError, match="format_version 2"):
        load_checkpoint(_write(tmp_path / "b.safetensors", state, _metadata(tiny_config, 2)))
    bad_architecture = {"format_version": "1", "architecture": json.dumps({"dim": 7})}
    with pytest.raises(CheckpointError, match="bad architecture metadata"):
        load_checkpoint(_write(tmp_path / "c.safetensors", state, bad_architecture))
    strays = {**state, "optimizer.step": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"keys outside network\./prior\.: optimizer\.step"):
        load_checkpoint(_write(tmp_path / "d.safetensors", strays, _metadata(tiny_config)))


def test_weights_that_do_not_fit_the_stored_config_are_named(
    tmp_path: Path, tiny_config: SwintormerConfig
) -> None:
    state = {"network." + k: v for k, v in Swintormer(tiny_config).state_dict().items()}
    del state["network.skip_conv.weight"]
    state["network.output.0.weight"] = torch.zeros(12, 3, 3, 3)
    path = _write(tmp_path / "m.safetensors", state, _metadata(tiny_config))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "missing keys (1): skip_conv.weight" in message
    assert "output.0.weight (weights (12, 3, 3, 3), network (12, 16, 3, 3))" in message
