"""Per-pixel defocus radii that `model.data.degrade.BlurDistribution` produces, beside DPDD's.

    python -m bench.blur_radii [--scenes 400]

Each pixel's radius is that of the nearest layer covering it (alpha > 0.5). DPDD at ~1 MP:
radii 0.5-8 px, median ~3 px, with in-focus regions (the target this distribution is set to).
"""

from __future__ import annotations

import argparse

import numpy as np

from model.data.dead_leaves import DeadLeavesSettings, dead_leaves
from model.data.degrade import BlurDistribution, LayeredScene, photo_scene


def visible_radii(scene: LayeredScene, radii: np.ndarray) -> np.ndarray:
    """|radius| of the nearest layer with alpha > 0.5 at each pixel, flattened."""
    visible = np.zeros(scene.alphas.shape[1:], np.int64)
    for layer in range(1, len(radii)):
        visible[scene.alphas[layer] > 0.5] = layer
    return np.abs(radii[visible]).ravel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    blur = BlurDistribution()
    photo = np.zeros((96, 128, 3), np.float32)
    leaves = DeadLeavesSettings(size_px=96, background_leaves=1500, leaves_per_layer=30)
    print("| scenes | p5 | p25 | median | p75 | p95 | in focus (< 0.5 px) | > 8 px |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, make in (
        ("photos (4 depth bands)", lambda: photo_scene(photo, rng)),
        ("dead leaves (4 layers)", lambda: dead_leaves(rng, None, leaves)),
    ):
        samples = []
        for _ in range(args.scenes):
            scene = make()
            samples.append(visible_radii(scene, blur.layer_radii(scene.depths, rng)))
        r = np.concatenate(samples)
        p5, p25, p50, p75, p95 = np.percentile(r, [5, 25, 50, 75, 95])
        print(
            f"| {label} | {p5:.2f} | {p25:.2f} | {p50:.2f} | {p75:.2f} | {p95:.2f} | "
            f"{(r < 0.5).mean():.1%} | {(r > 8).mean():.1%} |"
        )


if __name__ == "__main__":
    main()
