"""A checkpoint as evaluation rows: the model as deployed, and its ablations.

The deployed path is `model.restorer.load_restorer` + `model.tiling.restore_tiled` (what the
worker and `swintormer deblur` run), wrapped as an image -> image callable for
`model.evaluation.evaluate.evaluate`. Ablation rows change one thing each:

* prior off: the same network with z = None (only where the checkpoint has a prior; a network
  trained with its prior is not expected to work well without it — the row shows how much the
  prior carries, not a fair "no prior" model, which needs its own training run);
* T = 1, 2, 4, 8: sampling steps of the prior, those up to the T it was trained with;
* tiles: the released uniform-mean tiling (256 px, stride 220) and the whole image at once,
  beside the default feathered tiles.

The prior's noise is the deployed default (`Restorer.restore` with no generator: one generator
per tile, seeded with `model.restorer.DEFAULT_SEED`), so every row is reproducible, matches
what the worker returns for the same pixels, and rows differ only in what they ablate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from model.restorer import Restorer
from model.tiling import RELEASED_TILING, TileSettings, restore_tiled

ABLATION_STEPS = (1, 2, 4, 8)


@dataclass(frozen=True)
class ModelRow:
    """One way of running the checkpoint.

    label: the table row. use_prior: run the prior (if the checkpoint has one).
    steps: prior sampling steps (None = the trained T). tiles: tiling, or None = whole image.
    """

    label: str
    use_prior: bool
    steps: int | None
    tiles: TileSettings | None


def model_rows(
    restorer: Restorer, name: str, tiles: TileSettings, ablations: bool
) -> list[ModelRow]:
    """The deployed row, then (with `ablations`) one row per ablation the checkpoint supports."""
    has_prior = restorer.prior is not None
    trained_steps = restorer.prior.config.steps if restorer.prior is not None else None
    prior_note = f"prior T={trained_steps}" if has_prior else "no prior"
    rows = [ModelRow(f"{name} ({prior_note}, feathered tiles)", True, None, tiles)]
    if not ablations:
        return rows
    if has_prior and trained_steps is not None:
        rows.append(ModelRow(f"{name}: prior off", False, None, tiles))
        rows += [
            ModelRow(f"{name}: prior T={steps}", True, steps, tiles)
            for steps in ABLATION_STEPS
            if steps <= trained_steps and steps != trained_steps
        ]
    released = TileSettings(
        RELEASED_TILING.tile_px, RELEASED_TILING.overlap_px, tiles.batch, RELEASED_TILING.blend
    )
    rows.append(ModelRow(f"{name}: released uniform tiles", True, None, released))
    rows.append(ModelRow(f"{name}: whole image", True, None, None))
    return rows


def restorer_fn(
    restorer: Restorer, row: ModelRow, device: torch.device | str = "cpu"
) -> Callable[[np.ndarray], np.ndarray]:
    """An image -> image callable running `restorer` as `row` says.

    The callable maps a blurry (H, W, C_in) float32 array in [0, 1] to a restored (H, W, 3)
    float32 array clamped to [0, 1].
    """
    plain = Restorer(restorer.network, None) if not row.use_prior else restorer

    def run_tiles(tiles: Tensor) -> Tensor:
        return plain.restore(tiles, row.steps)

    def fn(image: np.ndarray) -> np.ndarray:
        blurry = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)
        with torch.inference_mode():
            if row.tiles is None:
                restored = run_tiles(blurry)
            else:
                restored = restore_tiled(run_tiles, blurry, row.tiles)
        return restored[0].clamp(0.0, 1.0).permute(1, 2, 0).float().cpu().numpy()

    return fn
