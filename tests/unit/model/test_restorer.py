"""Restorer: prior on/off, determinism, checkpoint round trip, per-tile prior under tiling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import CheckpointError, save_checkpoint
from model.config import SwintormerConfig, preset
from model.prior import LatentPrior, PriorConfig
from model.restorer import Restorer, load_restorer, save_restorer
from model.swintormer import Swintormer

pytestmark = pytest.mark.usefixtures("one_thread")

PRIOR = PriorConfig(latent_channels=4, encoder_width=4, denoiser_width=8, denoiser_blocks=1)


def _tiny_network(cond_channels: int = 0) -> Swintormer:
    return Swintormer(
        SwintormerConfig.from_dict(preset("tiny").to_dict() | {"cond_channels": cond_channels})
    )


def _restorer(seed: int = 0) -> Restorer:
    torch.manual_seed(seed)
    network = _tiny_network(PRIOR.latent_channels)
    # FiLM starts at zero (the network's choice); give it weight so the prior matters here.
    for conv in network.film or ():
        assert isinstance(conv, torch.nn.Conv2d)
        torch.nn.init.normal_(conv.weight, std=0.5)
    return Restorer(network, LatentPrior(PRIOR)).eval()


@pytest.mark.parametrize(("h", "w"), [(64, 64), (37, 70), (16, 23)])
def test_shapes_for_several_sizes(h: int, w: int) -> None:
    restorer = _restorer()
    with torch.no_grad():
        assert restorer.restore(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)


def test_without_prior_restorer_is_bit_for_bit_the_plain_network() -> None:
    torch.manual_seed(0)
    plain = _tiny_network().eval()
    blurry = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        expected = plain(blurry)
        assert torch.equal(Restorer(plain, None)(blurry), expected)
        # A network with a FiLM hook but no latent is the plain network too.
        hooked = _tiny_network(PRIOR.latent_channels).eval()
        hooked.load_state_dict(plain.state_dict(), strict=False)
        assert torch.equal(Restorer(hooked, None).restore(blurry), expected)


def test_restore_is_deterministic_and_seeds_matter() -> None:
    restorer = _restorer()
    blurry = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        default, again = restorer(blurry), restorer.restore(blurry)
        seeded = restorer.restore(blurry, generator=torch.Generator().manual_seed(0))
        other = restorer.restore(blurry, generator=torch.Generator().manual_seed(1))
        fewer = restorer.restore(blurry, steps=1)
    assert torch.equal(default, again)
    assert torch.equal(default, seeded)
    assert not torch.allclose(default, other)
    assert not torch.allclose(default, fewer)


def test_mismatched_prior_is_rejected() -> None:
    with pytest.raises(ValueError, match="cond_channels"):
        Restorer(_tiny_network(8), LatentPrior(PRIOR))
    with pytest.raises(ValueError, match="input channels"):
        Restorer(_tiny_network(4), LatentPrior(PriorConfig(in_channels=6, latent_channels=4)))


def test_checkpoint_round_trip_holds_network_and_prior(tmp_path: Path) -> None:
    restorer = _restorer()
    path = tmp_path / "restorer.safetensors"
    save_restorer(path, restorer, provenance={"stage": 2})
    loaded = load_restorer(path)
    assert loaded.prior is not None
    assert loaded.prior.config == PRIOR
    assert not loaded.training
    blurry = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(loaded(blurry), restorer(blurry))
    for key, value in restorer.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_checkpoint_without_prior_round_trips(tmp_path: Path) -> None:
    plain = Restorer(_tiny_network(), None)
    path = tmp_path / "plain.safetensors"
    save_restorer(path, plain)
    assert load_restorer(path).prior is None


def test_checkpoint_with_wrong_prior_weights_names_the_keys(tmp_path: Path) -> None:
    restorer = _restorer()
    assert restorer.prior is not None
    path = tmp_path / "bad.safetensors"
    bigger = PriorConfig(latent_channels=4, encoder_width=4, denoiser_width=8, denoiser_blocks=2)
    save_checkpoint(path, restorer.network, restorer.prior, bigger.to_dict())
    with pytest.raises(CheckpointError, match=r"missing keys .*denoiser\.blocks\.1"):
        load_restorer(path)
    save_checkpoint(path, restorer.network, restorer.prior, None)
    with pytest.raises(CheckpointError, match="only its weights"):
        load_restorer(path)


def test_prior_runs_per_tile_under_restore_tiled() -> None:
    from model.tiling import TileSettings, restore_tiled

    restorer = _restorer()
    assert restorer.prior is not None
    seen: list[tuple[int, ...]] = []
    restorer.prior.encoder_lq.register_forward_hook(
        lambda _module, inputs, _output: seen.append(tuple(inputs[0].shape))
    )
    image = torch.rand(1, 3, 80, 96)
    tile = restorer.size_multiple  # 64 for `tiny`: tiles need no padding
    settings = TileSettings(tile_px=tile, overlap_px=16, batch=3)
    with torch.no_grad():
        tiled = restore_tiled(restorer.restore, image, settings)
        # With one tile covering the image, tiled and whole-image restoration are the same
        # computation: the prior sees the same pixels and draws the same noise.
        small = image[..., :tile, :tile]
        single = restore_tiled(restorer.restore, small, settings)
        torch.testing.assert_close(single, restorer.restore(small), rtol=0, atol=1e-6)
    assert tiled.shape == (1, 3, 80, 96)
    assert torch.isfinite(tiled).all()
    # The prior ran on tile batches only (2 x 2 tiles in batches of 3, then the single tile),
    # never on the whole 80x96 image.
    assert seen == [(3, 3, tile, tile), (1, 3, tile, tile), (1, 3, tile, tile), (1, 3, tile, tile)]
