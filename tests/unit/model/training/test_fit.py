"""The training loop on a tiny conv net: it learns, checkpoints atomically and resumes exactly."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from model.training.config import TrainConfig, TrainConfigError
from model.training.fit import Batch, Pairs, Stage, fit, lr_at, psnr_db


class BoxBlurSource:
    """Blocky random images softened by a 3x3 box and a loss of contrast: easy to learn to undo."""

    def sample(self, rng: np.random.Generator, batch: int, patch_px: int) -> Pairs:
        coarse = rng.random((batch, patch_px // 4, patch_px // 4, 3), dtype=np.float32)
        sharp = coarse.repeat(4, axis=1).repeat(4, axis=2)
        padded = np.pad(sharp, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        blurry = sum(
            padded[:, dy : dy + patch_px, dx : dx + patch_px] for dy in range(3) for dx in range(3)
        )
        return Pairs((0.3 * sharp + blurry / 30 + 0.2).astype(np.float32), sharp)


class TinyNet(nn.Module):
    """A residual linear filter (the inverse of a small blur is close to one) and a 1x1 head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 3, 5, padding=2, padding_mode="replicate")
        self.head = nn.Conv2d(3, 3, 1)
        nn.init.normal_(self.body.weight, std=1e-3)  # start near the identity, like a restorer
        nn.init.zeros_(self.head.weight)

    def forward(self, image: Tensor) -> Tensor:
        restored = image + self.body(image)
        return restored + self.head(restored)


def _l1(model: TinyNet, batch: Batch, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    noise = torch.randn(batch.blurry.shape, generator=gen) * 1e-3  # exercises the generator
    restored = model(batch.blurry + noise)
    return (restored - batch.sharp).abs().mean(), restored


def _restore(model: TinyNet, batch: Batch, gen: torch.Generator) -> Tensor:
    return model(batch.blurry)


def _all(model: TinyNet) -> list[nn.Parameter]:
    model.requires_grad_(True)
    return list(model.parameters())


def _head_only(model: TinyNet) -> list[nn.Parameter]:
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    return list(model.head.parameters())


def _stages(config: TrainConfig) -> list[Stage[TinyNet]]:
    return [
        Stage(1, config.stages.stage1_steps, config.optim.lr, _all, _l1, _restore, True),
        Stage(
            2, config.stages.stage2_steps, config.optim.stage2_lr, _head_only, _l1, _restore, True
        ),
    ]


def _export(model: TinyNet, path: Path, info: dict[str, Any]) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def _config(out_dir: Path, **run: Any) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": {"patch_px": 16, "batch": 4, "val_pairs": 4},
            "optim": {"lr": 3e-3, "stage2_lr": 1e-3, "warmup_steps": 2, "ema_decay": 0.9},
            "stages": {"stage1_steps": 6, "stage2_steps": 4},
            "run": {
                "out_dir": str(out_dir),
                "log_every": 2,
                "val_every": 5,
                "checkpoint_every": 3,
                "checkpoint_every_s": 0.0,
                "threads": 1,
                **run,
            },
        }
    )


def _train(config: TrainConfig, *, resume: bool = False, stop_after: int | None = None) -> TinyNet:
    torch.manual_seed(config.run.seed)
    model = TinyNet()
    calls = iter(range(10**6))
    fit(
        model,
        _stages(config),
        BoxBlurSource(),
        config,
        _export,
        resume=resume,
        should_stop=lambda: stop_after is not None and next(calls) + 1 >= stop_after,
    )
    return model


def test_lr_warms_up_then_decays_to_floor() -> None:
    values = [lr_at(step, 10, 1.0, 2, 0.1) for step in range(10)]
    assert values[0] == pytest.approx(0.5)
    assert values[1] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(values[1:]))
    assert lr_at(10, 10, 1.0, 2, 0.1) == pytest.approx(0.1)


def test_psnr_of_identical_images_is_capped_and_of_half_error_is_6db() -> None:
    image = torch.full((1, 3, 4, 4), 0.5)
    assert psnr_db(image, image) == pytest.approx(100.0)
    assert psnr_db(image * 0, image) == pytest.approx(-20 * math.log10(0.5), abs=1e-4)


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path: Path) -> None:
    straight = _train(_config(tmp_path / "straight"))
    # stop mid-stage-1 (step 4 after a checkpoint at 3: the stop checkpoints step 4), resume,
    # stop again in stage 2, resume to the end.
    _train(_config(tmp_path / "split"), stop_after=4)
    _train(_config(tmp_path / "split"), resume=True, stop_after=3)
    resumed = _train(_config(tmp_path / "split"), resume=True)
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    saved = torch.load(tmp_path / "split" / "resume.pt", weights_only=True)
    assert saved["step"] == 10
    for name in ("last", "best", "stage1", "stage2"):
        assert load_file(str(tmp_path / "split" / f"{name}.safetensors"))
    assert not list((tmp_path / "split").glob("*.partial*"))


def test_training_beats_the_blurred_input(tmp_path: Path) -> None:
    config = _config(tmp_path, log_every=1)
    config = TrainConfig.from_dict(
        {
            **config.to_dict(),
            "optim": {**config.to_dict()["optim"], "lr": 1e-2},
            "stages": {"stage1_steps": 60, "stage2_steps": 0},
        }
    )
    lines: list[str] = []
    torch.manual_seed(0)
    model = TinyNet()
    result = fit(model, _stages(config)[:1], BoxBlurSource(), config, _export, log=lines.append)
    assert result.finished
    assert result.step == 60
    batch = Batch.of(BoxBlurSource().sample(np.random.default_rng(1), 8, 16), torch.device("cpu"))
    with torch.no_grad():
        gain = psnr_db(model(batch.blurry), batch.sharp) - psnr_db(batch.blurry, batch.sharp)
    assert gain > 1.0
    assert any("it/s" in line and "eta" in line and "psnr" in line for line in lines)
    assert any(line.startswith("[val]") for line in lines)


def test_resume_refuses_a_different_configuration(tmp_path: Path) -> None:
    _train(_config(tmp_path), stop_after=1)
    changed = TrainConfig.from_dict({**_config(tmp_path).to_dict(), "optim": {"lr": 1e-2}})
    with pytest.raises(TrainConfigError, match=r"optim\.lr"):
        _train(changed, resume=True)
    # observation-only settings may change
    _train(_config(tmp_path, log_every=5), resume=True, stop_after=1)


def test_resume_without_a_checkpoint_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="does not exist"):
        _train(_config(tmp_path), resume=True)


def test_data_workers_change_nothing_but_speed(tmp_path: Path) -> None:
    in_process = _train(_config(tmp_path / "a"))
    with_worker = _train(_config(tmp_path / "b", data_workers=1))
    for a, b in zip(
        in_process.state_dict().values(), with_worker.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_batches_carry_radius_maps_channels_first_and_split() -> None:
    rng = np.random.default_rng(0)
    pairs = Pairs(
        rng.random((5, 8, 8, 3), dtype=np.float32),
        rng.random((5, 8, 8, 3), dtype=np.float32),
        rng.random((5, 8, 8), dtype=np.float32),
    )
    batch = Batch.of(pairs, torch.device("cpu"))
    assert batch.blurry.shape == (5, 3, 8, 8)
    assert batch.radius_px is not None
    assert batch.radius_px.shape == (5, 1, 8, 8)
    assert torch.equal(batch.radius_px[2, 0], torch.from_numpy(pairs.radius_px[2]))  # type: ignore[index]
    parts = list(batch.split(2))
    assert [p.blurry.shape[0] for p in parts] == [2, 2, 1]
    assert all(p.radius_px is not None for p in parts)
    assert Batch.of(Pairs(pairs.blurry, pairs.sharp), torch.device("cpu")).radius_px is None
