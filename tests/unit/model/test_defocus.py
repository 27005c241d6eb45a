"""The defocus front end: soft radius labels, the blend, the defocus map, gradients, autocast."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from model.config import DefocusConfig
from model.deconvolution import LAPLACIAN_TAPS
from model.defocus import (
    DefocusFrontEnd,
    laplacian,
    luma,
    radius_loss,
    rgb_from_luma,
    weighted_sum,
)
from model.psf import disk_psf

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = DefocusConfig(radii_px=(0.0, 1.0, 2.5, 4.5), estimator_width=8, estimator_blocks=2)


def _front_end() -> DefocusFrontEnd:
    torch.manual_seed(0)
    return DefocusFrontEnd(CONFIG).eval()


def test_soft_labels_split_between_neighbouring_radii_and_keep_the_mean() -> None:
    front = _front_end()
    radius = torch.tensor([0.0, 1.0, 1.75, 4.5, 9.0]).view(1, 1, 1, 5)
    labels = front.soft_labels(radius)  # (1, R, 1, 5)
    torch.testing.assert_close(labels.sum(dim=1), torch.ones(1, 1, 5))
    torch.testing.assert_close(labels[0, :, 0, 1], torch.tensor([0.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(labels[0, :, 0, 2], torch.tensor([0.0, 0.5, 0.5, 0.0]))
    radii = torch.tensor(CONFIG.radii_px).view(1, -1, 1, 1)
    expected = (labels * radii).sum(dim=1, keepdim=True)
    torch.testing.assert_close(expected, radius.clamp(max=4.5))


def test_outputs_have_the_input_size_and_radii_in_the_bank_range() -> None:
    front = _front_end()
    with torch.no_grad():
        out = front(torch.rand(2, 3, 37, 50))
    assert out.blend.shape == (2, 3, 37, 50)
    assert out.radius_px.shape == (2, 1, 37, 50)
    assert out.radius_logits.shape == (2, len(CONFIG.radii_px), 37, 50)
    assert float(out.radius_px.min()) >= 0.0
    assert float(out.radius_px.max()) <= max(CONFIG.radii_px)


def test_a_given_radius_map_replaces_the_estimate() -> None:
    front = _front_end()
    truth = torch.full((1, 1, 24, 24), 2.5)
    with torch.no_grad():
        out = front(torch.rand(1, 3, 24, 24), radius_px=truth)
    torch.testing.assert_close(out.radius_px, truth)


def test_the_blend_is_a_convex_mix_of_the_candidates() -> None:
    front = _front_end()
    image = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        candidates = front.bank(image).flatten(1, 2)  # (1, R*N, 3, H, W)
        blend = front(image).blend
    assert bool((blend >= candidates.min(dim=1).values - 1e-5).all())
    assert bool((blend <= candidates.max(dim=1).values + 1e-5).all())


def test_both_losses_reach_the_estimator() -> None:
    front = DefocusFrontEnd(CONFIG)
    image, sharp = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    out = front(image)
    loss = (out.blend - sharp).abs().mean() + radius_loss(
        out.radius_logits, front.soft_labels(torch.full((1, 1, 24, 24), 1.0))
    )
    loss.backward()
    grads = [p.grad for p in front.estimator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)


def test_under_cpu_autocast_the_front_end_stays_float32_inside() -> None:
    front = _front_end()
    image = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        expected = front(image).blend
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = front(image)
    assert torch.isfinite(out.blend).all()
    torch.testing.assert_close(out.blend.float(), expected, atol=1e-2, rtol=0)


def test_invalid_front_end_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="radii_px must start at 0"):
        DefocusConfig(radii_px=(0.5, 1.0))
    with pytest.raises(ValueError, match="strictly increase"):
        DefocusConfig(radii_px=(0.0, 2.0, 1.0))
    with pytest.raises(ValueError, match="balances"):
        DefocusConfig(balances=(1e-2, 1e-3))
    assert DefocusConfig().margin_px >= 2 * max(DefocusConfig().radii_px)


def test_weighted_sum_is_the_per_pixel_contraction_and_carries_gradients() -> None:
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(2, 4, 2, 9, 11, generator=generator, requires_grad=True)
    candidates = torch.rand(2, 4, 2, 3, 9, 11, generator=generator, requires_grad=True)
    blend = weighted_sum(weights, candidates)
    expected = torch.einsum("brnhw,brnchw->bchw", weights, candidates)
    torch.testing.assert_close(blend, expected, rtol=1e-6, atol=1e-6)
    blend.square().sum().backward()
    assert weights.grad is not None
    assert candidates.grad is not None
    grad_w, grad_c = torch.autograd.grad(expected.square().sum(), (weights, candidates))
    torch.testing.assert_close(weights.grad, grad_w, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(candidates.grad, grad_c, rtol=1e-5, atol=1e-5)


def test_laplacian_is_the_regulariser_s_taps_with_replicated_edges() -> None:
    image = torch.rand(2, 5, 13, 17, generator=torch.Generator().manual_seed(1))
    taps = torch.tensor(LAPLACIAN_TAPS).view(1, 1, 3, 3)
    padded = torch.nn.functional.pad(image.reshape(10, 1, 13, 17), (1, 1, 1, 1), mode="replicate")
    expected = torch.nn.functional.conv2d(padded, taps).reshape(2, 5, 13, 17)
    torch.testing.assert_close(laplacian(image), expected, rtol=0, atol=1e-6)


def test_reblur_widths_are_validated_and_default_for_older_checkpoints() -> None:
    with pytest.raises(ValueError, match="reblur_sigmas_px"):
        DefocusConfig(reblur_sigmas_px=(2.0, 1.0))
    with pytest.raises(ValueError, match="reblur_sigmas_px"):
        DefocusConfig(reblur_sigmas_px=())
    older = {key: value for key, value in CONFIG.to_dict().items() if key != "reblur_sigmas_px"}
    assert DefocusConfig.from_dict(older).reblur_sigmas_px == (1.0, 2.0)
    assert not DefocusConfig.from_dict(older).estimator_context
    wider = DefocusConfig(reblur_sigmas_px=[1, 2, 4])  # type: ignore[arg-type]
    assert DefocusConfig.from_dict(wider.to_dict()) == wider
    assert wider.reblur_sigmas_px == (1.0, 2.0, 4.0)


def test_each_reblur_width_is_one_more_cue_of_the_estimator() -> None:
    config = replace(CONFIG, reblur_sigmas_px=(1.0, 2.0, 4.0, 8.0))
    front = DefocusFrontEnd(config)
    cues = 2 + 4 + len(config.radii_px) * len(config.balances)
    assert front.estimator.stem.in_channels == cues
    out = front(torch.rand(1, 3, 48, 48))
    assert out.radius_logits.shape == (1, len(config.radii_px), 48, 48)


def test_the_image_context_starts_as_the_estimator_without_it() -> None:
    """Grown onto a trained estimator, the context changes nothing until it is trained."""
    torch.manual_seed(0)
    plain = DefocusFrontEnd(CONFIG).eval()
    grown = DefocusFrontEnd(replace(CONFIG, estimator_context=True)).eval()
    missing, unexpected = grown.load_state_dict(plain.state_dict(), strict=False)
    assert all(name.startswith("estimator.context.") for name in missing)
    assert missing
    assert not unexpected
    image = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        before, after = plain(image), grown(image)
    torch.testing.assert_close(after.radius_logits, before.radius_logits, rtol=0, atol=0)


def test_the_image_context_carries_evidence_from_anywhere_in_the_image() -> None:
    """A cell's scores move when the image changes far beyond the dilated blocks' reach, and
    the radius loss trains the context."""
    config = replace(CONFIG, estimator_context=True, estimator_blocks=0)
    torch.manual_seed(0)
    front = DefocusFrontEnd(config).eval()
    context = front.estimator.context
    assert context is not None
    torch.nn.init.normal_(context.output.weight, std=0.5)
    image = torch.rand(1, 3, 96, 96)
    elsewhere = image.clone()
    elsewhere[..., 64:, 64:] = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        near, far = front(image), front(elsewhere)
    # the corner cell (0, 0) is 64 px away from the change; the stem alone sees 3 cells
    assert not torch.allclose(near.radius_logits[..., :8, :8], far.radius_logits[..., :8, :8])
    fresh = DefocusFrontEnd(config)
    out = fresh(image)
    radius_loss(out.radius_logits, fresh.soft_labels(torch.full((1, 1, 96, 96), 2.0))).backward()
    assert fresh.estimator.context is not None
    gradient = fresh.estimator.context.output.weight.grad
    assert gradient is not None
    assert float(gradient.abs().sum()) > 0


def _blurred_photo_like(count: int = 2, size: int = 48) -> torch.Tensor:
    """Smooth random blocks blurred by a 2.5 px disk: an image the estimator weights unevenly."""
    coarse = torch.rand(count, 3, size // 6, size // 6, generator=torch.Generator().manual_seed(3))
    blocks = torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")
    disk = torch.from_numpy(disk_psf(2.5)).float()
    kernel = disk.expand(3, 1, *disk.shape)
    half = disk.shape[-1] // 2
    padded = torch.nn.functional.pad(blocks, (half,) * 4, mode="reflect")
    return torch.nn.functional.conv2d(padded, kernel, groups=3)


def test_the_estimator_reads_the_luminance_of_the_colour_candidates() -> None:
    front = _front_end()
    image = _blurred_photo_like()
    with torch.no_grad():
        colour = front.bank(image)  # (B, R, N, 3, H, W)
        grey = front.bank(luma(image)[:, None])[:, :, :, 0]
    torch.testing.assert_close(grey, luma(colour), rtol=0, atol=1e-5)


def test_a_lower_radius_temperature_sharpens_the_blend_weights_only() -> None:
    """The temperature divides the radius scores before the blend's softmax; the scores the
    radius loss reads stay raw, and 1 is the trained behaviour."""
    front = _front_end()
    sharp = DefocusFrontEnd(replace(CONFIG, radius_temperature=0.5)).eval()
    sharp.load_state_dict(front.state_dict())
    image = _blurred_photo_like()
    with torch.no_grad():
        plain, sharpened = front(image), sharp(image)
    torch.testing.assert_close(sharpened.radius_logits, plain.radius_logits)
    weights = (2 * plain.radius_logits).softmax(dim=1)  # (B, R, H, W)
    torch.testing.assert_close(sharp.radius_weights(plain.radius_logits), weights)
    radii = torch.tensor(CONFIG.radii_px).view(1, -1, 1, 1)
    torch.testing.assert_close(sharpened.radius_px, (weights * radii).sum(dim=1, keepdim=True))
    assert not torch.allclose(sharpened.blend, plain.blend)
    # the most likely radius gains weight everywhere
    top = plain.radius_logits.argmax(dim=1, keepdim=True)
    plain_top = front.radius_weights(plain.radius_logits).gather(1, top)
    assert bool((weights.gather(1, top) >= plain_top - 1e-6).all())
    with pytest.raises(ValueError, match="radius_temperature must be > 0"):
        replace(CONFIG, radius_temperature=0.0)
    older = {k: v for k, v in CONFIG.to_dict().items() if k != "radius_temperature"}
    assert DefocusConfig.from_dict(older).radius_temperature == 1.0  # files from before the field
    assert DefocusConfig.from_dict(sharp.config.to_dict()) == sharp.config


def test_rgb_from_luma_inverts_the_luma_weights() -> None:
    image = torch.rand(2, 3, 5, 7)
    rebuilt = rgb_from_luma(luma(image)[:, None], image[:, 0::2])
    torch.testing.assert_close(rebuilt, image, rtol=0, atol=1e-6)


def test_skipping_unweighted_candidates_keeps_the_blend() -> None:
    front = _front_end()
    dense = DefocusFrontEnd(CONFIG, skip_weight=0.0).eval()
    dense.load_state_dict(front.state_dict())
    image = _blurred_photo_like()
    with torch.no_grad():
        skipped, full = front(image), dense(image)
        candidates = dense.bank(image)  # (B, R, N, 3, H, W)
        radius_w = full.radius_logits.softmax(dim=1)
    torch.testing.assert_close(skipped.radius_px, full.radius_px)
    torch.testing.assert_close(skipped.blend, full.blend, rtol=0, atol=1e-3)
    # the same blend, by the formula, from every colour candidate at once
    _, balance_logits = dense.estimator(image, luma(candidates))
    weights = radius_w[:, :, None] * balance_logits.softmax(dim=1)[:, None]
    expected = torch.einsum("brnhw,brnchw->bchw", weights, candidates)
    torch.testing.assert_close(full.blend, expected, rtol=0, atol=1e-5)


def test_training_blends_every_candidate() -> None:
    front = _front_end()
    front.skip_weight = 0.01
    image = _blurred_photo_like()
    with torch.no_grad():
        skipped = front(image).blend
        front.skip_weight = 0.0
        dense = front(image).blend
        front.skip_weight = 0.01
    with torch.enable_grad():
        trained = front(image).blend
    assert not torch.equal(skipped, dense), "the threshold skipped nothing: the test is void"
    torch.testing.assert_close(trained.detach(), dense, rtol=0, atol=1e-6)


def test_a_skip_weight_that_could_drop_a_pixel_s_largest_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="skip_weight"):
        DefocusFrontEnd(CONFIG, skip_weight=1.0 / 8)
    with pytest.raises(ValueError, match="skip_weight"):
        DefocusFrontEnd(CONFIG, skip_weight=-1e-3)
