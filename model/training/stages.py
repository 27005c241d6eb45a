"""The training stages of the deployable model: what each trains, its loss, how it validates.

This module owns the stages; `model.training.train` only lists the ones a run asks for and
`model.training.fit` runs them. Every function takes the whole `Restorer`, so no caller wires
its parts by hand.

Stage 0 (front end, only with the defocus front end): the blur estimator alone learns to blend
the Wiener bank, L1(blend, sharp) + `radius_weight` * cross-entropy of its radius scores against
the radius map the degradation knows. Validation scores the blend (not a deployable model).
With `stages.front_end_through_network` the image term is instead `deployed_loss`, with the
network and prior frozen: the estimator then learns the blend the trained network refines best
rather than the blend closest to the sharp image, and validation is the deployed model's.

Stage 1 (docs/prior.md): the network, the teacher `PriorEncoderGT` and the blur estimator learn
together; the network reads the blend beside the blurry image and sees
z_gt = teacher(network input, sharp); the loss is L1(restored, sharp) (+ the radius term).
Without a prior, stage 1 is plain L1 on the deployed path and its validation is deployable.

Stage 2: the front end, the teacher and the network's encoder (stem, encoder levels, latent
level) are frozen. `PriorEncoderLQ` and `LatentDenoiser` learn to reproduce z_gt from the
network input alone by running the whole reverse chain from q(z_T | z_gt) (DiffIR), and the
decoder, refinement and head are fine-tuned on the latent they produce (unless
`fine_tune_decoder` is off). The loss is L1(hat z_0, z_gt) + L1(network(input, hat z_0), sharp).

Stage 3 (a fine-tune only): everything inference runs learns on `deployed_loss`, the L1 of what
inference restores with z sampled from noise; the teacher stays frozen. Validation is deployed.

`*_parameters` functions set `requires_grad` (frozen weights get no gradient) and return what
the optimiser gets; `*_loss` functions are forward only: the trainer wraps them in autocast and
does its own backward, clipping and EMA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.defocus import FrontEndOutput, radius_loss
from model.restorer import Restorer
from model.swintormer import ENCODER_PREFIXES
from model.training.fit import Batch


@dataclass(frozen=True)
class Losses:
    """One batch's losses. `total` carries the graph; the parts are detached, for logging."""

    total: Tensor  # scalar to backpropagate
    image: Tensor  # L1(output, sharp)
    latent: Tensor | None  # L1(hat z_0, z_gt); stage 2 only
    radius: Tensor | None  # cross-entropy of the radius scores; with the front end and a map
    restored: Tensor  # (B, 3, H, W) the stage's output (detached), for PSNR and previews


def is_encoder_parameter(name: str) -> bool:
    """Whether a network parameter name belongs to the encoder that stage 2 freezes."""
    return name.split(".", 1)[0] in ENCODER_PREFIXES


def _trainable(*modules: nn.Module | None) -> list[nn.Parameter]:
    params = [p for module in modules if module is not None for p in module.parameters()]
    for param in params:
        param.requires_grad_(True)
    return params


def _radius_term(model: Restorer, front: FrontEndOutput | None, batch: Batch) -> Tensor | None:
    """The estimator's cross-entropy against the batch's radius map, where both exist."""
    if front is None or batch.radius_px is None or model.defocus is None:
        return None
    return radius_loss(front.radius_logits, model.defocus.soft_labels(batch.radius_px))


def _image_losses(
    output: Tensor, sharp: Tensor, radius: Tensor | None, radius_weight: float
) -> Losses:
    """L1(output, sharp) plus the weighted radius term, as `Losses` (no latent term)."""
    image = F.l1_loss(output, sharp)
    total = image if radius is None else image + radius_weight * radius
    return Losses(
        total=total,
        image=image.detach(),
        latent=None,
        radius=None if radius is None else radius.detach(),
        restored=output.detach(),
    )


def _teacher_latent(model: Restorer, image: Tensor, sharp: Tensor) -> Tensor:
    """z_gt on the network's bottleneck grid: both images padded as the network pads."""
    assert model.prior is not None
    return model.prior.encoder_gt(model.network.pad(image), model.network.pad(sharp))


def front_end_parameters(model: Restorer) -> list[nn.Parameter]:
    """Stage 0 trains the blur estimator alone; everything else is frozen."""
    if model.defocus is None:
        raise ValueError("stage 0 needs a model with the defocus front end")
    model.requires_grad_(False)
    return _trainable(model.defocus.estimator)


def front_end_loss(model: Restorer, batch: Batch, radius_weight: float) -> Losses:
    """Stage-0 forward: L1 of the blend, plus the radius cross-entropy."""
    front = model.front(batch.blurry)
    assert front is not None
    return _image_losses(front.blend, batch.sharp, _radius_term(model, front, batch), radius_weight)


def deployed_loss(
    model: Restorer, batch: Batch, radius_weight: float, generator: torch.Generator
) -> Losses:
    """L1 of what inference restores (front end, prior sampled from noise, network), plus the
    estimator's radius term where a front end and a map exist.

    Stage 0 through the network and stage 3 train on it. The blend's L1 (stage 0) scores the
    blend against the sharp image, but the network does not refine every blend error equally
    well (ringing from a too-large radius is harder to undo than a blend left soft); stage 1
    trains the network with the teacher's latent and stage 2 from a latent noised from the
    teacher's, never from pure noise as inference does. This loss takes the gradient of the
    deployed path itself. The prior draws z from `generator`'s noise.
    """
    front = model.front(batch.blurry)
    restored = model.run(batch.blurry, generator=generator, front=front).restored
    return _image_losses(restored, batch.sharp, _radius_term(model, front, batch), radius_weight)


def deployed_parameters(model: Restorer, train_estimator: bool = True) -> list[nn.Parameter]:
    """Stage 3: everything inference runs (estimator, network, LQ prior encoder, denoiser);
    only the teacher, which inference never runs, stays frozen. `train_estimator=False` also
    keeps the blur estimator as it is: the deployed L1 drifts its readings away from the true
    radius (weights/LITE_DEFOCUS_CARD.md, "A ninth attempt"), which also moves the defocus map
    users get; frozen, the network and prior adapt to the blends of a calibrated estimator."""
    model.requires_grad_(False)
    estimator = None if model.defocus is None or not train_estimator else model.defocus.estimator
    if model.prior is None:
        return _trainable(estimator, model.network)
    return _trainable(estimator, model.network, model.prior.encoder_lq, model.prior.denoiser)


def stage1_parameters(model: Restorer) -> list[nn.Parameter]:
    """Stage 1: the network, the teacher (with a prior) and the blur estimator (with a front end).

    The LQ encoder and the denoiser get no gradient in stage 1.
    """
    model.requires_grad_(False)
    teacher = None if model.prior is None else model.prior.encoder_gt
    estimator = None if model.defocus is None else model.defocus.estimator
    return _trainable(model.network, teacher, estimator)


def training_front(
    model: Restorer, batch: Batch, true_map_fraction: float
) -> FrontEndOutput | None:
    """The front end's output for a training batch, where a share of the images is blended by
    the true radius map instead of the estimate.

    A network trained only on estimated blends learns to distrust them (it pulls its output back
    towards the blurry input), and then undoes a correct blend too; fed the true-map blend for a
    share of the images, it learns what a correct blend looks like. The first
    round(`true_map_fraction` x B) images of the batch take the map (the batch's order is random).
    Without a front end, a map or a share, this is `model.front`.
    """
    if model.defocus is None or batch.radius_px is None or true_map_fraction <= 0:
        return model.front(batch.blurry)
    count = round(true_map_fraction * batch.blurry.shape[0])
    use_map = torch.arange(batch.blurry.shape[0], device=batch.blurry.device) < count  # (B,)
    return model.defocus(batch.blurry, batch.radius_px, use_map)


def stage1_loss(
    model: Restorer, batch: Batch, radius_weight: float, true_map_fraction: float = 0.0
) -> Losses:
    """Stage-1 forward: restore with the teacher's latent (or plainly, without a prior)."""
    front = training_front(model, batch, true_map_fraction)
    image_in = model.network_input(batch.blurry, front)
    cond = None if model.prior is None else _teacher_latent(model, image_in, batch.sharp)
    restored = model.network(image_in, cond=cond)
    return _image_losses(restored, batch.sharp, _radius_term(model, front, batch), radius_weight)


def stage2_parameters(model: Restorer, fine_tune_decoder: bool = True) -> list[nn.Parameter]:
    """Freeze the front end, the teacher and the network's encoder; return what stage 2 trains.

    Args:
        model: a Restorer with a prior.
        fine_tune_decoder: also train the network's decoder, refinement, skip, head and FiLM
            (the design); False freezes the whole network (the ablation).

    Returns:
        The LQ encoder's and the denoiser's parameters, then the network's trained ones, each
        with `requires_grad` set; every other parameter has `requires_grad` cleared.
    """
    if model.prior is None:
        raise ValueError("stage 2 needs a model with a prior")
    model.requires_grad_(False)
    trainable = _trainable(model.prior.encoder_lq, model.prior.denoiser)
    if fine_tune_decoder:
        for name, param in model.network.named_parameters():
            if not is_encoder_parameter(name):
                param.requires_grad_(True)
                trainable.append(param)
    return trainable


def stage2_loss(
    model: Restorer,
    batch: Batch,
    generator: torch.Generator | None = None,
    true_map_fraction: float = 0.0,
) -> Losses:
    """Stage-2 forward: the whole reverse chain from q(z_T | z_gt), then restore with hat z_0.

    Args:
        model: a Restorer with a prior (front end, teacher and encoder frozen).
        batch: the pairs.
        generator: noise source of the chain; None = torch's global generator.
        true_map_fraction: share of the images blended by the true radius map
            (`training_front`).
    """
    assert model.prior is not None
    with torch.no_grad():
        front = training_front(model, batch, true_map_fraction)
        image_in = model.network_input(batch.blurry, front)
        z_gt = _teacher_latent(model, image_in, batch.sharp)
    z0_hat = model.prior.reconstruct(model.network.pad(image_in), z_gt, generator)
    restored = model.network(image_in, cond=z0_hat)
    latent = F.l1_loss(z0_hat, z_gt)
    image = F.l1_loss(restored, batch.sharp)
    return Losses(
        total=latent + image,
        image=image.detach(),
        latent=latent.detach(),
        radius=None,
        restored=restored.detach(),
    )


def blend_restore(model: Restorer, batch: Batch, _generator: torch.Generator) -> Tensor:
    """Stage-0 validation: the front end's blend."""
    front = model.front(batch.blurry)
    assert front is not None
    return front.blend


def teacher_restore(model: Restorer, batch: Batch, _generator: torch.Generator) -> Tensor:
    """Stage-1 validation with a prior: z from the teacher, which sees the sharp image."""
    image_in = model.network_input(batch.blurry, model.front(batch.blurry))
    cond = None if model.prior is None else _teacher_latent(model, image_in, batch.sharp)
    return model.network(image_in, cond=cond)


def deployed_restore(model: Restorer, batch: Batch, generator: torch.Generator) -> Tensor:
    """What inference runs (`Restorer.restore`), with the validation's generator."""
    return model.restore(batch.blurry, generator=generator)
