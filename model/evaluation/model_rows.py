"""A checkpoint as evaluation rows: the model as deployed, and its ablations.

The deployed path is `model.restorer.load_restorer` + `model.tiling.restore_tiled` (what the
worker and `swintormer deblur` run), wrapped as a (blurry image, true radius map) -> restored
callable for the harness. Ablation rows change one thing each:

* prior off: the same network with z = None (only where the checkpoint has a prior; a network
  trained with its prior is not expected to work well without it — the row shows how much the
  prior carries, not a fair "no prior" model, which needs its own training run);
* T = 1, 2, 4, 8: sampling steps of the prior, those up to the T it was trained with;
* with the defocus front end: the true radius map fed in instead of the estimate (how much a
  perfect estimator would add), uniform weights over the bank instead of the estimator (how much
  the estimator carries), and the blend alone without the network (how much the refinement adds);
* tiles: the released uniform-mean tiling (256 px, stride 220) and the whole image at once,
  beside the default feathered tiles;
* blur refinement (`model.reblur`, two passes): the deployed choice's opposite.

A self-ensemble row (`model.self_ensemble`: every tile restored as 2, 4 or 8 flipped and turned
copies, averaged) follows the deployed row when asked for, so its gain and the deployed score
come from one run.

The prior's noise is the deployed default (`Restorer.restore` with no generator: one generator
per tile, seeded with `model.restorer.DEFAULT_SEED`), so every row is reproducible, matches
what the worker returns for the same pixels, and rows differ only in what they ablate.

`estimate_radius` runs the front end alone on the deployed tiles and returns its radius map,
for the estimator's error table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from model.defocus import FrontEndOutput
from model.restorer import Restorer
from model.self_ensemble import self_ensemble
from model.tiling import RELEASED_TILING, TileSettings, restore_tiled

ABLATION_STEPS = (1, 2, 4, 8)

# (blurry (H, W, C_in), true radius map (H, W) or None) -> restored (H, W, 3)
RowFn = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


class FrontMode(enum.Enum):
    """Where the front end's blend weights come from."""

    ESTIMATED = "estimated"  # the blur estimator (deployed)
    TRUE_MAP = "true map"  # the case's true radius map
    UNIFORM = "uniform"  # no estimator: every candidate weighted equally


@dataclass(frozen=True)
class ModelRow:
    """One way of running the checkpoint.

    label: the table row. use_prior: run the prior (if the checkpoint has one).
    steps: prior sampling steps (None = the trained T). tiles: tiling, or None = whole image.
    front: the blend weights (with a front end). blend_only: return the blend, no network.
    ensemble: copies per tile averaged by `model.self_ensemble` (1 = the tile alone).
    refine_blur: restore twice, the second pass with the estimate updated by re-blurring the
        first (`model.reblur`); only with the estimated blur and the network.
    """

    label: str
    use_prior: bool
    steps: int | None
    tiles: TileSettings | None
    front: FrontMode = FrontMode.ESTIMATED
    blend_only: bool = False
    ensemble: int = 1
    refine_blur: bool = False


def model_rows(
    restorer: Restorer,
    name: str,
    tiles: TileSettings,
    ablations: bool,
    ensembles: Sequence[int] = (),
    refine_blur: bool = False,
) -> list[ModelRow]:
    """The deployed row; for each of `ensembles` above 1 the same averaged over that many
    copies per tile; then (with `ablations`) one row per ablation the checkpoint supports.

    `refine_blur` is the deployed path's blur refinement (with a front end only): the rows that
    run the estimated blur through the network do it too, and an ablation row shows the other
    choice.
    """
    has_prior = restorer.prior is not None
    trained_steps = restorer.prior.config.steps if restorer.prior is not None else None
    refine = refine_blur and restorer.defocus is not None
    prior_note = f"prior T={trained_steps}" if has_prior else "no prior"
    passes = ", blur refined" if refine else ""
    rows = [
        ModelRow(
            f"{name} ({prior_note}{passes}, feathered tiles)", True, None, tiles, refine_blur=refine
        )
    ]
    for ensemble in ensembles:
        if ensemble > 1:
            label = f"{name}: self-ensemble x{ensemble} ({prior_note}{passes}, feathered tiles)"
            rows.append(ModelRow(label, True, None, tiles, ensemble=ensemble, refine_blur=refine))
    if not ablations:
        return rows
    if has_prior and trained_steps is not None:
        rows.append(ModelRow(f"{name}: prior off", False, None, tiles, refine_blur=refine))
        rows += [
            ModelRow(f"{name}: prior T={steps}", True, steps, tiles, refine_blur=refine)
            for steps in ABLATION_STEPS
            if steps <= trained_steps and steps != trained_steps
        ]
    if restorer.defocus is not None:
        other = "one pass (blur not refined)" if refine else "blur refined (two passes)"
        rows.append(ModelRow(f"{name}: {other}", True, None, tiles, refine_blur=not refine))
        rows += [
            ModelRow(f"{name}: true radius map fed in", True, None, tiles, FrontMode.TRUE_MAP),
            ModelRow(
                f"{name}: no estimator (uniform weights)", True, None, tiles, FrontMode.UNIFORM
            ),
            ModelRow(f"{name}: blend alone (estimated)", True, None, tiles, blend_only=True),
            ModelRow(
                f"{name}: blend alone (true radius map)",
                True,
                None,
                tiles,
                FrontMode.TRUE_MAP,
                blend_only=True,
            ),
        ]
    released = TileSettings(
        RELEASED_TILING.tile_px, RELEASED_TILING.overlap_px, tiles.batch, RELEASED_TILING.blend
    )
    rows.append(
        ModelRow(f"{name}: released uniform tiles", True, None, released, refine_blur=refine)
    )
    rows.append(ModelRow(f"{name}: whole image", True, None, None, refine_blur=refine))
    return rows


def _front(
    restorer: Restorer, mode: FrontMode, image: Tensor, radius: Tensor | None
) -> FrontEndOutput | None:
    """The front end's output for a batch of tiles under `mode`."""
    if restorer.defocus is None:
        return None
    if mode is FrontMode.UNIFORM:
        return restorer.defocus.uniform(image)
    if mode is FrontMode.TRUE_MAP:
        if radius is None:
            raise ValueError("the true-radius-map row needs cases with a known radius map")
        return restorer.defocus(image, radius_px=radius)
    return restorer.defocus(image)


def _run_tiled(
    fn: Callable[[Tensor], Tensor],
    stacked: Tensor,
    tiles: TileSettings | None,
    out_channels: int,
) -> Tensor:
    if tiles is None:
        return fn(stacked)
    return restore_tiled(fn, stacked, tiles, out_channels=out_channels)


def _stack(image: np.ndarray, radius: np.ndarray | None, device: torch.device | str) -> Tensor:
    """(1, C_in [+ 1], H, W): the image with the radius map (if any) as one more channel, so the
    map is tiled exactly like the image."""
    planes = [torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)]
    if radius is not None:
        planes.append(torch.from_numpy(np.ascontiguousarray(radius, np.float32))[None])
    return torch.cat(planes)[None].to(device)


def restorer_fn(restorer: Restorer, row: ModelRow, device: torch.device | str = "cpu") -> RowFn:
    """A (blurry, true radius map) -> restored callable running `restorer` as `row` says.

    Blurry is (H, W, C_in) float32 in [0, 1]; the map (H, W) in px or None (only the true-map
    rows need it); the result (H, W, 3) float32 clamped to [0, 1].
    """
    model = restorer if row.use_prior else Restorer(restorer.network, None, restorer.defocus)
    channels = restorer.image_channels

    def run_tiles(stacked: Tensor) -> Tensor:
        image = stacked[:, :channels]
        if row.refine_blur:
            return model.run(image, row.steps, refine_blur=True).restored
        radius = stacked[:, channels:] if stacked.shape[1] > channels else None
        front = _front(model, row.front, image, radius)
        if row.blend_only:
            if front is None:
                raise ValueError("the blend-alone rows need a checkpoint with the front end")
            return front.blend
        return model.run(image, row.steps, front=front).restored

    tile_fn = self_ensemble(run_tiles, row.ensemble)

    def fn(image: np.ndarray, radius: np.ndarray | None) -> np.ndarray:
        needs_map = row.front is FrontMode.TRUE_MAP
        stacked = _stack(image, radius if needs_map else None, device)
        with torch.inference_mode():
            restored = _run_tiled(tile_fn, stacked, row.tiles, 3)
        return restored[0].clamp(0.0, 1.0).permute(1, 2, 0).float().cpu().numpy()

    return fn


def estimate_radius(
    restorer: Restorer,
    image: np.ndarray,
    tiles: TileSettings,
    device: torch.device | str = "cpu",
    refine_blur: bool = False,
) -> np.ndarray:
    """The front end's radius map (H, W) in px for a blurry (H, W, 3) image, tiled as deployed;
    with `refine_blur` the map a first restoration refines it to (`model.reblur`: the whole
    model runs)."""
    if restorer.defocus is None:
        raise ValueError("this checkpoint has no defocus front end")
    defocus = restorer.defocus

    def run_tiles(tile: Tensor) -> Tensor:
        if refine_blur:
            refined = restorer.run(tile, refine_blur=True).radius_px
            assert refined is not None  # a front end estimates one
            return refined
        return defocus(tile).radius_px

    with torch.inference_mode():
        radius = restore_tiled(run_tiles, _stack(image, None, device), tiles, out_channels=1)
    return radius[0, 0].float().cpu().numpy()
