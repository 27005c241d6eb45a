"""The schedule and the sampler: arithmetic, respacing, determinism under a generator."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

from model.diffusion import GaussianDiffusion, linear_betas, respaced_timesteps


def _shrink(z_t: Tensor, t: Tensor) -> Tensor:
    """A stand-in denoiser that depends on both arguments."""
    return 0.5 * z_t + 0.01 * t.float()[:, None, None, None]


def test_linear_betas_end_at_beta_end_for_every_T() -> None:
    for steps in (1, 2, 4, 8):
        betas = linear_betas(steps, 0.1, 0.99)
        assert len(betas) == steps
        assert betas[-1] == pytest.approx(0.99)
        assert betas[0] == pytest.approx(0.99 if steps == 1 else 0.1)


def test_alpha_bar_is_the_running_product() -> None:
    diffusion = GaussianDiffusion(4, 0.1, 0.99)
    expected = math.prod(1.0 - b for b in diffusion.betas)
    assert diffusion.alpha_bars[0] == 1.0
    assert diffusion.alpha_bars[4] == pytest.approx(expected)
    assert diffusion.alpha_bars[4] < 0.01  # z_T is nearly pure noise


@pytest.mark.parametrize(
    ("steps", "beta_start", "beta_end"),
    [(0, 0.1, 0.9), (4, 0.0, 0.9), (4, 0.5, 0.4), (4, 0.1, 1.0)],
)
def test_bad_schedules_are_rejected(steps: int, beta_start: float, beta_end: float) -> None:
    with pytest.raises(ValueError, match=r"steps|beta"):
        GaussianDiffusion(steps, beta_start, beta_end)


def test_respaced_timesteps_are_distinct_decreasing_and_start_at_T() -> None:
    for steps in range(1, 17):
        for sample_steps in range(1, steps + 1):
            ts = respaced_timesteps(steps, sample_steps)
            assert len(ts) == sample_steps
            assert ts[0] == steps
            assert ts[-1] >= 1
            assert all(a > b for a, b in itertools.pairwise(ts))
    assert respaced_timesteps(4, 4) == [4, 3, 2, 1]
    assert respaced_timesteps(8, 2) == [8, 1]


@pytest.mark.parametrize("sample_steps", [0, 5])
def test_respacing_outside_1_to_T_is_rejected(sample_steps: int) -> None:
    with pytest.raises(ValueError, match="trained with T=4"):
        respaced_timesteps(4, sample_steps)


def test_q_sample_at_zero_is_clean_and_at_T_matches_formula() -> None:
    diffusion = GaussianDiffusion(4, 0.1, 0.99)
    z_0, noise = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(diffusion.q_sample(z_0, 0, noise), z_0)
    a = diffusion.alpha_bars[4]
    expected = math.sqrt(a) * z_0 + math.sqrt(1 - a) * noise
    torch.testing.assert_close(diffusion.q_sample(z_0, 4, noise), expected)


def test_last_step_returns_the_estimate_and_posterior_of_exact_estimate_is_consistent() -> None:
    diffusion = GaussianDiffusion(4, 0.1, 0.99)
    z_t, z0_hat = torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 3)
    assert diffusion.posterior_step(z_t, z0_hat, 1, 0, None) is z0_hat
    # With alpha_bar_t -> alpha_bar_{t-1} and zero noise the posterior mean interpolates:
    # for z_t = sqrt(alpha_bar_t) z_0 (no noise) it must give sqrt(alpha_bar_{t-1}) z_0.
    z_0 = torch.randn(1, 2, 3, 3)
    z_2 = math.sqrt(diffusion.alpha_bars[2]) * z_0
    z_1 = diffusion.posterior_step(z_2, z_0, 2, 1, torch.zeros_like(z_0))
    torch.testing.assert_close(z_1, math.sqrt(diffusion.alpha_bars[1]) * z_0)


def test_sampler_is_deterministic_for_a_generator_and_differs_across_seeds() -> None:
    diffusion = GaussianDiffusion(4, 0.1, 0.99)
    shape = (2, 4, 3, 5)
    device = torch.device("cpu")

    def draw(seed: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed)
        return diffusion.sample(_shrink, shape, device, generator=generator)

    first, again, other = draw(7), draw(7), draw(8)
    assert first.shape == shape
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_sampler_visits_the_respaced_steps() -> None:
    diffusion = GaussianDiffusion(8, 0.1, 0.99)
    seen: list[int] = []

    def record(z_t: Tensor, t: Tensor) -> Tensor:
        seen.append(int(t[0]))
        return z_t

    diffusion.sample(record, (1, 1, 2, 2), torch.device("cpu"), 3, torch.Generator())
    assert seen == respaced_timesteps(8, 3)


def test_reverse_chain_is_differentiable() -> None:
    diffusion = GaussianDiffusion(4, 0.1, 0.99)
    scale = torch.ones((), requires_grad=True)

    def denoise(z_t: Tensor, t: Tensor) -> Tensor:
        return scale * z_t

    z0_hat = diffusion.reverse(denoise, torch.randn(1, 2, 3, 3), [4, 3, 2, 1], None)
    z0_hat.abs().sum().backward()
    assert scale.grad is not None
    assert scale.grad.abs() > 0
