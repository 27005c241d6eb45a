"""Blur refinement by re-blur consistency (`model.reblur`): the residuals find the disk a sharp
image was blurred with below the reliable range, leave large blur and flat regions to the
estimator; the front end adds the evidence to the estimator's scores, and
`Restorer.run(refine_blur=True)` runs a second pass with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.config import DefocusConfig, model_preset
from model.data.dead_leaves import DeadLeavesSettings, dead_leaves
from model.data.degrade import composite_defocus, convolve
from model.psf import disk_psf
from model.reblur import RELIABLE_BELOW_PX, radius_evidence, reblur_energies
from model.restorer import build_restorer

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 96


def textured(seed: int = 0) -> np.ndarray:
    """(SIZE, SIZE, 3) float32 dead leaves: edges everywhere, like a detailed photo."""
    scene = dead_leaves(np.random.default_rng(seed), settings=DeadLeavesSettings(size_px=SIZE))
    return composite_defocus(scene, [disk_psf(0.0)] * len(scene.depths))  # in focus


def as_batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # (1, 3, H, W)


BANK = DefocusConfig().radii_px


def test_the_residual_is_smallest_at_the_disk_the_image_was_blurred_with() -> None:
    sharp = textured()
    blurry = convolve(sharp, disk_psf(BANK[5]))  # 3.2 px
    energies = reblur_energies(as_batch(sharp), as_batch(blurry), BANK)
    assert energies.shape == (1, len(BANK), SIZE // 4, SIZE // 4)
    inner = energies[0, :, 4:-4, 4:-4]  # (R, h, w) away from the borders
    assert bool((inner.argmin(dim=0) == 5).all())


@pytest.mark.parametrize("true_index", [1, 3, 5])
def test_the_evidence_favours_the_true_radius_below_the_reliable_range(true_index: int) -> None:
    sharp = textured(1)
    blurry = as_batch(convolve(sharp, disk_psf(BANK[true_index])))
    evidence = radius_evidence(as_batch(sharp), blurry, BANK)
    assert evidence.shape == (1, len(BANK), SIZE, SIZE)
    inner = evidence[0, :, 16:-16, 16:-16]
    assert bool((inner.argmax(dim=0) == true_index).all())
    assert float(inner.max()) == 0.0  # the best radius costs nothing
    assert float(inner[true_index - 1].mean()) < -1.0  # a neighbour costs a lot
    large = [i for i, r in enumerate(BANK) if r >= RELIABLE_BELOW_PX]
    torch.testing.assert_close(inner[large], inner[large[:1]].expand(len(large), -1, -1))


def test_large_blur_is_left_to_the_estimator() -> None:
    sharp = textured(2)
    blurry = as_batch(convolve(sharp, disk_psf(10.0)))
    evidence = radius_evidence(as_batch(sharp), blurry, BANK)[0, :, 16:-16, 16:-16]
    large = [i for i, r in enumerate(BANK) if r >= RELIABLE_BELOW_PX]
    assert float(evidence[large].max()) == 0.0  # every large radius is as good as the best
    assert float(evidence[: large[0]].max()) < -1.0  # smaller ones are ruled out


def test_without_texture_there_is_no_evidence() -> None:
    flat = as_batch(np.full((SIZE, SIZE, 3), 0.4, np.float32))
    assert float(radius_evidence(flat, flat, BANK).abs().max()) == 0.0


def test_the_evidence_updates_the_estimators_weights_and_nothing_else() -> None:
    torch.manual_seed(0)
    defocus = build_restorer(model_preset("tiny-defocus")).eval().defocus
    assert defocus is not None
    image = as_batch(convolve(textured(3), disk_psf(2.0)))
    with torch.inference_mode():
        plain = defocus(image)
        none = defocus(
            image, radius_evidence=torch.zeros(1, len(defocus.config.radii_px), SIZE, SIZE)
        )
        evidence = radius_evidence(image, image, defocus.config.radii_px)
        updated = defocus(image, radius_evidence=evidence)
    torch.testing.assert_close(none.blend, plain.blend)
    torch.testing.assert_close(none.radius_px, plain.radius_px)
    assert not torch.allclose(updated.radius_px, plain.radius_px)


def test_refine_blur_runs_a_second_pass_with_the_evidence() -> None:
    torch.manual_seed(0)
    restorer = build_restorer(model_preset("tiny-defocus")).eval()
    assert restorer.defocus is not None
    blurry = as_batch(convolve(textured(3), disk_psf(3.0)))
    with torch.inference_mode():
        once = restorer.run(blurry, seed=1)
        twice = restorer.run(blurry, seed=1, refine_blur=True)
        evidence = radius_evidence(once.restored, blurry, restorer.defocus.config.radii_px)
        expected = restorer.run(
            blurry, seed=1, front=restorer.defocus(blurry, radius_evidence=evidence)
        )
    assert not torch.equal(once.restored, twice.restored)
    torch.testing.assert_close(twice.restored, expected.restored)
    torch.testing.assert_close(twice.radius_px, expected.radius_px)


def test_refine_blur_changes_nothing_without_a_front_end() -> None:
    torch.manual_seed(0)
    restorer = build_restorer(model_preset("tiny")).eval()
    blurry = as_batch(textured(4))
    with torch.inference_mode():
        once = restorer.run(blurry, seed=1)
        twice = restorer.run(blurry, seed=1, refine_blur=True)
    assert torch.equal(once.restored, twice.restored)
    assert twice.radius_px is None
