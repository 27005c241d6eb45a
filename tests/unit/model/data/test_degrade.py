"""Defocus synthesis: lens kernels, layered compositing, radius maps, sensor model, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from model.data.dead_leaves import DeadLeavesSettings, dead_leaves
from model.data.degrade import (
    BlurDistribution,
    KernelShapes,
    LayeredScene,
    SensorModel,
    add_noise,
    cat_eye_psf,
    composite_defocus,
    convolve,
    degrade_scene,
    jpeg_roundtrip,
    photo_scene,
    quantise_8bit,
    radius_map_of,
    soft_disk_psf,
)
from model.psf import disk_psf


def test_radius_zero_is_identity() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((17, 23, 3)).astype(np.float32)
    np.testing.assert_array_equal(convolve(image, disk_psf(0.0)), image)


def test_convolve_matches_direct_sum_inside_and_keeps_shape() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((21, 26, 3)).astype(np.float32)
    psf = disk_psf(2.0)
    out = convolve(image, psf)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    y, x, half = 10, 12, psf.shape[0] // 2
    window = image[y - half : y + half + 1, x - half : x + half + 1]
    expected = (window * psf[::-1, ::-1, None]).sum(axis=(0, 1))
    np.testing.assert_allclose(out[y, x], expected, atol=1e-5)
    # A constant image stays constant: the symmetric border adds no dark halo.
    np.testing.assert_allclose(convolve(np.full((9, 9), 0.25), psf), 0.25, atol=1e-6)


def test_composite_of_sharp_layers_is_plain_occlusion() -> None:
    h, w = 12, 14
    back = np.full((h, w, 3), 0.2, np.float32)
    front = np.full((h, w, 3), 0.9, np.float32)
    alpha_front = np.zeros((h, w), np.float32)
    alpha_front[:, 7:] = 1.0
    scene = LayeredScene(
        np.stack([back, front]),
        np.stack([np.ones((h, w), np.float32), alpha_front]),
        np.array([1.0, 0.0]),
    )
    sharp = composite_defocus(scene, [disk_psf(0.0)] * 2)
    np.testing.assert_allclose(sharp[:, :7], 0.2)
    np.testing.assert_allclose(sharp[:, 7:], 0.9)
    # Blurring only the front layer spreads its edge over both sides, and keeps values in range.
    blurred = composite_defocus(scene, [disk_psf(0.0), disk_psf(3.0)])
    assert 0.2 < blurred[5, 6, 0] < 0.9
    assert 0.2 < blurred[5, 7, 0] < 0.9
    np.testing.assert_allclose(blurred[:, 0], 0.2, atol=1e-6)


def test_layered_scene_validates_shapes() -> None:
    with pytest.raises(ValueError, match="alphas"):
        LayeredScene(np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 5)), np.zeros(2))


def test_blur_distribution_layer_radii() -> None:
    blur = BlurDistribution()
    rng = np.random.default_rng(3)
    maxima = np.array([blur.sample_max_radius(rng) for _ in range(2000)])
    assert maxima.min() >= blur.min_px
    assert maxima.max() <= blur.max_px
    assert np.median(maxima) == pytest.approx(blur.max_radius_median_px, rel=0.1)
    radii = blur.layer_radii(np.array([1.0, 0.6, 0.3, 0.0]), rng)
    assert radii.shape == (4,)
    assert np.all(np.diff(radii) < 0)  # blur grows monotonically with depth
    assert (radii > 0).any() or (radii < 0).all()
    assert blur.layer_radii(np.zeros(3), rng).tolist() == [0.0, 0.0, 0.0]


def test_uniform_fraction_blurs_some_images_by_one_radius_throughout() -> None:
    depths = np.array([1.0, 0.6, 0.3, 0.0])
    rng = np.random.default_rng(5)
    blur = BlurDistribution(max_px=12.0, uniform_fraction=0.25)
    draws = [blur.layer_radii(depths, rng) for _ in range(800)]
    uniform = [r for r in draws if np.all(r == r[0])]
    assert len(uniform) / len(draws) == pytest.approx(0.25, abs=0.05)
    assert all(0 < r[0] <= 12.0 for r in uniform)
    assert max(r[0] for r in uniform) > 8.0  # the wider cap is reached
    # without it, no extra draw: the stream is the one runs made before the knob existed
    radii = BlurDistribution().layer_radii(depths, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    focus = rng.uniform(0.0, 1.0)
    largest = float(np.clip(np.exp(rng.normal(np.log(5.5), 0.5)), 0.5, 8.0))
    offsets = depths - focus
    np.testing.assert_allclose(radii, offsets / np.abs(offsets).max() * largest)


@pytest.mark.parametrize(
    "settings",
    [{"uniform_fraction": 1.5}, {"uniform_fraction": -0.1}, {"min_px": 0.0}, {"max_px": 0.2}],
)
def test_blur_distribution_rejects_bad_settings(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must be|need"):
        BlurDistribution(**settings)


def test_sensor_model_quantises_and_jpeg_keeps_shape() -> None:
    rng = np.random.default_rng(4)
    image = rng.random((16, 16, 6)).astype(np.float32)
    out = SensorModel(noise_sigma_max=0.05, jpeg_probability=1.0).apply(image, rng)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    assert out.min() >= 0.0
    assert out.max() <= 1.0
    levels = quantise_8bit(image) * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    with pytest.raises(ValueError, match="quality"):
        jpeg_roundtrip(image[..., :3], 0)


def test_sensor_model_clean_fraction_leaves_only_quantisation() -> None:
    image = np.random.default_rng(5).random((16, 16, 3)).astype(np.float32)
    clean = SensorModel(noise_sigma_max=0.05, clean_fraction=1.0)
    np.testing.assert_array_equal(
        clean.apply(image, np.random.default_rng(6)), quantise_8bit(image)
    )
    noisy = SensorModel(noise_sigma_max=0.05).apply(image, np.random.default_rng(6))
    assert np.abs(noisy - quantise_8bit(image)).mean() > 0.01


def test_sensor_model_without_clean_fraction_keeps_its_random_stream() -> None:
    """Settings from before `clean_fraction` draw exactly what they drew then."""
    image = np.random.default_rng(5).random((16, 16, 3)).astype(np.float32)
    rng = np.random.default_rng(7)
    expected = quantise_8bit(add_noise(image, rng.uniform(0.0, 0.05), rng))
    out = SensorModel(noise_sigma_max=0.05).apply(image, np.random.default_rng(7))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_sensor_model_rejects_bad_clean_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="clean_fraction"):
        SensorModel(clean_fraction=fraction)


def _scene(seed: int) -> LayeredScene:
    settings = DeadLeavesSettings(size_px=32, background_leaves=300, leaves_per_layer=10)
    return dead_leaves(np.random.default_rng(seed), None, settings)


def test_degrade_scene_is_deterministic_and_shaped() -> None:
    blur, sensor = BlurDistribution(), SensorModel(jpeg_probability=0.5)
    first = degrade_scene(_scene(5), np.random.default_rng(9), blur, sensor, use_dual_pixel=True)
    second = degrade_scene(_scene(5), np.random.default_rng(9), blur, sensor, use_dual_pixel=True)
    np.testing.assert_array_equal(first.blurry, second.blurry)
    assert first.dual_pixel is not None
    assert second.dual_pixel is not None
    np.testing.assert_array_equal(first.dual_pixel, second.dual_pixel)
    assert first.sharp.shape == (32, 32, 3)
    assert first.blurry.shape == (32, 32, 3)
    assert first.dual_pixel.shape == (32, 32, 6)
    other = degrade_scene(_scene(5), np.random.default_rng(10), blur, sensor)
    assert other.dual_pixel is None
    assert not np.array_equal(other.blurry, first.blurry)


def test_photo_scene_sharp_composite_is_the_photo() -> None:
    rng = np.random.default_rng(6)
    photo = rng.random((20, 30, 3)).astype(np.float32)
    scene = photo_scene(photo, rng, num_layers=3)
    assert scene.alphas.shape == (3, 20, 30)
    np.testing.assert_array_equal(scene.alphas[0], 1.0)
    assert scene.alphas[1:].sum(axis=0).max() <= 1.0
    np.testing.assert_allclose(composite_defocus(scene, [disk_psf(0.0)] * 3), photo, atol=1e-6)
    pair = degrade_scene(scene, rng, BlurDistribution(), SensorModel(noise_sigma_max=0.0))
    np.testing.assert_allclose(pair.sharp, photo, atol=1e-6)


def test_radius_map_is_the_radius_of_the_layer_seen_in_focus() -> None:
    colours = np.zeros((2, 4, 6, 3), np.float32)
    alphas = np.ones((2, 4, 6), np.float32)
    alphas[1, :, :3] = 0.0  # the near layer covers the right half
    scene = LayeredScene(colours, alphas, np.array([1.0, 0.0]))
    radius_map = radius_map_of(scene, np.array([-3.0, 1.5]))
    np.testing.assert_array_equal(radius_map[:, :3], 3.0)
    np.testing.assert_array_equal(radius_map[:, 3:], 1.5)


@pytest.mark.parametrize("radius", [0.0, 1.5, 4.0])
def test_softened_and_cat_eye_disks_are_normalised_kernels(radius: float) -> None:
    soft = soft_disk_psf(radius, 0.8)
    cat_eye = cat_eye_psf(radius, 0.6, 0.0)
    for kernel in (soft, cat_eye):
        assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
        assert kernel.shape[0] % 2 == 1
        np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-7)  # centred
    assert soft.shape[0] > disk_psf(radius).shape[0]
    if radius > 1:
        # an aperture clipped along x is narrower along x than along y
        spread_x = (cat_eye.sum(axis=0) * (np.arange(cat_eye.shape[1]) - radius) ** 2).sum()
        spread_y = (cat_eye.sum(axis=1) * (np.arange(cat_eye.shape[0]) - radius) ** 2).sum()
        assert spread_x < spread_y


def test_kernel_shapes_draw_every_lens_and_repeat_with_the_seed() -> None:
    shapes = KernelShapes(soft_probability=0.4, cat_eye_probability=0.4)
    kinds = set()
    for seed in range(30):
        kernel = shapes.kernel_maker(np.random.default_rng(seed))(3.0)
        again = shapes.kernel_maker(np.random.default_rng(seed))(3.0)
        np.testing.assert_array_equal(kernel, again)
        if np.array_equal(kernel, disk_psf(3.0)):
            kinds.add("disk")
        elif kernel.shape != disk_psf(3.0).shape:
            kinds.add("soft")
        else:
            kinds.add("cat-eye")
    assert kinds == {"disk", "soft", "cat-eye"}


def test_degraded_pairs_carry_their_radius_map() -> None:
    rng = np.random.default_rng(3)
    scene = dead_leaves(rng, None, DeadLeavesSettings(size_px=48, num_layers=3))
    pair = degrade_scene(scene, rng, BlurDistribution(), SensorModel(), shapes=KernelShapes())
    assert pair.radius_map.shape == (48, 48)
    assert pair.radius_map.dtype == np.float32
    radii = np.abs(pair.radii_px)
    # leaf edges are anti-aliased, so the map mixes neighbouring layers' radii there
    assert radii.min() - 1e-5 <= float(pair.radius_map.min())
    assert float(pair.radius_map.max()) <= radii.max() + 1e-5
