"""How boundary handling changes the oracle Wiener baseline on the synthetic evaluation set.

    python -m bench.wiener_boundaries

Rows: circular (the FFT's periodic image, no padding), symmetric padding, symmetric padding +
edge taper (what `model.evaluation.baselines.wiener` does). Each cell: the best mean PSNR (dB)
over the oracle's balance grid, 12 photos.
"""

from __future__ import annotations

import numpy as np

from model.data.degrade import crop_planar, reflect_pad_planar, transfer_function
from model.evaluation.baselines import EDGE_PAD_PX, LAPLACIAN, edge_taper
from model.evaluation.cases import EvalCase, load_eval_photos, synthetic_cases
from model.evaluation.evaluate import WIENER_BALANCES
from model.evaluation.metrics import psnr

MODES = ("circular", "symmetric padding", "padding + edge taper")


def sweep(case: EvalCase, psf: np.ndarray, mode: str) -> list[float]:
    """PSNR of Laplacian-regularised Wiener at every balance, with one boundary handling."""
    if mode == "circular":
        margin = 0
        padded = np.moveaxis(case.blurry, 2, 0).astype(np.float64)
    else:
        margin = EDGE_PAD_PX + psf.shape[0] // 2
        padded = reflect_pad_planar(case.blurry, margin)
    shape = padded.shape[1:]
    otf = transfer_function(psf, shape)
    if mode == "padding + edge taper":
        padded = edge_taper(padded, otf, margin, case.blurry.shape[:2])
    spectrum = np.fft.rfft2(padded) * np.conj(otf)
    power = np.abs(otf) ** 2
    regulariser = np.abs(transfer_function(LAPLACIAN, shape)) ** 2
    scores = []
    for balance in WIENER_BALANCES:
        restored = np.fft.irfft2(spectrum / (power + balance * regulariser), s=shape)
        scores.append(psnr(np.clip(crop_planar(restored, margin, case.blurry), 0, 1), case.sharp))
    return scores


def main() -> None:
    cases = synthetic_cases(load_eval_photos())
    groups = list(dict.fromkeys(c.group for c in cases))
    print("| Wiener boundary handling | " + " | ".join(groups) + " | mean |")
    print("|---|" + "---:|" * (len(groups) + 1))
    for mode in MODES:
        best = []
        for group in groups:
            members = [c for c in cases if c.group == group and c.psf is not None]
            table = np.array([sweep(c, c.psf, mode) for c in members if c.psf is not None])
            best.append(float(table.mean(axis=0).max()))
        cells = " | ".join(f"{b:.2f}" for b in best)
        print(f"| {mode} | {cells} | {np.mean(best):.2f} |", flush=True)


if __name__ == "__main__":
    main()
