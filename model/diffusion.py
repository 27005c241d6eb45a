"""The noise schedule and sampler of the latent diffusion prior (DDPM, x0-parameterised).

The process is separate from the networks: `GaussianDiffusion` holds only the schedule and
takes the denoiser as a callable, so the same code serves training (the whole reverse chain
with gradients, as DiffIR does) and inference. All randomness comes through an explicit
`torch.Generator`; with the same generator state the sampler returns the same latent.

The schedule is short (T = 4 by default) with large linear betas (0.1 -> 0.99, DiffIR's
values), so `alpha_bar_T` is about 0.002 and `z_T` is nearly pure noise: inference may start
from `N(0, I)` while training starts from `q(z_T | z_0)` without a mismatch worth the name.

Notation (Ho et al. 2020, arXiv 2006.11239; Xia et al. 2023, DiffIR, arXiv 2303.09472):
    T                  `steps`              number of steps the prior was trained with
    t                  `t`                  step index in 1..T (0 = the clean latent)
    beta_t             `betas[t - 1]`       noise added at step t
    alpha_bar_t        `alpha_bars[t]`      prod_{s <= t} (1 - beta_s); alpha_bar_0 = 1
    z_0                `z_0`                the clean latent (the teacher's `z_gt` in training)
    z_t                `z_t`                the latent after t noising steps
    epsilon            `noise`              standard normal noise
    hat z_0            `z0_hat`             the denoiser's estimate of z_0 (x0-parameterisation)
    tau_1 > ... > tau_S  `timesteps`        the steps a sampler visits (S <= T, respaced)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

# (z_t, t) -> hat z_0; t is a (B,) int64 tensor of step indices in 1..T.
Denoise = Callable[[Tensor, Tensor], Tensor]


def linear_betas(steps: int, beta_start: float, beta_end: float) -> tuple[float, ...]:
    """Linearly spaced betas for `steps` steps, the last one always `beta_end`.

    Args:
        steps: T >= 1. With T = 1 the single beta is `beta_end`, so z_1 is still mostly noise.
        beta_start: beta_1, in (0, 1).
        beta_end: beta_T, in (0, 1) and >= beta_start.

    Returns:
        (beta_1, ..., beta_T) as Python floats.
    """
    if steps < 1:
        raise ValueError(f"diffusion steps must be >= 1, got {steps}")
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(
            f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}"
        )
    if steps == 1:
        return (beta_end,)
    step = (beta_end - beta_start) / (steps - 1)
    return tuple(beta_start + i * step for i in range(steps))


def respaced_timesteps(steps: int, sample_steps: int) -> list[int]:
    """The steps a sampler with `sample_steps` <= T visits, from T down, evenly spread.

    Args:
        steps: T, the number of steps the prior was trained with.
        sample_steps: S in 1..T. S = T visits every step.

    Returns:
        [tau_1, ..., tau_S], strictly decreasing, tau_1 = T, tau_S >= 1.
    """
    if not 1 <= sample_steps <= steps:
        raise ValueError(
            f"sampling steps must be in 1..{steps} (the prior was trained with T={steps}), "
            f"got {sample_steps}"
        )
    if sample_steps == 1:
        return [steps]
    # Spread S points over [T, 1]; points are >= 1 apart (S <= T), so rounding half up
    # keeps them distinct.
    spacing = (steps - 1) / (sample_steps - 1)
    return [math.floor(steps - i * spacing + 0.5) for i in range(sample_steps)]


class GaussianDiffusion:
    """A DDPM schedule with an x0-parameterised ancestral sampler.

    Args:
        steps: T.
        beta_start: beta_1.
        beta_end: beta_T.
    """

    def __init__(self, steps: int, beta_start: float, beta_end: float) -> None:
        self.betas = linear_betas(steps, beta_start, beta_end)
        alpha_bars = [1.0]
        for beta in self.betas:
            alpha_bars.append(alpha_bars[-1] * (1.0 - beta))
        self.alpha_bars: tuple[float, ...] = tuple(alpha_bars)  # (T + 1,), index = t

    @property
    def steps(self) -> int:
        """T, the number of steps of the schedule."""
        return len(self.betas)

    def q_sample(self, z_0: Tensor, t: int, noise: Tensor) -> Tensor:
        """Noise a clean latent to step t: z_t = sqrt(alpha_bar_t) z_0 + sqrt(1 - alpha_bar_t) eps.

        Args:
            z_0: (B, Cz, h, w) clean latent.
            t: step in 0..T.
            noise: epsilon, same shape as `z_0`.

        Returns:
            z_t, (B, Cz, h, w).
        """
        if not 0 <= t <= self.steps:
            raise ValueError(f"step must be in 0..{self.steps}, got {t}")
        alpha_bar = self.alpha_bars[t]
        return math.sqrt(alpha_bar) * z_0 + math.sqrt(1.0 - alpha_bar) * noise

    def posterior_step(
        self, z_t: Tensor, z0_hat: Tensor, t: int, t_prev: int, noise: Tensor | None
    ) -> Tensor:
        """Draw z_{t_prev} from q(z_{t_prev} | z_t, z_0 = hat z_0), for 0 <= t_prev < t.

        This is the DDPM posterior for the (possibly respaced) jump t -> t_prev; for t_prev = 0
        it is exactly `z0_hat` (zero variance), so the last step adds no noise.

        Args:
            z_t: (B, Cz, h, w).
            z0_hat: (B, Cz, h, w) the denoiser's estimate of z_0.
            t: current step, 1..T.
            t_prev: next step, 0..t-1.
            noise: epsilon for the step, same shape as `z_t`; unused (may be None) when t_prev = 0.

        Returns:
            z_{t_prev}, (B, Cz, h, w).
        """
        if not 0 <= t_prev < t <= self.steps:
            raise ValueError(f"need 0 <= t_prev < t <= {self.steps}, got t={t}, t_prev={t_prev}")
        if t_prev == 0:
            return z0_hat
        if noise is None:
            raise ValueError("a step that does not end at z_0 needs noise")
        alpha_bar, alpha_bar_prev = self.alpha_bars[t], self.alpha_bars[t_prev]
        alpha = alpha_bar / alpha_bar_prev  # the effective alpha of the jump t -> t_prev
        beta = 1.0 - alpha
        coef_z0 = math.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar)
        coef_zt = math.sqrt(alpha) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        variance = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        return coef_z0 * z0_hat + coef_zt * z_t + math.sqrt(variance) * noise

    def reverse(
        self,
        denoise: Denoise,
        z_T: Tensor,
        timesteps: Sequence[int],
        generator: torch.Generator | None,
    ) -> Tensor:
        """Run the reverse chain from z_{tau_1} through `timesteps` down to hat z_0.

        Differentiable: in training the gradients flow through every step.

        Args:
            denoise: (z_t, t) -> hat z_0, t a (B,) int64 tensor.
            z_T: (B, Cz, h, w), the latent at step `timesteps[0]`.
            timesteps: strictly decreasing steps in 1..T (see `respaced_timesteps`).
            generator: source of the per-step noise; None = torch's global generator
                (training, where the trainer seeds it).

        Returns:
            hat z_0, (B, Cz, h, w).
        """
        if not timesteps or any(a <= b for a, b in itertools.pairwise(timesteps)):
            raise ValueError(f"timesteps must be non-empty and strictly decreasing: {timesteps}")
        z_t = z_T
        for i, t in enumerate(timesteps):
            t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else 0
            t_batch = torch.full((z_t.shape[0],), t, dtype=torch.int64, device=z_t.device)
            z0_hat = denoise(z_t, t_batch)
            noise = gaussian_like(z_t, generator) if t_prev > 0 else None
            z_t = self.posterior_step(z_t, z0_hat, t, t_prev, noise)
        return z_t

    def sample(
        self,
        denoise: Denoise,
        shape: tuple[int, int, int, int],
        device: torch.device,
        sample_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw hat z_0 starting from z_T ~ N(0, I) (inference).

        Args:
            denoise: (z_t, t) -> hat z_0.
            shape: (B, Cz, h, w) of the latent.
            device: where the latent lives.
            sample_steps: S in 1..T (None = T); fewer steps visit a respaced subset.
            generator: source of z_T and of every step's noise. A CPU generator gives the
                same draws whatever `device` is, so a job is reproducible across devices.

        Returns:
            hat z_0, `shape`, float32 on `device`.
        """
        steps = self.steps if sample_steps is None else sample_steps
        timesteps = respaced_timesteps(self.steps, steps)
        z_T = gaussian(shape, device, generator)
        return self.reverse(denoise, z_T, timesteps, generator)


def gaussian(
    shape: Sequence[int], device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """Standard normal float32 noise of `shape` on `device`, drawn from `generator`.

    The draw happens on the generator's own device and is then moved, so a CPU generator
    yields the same numbers whether the model runs on the CPU or a GPU.
    """
    draw_device = generator.device if generator is not None else device
    noise = torch.randn(tuple(shape), generator=generator, device=draw_device)
    return noise.to(device)


def gaussian_like(reference: Tensor, generator: torch.Generator | None) -> Tensor:
    """`gaussian` with the shape, device and dtype of `reference`."""
    return gaussian(reference.shape, reference.device, generator).to(reference.dtype)
