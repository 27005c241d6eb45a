"""The Wiener bank: parity with the classical baseline, padding, shapes, float32 under autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.data.degrade import convolve
from model.deconvolution import WienerBank, symmetric_pad
from model.evaluation.baselines import wiener
from model.psf import disk_psf

pytestmark = pytest.mark.usefixtures("one_thread")


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A natural-ish test image: random blocks softened a little, (h, w, 3) float32."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)
    blocks = coarse.repeat(4, axis=0).repeat(4, axis=1)[:h, :w]
    return convolve(blocks, disk_psf(0.8))


@pytest.mark.parametrize(("radius", "balance"), [(1.5, 1e-3), (3.0, 1e-2), (4.5, 3e-4)])
def test_a_candidate_is_the_classical_wiener_deconvolution(radius: float, balance: float) -> None:
    sharp = _smooth_image(48, 60)
    blurry = convolve(sharp, disk_psf(radius))
    bank = WienerBank((0.0, radius, 6.0), (balance,), margin_px=20)
    ours = bank(torch.from_numpy(blurry).permute(2, 0, 1)[None])[0, 1, 0]  # (3, H, W)
    theirs = wiener(blurry, disk_psf(radius), balance)
    difference = np.abs(ours.clamp(0, 1).permute(1, 2, 0).numpy() - theirs)
    # the same filter and taper; only the padding widths differ, which moves the border a hair
    assert float(difference.mean()) < 2e-3
    assert float(difference[8:-8, 8:-8].max()) < 2e-2


def test_the_right_radius_beats_the_wrong_ones_on_a_clean_blur() -> None:
    sharp = torch.from_numpy(_smooth_image(64, 64, seed=1)).permute(2, 0, 1)[None]
    blurry = torch.from_numpy(convolve(sharp[0].permute(1, 2, 0).numpy(), disk_psf(3.0)))
    radii = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    candidates = WienerBank(radii, (1e-4,), margin_px=16)(blurry.permute(2, 0, 1)[None])
    errors = [float((candidates[0, i, 0] - sharp[0]).abs().mean()) for i in range(len(radii))]
    assert int(np.argmin(errors)) == radii.index(3.0)


def test_radius_zero_with_a_small_balance_returns_the_input() -> None:
    image = torch.from_numpy(_smooth_image(20, 28)).permute(2, 0, 1)[None]
    out = WienerBank((0.0, 2.0), (1e-8,), margin_px=8)(image)
    torch.testing.assert_close(out[:, 0, 0], image, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (5, 7), (33, 17)])
def test_any_size_gives_every_candidate_at_the_input_size(h: int, w: int) -> None:
    bank = WienerBank((0.0, 1.0, 2.5), (1e-3, 1e-2), margin_px=9)
    out = bank(torch.rand(2, 3, h, w))
    assert out.shape == (2, 3, 2, 3, h, w)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_bank_runs_in_float32_under_autocast(dtype: torch.dtype) -> None:
    bank = WienerBank((0.0, 2.0), (1e-3,), margin_px=8)
    image = torch.rand(1, 3, 24, 24)
    expected = bank(image)
    with torch.autocast("cpu", dtype=dtype):
        out = bank(image.to(dtype))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, bank(image.to(dtype).float()))
    assert float((out - expected).abs().max()) < 0.05  # only the input's rounding differs


def test_symmetric_pad_matches_numpy_for_any_width() -> None:
    image = torch.arange(12.0).view(1, 1, 3, 4)
    ours = symmetric_pad(image, 5, 2, 9, 1)
    theirs = np.pad(image.numpy(), ((0, 0), (0, 0), (5, 2), (9, 1)), mode="symmetric")
    np.testing.assert_array_equal(ours.numpy(), theirs)


def test_a_margin_too_small_for_the_largest_disk_is_refused() -> None:
    with pytest.raises(ValueError, match="twice the largest radius"):
        WienerBank((0.0, 6.0), (1e-3,), margin_px=10)
    with pytest.raises(ValueError, match="at least one"):
        WienerBank((), (1e-3,), margin_px=10)


def test_filters_are_cached_per_padded_shape() -> None:
    bank = WienerBank((0.0, 2.0), (1e-3,), margin_px=8)
    bank(torch.rand(1, 3, 16, 16))
    bank(torch.rand(2, 3, 16, 16))
    bank(torch.rand(1, 3, 20, 16))
    assert len(bank._filters) == 2


def _images(count: int, h: int = 40, w: int = 36) -> torch.Tensor:
    planes = [_smooth_image(h, w, seed) for seed in range(count)]
    return torch.from_numpy(np.stack(planes)).permute(0, 3, 1, 2)  # (count, 3, h, w)


def test_blend_of_every_candidate_is_the_weighted_sum_of_the_bank() -> None:
    bank = WienerBank((0.0, 1.0, 2.5), (3e-4, 1e-2), margin_px=8)
    images = _images(2)
    weights = torch.rand(2, 3, 2, 40, 36, generator=torch.Generator().manual_seed(0))
    keep = torch.ones(2, 3, 2, dtype=torch.bool)
    expected = torch.einsum("brnhw,brnchw->bchw", weights, bank(images))
    torch.testing.assert_close(bank.blend(images, weights, keep), expected, rtol=0, atol=1e-5)


def test_blend_leaves_out_what_an_image_does_not_keep_and_ignores_its_batch() -> None:
    bank = WienerBank((0.0, 1.0, 2.5), (3e-4, 1e-2), margin_px=8)
    images = _images(3)
    weights = torch.rand(3, 3, 2, 40, 36, generator=torch.Generator().manual_seed(1))
    keep = torch.rand(3, 3, 2, generator=torch.Generator().manual_seed(2)) > 0.5
    keep[1] = False  # an image that keeps nothing gets nothing
    kept = weights * keep[..., None, None]
    expected = torch.einsum("brnhw,brnchw->bchw", kept, bank(images))
    blend = bank.blend(images, weights, keep)
    torch.testing.assert_close(blend, expected, rtol=0, atol=1e-5)
    assert not blend[1].any()
    alone = bank.blend(images[2:], weights[2:], keep[2:])
    torch.testing.assert_close(alone, blend[2:], rtol=0, atol=1e-6)
