"""Architecture configs: the network's presets, validation, JSON round trip, size multiple;
the deployable `ModelConfig`, its presets and invariants."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from model.config import (
    MODEL_PRESETS,
    PRESETS,
    DefocusConfig,
    ModelConfig,
    PriorConfig,
    SwintormerConfig,
    compose,
    config_differences,
    model_preset,
    preset,
)


def test_presets_are_the_documented_ones() -> None:
    assert PRESETS == ("paper", "base", "lite", "tiny")
    assert preset("paper") == SwintormerConfig()
    assert preset("base").in_channels == 3
    assert preset("base").level_widths == preset("paper").level_widths


@pytest.mark.parametrize("name", PRESETS)
def test_json_round_trip(name: str) -> None:
    config = preset(name)
    assert SwintormerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_preset_and_unknown_keys_are_named() -> None:
    with pytest.raises(ValueError, match="'huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="colour"):
        SwintormerConfig.from_dict({"dim": 8, "colour": 1})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 7}, "dim must be even"),
        ({"heads": (1, 2, 4, 5)}, "not divisible by 5 heads"),
        ({"num_blocks": (1, 1, 1)}, "num_blocks needs 4"),
        ({"window_size": 1}, "windows must be >= 2"),
        ({"in_channels": 1}, "in_channels"),
        ({"num_blocks": (1, 0, 1, 1)}, "at least one block"),
    ],
)
def test_invalid_configs_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SwintormerConfig(**kwargs)  # type: ignore[arg-type]


def test_size_multiple_holds_whole_windows_at_every_level() -> None:
    assert preset("paper").size_multiple == 256
    assert preset("tiny").size_multiple == 64
    # level l runs at 1/2^l: windows (16, 8, 8, 8) need 32, 32, 64, 128
    assert SwintormerConfig(window_sizes=(16, 8, 8, 8)).size_multiple == 128
    assert SwintormerConfig(window_sizes=(6, 4, 4, 4)).size_multiple == 192


def test_config_differences_name_each_key_sorted_and_skip_the_ignored() -> None:
    saved = {"optim.lr": 1e-3, "run.out_dir": "a", "data.batch": 2}
    wanted = {"optim.lr": 2e-3, "run.out_dir": "b", "model.use_prior": True}
    assert config_differences(saved, wanted, ignore={"run.out_dir"}) == [
        "data.batch: 2 vs None",
        "model.use_prior: None vs True",
        "optim.lr: 0.001 vs 0.002",
    ]
    assert config_differences(saved, dict(saved)) == []


@pytest.mark.parametrize("name", MODEL_PRESETS)
def test_model_presets_round_trip_and_hold_their_invariants(name: str) -> None:
    config = model_preset(name)
    assert ModelConfig.from_dict(config.to_dict()) == config
    if config.prior is not None:
        assert config.network.cond_channels == config.prior.latent_channels
        assert config.prior.in_channels == config.network.in_channels
    if config.defocus is not None:
        assert config.network.in_channels == 6
        assert config.image_channels == 3


def test_the_paper_model_is_the_released_network_alone() -> None:
    paper = model_preset("paper")
    assert paper.network == preset("paper")
    assert paper.prior is None
    assert paper.defocus is None
    assert paper.image_channels == 6  # dual-pixel input


def test_model_config_refuses_parts_that_do_not_fit() -> None:
    lite = preset("lite")
    with pytest.raises(ValueError, match="cond_channels"):
        ModelConfig(lite, PriorConfig())
    with pytest.raises(ValueError, match="input channels"):
        ModelConfig(replace(lite, cond_channels=64), PriorConfig(in_channels=6))
    with pytest.raises(ValueError, match="6 channels"):
        ModelConfig(lite, None, DefocusConfig())
    with pytest.raises(ValueError, match="unknown ModelConfig keys: extra"):
        ModelConfig.from_dict({"network": lite.to_dict(), "extra": 1})


def test_differences_name_fields_and_missing_parts() -> None:
    a = model_preset("lite-prior")
    b = compose("lite", PriorConfig(steps=2), DefocusConfig())
    assert a.differences(a) == []
    assert a.differences(b) == [
        "network.in_channels: 3 vs 6",
        "prior.in_channels: 3 vs 6",
        "prior.steps: 4 vs 2",
        "defocus: none vs present",
    ]
