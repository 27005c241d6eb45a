"""The two training stages of the prior, as plain functions a trainer calls (docs/prior.md).

Stage 1: the network and the teacher `PriorEncoderGT` learn together; the network sees
z_gt = teacher(blurry, sharp) and the loss is L1(restored, sharp).

Stage 2: the teacher and the network's encoder (stem, encoder levels, latent level) are frozen.
`PriorEncoderLQ` and `LatentDenoiser` learn to reproduce z_gt from the blurry image alone by
running the whole reverse chain from q(z_T | z_gt) (DiffIR), and the decoder, refinement and
head are fine-tuned on the latent they produce. The loss is
L1(hat z_0, z_gt) + L1(network(blurry, hat z_0), sharp).

Each stage has a `*_parameters` function (what the optimiser gets; stage 2 also sets
`requires_grad` so frozen weights get no gradients), a `*_loss` function (forward only: the
trainer may wrap it in autocast and do its own backward, clipping and EMA) and a `*_step`
function that does one plain optimiser step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.prior import LatentPrior
from model.swintormer import ENCODER_PREFIXES, Swintormer, pad_to_multiple


@dataclass(frozen=True)
class StageLoss:
    """One batch's losses. `total` carries the graph; the parts are detached, for logging."""

    total: Tensor  # scalar to backpropagate
    image: Tensor  # L1(restored, sharp)
    latent: Tensor | None  # L1(hat z_0, z_gt); None in stage 1
    restored: Tensor  # (B, 3, H, W) the network's output, for PSNR and previews


def is_encoder_parameter(name: str) -> bool:
    """Whether a network parameter name belongs to the encoder that stage 2 freezes."""
    return name.split(".", 1)[0] in ENCODER_PREFIXES


def stage1_parameters(network: Swintormer, prior: LatentPrior) -> list[nn.Parameter]:
    """Everything stage 1 trains: the whole network and the teacher (all set trainable)."""
    params = [*network.parameters(), *prior.encoder_gt.parameters()]
    for param in params:
        param.requires_grad_(True)
    return params


def stage2_parameters(
    network: Swintormer, prior: LatentPrior, fine_tune_decoder: bool = True
) -> list[nn.Parameter]:
    """Freeze the teacher and the network's encoder; return what stage 2 trains.

    Args:
        network: the conditioned Swintormer.
        prior: the prior.
        fine_tune_decoder: also train the network's decoder, refinement, skip, head and FiLM
            (the design); False freezes the whole network (the ablation).

    Returns:
        The LQ encoder's and the denoiser's parameters, then the network's trained ones, each
        with `requires_grad` set; every other parameter has `requires_grad` cleared.
    """
    prior.encoder_gt.requires_grad_(False)
    prior.encoder_lq.requires_grad_(True)
    prior.denoiser.requires_grad_(True)
    trainable = [*prior.encoder_lq.parameters(), *prior.denoiser.parameters()]
    for name, param in network.named_parameters():
        is_trained = fine_tune_decoder and not is_encoder_parameter(name)
        param.requires_grad_(is_trained)
        if is_trained:
            trainable.append(param)
    return trainable


def stage1_loss(
    network: Swintormer, prior: LatentPrior, blurry: Tensor, sharp: Tensor
) -> StageLoss:
    """Stage-1 forward: restore with the teacher's latent.

    Args:
        network: the Swintormer, `cond_channels` = the prior's Cz.
        prior: its teacher is used.
        blurry: (B, C_in, H, W) in [0, 1].
        sharp: (B, 3, H, W) in [0, 1].
    """
    z_gt = _teacher_latent(network, prior, blurry, sharp)
    restored = network(blurry, cond=z_gt)
    image = F.l1_loss(restored, sharp)
    return StageLoss(total=image, image=image.detach(), latent=None, restored=restored.detach())


def stage2_loss(
    network: Swintormer,
    prior: LatentPrior,
    blurry: Tensor,
    sharp: Tensor,
    generator: torch.Generator | None = None,
) -> StageLoss:
    """Stage-2 forward: the whole reverse chain from q(z_T | z_gt), then restore with hat z_0.

    Args:
        network: the Swintormer (encoder frozen by `stage2_parameters`).
        prior: teacher (frozen), LQ encoder and denoiser.
        blurry: (B, C_in, H, W) in [0, 1].
        sharp: (B, 3, H, W) in [0, 1].
        generator: noise source of the chain; None = torch's global generator.
    """
    with torch.no_grad():
        z_gt = _teacher_latent(network, prior, blurry, sharp)
    padded = pad_to_multiple(blurry, network.size_multiple)
    z0_hat = prior.reconstruct(padded, z_gt, generator)
    restored = network(blurry, cond=z0_hat)
    latent = F.l1_loss(z0_hat, z_gt)
    image = F.l1_loss(restored, sharp)
    return StageLoss(
        total=latent + image,
        image=image.detach(),
        latent=latent.detach(),
        restored=restored.detach(),
    )


def stage1_step(
    network: Swintormer,
    prior: LatentPrior,
    optimizer: torch.optim.Optimizer,
    blurry: Tensor,
    sharp: Tensor,
) -> StageLoss:
    """One stage-1 optimiser step on a batch (optimizer over `stage1_parameters`)."""
    loss = stage1_loss(network, prior, blurry, sharp)
    _apply(optimizer, loss)
    return loss


def stage2_step(
    network: Swintormer,
    prior: LatentPrior,
    optimizer: torch.optim.Optimizer,
    blurry: Tensor,
    sharp: Tensor,
    generator: torch.Generator | None = None,
) -> StageLoss:
    """One stage-2 optimiser step on a batch (optimizer over `stage2_parameters`)."""
    loss = stage2_loss(network, prior, blurry, sharp, generator)
    _apply(optimizer, loss)
    return loss


def _teacher_latent(
    network: Swintormer, prior: LatentPrior, blurry: Tensor, sharp: Tensor
) -> Tensor:
    """z_gt on the network's bottleneck grid: both images padded as the network pads."""
    multiple = network.size_multiple
    return prior.encoder_gt(pad_to_multiple(blurry, multiple), pad_to_multiple(sharp, multiple))


def _apply(optimizer: torch.optim.Optimizer, loss: StageLoss) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    optimizer.step()
