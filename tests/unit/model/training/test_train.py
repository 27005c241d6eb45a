"""`swintormer train` end to end on the tiny preset: both stages, checkpoints, exact resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.checkpoint import read_checkpoint
from model.config import compose, model_preset
from model.restorer import Restorer, build_restorer, load_restorer, save_restorer
from model.training.config import TrainConfig, TrainConfigError, load_train_config
from model.training.fit import Stage
from model.training.train import (
    adopt_other_estimator,
    adopt_without_front_end,
    build_stages,
    initial_restorer,
    model_config,
    ship,
    train,
    with_estimator,
)
from swintormer.cli import main

TINY = Path(__file__).resolve().parents[4] / "configs" / "tiny.toml"


def _tiny(out_dir: Path, *overrides: str) -> TrainConfig:
    return load_train_config(TINY, [f"run.out_dir={out_dir}", *overrides])


def _weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(out_dir / "resume.pt", weights_only=True)["model"]


def test_stage2_freezes_the_teacher_and_the_network_encoder(tmp_path: Path) -> None:
    config = _tiny(tmp_path)
    restorer = build_restorer(model_config(config.model))
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
    fresh = build_restorer(model_config(config.model)).state_dict()
    assert any(not torch.equal(fresh[key], value) for key, value in expected.items())
    assert train(config).finished
    provenance = read_checkpoint(tmp_path / "second" / "best.safetensors").metadata["provenance"]
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
    provenance = read_checkpoint(tmp_path / "second" / "best.safetensors").metadata["provenance"]
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


def test_a_run_with_the_defocus_front_end_trains_all_three_stages(tmp_path: Path) -> None:
    logged: list[str] = []
    config = _tiny(tmp_path, "model.use_defocus=true", "stages.front_end_steps=2")
    assert [stage.number for stage in build_stages(config)] == [0, 1, 2]
    assert train(config, log=logged.append).finished
    assert any(line.startswith("[stage 0]") for line in logged)
    restorer = load_restorer(tmp_path / "best.safetensors")
    assert restorer.config == model_config(config.model)
    assert restorer.defocus is not None
    out = restorer.run(torch.rand(1, 3, 40, 40))
    assert out.radius_px is not None


def test_front_end_steps_need_the_front_end(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="front_end_steps must be 0"):
        _tiny(tmp_path, "stages.front_end_steps=2")


def test_adopted_weights_refine_the_blend_as_they_refined_the_blurry_image() -> None:
    torch.manual_seed(0)
    plain = _tiny(Path("unused"))
    start = build_restorer(model_config(plain.model)).eval()
    for conv in start.network.film or ():  # give FiLM weight so the prior's input matters
        assert isinstance(conv, torch.nn.Conv2d)
        torch.nn.init.normal_(conv.weight, std=0.5)
    grown = build_restorer(
        model_config(_tiny(Path("unused"), "model.use_defocus=true").model)
    ).eval()
    adopt_without_front_end(grown, start)
    assert grown.prior is not None
    assert start.prior is not None
    image, blurry = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    both = torch.cat([image, blurry], dim=1)
    with torch.no_grad():
        z = start.prior.encoder_lq(image)
        assert torch.allclose(grown.prior.encoder_lq(both), z, atol=1e-6)
        teacher = start.prior.encoder_gt(image, blurry)
        assert torch.allclose(grown.prior.encoder_gt(both, blurry), teacher, atol=1e-6)
        assert torch.allclose(grown.network(both, cond=z), start.network(image, cond=z), atol=1e-5)


def test_init_from_a_model_without_the_front_end_adopts_its_weights(tmp_path: Path) -> None:
    train(_tiny(tmp_path / "first"))
    start = tmp_path / "first" / "best.safetensors"
    config = _tiny(tmp_path / "second", f"model.init_from={start}", "model.use_defocus=true")
    restorer = initial_restorer(config)
    assert restorer.defocus is not None
    source = load_restorer(start).state_dict()
    grown = restorer.state_dict()
    assert torch.equal(
        grown["network.decoder_level1.0.norm1.weight"],
        source["network.decoder_level1.0.norm1.weight"],
    )
    other = _tiny(
        tmp_path / "third",
        f"model.init_from={start}",
        "model.use_defocus=true",
        "model.prior_channels=4",
    )
    with pytest.raises(TrainConfigError, match=r"prior\.latent_channels: 8 vs 4"):
        initial_restorer(other)


def test_with_estimator_swaps_the_estimator_and_keeps_everything_else(tmp_path: Path) -> None:
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        path = tmp_path / f"seed{seed}.safetensors"
        save_restorer(path, build_restorer(model_preset("tiny-defocus")), {"run": seed})
        paths.append(path)
    with_estimator(paths[0], paths[1], tmp_path / "combined.safetensors")
    first, second = load_restorer(paths[0]).state_dict(), load_restorer(paths[1]).state_dict()
    combined = load_restorer(tmp_path / "combined.safetensors").state_dict()
    for key, value in combined.items():
        expected = second[key] if key.startswith("defocus.estimator.") else first[key]
        assert torch.equal(value, expected), key
    assert any(not torch.equal(first[k], second[k]) for k in first if "estimator" in k)
    provenance = read_checkpoint(tmp_path / "combined.safetensors").metadata["provenance"]
    assert provenance["run"] == 1
    assert provenance["estimator_from"] == {"file": "seed2.safetensors", "provenance": {"run": 2}}


def test_with_estimator_takes_an_estimator_of_another_architecture(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_restorer(model_preset("tiny-defocus"))
    save_restorer(tmp_path / "model.safetensors", model)
    defocus = model.config.defocus
    assert defocus is not None
    wider = replace(defocus, estimator_width=12, reblur_sigmas_px=(1.0, 2.0, 4.0))
    donor = build_restorer(compose(model.config.network, model.config.prior, wider))
    save_restorer(tmp_path / "donor.safetensors", donor)
    out = tmp_path / "joined.safetensors"
    with_estimator(tmp_path / "model.safetensors", tmp_path / "donor.safetensors", out)
    joined = load_restorer(out)
    assert joined.config.defocus == wider
    for name, tensor in joined.state_dict().items():
        source = donor if name.startswith("defocus.estimator.") else model
        assert torch.equal(tensor, source.state_dict()[name]), name
    other_bank = replace(wider, radii_px=(0.0, 1.0, 3.0))
    stranger = build_restorer(compose(model.config.network, model.config.prior, other_bank))
    save_restorer(tmp_path / "stranger.safetensors", stranger)
    with pytest.raises(ValueError, match="banks differ"):
        with_estimator(tmp_path / "model.safetensors", tmp_path / "stranger.safetensors", out)


def test_with_estimator_needs_a_front_end_on_both_sides(tmp_path: Path) -> None:
    save_restorer(tmp_path / "plain.safetensors", build_restorer(model_preset("tiny")))
    save_restorer(tmp_path / "front.safetensors", build_restorer(model_preset("tiny-defocus")))
    with pytest.raises(ValueError, match="defocus front end"):
        with_estimator(
            tmp_path / "plain.safetensors", tmp_path / "front.safetensors", tmp_path / "x"
        )


def _defocus_start(tmp_path: Path, *overrides: str) -> tuple[Restorer, Path]:
    """A seeded tiny model with the front end, saved: (the model, its file)."""
    torch.manual_seed(0)
    start = build_restorer(
        model_config(_tiny(Path("unused"), "model.use_defocus=true", *overrides).model)
    ).eval()
    path = tmp_path / "start.safetensors"
    save_restorer(path, start)
    return start, path


def _stage0_from(tmp_path: Path, start: Path, change: str) -> TrainConfig:
    """A stage-0 fine-tune of `start` whose model differs by `change`."""
    return _tiny(
        tmp_path / "run",
        f"model.init_from={start}",
        "model.use_defocus=true",
        change,
        "stages.front_end_steps=2",
    )


def test_init_from_an_estimator_with_fewer_reblur_widths_grows_it(tmp_path: Path) -> None:
    start, path = _defocus_start(tmp_path, "model.reblur_widths=2")
    grown = initial_restorer(_stage0_from(tmp_path, path, "model.reblur_widths=4")).eval()
    assert grown.defocus is not None
    assert start.defocus is not None
    assert grown.config.defocus is not None
    assert grown.config.defocus.reblur_sigmas_px == (1.0, 2.0, 4.0, 8.0)
    stem = grown.defocus.estimator.stem.weight  # (width, 2 + 4 + R * N, 3, 3)
    assert torch.count_nonzero(stem[:, 4:6]) == 0
    image = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        before, after = start.defocus(image), grown.defocus(image)
    torch.testing.assert_close(after.radius_logits, before.radius_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(after.blend, before.blend, atol=1e-6, rtol=0)


def test_init_from_an_estimator_without_context_grows_it(tmp_path: Path) -> None:
    start, path = _defocus_start(tmp_path)
    grown = initial_restorer(_stage0_from(tmp_path, path, "model.estimator_context=true")).eval()
    assert grown.config.defocus is not None
    assert grown.config.defocus.estimator_context
    for name, tensor in start.state_dict().items():
        assert torch.equal(grown.state_dict()[name], tensor), name
    image = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        before, after = start.defocus(image), grown.defocus(image)  # type: ignore[misc]
    torch.testing.assert_close(after.radius_logits, before.radius_logits, atol=0, rtol=0)


def test_init_from_an_estimator_with_context_into_one_without_starts_it_fresh(
    tmp_path: Path,
) -> None:
    start, path = _defocus_start(tmp_path, "model.estimator_context=true")
    torch.manual_seed(1)
    restorer = initial_restorer(_stage0_from(tmp_path, path, "model.estimator_context=false"))
    before = start.state_dict()
    stem = "defocus.estimator.stem.weight"
    assert not torch.equal(restorer.state_dict()[stem], before[stem])
    for name, tensor in before.items():
        if not name.startswith("defocus.estimator."):
            assert torch.equal(restorer.state_dict()[name], tensor), name


@pytest.mark.parametrize("change", ["model.reblur_widths=1", "model.estimator_width=8"])
def test_init_from_another_estimator_keeps_the_rest_and_starts_it_fresh(
    tmp_path: Path, change: str
) -> None:
    start, path = _defocus_start(tmp_path)
    config = _stage0_from(tmp_path, path, change)
    torch.manual_seed(1)
    restorer = initial_restorer(config)
    assert restorer.config == model_config(config.model)
    before, after = start.state_dict(), restorer.state_dict()
    for name, tensor in after.items():
        if name.startswith("defocus.estimator."):
            assert before[name].shape != tensor.shape or not torch.equal(before[name], tensor)
        else:
            assert torch.equal(before[name], tensor), name
    other_prior = _tiny(
        tmp_path / "bank",
        f"model.init_from={path}",
        "model.use_prior=false",
        "model.use_defocus=true",
        "stages.stage2_steps=0",
    )
    with pytest.raises(TrainConfigError, match="does not match"):
        initial_restorer(other_prior)


def test_init_from_refuses_another_radius_temperature_by_name(tmp_path: Path) -> None:
    """The temperature is no architecture: a run naming another one than its checkpoint's is
    refused, never taken as a reason to start the trained estimator fresh."""
    start, path = _defocus_start(tmp_path, "model.radius_temperature=0.5")
    assert start.config.defocus is not None
    assert start.config.defocus.radius_temperature == 0.5
    with pytest.raises(TrainConfigError, match=r"radius_temperature: 0\.5 vs 1\.0"):
        initial_restorer(_stage0_from(tmp_path, path, "model.radius_temperature=1.0"))
    same = initial_restorer(_stage0_from(tmp_path, path, "model.radius_temperature=0.5"))
    for name, tensor in start.state_dict().items():
        assert torch.equal(same.state_dict()[name], tensor), name
    with pytest.raises(TrainConfigError, match="radius_temperature must be > 0"):
        _tiny(tmp_path, "model.radius_temperature=0.0")


def test_adopting_another_estimator_needs_front_ends() -> None:
    plain = build_restorer(model_preset("tiny"))
    with pytest.raises(ValueError, match="defocus front end"):
        adopt_other_estimator(plain, plain)


def test_reblur_widths_are_bounded(tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="reblur_widths"):
        _tiny(tmp_path, "model.reblur_widths=0")


def _fine_tuned(tmp_path: Path, *stage: str) -> tuple[Stage[Restorer], list[str], set[str]]:
    """A tiny defocus model fine-tuned by the one stage `stage` asks for: (that stage, the log,
    the names of the weights its best checkpoint moved)."""
    start, path = _defocus_start(tmp_path)
    config = _tiny(
        tmp_path / "run",
        f"model.init_from={path}",
        "model.use_defocus=true",
        *stage,
        "stages.stage1_steps=0",
        "stages.stage2_steps=0",
    )
    (built,) = build_stages(config)
    logged: list[str] = []
    assert train(config, log=logged.append).finished
    trained = load_restorer(tmp_path / "run" / "best.safetensors").state_dict()
    moved = {
        name
        for name, tensor in start.state_dict().items()
        if not torch.equal(trained[name], tensor)
    }
    return built, logged, moved


def test_stage0_through_the_network_keeps_all_but_the_estimator(tmp_path: Path) -> None:
    stage, logged, moved = _fine_tuned(
        tmp_path, "stages.front_end_steps=3", "stages.front_end_through_network=true"
    )
    assert (stage.number, stage.deployable) == (0, True)
    assert any("new best" in line for line in logged)
    assert moved
    assert all(name.startswith("defocus.estimator.") for name in moved), sorted(moved)


def test_a_fine_tune_may_run_stage3_alone_and_keeps_the_teacher(tmp_path: Path) -> None:
    stage, _, moved = _fine_tuned(tmp_path, "stages.deployed_steps=3")
    assert (stage.number, stage.deployable) == (3, True)
    assert any(name.startswith("network.") for name in moved)
    assert any(name.startswith("defocus.estimator.") for name in moved)
    assert any(name.startswith("prior.denoiser.") for name in moved)
    assert not any(name.startswith("prior.encoder_gt.") for name in moved)


def test_stage3_may_keep_the_estimator_frozen(tmp_path: Path) -> None:
    _, _, moved = _fine_tuned(
        tmp_path, "stages.deployed_steps=3", "stages.deployed_train_estimator=false"
    )
    assert any(name.startswith("network.") for name in moved)
    assert not any(name.startswith("defocus.") for name in moved)
    assert not any(name.startswith("prior.encoder_gt.") for name in moved)
