"""The deployable model: a Swintormer network with its diffusion prior, or without one.

`Restorer` is what the worker, `swintormer deblur`, evaluation and training hold. With a prior
it draws z from the blurry input and feeds it to the network's FiLM hook; without one it is
exactly the plain network (same call, same numerics). `save_restorer` / `load_restorer` put
both in one safetensors checkpoint (`model.checkpoint`), the prior's config (with T) beside
the network's.

Under `model.tiling.restore_tiled` the prior runs per tile: each tile's z comes from that
tile's pixels only, so memory is bounded by the tile size and tiles never wait on each other.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from model.checkpoint import CheckpointError, check_state_dict, load_checkpoint, save_checkpoint
from model.prior import LatentPrior, PriorConfig
from model.swintormer import Swintormer, pad_to_multiple

# The seed of the generator `restore` uses when the caller passes none: a job's result then
# depends only on its pixels and the weights, never on what ran before it.
DEFAULT_SEED = 0


class Restorer(nn.Module):
    """Prior (optional) + network: blurry (B, C_in, H, W) -> restored (B, 3, H, W).

    Args:
        network: the Swintormer; with a prior its `cond_channels` must equal the prior's Cz.
        prior: the latent diffusion prior, or None for the plain network.
    """

    def __init__(self, network: Swintormer, prior: LatentPrior | None) -> None:
        super().__init__()
        if prior is not None:
            net, cfg = network.config, prior.config
            if net.cond_channels != cfg.latent_channels:
                raise ValueError(
                    f"the network's cond_channels ({net.cond_channels}) must equal the prior's "
                    f"latent_channels ({cfg.latent_channels})"
                )
            if net.in_channels != cfg.in_channels:
                raise ValueError(
                    f"the network takes {net.in_channels} input channels, the prior "
                    f"{cfg.in_channels}"
                )
        self.network = network
        self.prior = prior

    @property
    def size_multiple(self) -> int:
        """The network's input multiple (inputs of any size work; this is what tiles should be)."""
        return self.network.size_multiple

    def restore(
        self,
        blurry: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Restore a batch.

        Args:
            blurry: (B, C_in, H, W) in [0, 1], any H and W.
            steps: sampling steps S in 1..T of the prior (None = T); ignored without a prior.
            generator: source of the prior's noise. None = a fresh CPU generator seeded with
                `DEFAULT_SEED`, so the same input always gives the same output.

        Returns:
            (B, 3, H, W), not clamped.
        """
        if self.prior is None:
            return self.network(blurry)
        if generator is None:
            generator = torch.Generator().manual_seed(DEFAULT_SEED)
        # The prior sees the image padded exactly as the network pads it, so z lies on the
        # network's bottleneck grid (B, Cz, H_pad/16, W_pad/16).
        padded = pad_to_multiple(blurry, self.network.size_multiple)
        z = self.prior.sample(padded, steps, generator)
        return self.network(blurry, cond=z)

    def forward(self, blurry: Tensor) -> Tensor:
        """`restore(blurry)` with the defaults."""
        return self.restore(blurry)


def save_restorer(
    path: str | Path, restorer: Restorer, provenance: dict[str, object] | None = None
) -> None:
    """Write network + prior (weights and both configs) to one safetensors checkpoint."""
    prior = restorer.prior
    save_checkpoint(
        path,
        restorer.network,
        prior=prior,
        prior_config=prior.config.to_dict() if prior is not None else None,
        provenance=provenance,
    )


def load_restorer(path: str | Path, device: str | torch.device = "cpu") -> Restorer:
    """Rebuild a `Restorer` (eval mode, on `device`) from a checkpoint written by `save_restorer`.

    Raises:
        CheckpointError: the prior's config or weights are missing, extra or mismatched.
    """
    loaded = load_checkpoint(path, device)
    prior: LatentPrior | None = None
    if loaded.prior_state is not None or loaded.prior_config is not None:
        if loaded.prior_state is None or loaded.prior_config is None:
            raise CheckpointError(
                f"{path}: a prior needs both its config and its weights; this checkpoint has "
                f"only its {'config' if loaded.prior_state is None else 'weights'}"
            )
        try:
            config = PriorConfig.from_dict(loaded.prior_config)
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: bad prior config: {error}") from error
        prior = LatentPrior(config)
        check_state_dict(prior.state_dict(), loaded.prior_state, f"{path}: the prior's weights")
        prior.load_state_dict(loaded.prior_state)
        prior.to(device)
    return Restorer(loaded.network, prior).eval()
