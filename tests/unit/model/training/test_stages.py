"""The two training stages: what each trains and freezes, and that each really learns."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from model.config import SwintormerConfig
from model.prior import LatentPrior
from model.swintormer import ENCODER_PREFIXES, Swintormer
from model.training.stages import (
    is_encoder_parameter,
    stage1_loss,
    stage1_parameters,
    stage1_step,
    stage2_parameters,
    stage2_step,
)
from tests.factories import TINY_PRIOR

PRIOR = TINY_PRIOR
# Smaller than the `tiny` preset (window 2: inputs pad to 32, not 64) so that dozens of
# training steps take seconds on a loaded 2-core machine.
NETWORK = SwintormerConfig(
    in_channels=3,
    dim=8,
    num_blocks=(1, 1, 1, 1),
    num_refinement_blocks=1,
    heads=(1, 1, 1, 1),
    window_size=2,
    cond_channels=PRIOR.latent_channels,
)
MAX_STEPS = 40  # halving took 5-18 steps at lr 3e-3 over seeds 0-2

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch() -> tuple[Tensor, Tensor]:
    """One 32x32 image pair: a smooth random image and its 5x5 box blur."""
    sharp = F.interpolate(torch.rand(1, 3, 4, 4), size=(32, 32), mode="bilinear")
    blurry = F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    return blurry, sharp


def _models() -> tuple[Swintormer, LatentPrior]:
    return Swintormer(NETWORK), LatentPrior(PRIOR)


def _parameters(network: Swintormer, prior: LatentPrior) -> dict[str, torch.nn.Parameter]:
    """Every parameter under a unique name: `network.<name>` and `prior.<name>`."""
    return {f"network.{n}": p for n, p in network.named_parameters()} | {
        f"prior.{n}": p for n, p in prior.named_parameters()
    }


def test_encoder_prefixes_split_the_network() -> None:
    network = Swintormer(NETWORK)
    names = [name for name, _ in network.named_parameters()]
    encoder = [name for name in names if is_encoder_parameter(name)]
    assert {name.split(".")[0] for name in encoder} == set(ENCODER_PREFIXES)
    assert any(name.startswith("film.") for name in names)
    assert not any(is_encoder_parameter(name) for name in names if name.startswith("decoder"))


def test_stage1_trains_network_and_teacher_only() -> None:
    network, prior = _models()
    params = stage1_parameters(network, prior)
    ids = {id(p) for p in params}
    assert all(id(p) in ids for p in network.parameters())
    assert all(id(p) in ids for p in prior.encoder_gt.parameters())
    assert not any(id(p) in ids for p in prior.denoiser.parameters())
    blurry, sharp = _batch()
    loss = stage1_loss(network, prior, blurry, sharp)
    assert loss.latent is None
    assert loss.total.requires_grad
    assert loss.restored.shape == sharp.shape
    assert not loss.restored.requires_grad


def test_stage2_step_leaves_frozen_parameters_and_changes_trainable_ones() -> None:
    network, prior = _models()
    blurry, sharp = _batch()
    # One stage-1 step first, so the FiLM convs (zero at init) pass gradients to the prior.
    warmup = torch.optim.SGD(stage1_parameters(network, prior), lr=0.1)
    stage1_step(network, prior, warmup, blurry, sharp)

    trainable = {id(p) for p in stage2_parameters(network, prior)}
    params = _parameters(network, prior)
    frozen = sorted(name for name, p in params.items() if id(p) not in trainable)
    trained = sorted(name for name, p in params.items() if id(p) in trainable)
    before = {name: p.detach().clone() for name, p in params.items()}
    optimizer = torch.optim.AdamW([params[n] for n in trained], lr=1e-3, weight_decay=1e-4)
    stage2_step(network, prior, optimizer, blurry, sharp, torch.Generator().manual_seed(0))

    for name in frozen:
        is_encoder = is_encoder_parameter(name.removeprefix("network."))
        assert name.startswith("prior.encoder_gt.") or is_encoder, name
        assert not params[name].requires_grad, name
        assert torch.equal(params[name], before[name]), f"frozen {name} changed"
    assert any(name.startswith("prior.encoder_gt.") for name in frozen)
    assert any(name.startswith("network.encoder_level1.") for name in frozen)
    for prefix in ("prior.encoder_lq.", "prior.denoiser.", "network.film.", "network.output."):
        assert any(name.startswith(prefix) for name in trained), prefix
    for name in trained:
        assert not torch.equal(params[name], before[name]), f"trainable {name} did not change"


def test_stage2_without_decoder_fine_tuning_trains_the_prior_only() -> None:
    network, prior = _models()
    trainable = {id(p) for p in stage2_parameters(network, prior, fine_tune_decoder=False)}
    assert not any(id(p) in trainable or p.requires_grad for p in network.parameters())
    expected = [*prior.encoder_lq.parameters(), *prior.denoiser.parameters()]
    assert trainable == {id(p) for p in expected}


def _losses_until_halved(step: Callable[[], float]) -> list[float]:
    """Call `step` until its loss is at most half the first one, or MAX_STEPS times."""
    losses = [step()]
    while len(losses) < MAX_STEPS and losses[-1] > losses[0] / 2:
        losses.append(step())
    return losses


@pytest.mark.parametrize("seed", [0, 1])
def test_stage1_loss_halves_on_one_batch(seed: int) -> None:
    torch.manual_seed(seed)
    network, prior = _models()
    blurry, sharp = _batch()
    optimizer = torch.optim.Adam(stage1_parameters(network, prior), lr=3e-3)

    def step() -> float:
        return float(stage1_step(network, prior, optimizer, blurry, sharp).image)

    losses = _losses_until_halved(step)
    assert losses[-1] <= losses[0] / 2, f"stage-1 L1 went {losses[0]:.4f} -> {losses[-1]:.4f}"


@pytest.mark.parametrize("seed", [0, 1])
def test_stage2_latent_loss_halves_on_one_batch(seed: int) -> None:
    torch.manual_seed(seed)
    network, prior = _models()
    blurry, sharp = _batch()
    optimizer = torch.optim.Adam(stage2_parameters(network, prior), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)

    def step() -> float:
        latent = stage2_step(network, prior, optimizer, blurry, sharp, generator).latent
        assert latent is not None
        return float(latent)

    losses = _losses_until_halved(step)
    assert losses[-1] <= losses[0] / 2, f"latent L1 went {losses[0]:.4f} -> {losses[-1]:.4f}"
