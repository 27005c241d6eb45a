"""bench/bank_ceiling.py: the grids it builds and the true-map blends it scores (small crops)."""

from __future__ import annotations

import itertools

import pytest

from bench.bank_ceiling import best_per_group, exact_wiener, geometric_radii, true_map_blends
from model.config import DefocusConfig
from model.evaluation.cases import EVAL_PHOTOS, load_eval_photos, synthetic_cases
from model.evaluation.evaluate import evaluate


def test_geometric_radii_span_in_focus_to_the_largest() -> None:
    radii = geometric_radii(24, 12.5)
    assert len(radii) == 24
    assert radii[:2] == (0.0, 0.45)
    assert radii[-1] == 12.5
    assert list(radii) == sorted(set(radii))
    steps = [b / a for a, b in itertools.pairwise(radii[1:])]
    assert max(steps) - min(steps) < 0.03  # one relative step, up to the 0.01 px rounding
    with pytest.raises(ValueError, match="at least 3"):
        geometric_radii(2, 12.5)


def test_true_map_blend_on_a_bank_radius_restores_like_wiener() -> None:
    """A disk on one of the bank's radii, no noise: the true-map blend is that candidate, so
    it must gain several dB and land near Wiener with the same disk and balance."""
    photos = load_eval_photos(EVAL_PHOTOS[:1], crop_px=128)
    cases = synthetic_cases(photos, radii_px=(3.2, 4.1), noise_sigmas=(0.0,))
    config = DefocusConfig()
    rows = true_map_blends(config, cases, "bank")
    assert [r.method for r in rows] == [
        "bank, true map, balance 0.0003",
        "bank, true map, balance 0.01",
        "bank, true map, better balance per cell",
    ]
    blurred = evaluate(lambda image: image, cases, "input")
    wiener_rows = exact_wiener(config.balances, cases)
    for group in ("r=3.2 σ=0", "r=4.1 σ=0"):
        weak = rows[0].mean(group)[0]
        assert weak > blurred.mean(group)[0] + 3.0
        assert abs(weak - wiener_rows[0].mean(group)[0]) < 1.0
        assert rows[-1].mean(group)[0] == max(r.mean(group)[0] for r in rows[:2])


def test_a_wrong_disk_restores_worse_than_the_true_one() -> None:
    photos = load_eval_photos(EVAL_PHOTOS[:1], crop_px=128)
    cases = synthetic_cases(photos, radii_px=(3.0,), noise_sigmas=(0.0,))
    true, wrong = (exact_wiener((3e-4,), cases, scale)[-1] for scale in (1.0, 1.25))
    assert wrong.method == "Wiener, disk r x 1.25, better bank balance per cell"
    assert true.mean()[0] > wrong.mean()[0] + 2.0


def test_best_per_group_takes_each_group_from_its_best_row() -> None:
    photos = load_eval_photos(EVAL_PHOTOS[:1], crop_px=64)
    cases = synthetic_cases(photos, radii_px=(1.5, 3.0), noise_sigmas=(0.0,))
    identity = evaluate(lambda image: image, cases, "input")
    dark = evaluate(lambda image: image * 0.5, cases, "dark")
    best = best_per_group([dark, identity], "best")
    assert best.mean() == identity.mean()
    assert set(best.notes.values()) == {"input"}
