"""Geometric self-ensemble: restore flipped and rotated copies of a tile, undo, average.

Defocus blur has no preferred orientation (a disk is symmetric under every flip and quarter
turn), but a trained network is not exactly equivariant: its errors on a mirrored image are
partly different errors. Averaging the restorations of the 2, 4 or 8 copies of a tile under the
symmetries of the square (the dihedral group D4; "self-ensemble" in EDSR, Lim et al., CVPRW
2017) cancels part of them at 2, 4 or 8 times the compute. The blur estimator's radius map,
stacked after the image by `Restoration.stacked`, is averaged the same way.

The copies are:
- 1: the tile itself (off);
- 2: itself and its mirror image (left-right);
- 4: the four flips (none, left-right, up-down, both = a half turn);
- 8: the four quarter turns, each also mirrored.

Each copy runs through the whole function, so with the diffusion prior every copy draws the
same seeded noise in its own orientation; a tile's result does not depend on the other tiles.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

TileFn = Callable[[Tensor], Tensor]  # (N, C, H, W) -> (N, C', H, W)

ENSEMBLE_SIZES = (1, 2, 4, 8)


def _transforms(size: int) -> list[tuple[int, bool]]:
    """The (quarter turns, mirrored) pairs of an ensemble of `size` copies."""
    if size == 1:
        return [(0, False)]
    if size == 2:
        return [(0, False), (0, True)]
    if size == 4:
        # a half turn is the up-down flip of the left-right mirror image
        return [(0, False), (0, True), (2, False), (2, True)]
    if size == 8:
        return [(turns, mirrored) for turns in range(4) for mirrored in (False, True)]
    raise ValueError(f"self-ensemble size must be one of {ENSEMBLE_SIZES}, got {size}")


def _forward(image: Tensor, turns: int, mirrored: bool) -> Tensor:
    """Mirror left-right (if asked), then turn by `turns` quarter turns: (N, C, H, W) ->
    (N, C, H, W), or (N, C, W, H) after an odd number of turns."""
    flipped = image.flip(-1) if mirrored else image
    return torch.rot90(flipped, turns, dims=(-2, -1)) if turns else flipped


def _inverse(image: Tensor, turns: int, mirrored: bool) -> Tensor:
    """Undo `_forward`: turn back, then mirror back."""
    turned = torch.rot90(image, -turns, dims=(-2, -1)) if turns else image
    return turned.flip(-1) if mirrored else turned


def self_ensemble(fn: TileFn, size: int) -> TileFn:
    """`fn` averaged over `size` (1, 2, 4 or 8) flipped and turned copies of its input.

    `fn` must map (N, C, H, W) to (N, C', H, W) for any H and W (an odd number of quarter
    turns swaps them). Size 1 returns `fn` itself.

    Raises:
        ValueError: a size other than 1, 2, 4 or 8.
    """
    transforms = _transforms(size)
    if size == 1:
        return fn

    def averaged(tiles: Tensor) -> Tensor:
        total: Tensor | None = None
        for turns, mirrored in transforms:
            restored = _inverse(fn(_forward(tiles, turns, mirrored)), turns, mirrored)
            # accumulate in float32 at least: bf16 sums of 8 copies would lose ~3 bits
            restored = restored.to(torch.promote_types(restored.dtype, torch.float32))
            total = restored if total is None else total + restored
        assert total is not None
        return total / len(transforms)

    return averaged
