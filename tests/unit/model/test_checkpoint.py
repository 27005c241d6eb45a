"""Checkpoints: our safetensors format round trip and every error of the reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from model.checkpoint import FORMAT_VERSION, CheckpointError, read_checkpoint, save_checkpoint
from model.config import ModelConfig, SwintormerConfig, model_preset
from model.restorer import build_restorer, load_restorer
from model.swintormer import Swintormer


def test_round_trip_keeps_tensors_config_and_provenance(tmp_path: Path) -> None:
    config = model_preset("tiny-defocus")
    restorer = build_restorer(config)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, restorer.state_dict(), config, provenance={"recipe": "unit test"})
    loaded = read_checkpoint(path)
    assert loaded.config == config
    assert loaded.metadata["provenance"] == {"recipe": "unit test"}
    assert loaded.metadata["format_version"] == FORMAT_VERSION
    assert set(loaded.tensors) == set(restorer.state_dict())
    for key, value in restorer.state_dict().items():
        assert torch.equal(loaded.tensors[key], value), key
    assert not list(tmp_path.glob("*.partial*"))
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a container's other user


def test_the_bank_tables_are_rebuilt_not_stored(tmp_path: Path) -> None:
    config = model_preset("tiny-defocus")
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, build_restorer(config).state_dict(), config)
    stored = read_checkpoint(path).tensors
    assert any(key.startswith("defocus.estimator.") for key in stored)
    assert not any(key.startswith("defocus.bank.") for key in stored)


def test_a_pickle_is_refused_with_a_pointer_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "released.pth"
    torch.save({"params": {}}, path)
    with pytest.raises(CheckpointError, match="swintormer convert"):
        read_checkpoint(path)


def _write(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None) -> Path:
    save_file(tensors, str(path), metadata=metadata)
    return path


def _metadata(config: SwintormerConfig, version: int = 2) -> dict[str, str]:
    model = json.dumps(ModelConfig(config).to_dict())
    return {"format_version": str(version), "model": model}


def test_foreign_and_future_safetensors_are_refused(
    tmp_path: Path, tiny_config: SwintormerConfig
) -> None:
    state = {"network." + k: v for k, v in Swintormer(tiny_config).state_dict().items()}
    with pytest.raises(CheckpointError, match="without Swintormer metadata"):
        read_checkpoint(_write(tmp_path / "a.safetensors", state, None))
    with pytest.raises(CheckpointError, match="format_version 3"):
        read_checkpoint(_write(tmp_path / "b.safetensors", state, _metadata(tiny_config, 3)))
    bad_model = {"format_version": "2", "model": json.dumps({"network": {"dim": 7}})}
    with pytest.raises(CheckpointError, match="bad model metadata"):
        read_checkpoint(_write(tmp_path / "c.safetensors", state, bad_model))
    bad_v1 = {"format_version": "1", "architecture": json.dumps({"dim": 7})}
    with pytest.raises(CheckpointError, match="bad model metadata"):
        read_checkpoint(_write(tmp_path / "c1.safetensors", state, bad_v1))
    strays = {**state, "optimizer.step": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"keys outside .*: optimizer\.step"):
        read_checkpoint(_write(tmp_path / "d.safetensors", strays, _metadata(tiny_config)))


def test_saving_keys_outside_the_parts_is_refused(tmp_path: Path) -> None:
    config = model_preset("tiny")
    with pytest.raises(CheckpointError, match=r"keys outside .*: ema\.weight"):
        save_checkpoint(tmp_path / "x.safetensors", {"ema.weight": torch.zeros(1)}, config)


def test_weights_that_do_not_fit_the_stored_config_are_named(
    tmp_path: Path, tiny_config: SwintormerConfig
) -> None:
    state = {"network." + k: v for k, v in Swintormer(tiny_config).state_dict().items()}
    del state["network.skip_conv.weight"]
    state["network.output.0.weight"] = torch.zeros(12, 3, 3, 3)
    path = _write(tmp_path / "m.safetensors", state, _metadata(tiny_config))
    with pytest.raises(CheckpointError) as error:
        load_restorer(path)
    message = str(error.value)
    assert "missing keys (1): network.skip_conv.weight" in message
    assert "network.output.0.weight (weights (12, 3, 3, 3), network (12, 16, 3, 3))" in message
