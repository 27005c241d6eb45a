"""Dead-leaves generator: coverage, anti-aliasing, palette, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from model.data.dead_leaves import DeadLeavesSettings, dead_leaves, sample_radii

SMALL = DeadLeavesSettings(size_px=48, background_leaves=800, leaves_per_layer=20, num_layers=3)


def test_scene_shapes_background_opaque_and_edges_antialiased() -> None:
    scene = dead_leaves(np.random.default_rng(0), None, SMALL)
    assert scene.colours.shape == (3, 48, 48, 3)
    assert scene.alphas.shape == (3, 48, 48)
    np.testing.assert_allclose(scene.alphas[0], 1.0)
    assert 0 < scene.alphas[1:].mean() < 1
    # 2x supersampling gives fractional coverage on leaf borders.
    assert ((scene.alphas[1:] > 0) & (scene.alphas[1:] < 1)).any()
    assert np.all(np.diff(scene.depths) < 0)
    assert scene.colours.min() >= 0
    assert scene.colours.max() <= 1


def test_colours_come_from_the_palette_when_untextured() -> None:
    palette = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    settings = DeadLeavesSettings(
        size_px=32,
        background_leaves=400,
        leaves_per_layer=5,
        num_layers=2,
        texture_probability=0.0,
        supersample=1,
    )
    scene = dead_leaves(np.random.default_rng(1), palette, settings)
    background = scene.colours[0].reshape(-1, 3)
    assert np.all(np.isclose(background[:, 1], 0.0))
    assert np.all(np.isclose(background[:, 0] + background[:, 2], 1.0))


def test_same_seed_same_scene() -> None:
    a = dead_leaves(np.random.default_rng(7), None, SMALL)
    b = dead_leaves(np.random.default_rng(7), None, SMALL)
    np.testing.assert_array_equal(a.colours, b.colours)
    np.testing.assert_array_equal(a.alphas, b.alphas)


def test_radii_follow_the_power_law() -> None:
    radii = sample_radii(np.random.default_rng(2), 200_000, 3.0, 1.0, 100.0)
    assert radii.min() >= 1.0
    assert radii.max() <= 100.0
    # For p(r) ~ r^-3 on [1, inf): P(r > 2) = 1/4; the cut at 100 changes that by 1e-4.
    assert (radii > 2.0).mean() == pytest.approx(0.25, abs=0.005)


def test_bad_settings_and_palette_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_radius_px"):
        DeadLeavesSettings(min_radius_px=5.0, max_radius_px=2.0)
    with pytest.raises(ValueError, match="palette"):
        dead_leaves(np.random.default_rng(0), np.zeros((4, 2)), SMALL)
