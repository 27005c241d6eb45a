"""Model rows of the evaluation: a tiny checkpoint, with and without a prior, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model.config import model_preset
from model.evaluation.model_rows import (
    FrontMode,
    ModelRow,
    estimate_radius,
    model_rows,
    restorer_fn,
)
from model.restorer import Restorer, build_restorer, save_restorer
from model.tiling import Blend, TileSettings
from swintormer.cli import main
from tests.factories import tiny_restorer
from tests.sample_images import write_png16


def _restorer(with_prior: bool, in_channels: int = 3) -> Restorer:
    return tiny_restorer(with_prior, in_channels).eval()


TILES = TileSettings(tile_px=64, overlap_px=16, batch=2)


def test_rows_follow_what_the_checkpoint_supports() -> None:
    plain = [r.label for r in model_rows(_restorer(False), "m", TILES, ablations=True)]
    assert plain == [
        "m (no prior, feathered tiles)",
        "m: released uniform tiles",
        "m: whole image",
    ]
    rows = model_rows(_restorer(True), "m", TILES, ablations=True)
    assert [r.label for r in rows] == [
        "m (prior T=4, feathered tiles)",
        "m: prior off",
        "m: prior T=1",
        "m: prior T=2",
        "m: released uniform tiles",
        "m: whole image",
    ]
    assert rows[-2].tiles is not None
    assert rows[-2].tiles.blend is Blend.UNIFORM
    assert len(model_rows(_restorer(True), "m", TILES, ablations=False)) == 1


@pytest.mark.usefixtures("one_thread")
def test_restorer_fn_is_the_deployed_path_and_reproducible() -> None:
    restorer = _restorer(True)
    image = np.random.default_rng(0).random((70, 90, 3)).astype(np.float32)
    row = ModelRow("m", True, None, TILES)
    out = restorer_fn(restorer, row)(image, None)
    assert out.shape == (70, 90, 3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(restorer_fn(restorer, row)(image, None), out)
    whole = restorer_fn(restorer, ModelRow("m", True, None, None))(image, None)
    with torch.inference_mode():
        expected = restorer.restore(torch.from_numpy(image).permute(2, 0, 1)[None])
    np.testing.assert_allclose(whole, expected[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)
    off = restorer_fn(restorer, ModelRow("m", False, None, None))(image, None)
    with torch.inference_mode():
        plain = restorer.network(torch.from_numpy(image).permute(2, 0, 1)[None])
    np.testing.assert_allclose(off, plain[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("with_prior", [False, True])
def test_eval_cli_scores_a_tiny_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], with_prior: bool
) -> None:
    checkpoint = tmp_path / "tiny.safetensors"
    save_restorer(checkpoint, _restorer(with_prior))
    args = ["eval", "--checkpoint", str(checkpoint), "--limit", "1", "--crop-px", "64"]
    args += ["--tile-px", "64", "--overlap-px", "16", "--ablations", "--out", str(tmp_path)]
    assert main([*args, "--self-ensemble", "2", "4"]) == 0
    out = capsys.readouterr().out
    assert "| tiny (" in out
    assert "| tiny: self-ensemble x2 (" in out
    assert "| tiny: self-ensemble x4 (" in out
    assert "| tiny: whole image |" in out
    assert ("| tiny: prior off |" in out) == with_prior
    report = json.loads((tmp_path / "eval.json").read_text())
    rows = {m["method"]: m for m in report["methods"]}
    assert report["metadata"]["checkpoint"] == str(checkpoint)
    deployed = next(m for name, m in rows.items() if name.startswith("tiny ("))
    assert len(deployed["scores"]) == 8  # one photo x 4 radii x 2 noise levels
    assert np.isfinite(deployed["mean"]["psnr_db"])


@pytest.mark.usefixtures("one_thread")
def test_a_self_ensemble_row_follows_the_deployed_row() -> None:
    restorer = _restorer(True)
    rows = model_rows(restorer, "m", TILES, ablations=False, ensembles=(1, 4, 8))
    assert [(r.label, r.ensemble) for r in rows] == [
        ("m (prior T=4, feathered tiles)", 1),
        ("m: self-ensemble x4 (prior T=4, feathered tiles)", 4),
        ("m: self-ensemble x8 (prior T=4, feathered tiles)", 8),
    ]
    image = np.random.default_rng(2).random((40, 56, 3)).astype(np.float32)
    whole = ModelRow("m", True, None, None, ensemble=4)
    out = restorer_fn(restorer, whole)(image, None)
    flips: list[tuple[int, ...]] = [(), (-1,), (-2, -1), (-2,)]
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.inference_mode():
        copies = [restorer.restore(tensor.flip(dims)).flip(dims) for dims in flips]
    expected = torch.stack(copies).mean(dim=0)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_dual_pixel_checkpoint_needs_dpdd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "dp.safetensors"
    save_restorer(checkpoint, _restorer(False, in_channels=6))
    assert main(["eval", "--checkpoint", str(checkpoint), "--limit", "1"]) == 2
    assert "--set dpdd" in capsys.readouterr().err


@pytest.mark.usefixtures("one_thread")
def test_eval_cli_on_a_dpdd_folder_with_a_dual_pixel_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "dpdd"
    for folder in ("test_c/source", "test_c/target", "test_l/source", "test_r/source"):
        (root / folder).mkdir(parents=True)
        for name in ("a.png", "b.png"):
            write_png16(root / folder / name, rng.integers(0, 65536, (64, 56, 3), dtype=np.uint16))
    checkpoint = tmp_path / "dp.safetensors"
    save_restorer(checkpoint, _restorer(False, in_channels=6))
    args = ["eval", "--set", "dpdd", str(root), "--checkpoint", str(checkpoint)]
    assert main([*args, "--tile-px", "64", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "dpdd test" in out
    assert "| dp (no prior, feathered tiles) |" in out
    report = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert [m["method"] for m in report["methods"]][:2] == ["input (blurred)", "unsharp mask"]
    assert [s["image_name"] for s in report["methods"][2]["scores"]] == ["a.png", "b.png"]


def _defocus_restorer() -> Restorer:
    torch.manual_seed(0)
    return build_restorer(model_preset("tiny-defocus")).eval()


def test_front_end_checkpoints_get_the_front_end_ablations() -> None:
    labels = [r.label for r in model_rows(_defocus_restorer(), "d", TILES, ablations=True)]
    for label in (
        "d: true radius map fed in",
        "d: no estimator (uniform weights)",
        "d: blend alone (estimated)",
        "d: blend alone (true radius map)",
    ):
        assert label in labels


@pytest.mark.usefixtures("one_thread")
def test_front_end_rows_use_the_map_they_say() -> None:
    restorer = _defocus_restorer()
    assert restorer.defocus is not None
    image = np.random.default_rng(1).random((40, 52, 3)).astype(np.float32)
    truth = np.full((40, 52), 2.5, np.float32)
    blend_true = ModelRow("m", True, None, None, FrontMode.TRUE_MAP, blend_only=True)
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.inference_mode():
        expected = restorer.defocus(tensor, radius_px=torch.from_numpy(truth)[None, None]).blend
    out = restorer_fn(restorer, blend_true)(image, truth)
    np.testing.assert_allclose(out, expected[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)
    uniform = restorer_fn(restorer, ModelRow("m", True, None, None, FrontMode.UNIFORM, True))
    with torch.inference_mode():
        mean = restorer.defocus.bank(tensor).mean(dim=(1, 2))
    np.testing.assert_allclose(
        uniform(image, None), mean[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6
    )
    tiled = restorer_fn(restorer, ModelRow("m", True, None, TILES, FrontMode.TRUE_MAP))(
        image, truth
    )
    assert tiled.shape == image.shape
    with pytest.raises(ValueError, match="known radius map"):
        restorer_fn(restorer, ModelRow("m", True, None, None, FrontMode.TRUE_MAP))(image, None)


def test_blur_refinement_runs_where_the_estimated_blur_meets_the_network() -> None:
    rows = model_rows(_defocus_restorer(), "d", TILES, ablations=True, refine_blur=True)
    refined = {r.label: r.refine_blur for r in rows}
    assert refined["d (prior T=4, blur refined, feathered tiles)"] is True
    assert refined["d: one pass (blur not refined)"] is False
    assert refined["d: prior off"] is True
    assert refined["d: whole image"] is True
    assert refined["d: true radius map fed in"] is False
    assert refined["d: blend alone (estimated)"] is False
    once = model_rows(_defocus_restorer(), "d", TILES, ablations=True, refine_blur=False)
    labels = [r.label for r in once]
    assert "d: blur refined (two passes)" in labels
    assert not any(r.refine_blur for r in once if "two passes" not in r.label)
    # a model without a front end has nothing to refine: no row says otherwise
    plain = model_rows(_restorer(True), "m", TILES, ablations=True, refine_blur=True)
    assert not any(r.refine_blur or "refine" in r.label for r in plain)


@pytest.mark.usefixtures("one_thread")
def test_a_refined_row_is_the_second_pass_of_the_restorer() -> None:
    restorer = _defocus_restorer()
    image = np.random.default_rng(3).random((40, 52, 3)).astype(np.float32)
    out = restorer_fn(restorer, ModelRow("m", True, None, None, refine_blur=True))(image, None)
    with torch.inference_mode():
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
        expected = restorer.run(tensor, refine_blur=True).restored
    np.testing.assert_allclose(out, expected[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)
    refined_map = estimate_radius(restorer, image, TILES, refine_blur=True)
    assert refined_map.shape == (40, 52)
    assert not np.allclose(refined_map, estimate_radius(restorer, image, TILES), atol=1e-3)


@pytest.mark.usefixtures("one_thread")
def test_estimated_radius_is_tiled_like_the_deployed_path() -> None:
    restorer = _defocus_restorer()
    image = np.random.default_rng(2).random((70, 90, 3)).astype(np.float32)
    radius = estimate_radius(restorer, image, TILES)
    assert radius.shape == (70, 90)
    assert float(radius.min()) >= 0.0
    assert float(radius.max()) <= 4.5


def _defocus_eval_args(tmp_path: Path, *extra: str) -> list[str]:
    """`swintormer eval` arguments for a small front-end checkpoint saved in `tmp_path`: one
    photo, 64 px crops and tiles, the report written to `tmp_path`."""
    checkpoint = tmp_path / "d.safetensors"
    save_restorer(checkpoint, _defocus_restorer())
    small = ["--crop-px", "64", "--tile-px", "64", "--overlap-px", "16"]
    return [
        "eval",
        *extra,
        "--checkpoint",
        str(checkpoint),
        "--limit",
        "1",
        *small,
        "--out",
        str(tmp_path),
    ]


@pytest.mark.usefixtures("one_thread")
def test_eval_cli_layered_set_with_a_front_end_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_defocus_eval_args(tmp_path, "--set", "layered", "--refine-blur")) == 0
    out = capsys.readouterr().out
    assert "layered σ=0" in out
    assert "Wiener, best single radius per image (oracle)" in out
    assert "Blur estimator against the true radius map" in out
    assert "Refined blur (model.reblur) against the true radius map" in out
    report = json.loads((tmp_path / "eval.json").read_text())
    assert set(report["metadata"]["radius_error_px"]) == {"layered σ=0", "layered σ=0.01"}
    assert set(report["metadata"]["refined_radius_error_px"]) == {"layered σ=0", "layered σ=0.01"}
    assert main(_defocus_eval_args(tmp_path, "--set", "layered")) == 0  # one pass by default
    assert "Refined blur" not in capsys.readouterr().out


@pytest.mark.usefixtures("one_thread")
def test_eval_cli_estimator_only_prints_the_radius_errors_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_defocus_eval_args(tmp_path, "--estimator-only")) == 0
    out = capsys.readouterr().out
    assert out.startswith("Blur estimator against the true radius map")
    assert "Wiener" not in out  # no restoration rows, no baselines
    errors = json.loads((tmp_path / "eval.json").read_text())["metadata"]["radius_error_px"]
    assert len(errors) == 8  # every synthetic cell
    assert all(cell["mae_px"] >= 0.0 for cell in errors.values())
    # a model without the front end, or a set without radius maps, is refused
    plain = tmp_path / "plain.safetensors"
    save_restorer(plain, tiny_restorer())
    assert main(["eval", "--checkpoint", str(plain), "--limit", "1", "--estimator-only"]) == 2
    assert main(["eval", "--set", "dpdd", str(tmp_path), "--estimator-only"]) == 2
