"""Restorer: prior on/off, front end, determinism, checkpoint round trip (formats 1 and 2),
per-tile prior under tiling."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from model.checkpoint import CheckpointError, save_checkpoint
from model.config import PriorConfig, model_preset
from model.prior import LatentPrior
from model.restorer import (
    Restoration,
    Restorer,
    build_restorer,
    image_generators,
    load_restorer,
    save_restorer,
)
from tests.factories import TINY_PRIOR, tiny_network, tiny_restorer

pytestmark = pytest.mark.usefixtures("one_thread")

PRIOR = TINY_PRIOR


def _restorer(seed: int = 0) -> Restorer:
    torch.manual_seed(seed)
    restorer = tiny_restorer()
    # FiLM starts at zero (the network's choice); give it weight so the prior matters here.
    for conv in restorer.network.film or ():
        assert isinstance(conv, torch.nn.Conv2d)
        torch.nn.init.normal_(conv.weight, std=0.5)
    return restorer.eval()


@pytest.mark.parametrize(("h", "w"), [(64, 64), (37, 70), (16, 23)])
def test_shapes_for_several_sizes(h: int, w: int) -> None:
    restorer = _restorer()
    with torch.no_grad():
        assert restorer.restore(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)


def test_without_prior_restorer_is_bit_for_bit_the_plain_network() -> None:
    torch.manual_seed(0)
    plain = tiny_network().eval()
    blurry = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        expected = plain(blurry)
        assert torch.equal(Restorer(plain, None)(blurry), expected)
        # A network with a FiLM hook but no latent is the plain network too.
        hooked = tiny_network(PRIOR.latent_channels).eval()
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
        seed_0, seed_5 = restorer.restore(blurry, seed=0), restorer.restore(blurry, seed=5)
    assert torch.equal(default, seed_0)
    assert not torch.allclose(default, seed_5)
    assert torch.equal(default, again)
    assert torch.equal(default, seeded)
    assert not torch.allclose(default, other)
    assert not torch.allclose(default, fewer)


def test_default_noise_makes_each_image_independent_of_its_batch() -> None:
    restorer = _restorer()
    first, second = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        together = restorer(torch.cat([first, second]))
        torch.testing.assert_close(together[:1], restorer(first), rtol=0, atol=1e-6)
        torch.testing.assert_close(together[1:], restorer(second), rtol=0, atol=1e-6)


def test_default_noise_is_drawn_on_the_input_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU must not draw on the host and copy each sampling step's noise (issue #18, 5).

    No GPU here, so the test records the device the default generators are made for (the
    input's) and checks that they draw there.
    """
    import model.restorer as restorer_module

    restorer = _restorer()
    made: list[torch.Generator] = []

    def recording(seed: int, count: int, device: torch.device) -> list[torch.Generator]:
        generators = image_generators(seed, count, device)
        made.extend(generators)
        return generators

    monkeypatch.setattr(restorer_module, "image_generators", recording)
    blurry = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        restorer.run(blurry, seed=3)
    assert [g.device for g in made] == [blurry.device, blurry.device]
    assert [g.initial_seed() for g in made] == [3, 3]


def test_tiled_output_does_not_depend_on_the_tile_batch_size() -> None:
    from model.tiling import TileSettings, restore_tiled

    restorer = _restorer()
    image = torch.rand(1, 3, 80, 96)
    with torch.no_grad():
        one, three = (
            restore_tiled(restorer.restore, image, TileSettings(tile_px=64, overlap_px=16, batch=b))
            for b in (1, 3)
        )
    torch.testing.assert_close(one, three, rtol=0, atol=1e-5)


def test_mismatched_prior_is_rejected() -> None:
    with pytest.raises(ValueError, match="cond_channels"):
        Restorer(tiny_network(8), LatentPrior(PRIOR))
    with pytest.raises(ValueError, match="input channels"):
        Restorer(tiny_network(4), LatentPrior(PriorConfig(in_channels=6, latent_channels=4)))


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
    plain = Restorer(tiny_network(), None)
    path = tmp_path / "plain.safetensors"
    save_restorer(path, plain)
    assert load_restorer(path).prior is None


def test_checkpoint_with_wrong_prior_weights_names_the_keys(tmp_path: Path) -> None:
    restorer = _restorer()
    assert restorer.prior is not None
    path = tmp_path / "bad.safetensors"
    bigger = PriorConfig(latent_channels=4, encoder_width=4, denoiser_width=8, denoiser_blocks=2)
    save_checkpoint(path, restorer.state_dict(), replace(restorer.config, prior=bigger))
    with pytest.raises(CheckpointError, match=r"missing keys .*denoiser\.blocks\.1"):
        load_restorer(path)
    save_checkpoint(path, restorer.state_dict(), replace(restorer.config, prior=None))
    with pytest.raises(CheckpointError, match=r"unexpected keys .*prior\."):
        load_restorer(path)


def test_format_1_checkpoints_still_load(tmp_path: Path) -> None:
    """Files written before the defocus front end (network + prior configs apart) load as is."""
    restorer = _restorer()
    assert restorer.prior is not None
    path = tmp_path / "v1.safetensors"
    metadata = {
        "format_version": "1",
        "architecture": json.dumps(restorer.network.config.to_dict()),
        "prior": json.dumps(restorer.prior.config.to_dict()),
        "provenance": "{}",
    }
    state = {k: v.contiguous() for k, v in restorer.state_dict().items()}
    save_file(state, str(path), metadata=metadata)
    loaded = load_restorer(path)
    assert loaded.config == restorer.config
    blurry = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(loaded(blurry), restorer(blurry))


def test_front_end_model_round_trips_and_reports_its_defocus_map(tmp_path: Path) -> None:
    torch.manual_seed(0)
    restorer = build_restorer(model_preset("tiny-defocus")).eval()
    path = tmp_path / "defocus.safetensors"
    save_restorer(path, restorer)
    loaded = load_restorer(path)
    assert loaded.config == restorer.config
    blurry = torch.rand(2, 3, 40, 52)
    with torch.no_grad():
        ours, theirs = restorer.run(blurry, seed=3), loaded.run(blurry, seed=3)
    assert torch.equal(ours.restored, theirs.restored)
    assert ours.restored.shape == (2, 3, 40, 52)
    assert ours.radius_px is not None
    assert ours.radius_px.shape == (2, 1, 40, 52)
    radii = restorer.config.defocus.radii_px if restorer.config.defocus else ()
    assert 0.0 <= float(ours.radius_px.min()) <= float(ours.radius_px.max()) <= max(radii)


def test_front_end_feeds_the_blend_first_so_the_residual_lands_on_it() -> None:
    """With a zeroed output head the network returns its first input channels: the blend."""
    torch.manual_seed(0)
    restorer = build_restorer(replace(model_preset("tiny-defocus"), prior=None)).eval()
    for param in restorer.network.output.parameters():
        torch.nn.init.zeros_(param)
    blurry = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        front = restorer.front(blurry)
        assert front is not None
        assert torch.allclose(restorer.restore(blurry), front.blend, atol=1e-6)


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


def test_deblur_command_uses_the_prior_reproducibly(tmp_path: Path) -> None:
    from PIL import Image

    from swintormer.cli import main

    path = tmp_path / "with_prior.safetensors"
    restorer = _restorer()
    save_restorer(path, restorer)
    source = tmp_path / "blurry.png"
    Image.effect_noise((96, 80), 40).convert("RGB").save(source)
    outputs = [tmp_path / "first.png", tmp_path / "second.png"]
    for output in outputs:
        arguments = ["deblur", str(source), "-o", str(output), "--checkpoint", str(path)]
        assert main([*arguments, "--device", "cpu", "--tile-px", "64", "--overlap-px", "16"]) == 0
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    plain = tmp_path / "plain.png"
    save_restorer(path, Restorer(restorer.network, None))
    assert main(["deblur", str(source), "-o", str(plain), "--checkpoint", str(path)]) == 0
    assert plain.read_bytes() != outputs[0].read_bytes()  # the prior changed the result


def test_stacked_puts_the_radius_map_after_the_image_when_there_is_one() -> None:
    image = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    radius = torch.rand(2, 1, 8, 8)
    assert torch.equal(Restoration(image, None).stacked(), image.float())
    stacked = Restoration(image, radius).stacked()
    assert stacked.dtype == torch.float32
    assert stacked.shape == (2, 4, 8, 8)
    assert torch.equal(stacked[:, 3:], radius)
    assert build_restorer(model_preset("tiny")).stacked_channels == 3
    assert build_restorer(model_preset("tiny-defocus")).stacked_channels == 4
