"""The importer of released checkpoints: every error it names, and the keys it maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import CheckpointError, network_from_state_dict
from model.config import SwintormerConfig
from model.released import convert_released, map_released_state_dict
from tests.reference import GOLDEN_CONFIG, released_state


def test_converter_reads_params_or_params_ema_and_strips_module_prefix(
    tmp_path: Path, golden: dict[str, np.ndarray]
) -> None:
    params = released_state(golden)
    ema = {"module." + k: v + 1 for k, v in params.items()}
    path = tmp_path / "released.pth"
    torch.save({"params": params, "params_ema": ema}, path)
    plain, averaged = convert_released(path, ema=False), convert_released(path, ema=True)
    assert set(plain) == set(averaged) == set(map_released_state_dict(params))
    assert torch.equal(averaged["skip_conv.weight"], plain["skip_conv.weight"] + 1)
    network_from_state_dict(averaged, GOLDEN_CONFIG)


def test_converter_names_the_missing_entry(tmp_path: Path, golden: dict[str, np.ndarray]) -> None:
    only_params = tmp_path / "params.pth"
    torch.save({"params": released_state(golden)}, only_params)
    with pytest.raises(CheckpointError, match=r"no 'params_ema' entry.*convert without --ema"):
        convert_released(only_params, ema=True)
    only_ema = tmp_path / "ema.pth"
    torch.save({"params_ema": released_state(golden)}, only_ema)
    with pytest.raises(CheckpointError, match=r"no 'params' entry.*convert with --ema"):
        convert_released(only_ema, ema=False)
    bare = tmp_path / "bare.pth"
    torch.save(released_state(golden), bare)
    assert convert_released(bare, ema=False).keys() == convert_released(only_params, False).keys()
    with pytest.raises(CheckpointError, match="bare state_dict"):
        convert_released(bare, ema=True)


def test_converter_names_unknown_keys(tmp_path: Path, golden: dict[str, np.ndarray]) -> None:
    state = released_state(golden)
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
    state = released_state(golden)
    del state["latent.1.ffn.project_out.weight"]
    state["skip_conv.weight"] = torch.zeros(16, 8, 3, 3)
    with pytest.raises(CheckpointError) as error:
        network_from_state_dict(map_released_state_dict(state), GOLDEN_CONFIG)
    assert "missing keys (1): latent.1.ffn.project_out.weight" in str(error.value)
    assert "skip_conv.weight (weights (16, 8, 3, 3), network (16, 8))" in str(error.value)


def test_a_config_that_does_not_fit_the_weights_is_named(golden: dict[str, np.ndarray]) -> None:
    state = map_released_state_dict(released_state(golden))
    wrong = SwintormerConfig(**{**GOLDEN_CONFIG.to_dict(), "num_blocks": (1, 1, 1, 2)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \(26\): decoder_level2\.1\."):
        network_from_state_dict(state, wrong)


def test_converter_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "object.pth"
    torch.save({"params": {"patch_embed.proj2.weight": torch.zeros(1)}, "opt": Path("x")}, path)
    with pytest.raises(CheckpointError, match="tensors-only"):
        convert_released(path, ema=False)
