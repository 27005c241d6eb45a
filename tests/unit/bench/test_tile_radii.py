"""bench/tile_radii.py: node radii per tile, the pixels' weights over them, and a front end
whose blend is Wiener at the tile's own radii."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.tile_radii import (
    MAX_NODES,
    TileRadiiFrontEnd,
    node_radii,
    node_weights,
    with_tile_radii,
)
from model.config import DefocusConfig, model_preset
from model.deconvolution import WienerBank
from model.restorer import build_restorer


def test_a_uniform_map_gets_one_node_at_its_radius() -> None:
    assert node_radii(torch.full((1, 32, 32), 2.3), 1.05, 12.5) == pytest.approx((2.3,))


def test_nodes_span_the_map_with_neighbours_at_most_a_step_apart() -> None:
    radius = torch.linspace(2.0, 4.0, 1000)
    nodes = node_radii(radius, 1.1, 12.5)
    assert nodes[0] == pytest.approx(float(torch.quantile(radius, 0.02)))
    assert nodes[-1] == pytest.approx(float(torch.quantile(radius, 0.98)))
    ratios = np.array(nodes[1:]) / np.array(nodes[:-1])
    assert (ratios <= 1.1 + 1e-6).all()
    assert len(nodes) <= MAX_NODES


def test_in_focus_tiles_start_at_zero_and_wide_ranges_keep_the_node_cap() -> None:
    radius = torch.cat([torch.zeros(500), torch.full((500,), 9.0)])
    nodes = node_radii(radius, 1.02, 12.5)
    assert nodes[0] == 0.0
    assert nodes[-1] == pytest.approx(9.0)
    assert len(nodes) == MAX_NODES
    assert node_radii(torch.zeros(100), 1.05, 12.5) == (0.0,)
    with pytest.raises(ValueError, match="step"):
        node_radii(radius, 1.0, 12.5)


def test_each_pixels_weights_average_the_nodes_to_its_radius() -> None:
    radius = torch.tensor([[[[0.2, 1.0], [2.5, 3.9]]]])  # (1, 1, 2, 2)
    nodes = (0.0, 1.0, 2.0, 4.0)
    weights = node_weights(radius, nodes)  # (1, 4, 2, 2)
    assert weights.shape == (1, 4, 2, 2)
    assert torch.allclose(weights.sum(dim=1), torch.ones(1, 2, 2))
    mean = (weights * torch.tensor(nodes).view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
    assert torch.allclose(mean, radius)
    assert torch.equal(node_weights(radius, (2.0,)), torch.ones_like(radius))


def test_the_blend_of_a_uniform_true_map_is_wiener_at_that_radius() -> None:
    torch.manual_seed(0)
    config = DefocusConfig(estimator_width=8, estimator_blocks=1)
    front = TileRadiiFrontEnd(config, step=1.05).eval()
    image = torch.rand(2, 3, 40, 40)
    radius = torch.full((2, 1, 40, 40), 2.3)
    weak = torch.zeros(2, 2, 40, 40)
    weak[:, 0] = 1.0  # all weight on the weak regularisation
    with torch.inference_mode():
        blend = front.blend(image, torch.empty(0), front.soft_labels(radius), weak)
        wiener = WienerBank((2.3,), config.balances, config.margin_px)(image)[:, 0, 0]
    assert torch.allclose(blend, wiener, atol=1e-5)


def test_with_tile_radii_shares_the_weights_and_restores_a_tile() -> None:
    torch.manual_seed(0)
    restorer = build_restorer(model_preset("tiny-defocus")).eval()
    changed = with_tile_radii(restorer, 1.1)
    assert changed.network is restorer.network
    assert changed.prior is restorer.prior
    assert isinstance(changed.defocus, TileRadiiFrontEnd)
    assert restorer.defocus is not None
    for name, tensor in restorer.defocus.state_dict().items():
        assert torch.equal(changed.defocus.state_dict()[name], tensor)
    image = torch.rand(1, 3, 48, 48)
    with torch.inference_mode():
        restored = changed.run(image)
        shipped = restorer.run(image)
    assert restored.restored.shape == (1, 3, 48, 48)
    assert restored.radius_px is not None
    assert shipped.radius_px is not None
    assert torch.equal(restored.radius_px, shipped.radius_px)  # same estimator, same map
    assert not torch.equal(restored.restored, shipped.restored)  # another blend
