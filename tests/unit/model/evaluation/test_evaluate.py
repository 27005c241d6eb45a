"""The evaluation harness on small generated images (the real set is exercised by the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.data.dead_leaves import DeadLeavesSettings, dead_leaves
from model.data.degrade import composite_defocus
from model.evaluation.cases import (
    EVAL_PHOTOS,
    BundledPhoto,
    EvalSetError,
    centre_crop,
    layered_cases,
    load_eval_photos,
    locate,
    synthetic_cases,
)
from model.evaluation.evaluate import (
    baseline_results,
    evaluate,
    markdown_table,
    report_json,
    report_markdown,
    single_radius_wiener,
)
from model.evaluation.metrics import psnr
from model.psf import disk_psf


def _photos() -> list[tuple[str, np.ndarray]]:
    settings = DeadLeavesSettings(
        size_px=64, background_leaves=600, leaves_per_layer=10, num_layers=2
    )
    photos = []
    for seed in range(2):
        scene = dead_leaves(np.random.default_rng(seed), None, settings)
        photos.append((f"leaves{seed}", composite_defocus(scene, [disk_psf(0.0)] * 2)))
    return photos


def test_synthetic_cases_are_seeded_and_labelled() -> None:
    photos = _photos()
    cases = synthetic_cases(photos, radii_px=(1.5, 3.0), noise_sigmas=(0.0, 0.01), seed=1)
    assert len(cases) == 8
    assert [c.group for c in cases[:3]] == ["r=1.5 σ=0", "r=1.5 σ=0", "r=1.5 σ=0.01"]
    again = synthetic_cases(photos, radii_px=(1.5, 3.0), noise_sigmas=(0.0, 0.01), seed=1)
    for a, b in zip(cases, again, strict=True):
        np.testing.assert_array_equal(a.blurry, b.blurry)
    other = synthetic_cases(photos, radii_px=(1.5,), noise_sigmas=(0.01,), seed=2)
    assert not np.array_equal(other[0].blurry, cases[2].blurry)
    levels = cases[2].blurry * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)


def test_evaluate_scores_a_callable_beside_the_baselines() -> None:
    cases = synthetic_cases(_photos(), radii_px=(1.5, 3.0), noise_sigmas=(0.0, 0.01))
    rows = baseline_results(cases)
    assert [r.method.split(" ")[0] for r in rows] == [
        "input",
        "Wiener",
        "Richardson-Lucy",
        "unsharp",
    ]
    identity = evaluate(lambda image: image, cases, "identity")
    assert identity.mean() == pytest.approx(rows[0].mean())
    assert identity.scores[0].psnr_db == pytest.approx(psnr(cases[0].blurry, cases[0].sharp))
    wiener_row, input_row = rows[1], rows[0]
    for group in input_row.groups():
        assert wiener_row.mean(group)[0] > input_row.mean(group)[0]
    assert set(wiener_row.notes) == set(input_row.groups())
    table = markdown_table([*rows, identity])
    assert "| identity |" in table
    assert "r=3 σ=0.01" in table
    assert table.count("\n") == 2 + len(rows)
    report = report_markdown(rows, "synthetic")
    assert "SSIM" in report
    assert "balance" in report
    encoded = json.loads(json.dumps(report_json(rows, {"set": "test"})))
    assert encoded["methods"][0]["groups"]["r=1.5 σ=0"]["psnr_db"] == pytest.approx(
        input_row.mean("r=1.5 σ=0")[0]
    )
    with pytest.raises(ValueError, match="expected"):
        evaluate(lambda image: image[:-1], cases)


def test_bundled_eval_photos_are_installed_and_cropped() -> None:
    photos = load_eval_photos()
    assert [name for name, _ in photos] == [p.name for p in EVAL_PHOTOS]
    assert len(photos) == 12
    for _, image in photos:
        assert image.dtype == np.float32
        assert image.shape[2] == 3
        assert max(image.shape[:2]) == 384
        assert image.min() >= 0.0
        assert image.max() <= 1.0
    assert centre_crop(np.zeros((300, 500, 3)), 384).shape == (300, 384, 3)
    with pytest.raises(EvalSetError, match="pip install"):
        locate(BundledPhoto("x", "no_such_package_here", "no-such", "x.png"))


def test_eval_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from swintormer.cli import main

    assert main(["eval", "--set", "dpdd"]) == 2
    assert "DPDD root" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", "/no/such.safetensors"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["eval", "--set", "dpdd", "/no/such/dir"]) == 2
    assert "test_c/source" in capsys.readouterr().err


def test_eval_cli_synthetic_baselines_on_two_photos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from swintormer.cli import main

    assert main(["eval", "--limit", "1", "--crop-px", "64", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| input (blurred) |" in out
    assert "Wiener" in out
    assert "r=6 σ=0.01" in out
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["metadata"]["photos"] == ["astronaut"]
    assert (tmp_path / "eval.md").read_text() == out.rstrip("\n") + "\n"


def test_layered_cases_are_fixed_and_carry_true_radius_maps() -> None:
    photos = [("p", np.random.default_rng(0).random((48, 64, 3)).astype(np.float32))]
    cases = layered_cases(photos, (0.0, 0.01), seed=5)
    again = layered_cases(photos, (0.0, 0.01), seed=5)
    assert [c.group for c in cases] == ["layered σ=0", "layered σ=0.01"]
    for case, same in zip(cases, again, strict=True):
        np.testing.assert_array_equal(case.blurry, same.blurry)
        assert case.radius_map is not None
        assert case.radius_map.shape == (48, 64)
        assert case.psf is None
        assert case.layer_radii_px
        assert float(case.radius_map.max()) == pytest.approx(max(case.layer_radii_px), abs=1e-3)
    other = layered_cases(photos, (0.0,), seed=6)[0]
    assert not np.array_equal(other.blurry, cases[0].blurry)


def test_single_radius_wiener_picks_the_best_of_the_true_radii() -> None:
    photos = [("p", np.random.default_rng(1).random((48, 48, 3)).astype(np.float32))]
    case = layered_cases(photos, (0.0,), seed=3)[0]
    row = single_radius_wiener([case], balances=(1e-3, 1e-2))
    assert len(row.scores) == 1
    assert row.scores[0].psnr_db >= psnr(case.blurry, case.sharp) - 1.0
