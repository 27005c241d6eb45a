"""TOML -> TrainConfig: unknown keys and wrong types are errors; overrides are type checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.training.config import TrainConfig, TrainConfigError, load_train_config

CONFIGS = Path(__file__).resolve().parents[4] / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_file_values_and_defaults(tmp_path: Path) -> None:
    config = load_train_config(_write(tmp_path, "[optim]\nlr = 1e-3\n[data]\nbatch = 2\n"))
    assert config.optim.lr == 1e-3
    assert config.data.batch == 2
    assert config.data.patch_px == TrainConfig().data.patch_px


def test_override_is_parsed_and_type_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, "[optim]\nlr = 1e-3\n")
    config = load_train_config(
        path,
        ["optim.lr=2e-4", "run.out_dir=runs/x", "model.use_prior=false", "stages.stage2_steps=0"],
    )
    assert config.optim.lr == 2e-4
    assert config.run.out_dir == "runs/x"
    assert config.model.use_prior is False
    with pytest.raises(TrainConfigError, match=r"optim\.lr must be float"):
        load_train_config(path, ["optim.lr=fast"])
    with pytest.raises(TrainConfigError, match=r"data\.batch must be int"):
        load_train_config(path, ["data.batch=2.5"])


def test_int_is_accepted_for_float(tmp_path: Path) -> None:
    assert load_train_config(_write(tmp_path, "[optim]\ngrad_clip = 1\n")).optim.grad_clip == 1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[optim]\nlrr = 1.0\n", r"unknown key\(s\) optim\.lrr"),
        ("[optimiser]\nlr = 1.0\n", r"unknown table \[optimiser\]"),
        ("[model]\nuse_prior = 1\n", r"model\.use_prior must be bool"),
        ("[data]\nbatch = 0\n", r"data\.batch must be > 0"),
        ("[run]\namp = 'fp8'\n", r"run\.amp must be"),
        ("[optim]\nema_decay = 1.0\n", r"optim\.ema_decay must be in \[0, 1\)"),
        ("[model]\nuse_prior = false\n", r"stage2_steps must be 0"),
        ("[stages]\nstage1_steps = -1\n", r"stages\.stage1_steps must be >= 0"),
        ("[stages]\nstage1_steps = 0\n", r"stage1_steps may be 0 only in a fine-tune"),
        (
            "[model]\ninit_from = 'x.safetensors'\n[stages]\nstage1_steps = 0\nstage2_steps = 0\n",
            r"stage1_steps may be 0 only",
        ),
        ("[data]\nuniform_blur_fraction = 2.0\n", r"uniform_blur_fraction must be in \[0, 1\]"),
        ("[data]\nclean_fraction = -0.5\n", r"clean_fraction must be in \[0, 1\]"),
        ("[data]\nmax_radius_px = 4.0\n", r"max_radius_median_px <= data\.max_radius_px"),
        ("[stages]\ntrue_map_fraction = 1.5\n", r"true_map_fraction must be in \[0, 1\]"),
        ("[stages]\ntrue_map_fraction = 0.5\n", r"true_map_fraction must be 0 when"),
        (
            "[model]\nuse_defocus = true\n[stages]\nfront_end_steps = 2\n"
            "front_end_through_network = true\n",
            r"front_end_through_network needs",
        ),
        ("[stages]\ndeployed_steps = 5\n", r"deployed_steps needs a trained model"),
        ("[optim\n", "not valid TOML"),
    ],
)
def test_bad_configurations_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TrainConfigError, match=message):
        load_train_config(_write(tmp_path, text))


def test_an_estimator_only_fine_tune_may_skip_stages_1_and_2(tmp_path: Path) -> None:
    text = (
        "[model]\nuse_defocus = true\ninit_from = 'x.safetensors'\n"
        "[stages]\nfront_end_steps = 10\nstage1_steps = 0\nstage2_steps = 0\n"
    )
    config = load_train_config(_write(tmp_path, text))
    assert (config.stages.front_end_steps, config.stages.stage1_steps) == (10, 0)


def test_bad_override_syntax(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    with pytest.raises(TrainConfigError, match=r"section\.key=value"):
        load_train_config(path, ["lr"])
    with pytest.raises(TrainConfigError, match=r"must be section\.key"):
        load_train_config(path, ["lr=1"])


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="does not exist"):
        load_train_config(tmp_path / "nope.toml")


@pytest.mark.parametrize("name", sorted(path.stem for path in CONFIGS.glob("*.toml")))
def test_shipped_configs_load(name: str) -> None:
    config = load_train_config(CONFIGS / f"{name}.toml")
    assert TrainConfig.from_dict(config.to_dict()) == config
