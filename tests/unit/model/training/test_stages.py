"""The training stages: what each trains and freezes, and that each really learns."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from model.config import DefocusConfig, PriorConfig, SwintormerConfig, compose
from model.restorer import Restorer, build_restorer
from model.swintormer import ENCODER_PREFIXES
from model.training.fit import Batch
from model.training.stages import (
    Losses,
    deployed_loss,
    deployed_parameters,
    front_end_loss,
    front_end_parameters,
    is_encoder_parameter,
    stage1_loss,
    stage1_parameters,
    stage2_loss,
    stage2_parameters,
    training_front,
)

PRIOR = PriorConfig(latent_channels=4, encoder_width=4, denoiser_width=8, denoiser_blocks=1)
DEFOCUS = DefocusConfig(radii_px=(0.0, 1.0, 2.0, 3.0), estimator_width=4, estimator_blocks=1)
# Smaller than the `tiny` preset (window 2: inputs pad to 32, not 64) so that dozens of
# training steps take seconds on a loaded 2-core machine.
NETWORK = SwintormerConfig(
    in_channels=3,
    dim=8,
    num_blocks=(1, 1, 1, 1),
    num_refinement_blocks=1,
    heads=(1, 1, 1, 1),
    window_size=2,
)
MAX_STEPS = 40  # halving took 5-18 steps at lr 3e-3 over seeds 0-2
RADIUS_WEIGHT = 0.05

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(with_radius: bool = True) -> Batch:
    """One 32x32 image pair: a smooth random image and its 5x5 box blur (radius ~2 px)."""
    sharp = F.interpolate(torch.rand(1, 3, 4, 4), size=(32, 32), mode="bilinear")
    blurry = F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    radius = torch.full((1, 1, 32, 32), 2.0) if with_radius else None
    return Batch(blurry, sharp, radius)


def _model(defocus: bool = False) -> Restorer:
    return build_restorer(compose(NETWORK, PRIOR, DEFOCUS if defocus else None))


def _ids(params: list[torch.nn.Parameter]) -> set[int]:
    return {id(p) for p in params}


def _step(
    model: Restorer, optimizer: torch.optim.Optimizer, loss_of: Callable[[], Losses]
) -> Losses:
    losses = loss_of()
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    optimizer.step()
    return losses


def test_encoder_prefixes_split_the_network() -> None:
    network = _model().network
    names = [name for name, _ in network.named_parameters()]
    encoder = [name for name in names if is_encoder_parameter(name)]
    assert {name.split(".")[0] for name in encoder} == set(ENCODER_PREFIXES)
    assert any(name.startswith("film.") for name in names)
    assert not any(is_encoder_parameter(name) for name in names if name.startswith("decoder"))


def test_front_end_stage_trains_the_estimator_alone() -> None:
    model = _model(defocus=True)
    assert model.defocus is not None
    ids = _ids(front_end_parameters(model))
    assert ids == _ids(list(model.defocus.estimator.parameters()))
    assert not any(p.requires_grad for p in model.network.parameters())
    losses = front_end_loss(model, _batch(), RADIUS_WEIGHT)
    assert losses.radius is not None
    assert losses.total.requires_grad
    assert losses.restored.shape == (1, 3, 32, 32)
    assert float(losses.total.detach()) == pytest.approx(
        float(losses.image) + RADIUS_WEIGHT * float(losses.radius), rel=1e-5
    )
    without_map = front_end_loss(model, _batch(with_radius=False), RADIUS_WEIGHT)
    assert without_map.radius is None


def test_stage1_trains_network_teacher_and_estimator_only() -> None:
    model = _model(defocus=True)
    assert model.prior is not None
    assert model.defocus is not None
    ids = _ids(stage1_parameters(model))
    expected = [
        *model.network.parameters(),
        *model.prior.encoder_gt.parameters(),
        *model.defocus.estimator.parameters(),
    ]
    assert ids == _ids(expected)
    losses = stage1_loss(model, _batch(), RADIUS_WEIGHT)
    assert losses.latent is None
    assert losses.radius is not None
    assert losses.total.requires_grad
    assert losses.restored.shape == (1, 3, 32, 32)
    assert not losses.restored.requires_grad


@pytest.mark.parametrize("defocus", [False, True])
def test_stage2_leaves_frozen_parameters_and_changes_trainable_ones(defocus: bool) -> None:
    model = _model(defocus)
    batch = _batch()
    # One stage-1 step first, so the FiLM convs (zero at init) pass gradients to the prior.
    warmup = torch.optim.SGD(stage1_parameters(model), lr=0.1)
    _step(model, warmup, lambda: stage1_loss(model, batch, RADIUS_WEIGHT))

    trainable = _ids(stage2_parameters(model))
    params = dict(model.named_parameters())
    frozen = sorted(name for name, p in params.items() if id(p) not in trainable)
    trained = sorted(name for name, p in params.items() if id(p) in trainable)
    before = {name: p.detach().clone() for name, p in params.items()}
    optimizer = torch.optim.AdamW([params[n] for n in trained], lr=1e-3, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)
    _step(model, optimizer, lambda: stage2_loss(model, batch, generator))

    for name in frozen:
        is_encoder = is_encoder_parameter(name.removeprefix("network."))
        assert name.startswith(("prior.encoder_gt.", "defocus.")) or is_encoder, name
        assert not params[name].requires_grad, name
        assert torch.equal(params[name], before[name]), f"frozen {name} changed"
    assert any(name.startswith("prior.encoder_gt.") for name in frozen)
    assert any(name.startswith("network.encoder_level1.") for name in frozen)
    assert defocus == any(name.startswith("defocus.") for name in frozen)
    for prefix in ("prior.encoder_lq.", "prior.denoiser.", "network.film.", "network.output."):
        assert any(name.startswith(prefix) for name in trained), prefix
    for name in trained:
        assert not torch.equal(params[name], before[name]), f"trainable {name} did not change"


def test_stage2_without_decoder_fine_tuning_trains_the_prior_only() -> None:
    model = _model()
    assert model.prior is not None
    trainable = _ids(stage2_parameters(model, fine_tune_decoder=False))
    assert not any(p.requires_grad for p in model.network.parameters())
    expected = [*model.prior.encoder_lq.parameters(), *model.prior.denoiser.parameters()]
    assert trainable == _ids(expected)


def _losses_until_halved(step: Callable[[], float]) -> list[float]:
    """Call `step` until its loss is at most half the first one, or MAX_STEPS times."""
    losses = [step()]
    while len(losses) < MAX_STEPS and losses[-1] > losses[0] / 2:
        losses.append(step())
    return losses


@pytest.mark.parametrize("seed", [0, 1])
def test_stage1_loss_halves_on_one_batch(seed: int) -> None:
    torch.manual_seed(seed)
    model = _model()
    batch = _batch()
    optimizer = torch.optim.Adam(stage1_parameters(model), lr=3e-3)

    def step() -> float:
        return float(_step(model, optimizer, lambda: stage1_loss(model, batch, 0.0)).image)

    losses = _losses_until_halved(step)
    assert losses[-1] <= losses[0] / 2, f"stage-1 L1 went {losses[0]:.4f} -> {losses[-1]:.4f}"


@pytest.mark.parametrize("seed", [0, 1])
def test_stage2_latent_loss_halves_on_one_batch(seed: int) -> None:
    torch.manual_seed(seed)
    model = _model()
    batch = _batch()
    optimizer = torch.optim.Adam(stage2_parameters(model), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)

    def step() -> float:
        latent = _step(model, optimizer, lambda: stage2_loss(model, batch, generator)).latent
        assert latent is not None
        return float(latent)

    losses = _losses_until_halved(step)
    assert losses[-1] <= losses[0] / 2, f"latent L1 went {losses[0]:.4f} -> {losses[-1]:.4f}"


def test_front_end_radius_loss_falls_on_one_batch() -> None:
    torch.manual_seed(0)
    model = _model(defocus=True)
    batch = _batch()
    optimizer = torch.optim.Adam(front_end_parameters(model), lr=1e-2)

    def step() -> float:
        losses = _step(model, optimizer, lambda: front_end_loss(model, batch, 1.0))
        assert losses.radius is not None
        return float(losses.radius)

    losses = _losses_until_halved(step)
    assert losses[-1] <= losses[0] / 2, f"radius CE went {losses[0]:.4f} -> {losses[-1]:.4f}"


def test_a_share_of_the_batch_is_blended_by_the_true_radius_map() -> None:
    torch.manual_seed(0)
    model = _model(defocus=True).eval()
    assert model.defocus is not None
    one = _batch()
    radius = torch.ones(1, 1, 32, 32)
    batch = Batch(
        torch.cat([one.blurry, one.blurry.flip(-1)]),
        torch.cat([one.sharp, one.sharp.flip(-1)]),
        torch.cat([radius, 3 * radius]),
    )
    with torch.no_grad():
        mixed = training_front(model, batch, 0.5)
        estimated = model.front(batch.blurry)
        true_map = model.defocus(batch.blurry, batch.radius_px)
    assert mixed is not None
    assert estimated is not None
    # image 0 takes the map (its blend and radius), image 1 keeps the estimate
    torch.testing.assert_close(mixed.blend[:1], true_map.blend[:1])
    torch.testing.assert_close(mixed.radius_px[:1], torch.full_like(mixed.radius_px[:1], 1.0))
    torch.testing.assert_close(mixed.blend[1:], estimated.blend[1:])
    assert not torch.allclose(mixed.blend[:1], estimated.blend[:1])
    # the estimator's scores are its own for every image (its loss still sees the whole batch)
    torch.testing.assert_close(mixed.radius_logits, estimated.radius_logits)
    with torch.no_grad():
        none = training_front(model, batch, 0.0)
        no_map = training_front(model, Batch(batch.blurry, batch.sharp, None), 1.0)
    assert none is not None
    assert no_map is not None
    torch.testing.assert_close(none.blend, estimated.blend)
    torch.testing.assert_close(no_map.blend, estimated.blend)


def test_stage_losses_run_with_true_map_blends() -> None:
    torch.manual_seed(0)
    model = _model(defocus=True)
    params = stage1_parameters(model)
    losses = stage1_loss(model, _batch(), RADIUS_WEIGHT, true_map_fraction=1.0)
    losses.total.backward()
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)
    stage2_parameters(model)
    generator = torch.Generator().manual_seed(0)
    assert torch.isfinite(stage2_loss(model, _batch(), generator, true_map_fraction=1.0).total)


def test_front_end_through_the_network_trains_the_estimator_on_the_restored_image() -> None:
    torch.manual_seed(0)
    model = _model(defocus=True)
    assert model.defocus is not None
    batch = _batch()
    params = front_end_parameters(model)
    frozen = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = deployed_loss(model, batch, RADIUS_WEIGHT, torch.Generator().manual_seed(3))
    assert losses.radius is not None
    with torch.no_grad():
        deployed = model.restore(batch.blurry, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(losses.restored, deployed)
    assert float(losses.image) == pytest.approx(float(F.l1_loss(deployed, batch.sharp)), rel=1e-5)
    optimizer = torch.optim.Adam(params, lr=1e-2)
    optimizer.zero_grad(set_to_none=True)
    losses.total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    optimizer.step()
    for name, param in model.named_parameters():
        moved = not torch.equal(param.detach(), frozen[name])
        assert moved == name.startswith("defocus.estimator."), name


def test_front_end_through_a_network_that_adds_nothing_is_the_blend_loss() -> None:
    torch.manual_seed(0)
    model = _model(defocus=True)
    head = model.network.output[0]
    assert isinstance(head, torch.nn.Conv2d)
    torch.nn.init.zeros_(head.weight)  # bias-free: the network now returns the blend
    batch = _batch()
    params = front_end_parameters(model)
    through = deployed_loss(model, batch, RADIUS_WEIGHT, torch.Generator().manual_seed(5))
    through_grads = torch.autograd.grad(through.total, params)
    blend = front_end_loss(model, batch, RADIUS_WEIGHT)
    blend_grads = torch.autograd.grad(blend.total, params)
    torch.testing.assert_close(through.restored, blend.restored)
    assert float(through.total.detach()) == pytest.approx(float(blend.total.detach()), rel=1e-6)
    for got, expected in zip(through_grads, blend_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_stage3_trains_all_that_inference_runs_and_not_the_teacher() -> None:
    torch.manual_seed(0)
    model = _model(defocus=True)
    assert model.prior is not None
    assert model.defocus is not None
    ids = _ids(deployed_parameters(model))
    teacher = _ids(list(model.prior.encoder_gt.parameters()))
    assert ids == _ids(list(model.parameters())) - teacher
    for conv in model.network.film or ():  # zero at start: give the sampled latent a say
        assert isinstance(conv, torch.nn.Conv2d)
        torch.nn.init.normal_(conv.weight, std=0.5)
    batch = _batch()
    optimizer = torch.optim.Adam(deployed_parameters(model), lr=1e-3)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _step(model, optimizer, lambda: deployed_loss(model, batch, RADIUS_WEIGHT, torch.Generator()))
    moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert not any(name.startswith("prior.encoder_gt.") for name in moved)
    for part in ("defocus.estimator.", "network.", "prior.encoder_lq.", "prior.denoiser."):
        assert any(name.startswith(part) for name in moved), part
    plain = build_restorer(compose(NETWORK, None, None))
    assert _ids(deployed_parameters(plain)) == _ids(list(plain.parameters()))
    estimator = _ids(list(model.defocus.estimator.parameters()))
    assert _ids(deployed_parameters(model, train_estimator=False)) == ids - estimator
    assert not any(p.requires_grad for p in model.defocus.estimator.parameters())
    assert _ids(deployed_parameters(plain, train_estimator=False)) == _ids(list(plain.parameters()))
