"""The deployable model: defocus front end (optional), Swintormer network, diffusion prior
(optional), built from one `ModelConfig`.

`Restorer` is what the worker, `swintormer deblur`, evaluation and training hold. The data flow:

    blurry (B, 3, H, W) -> [front end: Wiener bank blended by the blur estimator -> blend]
    -> network input: blurry, or cat(blend, blurry) (B, 6, H, W) with the front end
    -> [prior: z drawn from the network input, padded as the network pads it]
    -> network (FiLM-conditioned on z) -> restored (B, 3, H, W)

With the front end the network's global residual lands on the blend (its first 3 input
channels), so the network predicts what the analytic inverse got wrong. Without a prior and a
front end it is exactly the plain network (same call, same numerics). `save_restorer` /
`load_restorer` put every part and the `ModelConfig` in one safetensors checkpoint
(`model.checkpoint`).

Under `model.tiling.restore_tiled` everything runs per tile: each tile's blur estimate and z come
from that tile's pixels only, so memory is bounded by the tile size and tiles never wait on
each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from model.checkpoint import CheckpointError, check_state_dict, read_checkpoint, save_checkpoint
from model.config import ModelConfig
from model.defocus import DefocusFrontEnd, FrontEndOutput
from model.diffusion import Generators
from model.prior import LatentPrior
from model.reblur import radius_evidence
from model.swintormer import Swintormer

# The seed of the generators `restore` uses when the caller passes none: a job's result then
# depends only on its pixels and the weights, never on what ran before it.
DEFAULT_SEED = 0


def image_generators(seed: int, count: int, device: torch.device) -> list[torch.Generator]:
    """`count` generators on `device`, each seeded with `seed` (one per image or tile)."""
    return [torch.Generator(device).manual_seed(seed) for _ in range(count)]


@dataclass(frozen=True)
class Restoration:
    """A restored batch and what the model estimated on the way.

    restored: (B, 3, H, W), not clamped.
    radius_px: (B, 1, H, W) estimated defocus radius in pixels, or None without a front end.
    """

    restored: Tensor
    radius_px: Tensor | None

    def stacked(self) -> Tensor:
        """Float32 (B, 3, H, W), or (B, 4, H, W) with the radius map after the image, so that
        tiling (`model.tiling.restore_tiled`) stitches the map like the image."""
        if self.radius_px is None:
            return self.restored.float()
        return torch.cat([self.restored.float(), self.radius_px.float()], dim=1)


class Restorer(nn.Module):
    """Front end (optional) + prior (optional) + network: blurry -> restored (B, 3, H, W).

    Args:
        network: the Swintormer.
        prior: the latent diffusion prior, or None.
        defocus: the defocus front end, or None.

    Raises:
        ValueError: the parts do not fit together (see `ModelConfig`).
    """

    def __init__(
        self,
        network: Swintormer,
        prior: LatentPrior | None,
        defocus: DefocusFrontEnd | None = None,
    ) -> None:
        super().__init__()
        self.config = ModelConfig(
            network.config,
            None if prior is None else prior.config,
            None if defocus is None else defocus.config,
        )
        self.network = network
        self.prior = prior
        self.defocus = defocus

    @property
    def size_multiple(self) -> int:
        """The network's input multiple (inputs of any size work; this is what tiles should be)."""
        return self.network.size_multiple

    @property
    def stacked_channels(self) -> int:
        """Channels of `Restoration.stacked()`: 3, or 4 with a defocus front end."""
        return 3 if self.defocus is None else 4

    @property
    def image_channels(self) -> int:
        """Channels of the image `restore` takes (3, or 6 for a dual-pixel network)."""
        return self.config.image_channels

    def front(self, blurry: Tensor) -> FrontEndOutput | None:
        """The front end's output for `blurry` (B, 3, H, W) in [0, 1] (None without one)."""
        return None if self.defocus is None else self.defocus(blurry)

    @staticmethod
    def network_input(blurry: Tensor, front: FrontEndOutput | None) -> Tensor:
        """What the network and the prior read: blurry, or cat(blend, blurry) (B, 6, H, W)."""
        return blurry if front is None else torch.cat([front.blend, blurry], dim=1)

    def run(
        self,
        blurry: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        front: FrontEndOutput | None = None,
        refine_blur: bool = False,
    ) -> Restoration:
        """Restore a batch; also return the estimated defocus map.

        Args:
            blurry: (B, C, H, W) in [0, 1], any H and W (C = `image_channels`).
            steps: sampling steps S in 1..T of the prior (None = T); ignored without a prior.
            generator: source of the prior's noise for the whole batch. None = one fresh
                generator per image on `blurry`'s device, each seeded with `seed`: an image (or
                tile) then gets the same result whatever else is in its batch, so tiled output
                does not depend on the tile batch size (nor on out-of-memory batch halving).
                Drawing on the device spares a GPU a blocking host-to-device copy per sampling
                step; the price is that a CUDA run's noise differs from a CPU run's for the
                same seed (each device type is reproducible on its own).
            seed: the per-image seed when `generator` is None (None = `DEFAULT_SEED`); a
                job's seed belongs here rather than in a generator shared by its tile batches.
            front: the front end's output to use instead of computing it (ablations: a true
                radius map, uniform weights); ignored without a front end.
            refine_blur: restore twice (with a front end and no `front` given): the second
                pass blends the bank by the estimate updated with the evidence of re-blurring
                the first pass's restoration (`model.reblur`); its radius map is returned.
        """
        if self.defocus is None:
            front = None
        elif front is None and refine_blur:
            first = self.run(blurry, steps, generator, seed)
            evidence = radius_evidence(first.restored, blurry, self.defocus.config.radii_px)
            front = self.defocus(blurry, radius_evidence=evidence)
        elif front is None:
            front = self.front(blurry)
        image = self.network_input(blurry, front)
        radius = None if front is None else front.radius_px
        if self.prior is None:
            return Restoration(self.network(image), radius)
        generators: Generators = generator
        if generator is None:
            image_seed = DEFAULT_SEED if seed is None else seed
            generators = image_generators(image_seed, len(blurry), blurry.device)
        z = self.prior.sample(self.network.pad(image), steps, generators)
        return Restoration(self.network(image, cond=z), radius)

    def restore(
        self,
        blurry: Tensor,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> Tensor:
        """`run(...).restored`: (B, 3, H, W), not clamped."""
        return self.run(blurry, steps, generator, seed).restored

    def forward(self, blurry: Tensor) -> Tensor:
        """`restore(blurry)` with the defaults."""
        return self.restore(blurry)


def build_restorer(config: ModelConfig) -> Restorer:
    """A freshly initialised model for `config` (seed torch first for reproducible weights)."""
    return Restorer(
        Swintormer(config.network),
        None if config.prior is None else LatentPrior(config.prior),
        None if config.defocus is None else DefocusFrontEnd(config.defocus),
    )


def save_restorer(
    path: str | Path, restorer: Restorer, provenance: dict[str, object] | None = None
) -> None:
    """Write every part's weights and the `ModelConfig` to one safetensors checkpoint."""
    save_checkpoint(path, restorer.state_dict(), restorer.config, provenance)


def load_restorer(path: str | Path, device: str | torch.device = "cpu") -> Restorer:
    """Rebuild a `Restorer` (eval mode, on `device`) from a checkpoint.

    Raises:
        CheckpointError: unreadable, or weights that do not fit the stored config (named).
    """
    loaded = read_checkpoint(path)
    try:
        restorer = build_restorer(loaded.config)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error
    check_state_dict(restorer.state_dict(), loaded.tensors, f"{path} into {loaded.config}")
    restorer.load_state_dict(loaded.tensors)
    return restorer.to(device).eval()
