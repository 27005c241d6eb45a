"""Checkpoints: our safetensors format round trip, and every error of the released importer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from model.checkpoint import (
    CheckpointError,
    convert_released,
    load_checkpoint,
    map_released_state_dict,
    network_from_state_dict,
    save_checkpoint,
)
from model.config import SwintormerConfig, preset
from model.swintormer import Swintormer
from swintormer.cli import main
from tests.unit.model.conftest import GOLDEN_CONFIG


def _released_state(golden: dict[str, np.ndarray]) -> dict[str, Tensor]:
    return {
        name.removeprefix("param/"): torch.from_numpy(array)
        for name, array in golden.items()
        if name.startswith("param/")
    }


def _as_released(network: Swintormer) -> dict[str, Tensor]:
    """Our state_dict under the released names and shapes (the converter's inverse)."""
    state: dict[str, Tensor] = {}
    for name, tensor in network.state_dict().items():
        released = name.replace("patch_embed.proj.", "patch_embed.proj2.")
        for norm in (".norm1.", ".norm2."):
            released = released.replace(norm, norm + "body.")
        if tensor.dim() == 2 and "cpb_mlp" not in name:
            tensor = tensor[:, :, None, None]  # 1x1 conv weights
        state[released] = tensor.clone()
    return state


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
    assert not list(tmp_path.glob("*.partial"))
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


def test_converter_reads_params_or_params_ema_and_strips_module_prefix(
    tmp_path: Path, golden: dict[str, np.ndarray]
) -> None:
    params = _released_state(golden)
    ema = {"module." + k: v + 1 for k, v in params.items()}
    path = tmp_path / "released.pth"
    torch.save({"params": params, "params_ema": ema}, path)
    plain, averaged = convert_released(path, ema=False), convert_released(path, ema=True)
    assert set(plain) == set(averaged) == set(map_released_state_dict(params))
    assert torch.equal(averaged["skip_conv.weight"], plain["skip_conv.weight"] + 1)
    network_from_state_dict(averaged, GOLDEN_CONFIG)


def test_converter_names_the_missing_entry(tmp_path: Path, golden: dict[str, np.ndarray]) -> None:
    only_params = tmp_path / "params.pth"
    torch.save({"params": _released_state(golden)}, only_params)
    with pytest.raises(CheckpointError, match=r"no 'params_ema' entry.*convert without --ema"):
        convert_released(only_params, ema=True)
    only_ema = tmp_path / "ema.pth"
    torch.save({"params_ema": _released_state(golden)}, only_ema)
    with pytest.raises(CheckpointError, match=r"no 'params' entry.*convert with --ema"):
        convert_released(only_ema, ema=False)
    bare = tmp_path / "bare.pth"
    torch.save(_released_state(golden), bare)
    assert convert_released(bare, ema=False).keys() == convert_released(only_params, False).keys()
    with pytest.raises(CheckpointError, match="bare state_dict"):
        convert_released(bare, ema=True)


def test_converter_names_unknown_keys(tmp_path: Path, golden: dict[str, np.ndarray]) -> None:
    state = _released_state(golden)
    state["encoder_level1.0.attn.temperature"] = torch.ones(1)
    path = tmp_path / "released.pth"
    torch.save({"params": state}, path)
    with pytest.raises(
        CheckpointError, match=r"unknown keys.*\(1\): encoder_level1\.0\.attn\.temp"
    ):
        convert_released(path, ema=False)


def test_converter_names_missing_keys_and_shape_mismatches(
    golden: dict[str, np.ndarray],
) -> None:
    state = _released_state(golden)
    del state["latent.1.ffn.project_out.weight"]
    state["skip_conv.weight"] = torch.zeros(16, 8, 3, 3)
    with pytest.raises(CheckpointError) as error:
        network_from_state_dict(map_released_state_dict(state), GOLDEN_CONFIG)
    assert "missing keys (1): latent.1.ffn.project_out.weight" in str(error.value)
    assert "skip_conv.weight (weights (16, 8, 3, 3), network (16, 8))" in str(error.value)


def test_a_config_that_does_not_fit_the_weights_is_named(golden: dict[str, np.ndarray]) -> None:
    state = map_released_state_dict(_released_state(golden))
    wrong = SwintormerConfig(**{**GOLDEN_CONFIG.to_dict(), "num_blocks": (1, 1, 1, 2)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \(26\): decoder_level2\.1\."):
        network_from_state_dict(state, wrong)


def test_converter_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "object.pth"
    torch.save({"params": {"patch_embed.proj2.weight": torch.zeros(1)}, "opt": Path("x")}, path)
    with pytest.raises(CheckpointError, match="tensors-only"):
        convert_released(path, ema=False)


def test_convert_command_writes_a_loadable_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    network = Swintormer(preset("tiny")).eval()
    released = tmp_path / "net_g_latest.pth"
    torch.save({"params": {k: v + 0 for k, v in _as_released(network).items()}}, released)
    output = tmp_path / "tiny.safetensors"
    assert main(["convert", str(released), str(output), "--preset", "tiny"]) == 0
    assert "tensors" in capsys.readouterr().out
    loaded = load_checkpoint(output)
    assert loaded.metadata["provenance"]["weights"] == "params"
    blurry = torch.rand(1, 3, 30, 30)
    with torch.no_grad():
        assert torch.equal(loaded.network(blurry), network(blurry))
    assert main(["convert", str(released), str(output), "--preset", "lite"]) == 1
    assert "cannot load" in capsys.readouterr().out
