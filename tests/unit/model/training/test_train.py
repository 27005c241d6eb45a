"""`swintormer train` end to end on the tiny preset: both stages, checkpoints, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.restorer import load_restorer
from model.training.config import TrainConfig, TrainConfigError, load_train_config
from model.training.train import build_restorer, build_stages, initial_restorer, ship, train
from swintormer.cli import main

TINY = Path(__file__).resolve().parents[4] / "configs" / "tiny.toml"


def _tiny(out_dir: Path, *overrides: str) -> TrainConfig:
    return load_train_config(TINY, [f"run.out_dir={out_dir}", *overrides])


def _weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(out_dir / "resume.pt", weights_only=True)["model"]


def test_stage2_freezes_the_teacher_and_the_network_encoder(tmp_path: Path) -> None:
    config = _tiny(tmp_path)
    restorer = build_restorer(config)
    stage1, stage2 = build_stages(config)
    trained1 = {id(p) for p in stage1.select_trainable(restorer)}
    assert all(id(p) in trained1 for p in restorer.prior.encoder_gt.parameters())  # type: ignore[union-attr]
    assert not any(id(p) in trained1 for p in restorer.prior.denoiser.parameters())  # type: ignore[union-attr]
    trained2 = {id(p) for p in stage2.select_trainable(restorer)}
    assert not any(id(p) in trained2 for p in restorer.prior.encoder_gt.parameters())  # type: ignore[union-attr]
    assert not any(id(p) in trained2 for p in restorer.network.patch_embed.parameters())
    assert all(id(p) in trained2 for p in restorer.prior.denoiser.parameters())  # type: ignore[union-attr]


def test_interrupted_tiny_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    straight = train(_tiny(tmp_path / "straight"))
    assert straight.finished
    stopped = train(_tiny(tmp_path / "split"), should_stop=lambda: True)  # stops after step 1
    assert stopped.step == 1
    assert not stopped.finished
    calls = iter(range(100))
    # the second leg crosses from stage 1 into stage 2
    train(_tiny(tmp_path / "split"), resume=True, should_stop=lambda: next(calls) >= 3)
    resumed = train(_tiny(tmp_path / "split"), resume=True)
    assert resumed.finished
    assert resumed.step == straight.step == 6
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cli_trains_and_the_checkpoint_restores(tmp_path: Path) -> None:
    assert main(["train", "--config", str(TINY), "--set", f"run.out_dir={tmp_path}"]) == 0
    assert "done: step 6/6" in (tmp_path / "train.log").read_text()
    restorer = load_restorer(tmp_path / "best.safetensors")
    assert restorer.prior is not None
    assert restorer.prior.config.steps == 2
    provenance = (tmp_path / "best.safetensors").read_bytes()[:4096]
    assert b"seed" in provenance
    image = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        assert restorer.restore(image).shape == image.shape


def test_cli_rejects_a_bad_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(TINY), "--set", "optim.lr=fast"]) == 2
    assert "optim.lr must be float" in capsys.readouterr().err


def test_prior_off_trains_the_plain_network(tmp_path: Path) -> None:
    config = _tiny(tmp_path, "model.use_prior=false", "stages.stage2_steps=0")
    assert train(config).finished
    assert load_restorer(tmp_path / "best.safetensors").prior is None


def test_shipped_half_checkpoint_restores_like_its_source(tmp_path: Path) -> None:
    train(_tiny(tmp_path))
    ship(tmp_path / "best.safetensors", tmp_path / "shipped.safetensors")
    source = load_restorer(tmp_path / "best.safetensors")
    shipped = load_restorer(tmp_path / "shipped.safetensors")
    assert (tmp_path / "shipped.safetensors").stat().st_size < 0.6 * (
        tmp_path / "best.safetensors"
    ).stat().st_size
    assert next(shipped.parameters()).dtype == torch.float32
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        difference = (shipped.restore(image) - source.restore(image)).abs().max()
    assert float(difference) < 1e-2
    assert b"float16" in (tmp_path / "shipped.safetensors").read_bytes()[:8192]


def test_init_from_starts_the_run_from_a_checkpoints_weights(tmp_path: Path) -> None:
    train(_tiny(tmp_path / "first"))
    start = tmp_path / "first" / "best.safetensors"
    config = _tiny(tmp_path / "second", f"model.init_from={start}")
    expected = load_restorer(start).state_dict()
    initial = initial_restorer(config).state_dict()
    assert initial.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(initial[key], value), key
    fresh = build_restorer(config).state_dict()
    assert any(not torch.equal(fresh[key], value) for key, value in expected.items())
    assert train(config).finished
    provenance = load_checkpoint(tmp_path / "second" / "best.safetensors").metadata["provenance"]
    assert provenance["init_from"]["file"] == "best.safetensors"
    assert "seed" in str(provenance["init_from"]["provenance"])


def test_a_fine_tune_may_continue_stage2_alone(tmp_path: Path) -> None:
    train(_tiny(tmp_path / "first"))
    start = tmp_path / "first" / "best.safetensors"
    config = _tiny(tmp_path / "second", f"model.init_from={start}", "stages.stage1_steps=0")
    assert [stage.number for stage in build_stages(config)] == [2]
    logged: list[str] = []
    result = train(config, log=logged.append)
    assert result.finished
    assert result.step == config.stages.stage2_steps
    assert not any("[stage 1]" in line for line in logged)
    assert not (tmp_path / "second" / "stage1.safetensors").exists()
    before, after = load_restorer(start), load_restorer(tmp_path / "second" / "best.safetensors")
    assert before.prior is not None
    assert after.prior is not None
    # stage 2 leaves the teacher and the network's encoder as the start file holds them
    for old, new in (
        (before.prior.encoder_gt, after.prior.encoder_gt),
        (before.network.patch_embed, after.network.patch_embed),
    ):
        for a, b in zip(old.parameters(), new.parameters(), strict=True):
            assert torch.equal(a, b)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            before.prior.denoiser.parameters(), after.prior.denoiser.parameters(), strict=True
        )
    )


def test_a_resumed_fine_tune_needs_its_init_file_no_more(tmp_path: Path) -> None:
    train(_tiny(tmp_path / "first"))
    start = tmp_path / "start.safetensors"
    (tmp_path / "first" / "best.safetensors").rename(start)
    config = _tiny(tmp_path / "second", f"model.init_from={start}")
    assert not train(config, should_stop=lambda: True).finished
    start.unlink()  # e.g. shipped over, or moved away
    assert train(config, resume=True).finished
    provenance = load_checkpoint(tmp_path / "second" / "best.safetensors").metadata["provenance"]
    assert provenance["init_from"]["file"] == "start.safetensors"
    assert "seed" in str(provenance["init_from"]["provenance"])


def test_init_from_refuses_a_checkpoint_of_another_model(tmp_path: Path) -> None:
    train(_tiny(tmp_path / "first"))
    start = tmp_path / "first" / "best.safetensors"
    plain = _tiny(
        tmp_path / "plain",
        f"model.init_from={start}",
        "model.use_prior=false",
        "stages.stage2_steps=0",
    )
    with pytest.raises(
        TrainConfigError, match=r"network\.cond_channels: 8 vs 0; prior: present vs none$"
    ):
        initial_restorer(plain)
    with pytest.raises(TrainConfigError, match=r"model\.init_from"):
        initial_restorer(_tiny(tmp_path, f"model.init_from={tmp_path / 'missing.safetensors'}"))


def test_validation_pairs_do_not_depend_on_the_run_seed(tmp_path: Path) -> None:
    inputs: list[list[str]] = []
    for seed in (0, 1):
        logged: list[str] = []
        config = _tiny(
            tmp_path / f"seed{seed}",
            f"run.seed={seed}",
            "stages.stage1_steps=2",
            "stages.stage2_steps=0",
            "model.use_prior=false",
        )
        train(config, log=logged.append)
        inputs.append(
            [line.split("(input ")[1].split(" dB")[0] for line in logged if "[val]" in line]
        )
    assert inputs[0]
    assert inputs[0] == inputs[1]
