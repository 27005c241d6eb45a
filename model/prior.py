"""The latent diffusion prior: encoders, denoiser and the module that ties them together.

Our design (docs/prior.md), in the spirit of DiffIR (Xia et al., ICCV 2023, arXiv 2303.09472):
a coarse spatial latent z of Cz channels at 1/16 of the image resolution (the network's
bottleneck grid) conditions Swintormer's decoder through FiLM. The released Swintormer code
has no working prior, so nothing here mirrors it.

- `PriorEncoderGT`, the teacher (stage 1 only): cat(blurry, sharp) -> z_gt.
- `PriorEncoderLQ`: blurry -> c, the condition of the denoiser.
- `LatentDenoiser`: (z_t, c, t) -> hat z_0, a small residual conv net at the latent grid.
- `LatentPrior`: the three plus the schedule; `sample(blurry)` is what inference runs.

Notation (see model/diffusion.py): T = `PriorConfig.steps`, Cz = `PriorConfig.latent_channels`,
z_gt = z_0 from the teacher, c = `cond`, t = step index in 1..T, hat z_0 = `z0_hat`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from model.config import LATENT_STRIDE, PriorConfig
from model.diffusion import Denoise, GaussianDiffusion, Generators, gaussian_like


class ResBlock(nn.Module):
    """x + conv3x3(act(conv3x3(x) + shift)), with an optional per-channel shift (the timestep)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor, shift: Tensor | None = None) -> Tensor:
        """(B, C, h, w) [+ shift (B, C)] -> (B, C, h, w)."""
        y = self.conv1(x)
        if shift is not None:
            y = y + shift[:, :, None, None]
        return x + self.conv2(self.act(y))


class LatentEncoder(nn.Module):
    """Image (B, C_in, H, W), H and W multiples of 16 -> latent (B, Cz, H/16, W/16).

    PixelUnshuffle(4) puts the first conv at 1/4 resolution (cheap), then a residual block per
    resolution with stride-2 convs between: 1/4 (w) -> 1/8 (2w) -> 1/16 (2w), 1x1 to Cz.
    """

    def __init__(self, in_channels: int, width: int, latent_channels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(4), nn.Conv2d(in_channels * 16, width, 3, padding=1)
        )
        self.body = nn.Sequential(
            ResBlock(width),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            ResBlock(2 * width),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            ResBlock(2 * width),
        )
        self.head = nn.Conv2d(2 * width, latent_channels, 1)

    def forward(self, image: Tensor) -> Tensor:
        """(B, C_in, H, W) in [0, 1] -> (B, Cz, H/16, W/16)."""
        _check_grid(image)
        return self.head(self.body(self.stem(2.0 * image - 1.0)))


class PriorEncoderGT(nn.Module):
    """The teacher: (blurry, sharp) -> z_gt. Trained in stage 1, frozen in stage 2."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.encoder = LatentEncoder(
            config.in_channels + config.target_channels,
            config.encoder_width,
            config.latent_channels,
        )

    def forward(self, blurry: Tensor, sharp: Tensor) -> Tensor:
        """blurry (B, C_in, H, W), sharp (B, C_t, H, W) in [0, 1] -> z_gt (B, Cz, H/16, W/16)."""
        if blurry.shape[-2:] != sharp.shape[-2:]:
            raise ValueError(f"blurry {tuple(blurry.shape)} and sharp {tuple(sharp.shape)} differ")
        return self.encoder(torch.cat([blurry, sharp], dim=1))


class PriorEncoderLQ(nn.Module):
    """The condition encoder: blurry -> c, the same grid and channels as z."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.encoder = LatentEncoder(
            config.in_channels, config.encoder_width, config.latent_channels
        )

    def forward(self, blurry: Tensor) -> Tensor:
        """blurry (B, C_in, H, W) in [0, 1] -> c (B, Cz, H/16, W/16)."""
        return self.encoder(blurry)


class LatentDenoiser(nn.Module):
    """(z_t, c, t) -> hat z_0: residual conv blocks at the latent grid, told t by a shift."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        width = config.denoiser_width
        self.width = width
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Conv2d(2 * config.latent_channels, width, 1)
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(config.denoiser_blocks))
        self.out = nn.Conv2d(width, config.latent_channels, 1)

    def forward(self, z_t: Tensor, cond: Tensor, t: Tensor) -> Tensor:
        """z_t, cond (B, Cz, h, w); t (B,) int64 in 1..T -> hat z_0 (B, Cz, h, w)."""
        if z_t.shape != cond.shape:
            raise ValueError(f"z_t {tuple(z_t.shape)} and cond {tuple(cond.shape)} differ")
        shift = self.time_mlp(timestep_embedding(t, self.width).to(z_t.dtype))  # (B, width)
        x = self.inp(torch.cat([z_t, cond], dim=1))
        for block in self.blocks:
            x = block(x, shift)
        return self.out(x)


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of integer steps (Vaswani et al. 2017): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / max(half, 1))
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        embedding = nn.functional.pad(embedding, (0, 1))
    return embedding


class LatentPrior(nn.Module):
    """The whole prior: teacher, condition encoder, denoiser and schedule.

    Inference runs `sample(blurry)`: c = PriorEncoderLQ(blurry), z_T ~ N(0, I), then the
    reverse chain. Stage-2 training runs `reconstruct(blurry, z_gt)`, which starts the chain
    from q(z_T | z_gt) instead (DiffIR). The teacher is kept in the module so stage 2 can
    resume from a checkpoint; inference never runs it.
    """

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder_gt = PriorEncoderGT(config)
        self.encoder_lq = PriorEncoderLQ(config)
        self.denoiser = LatentDenoiser(config)
        self.diffusion = GaussianDiffusion(config.steps, config.beta_start, config.beta_end)

    def sample(
        self, blurry: Tensor, steps: int | None = None, generator: Generators = None
    ) -> Tensor:
        """Draw z for a blurry batch.

        Args:
            blurry: (B, C_in, H, W) in [0, 1], H and W multiples of 16.
            steps: sampling steps S in 1..T (None = T).
            generator: source of every random draw: one generator, one per batch item, or
                None (torch's global generator); see `model.diffusion.Generators`.

        Returns:
            z, (B, Cz, H/16, W/16).
        """
        cond = self.encoder_lq(blurry)
        shape = (cond.shape[0], cond.shape[1], cond.shape[2], cond.shape[3])
        denoise = self._denoise_given(cond)
        return self.diffusion.sample(denoise, shape, cond.device, steps, generator, cond.dtype)

    def reconstruct(self, blurry: Tensor, z_gt: Tensor, generator: Generators = None) -> Tensor:
        """Noise z_gt to step T, then run the whole reverse chain (stage-2 training).

        Args:
            blurry: (B, C_in, H, W) in [0, 1].
            z_gt: (B, Cz, H/16, W/16), the teacher's latent (treated as a constant).
            generator: noise source (see `model.diffusion.Generators`).

        Returns:
            hat z_0, (B, Cz, H/16, W/16), differentiable w.r.t. the LQ encoder and denoiser.
        """
        cond = self.encoder_lq(blurry)
        if cond.shape != z_gt.shape:
            raise ValueError(f"z_gt {tuple(z_gt.shape)} does not match c {tuple(cond.shape)}")
        steps = self.diffusion.steps
        z_T = self.diffusion.q_sample(z_gt.detach(), steps, gaussian_like(z_gt, generator))
        timesteps = list(range(steps, 0, -1))
        return self.diffusion.reverse(self._denoise_given(cond), z_T, timesteps, generator)

    def _denoise_given(self, cond: Tensor) -> Denoise:
        """The denoiser with its condition bound: (z_t, t) -> hat z_0."""

        def denoise(z_t: Tensor, t: Tensor) -> Tensor:
            return self.denoiser(z_t, cond, t)

        return denoise


def _check_grid(image: Tensor) -> None:
    if image.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if h % LATENT_STRIDE or w % LATENT_STRIDE:
        raise ValueError(
            f"prior input must be a multiple of {LATENT_STRIDE} px on each side, got {h}x{w} "
            "(pad it first, as Restorer does)"
        )
