"""The prior's networks: shapes for several sizes, config round trip, determinism, errors."""

from __future__ import annotations

import json

import pytest
import torch

from model.config import PriorConfig
from model.prior import LatentPrior, PriorEncoderGT, PriorEncoderLQ
from tests.factories import TINY_PRIOR

TINY = TINY_PRIOR


@pytest.mark.parametrize(("h", "w"), [(16, 16), (32, 48), (64, 16), (80, 112)])
def test_shapes_for_several_sizes(h: int, w: int) -> None:
    prior = LatentPrior(TINY)
    blurry, sharp = torch.rand(2, 3, h, w), torch.rand(2, 3, h, w)
    grid = (2, TINY.latent_channels, h // 16, w // 16)
    z_gt = prior.encoder_gt(blurry, sharp)
    assert z_gt.shape == grid
    assert prior.encoder_lq(blurry).shape == grid
    assert prior.sample(blurry, generator=torch.Generator()).shape == grid
    assert prior.reconstruct(blurry, z_gt, torch.Generator()).shape == grid


def test_dual_pixel_input_channels() -> None:
    config = PriorConfig(in_channels=6, latent_channels=4, encoder_width=4, denoiser_width=8)
    prior = LatentPrior(config)
    assert prior.encoder_gt(torch.rand(1, 6, 32, 32), torch.rand(1, 3, 32, 32)).shape == (
        1,
        4,
        2,
        2,
    )
    assert prior.sample(torch.rand(1, 6, 32, 32), 2, torch.Generator()).shape == (1, 4, 2, 2)


def test_sample_is_deterministic_per_generator_and_differs_across_seeds() -> None:
    prior = LatentPrior(TINY).eval()
    blurry = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        first = prior.sample(blurry, generator=torch.Generator().manual_seed(1))
        again = prior.sample(blurry, generator=torch.Generator().manual_seed(1))
        other = prior.sample(blurry, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_reduced_precision_weights_sample_in_their_dtype() -> None:
    prior = LatentPrior(TINY).to(torch.bfloat16).eval()
    blurry = torch.rand(1, 3, 32, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        z = prior.sample(blurry, generator=torch.Generator().manual_seed(0))
    assert z.dtype == torch.bfloat16
    assert torch.isfinite(z).all()


def test_sizes_off_the_latent_grid_are_rejected() -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        PriorEncoderLQ(TINY)(torch.rand(1, 3, 30, 32))
    with pytest.raises(ValueError, match="differ"):
        PriorEncoderGT(TINY)(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 16, 32))


def test_steps_beyond_T_are_rejected() -> None:
    prior = LatentPrior(TINY)
    with pytest.raises(ValueError, match="trained with T=4"):
        prior.sample(torch.rand(1, 3, 16, 16), steps=5, generator=torch.Generator())


def test_config_round_trips_through_json() -> None:
    config = PriorConfig(steps=8, latent_channels=16)
    assert PriorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"latent_channels": 2.5}, "latent_channels"),
        ({"beta_end": 1.5}, "beta"),
    ],
)
def test_bad_config_values_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriorConfig(**kwargs)  # type: ignore[arg-type]


def test_unknown_config_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown PriorConfig keys: colour$"):
        PriorConfig.from_dict({"steps": 4, "colour": "red"})
