"""`swintormer deblur --defocus-map`: the map in the service's format, or a clear refusal;
`--refine-blur` / `--no-refine-blur` with a model that estimates the blur, and without one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.defocus_map import decode_defocus_map
from swintormer.cli import main
from tests import sample_images
from tests.defocus_restorer import save_tiny_defocus_restorer
from tests.factories import save_tiny_checkpoint

TILING = ["--device", "cpu", "--tile-px", "64", "--overlap-px", "16", "--batch", "2"]


@pytest.fixture(scope="module")
def defocus_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny-defocus.safetensors"
    return save_tiny_defocus_restorer(path)


@pytest.fixture
def blurry(tmp_path: Path) -> Path:
    path = tmp_path / "blurry.png"
    path.write_bytes(sample_images.png_rgb(90, 70))
    return path


def test_writes_the_map_and_prints_the_blur(
    tmp_path: Path, blurry: Path, defocus_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output, defocus = tmp_path / "sharp.png", tmp_path / "map.png"
    arguments = ["deblur", str(blurry), "-o", str(output), "--checkpoint", str(defocus_checkpoint)]
    assert main([*arguments, *TILING, "--defocus-map", str(defocus)]) == 0
    with Image.open(defocus) as image:
        assert image.size == (90, 70)
        assert image.mode.startswith("I")
    radius = decode_defocus_map(defocus.read_bytes())
    assert np.isfinite(radius).all()
    assert radius.min() >= 0
    printed = capsys.readouterr().out
    assert "estimated blur: median radius" in printed
    assert f"wrote {defocus}" in printed


def test_a_model_without_front_end_is_refused(
    tmp_path: Path, blurry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.safetensors")
    output, defocus = tmp_path / "sharp.png", tmp_path / "map.png"
    arguments = ["deblur", str(blurry), "-o", str(output), "--checkpoint", str(checkpoint)]
    assert main([*arguments, *TILING, "--defocus-map", str(defocus)]) == 1
    assert "has no defocus front end" in capsys.readouterr().out
    assert not output.exists()
    assert not defocus.exists()


def test_the_map_must_be_a_png(
    tmp_path: Path, blurry: Path, defocus_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["deblur", str(blurry), "-o", str(tmp_path / "sharp.png")]
    defocus = ["--checkpoint", str(defocus_checkpoint), "--defocus-map", str(tmp_path / "m.jpg")]
    assert main([*arguments, *defocus]) == 1
    assert "the defocus map is a PNG" in capsys.readouterr().out


def test_the_blur_is_refined_when_asked(
    tmp_path: Path, blurry: Path, defocus_checkpoint: Path
) -> None:
    arguments = ["deblur", str(blurry), "--checkpoint", str(defocus_checkpoint), *TILING]
    runs = {}
    for choice in ("--refine-blur", "--no-refine-blur", None):
        output, defocus = tmp_path / f"{choice}.png", tmp_path / f"{choice}-map.png"
        chosen = [choice] if choice else []
        assert main([*arguments, "-o", str(output), "--defocus-map", str(defocus), *chosen]) == 0
        runs[choice] = (np.asarray(Image.open(output)), decode_defocus_map(defocus.read_bytes()))
    refined, single = runs["--refine-blur"], runs["--no-refine-blur"]
    assert not np.array_equal(refined[0], single[0])
    assert not np.allclose(refined[1], single[1])
    np.testing.assert_array_equal(runs[None][0], single[0])  # the setting's default: once


def test_refining_is_refused_for_a_model_that_estimates_no_blur(
    tmp_path: Path, blurry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.safetensors")
    output = tmp_path / "sharp.png"
    arguments = ["deblur", str(blurry), "-o", str(output), "--checkpoint", str(checkpoint)]
    assert main([*arguments, *TILING, "--refine-blur"]) == 1
    assert "does not estimate the blur" in capsys.readouterr().out
    assert not output.exists()
    assert main([*arguments, *TILING]) == 0  # the default refines only where it can
