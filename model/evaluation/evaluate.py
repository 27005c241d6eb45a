"""The evaluation harness: any image -> image callable, scored beside the classical baselines.

`evaluate(fn, cases)` runs `fn` on every case's blurred image and scores PSNR / SSIM (RGB,
16 px border excluded, `model.evaluation.metrics`) per group: one group per (blur radius, noise)
cell on the synthetic set, one group for real data such as DPDD. `baseline_results` gives the
rows every table carries:

* input: the blurred image itself (the floor);
* Wiener (oracle): true PSF and, per cell, the balance that maximises that cell's mean PSNR
  over `WIENER_BALANCES` (it sees the ground truth: an upper bound for Wiener, not a method);
* Richardson-Lucy: true PSF, 30 iterations;
* unsharp mask: blind, sigma 2 px, amount 1;
* on spatially varying (layered) cases: the best single-radius Wiener per image (oracle radius
  among the true layer radii and oracle balance).

Methods that need the true PSF are left out of groups without one (real data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model.evaluation.baselines import richardson_lucy, unsharp_mask, wiener, wiener_sweep
from model.evaluation.cases import EvalCase
from model.evaluation.metrics import BORDER_PX, psnr, ssim
from model.evaluation.model_rows import estimate_radius
from model.psf import disk_psf
from model.restorer import Restorer
from model.tiling import TileSettings

# Balances tried per cell by the oracle Wiener filter (log-spaced, 1e-6 .. 1e-1, 4 a decade).
WIENER_BALANCES = tuple(float(b) for b in np.logspace(-6, -1, 21))

ImageFn = Callable[[np.ndarray], np.ndarray]
CaseFn = Callable[[EvalCase], np.ndarray]


@dataclass(frozen=True)
class CaseScore:
    """Scores of one method on one case."""

    image_name: str
    group: str
    psnr_db: float
    ssim: float


@dataclass
class MethodResult:
    """Scores of one method (a table row) over every case it ran on.

    notes: per-group facts worth printing (e.g. the Wiener balance chosen for that cell).
    """

    method: str
    scores: list[CaseScore]
    notes: dict[str, str] = field(default_factory=dict)

    def groups(self) -> list[str]:
        """Groups in first-seen order."""
        return list(dict.fromkeys(s.group for s in self.scores))

    def mean(self, group: str | None = None) -> tuple[float, float]:
        """(mean PSNR dB, mean SSIM) over one group, or over all cases when `group` is None."""
        chosen = [s for s in self.scores if group is None or s.group == group]
        if not chosen:
            return math.nan, math.nan
        return (
            float(np.mean([s.psnr_db for s in chosen])),
            float(np.mean([s.ssim for s in chosen])),
        )


def _check_output(restored: np.ndarray, case: EvalCase) -> np.ndarray:
    if restored.shape != case.sharp.shape:
        raise ValueError(
            f"method returned {restored.shape} for {case.image_name} ({case.group}); "
            f"expected {case.sharp.shape}"
        )
    return restored


def _score(method: CaseFn, case: EvalCase) -> CaseScore:
    restored = _check_output(method(case), case)
    return CaseScore(
        case.image_name, case.group, psnr(restored, case.sharp), ssim(restored, case.sharp)
    )


def evaluate_cases(method: CaseFn, cases: Sequence[EvalCase], name: str) -> MethodResult:
    """Score `method` (which sees the whole case, e.g. its PSF) on every case."""
    return MethodResult(name, [_score(method, case) for case in cases])


def evaluate_stream(
    methods: Sequence[tuple[str, CaseFn]], cases: Iterable[EvalCase]
) -> list[MethodResult]:
    """Score several methods case by case, so only one case is in memory (large real sets)."""
    results = [MethodResult(name, []) for name, _ in methods]
    for case in cases:
        for result, (_, method) in zip(results, methods, strict=True):
            result.scores.append(_score(method, case))
    return results


def evaluate(fn: ImageFn, cases: Sequence[EvalCase], name: str = "model") -> MethodResult:
    """Score an image -> image callable on every case.

    Args:
        fn: maps a blurred (H, W, 3) float32 image in [0, 1] to a restored (H, W, 3) one.
        cases: the evaluation set (`model.evaluation.cases.synthetic_cases`, or DPDD cases).
        name: the row label.
    """
    return evaluate_cases(lambda case: fn(case.blurry), cases, name)


def _with_psf(cases: Sequence[EvalCase]) -> list[EvalCase]:
    return [c for c in cases if c.psf is not None]


def _true_psf(case: EvalCase) -> np.ndarray:
    if case.psf is None:
        raise ValueError(f"{case.image_name} ({case.group}) has no known PSF")
    return case.psf


def oracle_wiener(
    cases: Sequence[EvalCase], balances: Sequence[float] = WIENER_BALANCES
) -> MethodResult:
    """Wiener with the true PSF and, per group, the balance giving the best mean PSNR."""
    known = _with_psf(cases)
    result = MethodResult("Wiener (oracle PSF + balance)", [])
    for group in dict.fromkeys(c.group for c in known):
        members = [c for c in known if c.group == group]
        # psnr[i, j]: case i restored with balance j; SSIM only for the chosen balance.
        table = np.array(
            [
                [psnr(r, c.sharp) for r in wiener_sweep(c.blurry, _true_psf(c), balances)]
                for c in members
            ]
        )
        balance = balances[int(np.argmax(table.mean(axis=0)))]
        chosen = evaluate_cases(
            lambda c, b=balance: wiener(c.blurry, _true_psf(c), b),  # type: ignore[misc]
            members,
            "",
        )
        result.scores += chosen.scores
        result.notes[group] = f"balance {balance:.2g}"
    return result


def single_radius_wiener(
    cases: Sequence[EvalCase], balances: Sequence[float] = WIENER_BALANCES[::2]
) -> MethodResult:
    """Spatially varying cases: per image, the best Wiener deconvolution with one disk.

    The radius (one of the image's true layer radii) and the balance are chosen per image by
    PSNR against the ground truth: the best any single-radius deconvolution can do there.
    """
    result = MethodResult("Wiener, best single radius per image (oracle)", [])
    for case in cases:
        best: tuple[float, np.ndarray] | None = None
        for radius in case.layer_radii_px:
            for restored in wiener_sweep(case.blurry, disk_psf(radius), balances):
                score = psnr(restored, case.sharp)
                if best is None or score > best[0]:
                    best = (score, restored)
        assert best is not None
        result.scores.append(
            CaseScore(case.image_name, case.group, best[0], ssim(best[1], case.sharp))
        )
    return result


def baseline_results(cases: Sequence[EvalCase]) -> list[MethodResult]:
    """The input, oracle Wiener, Richardson-Lucy, single-radius Wiener and unsharp-mask rows."""
    known = _with_psf(cases)
    layered = [c for c in cases if c.layer_radii_px]
    rows = [evaluate(lambda image: image, cases, "input (blurred)")]
    if known:
        rows.append(oracle_wiener(known))
        rows.append(
            evaluate_cases(
                lambda c: richardson_lucy(c.blurry, _true_psf(c)),
                known,
                "Richardson-Lucy (true PSF, 30 it.)",
            )
        )
    if layered:
        rows.append(single_radius_wiener(layered))
    rows.append(evaluate(unsharp_mask, cases, "unsharp mask"))
    return rows


def markdown_table(results: Sequence[MethodResult], metric: str = "psnr") -> str:
    """One row per method, one column per group plus the mean over all cases.

    Args:
        metric: "psnr" (dB, 2 decimals) or "ssim" (4 decimals).
    """
    if metric not in ("psnr", "ssim"):
        raise ValueError(f"metric must be 'psnr' or 'ssim', got {metric!r}")
    which = 0 if metric == "psnr" else 1
    digits = 2 if metric == "psnr" else 4
    groups = list(dict.fromkeys(g for r in results for g in r.groups()))
    header = ["method", *groups, "mean"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for result in results:
        cells = [result.method]
        for group in groups:
            value = result.mean(group)[which]
            cells.append("—" if math.isnan(value) else f"{value:.{digits}f}")
        cells.append(f"{result.mean()[which]:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_markdown(results: Sequence[MethodResult], title: str) -> str:
    """PSNR and SSIM tables with a note on how they were computed."""
    notes = [
        f"- {r.method}: " + "; ".join(f"{g}: {n}" for g, n in r.notes.items())
        for r in results
        if r.notes
    ]
    parts = [
        f"## {title}",
        "",
        f"PSNR (dB), RGB, {BORDER_PX} px border excluded, mean over images:",
        "",
        markdown_table(results, "psnr"),
        "",
        "SSIM (RGB, mean over channels and images):",
        "",
        markdown_table(results, "ssim"),
    ]
    if notes:
        parts += ["", *notes]
    return "\n".join(parts) + "\n"


def report_json(results: Sequence[MethodResult], metadata: dict[str, Any]) -> dict[str, Any]:
    """Everything: per-group means, per-image scores and notes, plus the caller's metadata."""
    return {
        "metadata": metadata,
        "border_px": BORDER_PX,
        "methods": [
            {
                "method": r.method,
                "mean": dict(zip(("psnr_db", "ssim"), r.mean(), strict=True)),
                "groups": {
                    g: dict(zip(("psnr_db", "ssim"), r.mean(g), strict=True)) for g in r.groups()
                },
                "notes": r.notes,
                "scores": [vars(s) for s in r.scores],
            }
            for r in results
        ],
    }


def radius_errors(
    restorer: Restorer,
    cases: Sequence[EvalCase],
    tiles: TileSettings,
    device: torch.device | str = "cpu",
    refine_blur: bool = False,
) -> dict[str, dict[str, float]]:
    """The blur estimator (with `refine_blur`: the refined map) against the true radius maps,
    per group (border excluded).

    Returns:
        group -> {"mae_px": mean absolute radius error, "mean_estimate_px", "mean_true_px"}.
    """
    errors: dict[str, list[tuple[float, float, float]]] = {}
    inner = (slice(BORDER_PX, -BORDER_PX), slice(BORDER_PX, -BORDER_PX))
    for case in cases:
        if case.radius_map is None:
            continue
        estimate = estimate_radius(restorer, case.blurry, tiles, device, refine_blur)[inner]
        truth = case.radius_map[inner]
        errors.setdefault(case.group, []).append(
            (float(np.abs(estimate - truth).mean()), float(estimate.mean()), float(truth.mean()))
        )
    return {
        group: {
            "mae_px": float(np.mean([e[0] for e in rows])),
            "mean_estimate_px": float(np.mean([e[1] for e in rows])),
            "mean_true_px": float(np.mean([e[2] for e in rows])),
        }
        for group, rows in errors.items()
    }


def radius_error_markdown(errors: dict[str, dict[str, float]], what: str = "Blur estimator") -> str:
    """The estimator's (or the refined map's) error table: one column per group."""
    groups = list(errors)
    lines = [
        f"{what} against the true radius map (px, deployed tiles, border excluded):",
        "",
        "| | " + " | ".join(groups) + " |",
        "|---|" + "---:|" * len(groups),
    ]
    for key, label in (
        ("mae_px", "mean absolute error"),
        ("mean_estimate_px", "mean estimate"),
        ("mean_true_px", "mean true radius"),
    ):
        lines.append(f"| {label} | " + " | ".join(f"{errors[g][key]:.2f}" for g in groups) + " |")
    return "\n".join(lines) + "\n"
