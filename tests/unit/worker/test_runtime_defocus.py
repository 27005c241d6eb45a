"""Runtime with a defocus front end: the radius map comes back stitched, at the image's size;
with a self-ensemble, image and map averaged over the turned copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.reblur import REFINE_BY_DEFAULT
from model.self_ensemble import ENSEMBLE_SIZES
from model.swintormer import pad_to_size
from model.tiling import TileSettings
from service.config import Settings
from service.schemas import SELF_ENSEMBLE_SIZES, DeblurOptions
from tests.defocus_restorer import save_tiny_defocus_restorer
from tests.factories import save_tiny_checkpoint
from worker.runtime import RestoreRequest, Runtime, to_array, to_tensor

CPU = torch.device("cpu")


def runtime_for(checkpoint: Path) -> Runtime:
    runtime = Runtime(Settings(checkpoint=checkpoint, device="cpu", cpu_threads=1))
    runtime.setup()
    return runtime


@pytest.fixture(scope="module")
def defocus_runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    path = tmp_path_factory.mktemp("weights") / "tiny-defocus.safetensors"
    return runtime_for(save_tiny_defocus_restorer(path))


def test_tiled_restoration_returns_the_radius_map(defocus_runtime: Runtime) -> None:
    assert defocus_runtime.estimates_blur
    rgb = np.random.default_rng(0).random((70, 90, 3), dtype=np.float32)
    request = RestoreRequest(tiles=TileSettings(tile_px=64, overlap_px=16, batch=2), seed=1)
    outcome = defocus_runtime(rgb, request)
    assert outcome.rgb.shape == (70, 90, 3)
    assert outcome.tile_count > 1
    assert outcome.radius_px is not None
    assert outcome.radius_px.shape == (70, 90)
    assert outcome.radius_px.dtype == np.float32
    assert np.isfinite(outcome.radius_px).all()
    assert outcome.radius_px.min() >= 0
    # the estimate is an expectation over the bank's radii (0 to 4.5 px in tiny-defocus)
    assert outcome.radius_px.max() <= 4.5 + 1e-4


def test_one_tile_gives_the_model_s_own_map(defocus_runtime: Runtime) -> None:
    rgb = np.random.default_rng(1).random((48, 40, 3), dtype=np.float32)
    tiles = TileSettings(tile_px=64, overlap_px=16, batch=1)
    outcome = defocus_runtime(rgb, RestoreRequest(tiles=tiles, seed=2))
    assert defocus_runtime.restorer is not None
    assert outcome.radius_px is not None
    with torch.inference_mode():  # the one tile: the image reflect-padded to 64 x 64
        direct = defocus_runtime.restorer.run(pad_to_size(to_tensor(rgb, CPU), 64, 64), seed=2)
    assert direct.radius_px is not None
    expected = direct.radius_px[0, 0, :48, :40].numpy()
    np.testing.assert_allclose(outcome.radius_px, expected, atol=1e-5)
    np.testing.assert_allclose(outcome.rgb, to_array(direct.restored[..., :48, :40]), atol=1e-5)


def test_a_model_without_front_end_returns_no_map(tmp_path: Path) -> None:
    runtime = runtime_for(save_tiny_checkpoint(tmp_path / "tiny.safetensors"))
    assert not runtime.estimates_blur
    rgb = np.zeros((40, 40, 3), np.float32)
    outcome = runtime(rgb, RestoreRequest(tiles=TileSettings(tile_px=64, overlap_px=0, batch=1)))
    assert outcome.radius_px is None


def test_a_self_ensemble_averages_the_image_and_the_map_over_turned_copies(
    defocus_runtime: Runtime,
) -> None:
    rgb = np.random.default_rng(3).random((48, 40, 3), dtype=np.float32)
    tiles = TileSettings(tile_px=64, overlap_px=16, batch=1)
    plain = defocus_runtime(rgb, RestoreRequest(tiles=tiles, seed=2))
    eight = defocus_runtime(rgb, RestoreRequest(tiles=tiles, seed=2, self_ensemble=8))
    assert defocus_runtime.restorer is not None
    copies = []
    with torch.inference_mode():  # the one tile, restored turned and mirrored, turned back
        tile = pad_to_size(to_tensor(rgb, CPU), 64, 64)
        for turns in range(4):
            for mirrored in (False, True):
                image = torch.rot90(tile.flip(-1) if mirrored else tile, turns, dims=(-2, -1))
                stacked = defocus_runtime.restorer.run(image, seed=2).stacked()
                stacked = torch.rot90(stacked, -turns, dims=(-2, -1))
                copies.append(stacked.flip(-1) if mirrored else stacked)
    expected = torch.stack(copies).mean(dim=0)[..., :48, :40]
    np.testing.assert_allclose(eight.rgb, to_array(expected[:, :3]), atol=1e-5)
    assert eight.radius_px is not None
    np.testing.assert_allclose(eight.radius_px, expected[0, 3].numpy(), atol=1e-5)
    assert not np.allclose(eight.rgb, plain.rgb, atol=1e-4)


def test_a_job_s_self_ensemble_falls_back_to_the_setting(tmp_path: Path) -> None:
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.safetensors")
    runtime = Runtime(Settings(checkpoint=checkpoint, device="cpu", self_ensemble=4))
    assert runtime.request_for(DeblurOptions()).self_ensemble == 4
    assert runtime.request_for(DeblurOptions(self_ensemble=2)).self_ensemble == 2


def test_the_gateway_and_the_model_know_the_same_ensemble_sizes() -> None:
    assert SELF_ENSEMBLE_SIZES == ENSEMBLE_SIZES


def test_the_service_and_the_evaluation_refine_the_blur_alike_by_default() -> None:
    assert Settings().refine_blur is REFINE_BY_DEFAULT


def test_blur_refinement_follows_the_job_then_the_setting_where_the_model_estimates_it(
    defocus_runtime: Runtime, tmp_path: Path
) -> None:
    assert defocus_runtime.request_for(DeblurOptions()).refine_blur is Settings().refine_blur
    assert defocus_runtime.request_for(DeblurOptions(refine_blur=False)).refine_blur is False
    assert defocus_runtime.request_for(DeblurOptions(refine_blur=True)).refine_blur is True
    plain = runtime_for(save_tiny_checkpoint(tmp_path / "tiny.safetensors"))
    assert plain.request_for(DeblurOptions()).refine_blur is False  # nothing to refine
    asked = plain.request_for(DeblurOptions(refine_blur=True))
    with pytest.raises(ValueError, match="does not estimate the blur"):
        plain.refuse_impossible(asked)
    assert plain.limits().estimates_blur is False
    assert defocus_runtime.limits().estimates_blur is True


def test_a_refined_job_returns_the_second_pass_and_its_map(defocus_runtime: Runtime) -> None:
    rgb = np.random.default_rng(5).random((70, 90, 3), dtype=np.float32)
    tiles = TileSettings(tile_px=64, overlap_px=16, batch=2)
    once = defocus_runtime(rgb, RestoreRequest(tiles=tiles, seed=2))
    twice = defocus_runtime(rgb, RestoreRequest(tiles=tiles, seed=2, refine_blur=True))
    assert twice.rgb.shape == once.rgb.shape
    assert twice.radius_px is not None
    assert once.radius_px is not None
    assert twice.radius_px.shape == once.radius_px.shape
    assert not np.allclose(twice.rgb, once.rgb, atol=1e-4)
    assert not np.allclose(twice.radius_px, once.radius_px, atol=1e-3)
