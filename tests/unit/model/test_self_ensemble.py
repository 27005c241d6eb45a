"""Self-ensemble: every copy is turned back exactly, so the average is the symmetrised function."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from model.self_ensemble import ENSEMBLE_SIZES, TileFn, self_ensemble


def _d4_images(kernel: Tensor) -> list[Tensor]:
    """The 8 images of a (.., k, k) kernel under the symmetries of the square."""
    turned = [torch.rot90(kernel, turns, dims=(-2, -1)) for turns in range(4)]
    return turned + [k.flip(-1) for k in turned]


def _conv(kernel: Tensor) -> TileFn:
    def fn(tiles: Tensor) -> Tensor:  # (N, 1, H, W) -> (N, 1, H, W), zero padded
        return F.conv2d(tiles, kernel, padding=kernel.shape[-1] // 2)

    return fn


@pytest.mark.parametrize("size", ENSEMBLE_SIZES)
def test_every_copy_is_turned_back(size: int) -> None:
    tiles = torch.rand(2, 3, 12, 20)  # not square: odd quarter turns swap height and width
    restored = self_ensemble(lambda x: x * 2.0, size)(tiles)
    assert restored.shape == tiles.shape
    torch.testing.assert_close(restored, tiles * 2.0)


def test_size_one_is_the_function_itself() -> None:
    def fn(tiles: Tensor) -> Tensor:
        return tiles + 1.0

    assert self_ensemble(fn, 1) is fn


def test_eight_copies_average_a_filter_over_the_square_s_symmetries() -> None:
    torch.manual_seed(0)
    kernel = torch.randn(1, 1, 3, 3)  # no symmetry at all
    tiles = torch.rand(3, 1, 9, 14)
    ensembled = self_ensemble(_conv(kernel), 8)(tiles)
    symmetric = torch.stack(_d4_images(kernel)).mean(dim=0)
    expected = _conv(symmetric)(tiles)
    torch.testing.assert_close(ensembled, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(ensembled, _conv(kernel)(tiles), atol=1e-3)


@pytest.mark.parametrize(
    ("size", "images"),
    [(2, lambda k: [k, k.flip(-1)]), (4, lambda k: [k, k.flip(-1), k.flip(-2), k.flip(-2, -1)])],
)
def test_two_and_four_copies_average_over_the_flips(
    size: int, images: Callable[[Tensor], list[Tensor]]
) -> None:
    torch.manual_seed(1)
    kernel = torch.randn(1, 1, 3, 3)
    tiles = torch.rand(2, 1, 10, 7)
    expected = _conv(torch.stack(images(kernel)).mean(dim=0))(tiles)
    torch.testing.assert_close(
        self_ensemble(_conv(kernel), size)(tiles), expected, rtol=1e-5, atol=1e-6
    )


def test_a_filter_with_the_square_s_symmetries_is_unchanged() -> None:
    disk = torch.tensor([[0.5, 1.0, 0.5], [1.0, 2.0, 1.0], [0.5, 1.0, 0.5]])[None, None]
    tiles = torch.rand(1, 1, 11, 13)
    torch.testing.assert_close(self_ensemble(_conv(disk), 8)(tiles), _conv(disk)(tiles))


def test_the_output_may_have_other_channels_than_the_input() -> None:
    def fn(tiles: Tensor) -> Tensor:  # like `Restoration.stacked`: image + radius map
        return torch.cat([tiles, tiles.mean(dim=1, keepdim=True)], dim=1)

    tiles = torch.rand(1, 3, 8, 6)
    torch.testing.assert_close(self_ensemble(fn, 8)(tiles), fn(tiles))


def test_half_precision_copies_are_summed_in_float32() -> None:
    tiles = torch.full((1, 1, 4, 4), 1.0 + 2.0**-8, dtype=torch.bfloat16)
    restored = self_ensemble(lambda x: x, 8)(tiles)
    assert restored.dtype == torch.float32
    torch.testing.assert_close(restored, tiles.float())


@pytest.mark.parametrize("size", [0, 3, 16])
def test_other_sizes_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="1, 2, 4, 8"):
        self_ensemble(lambda x: x, size)
