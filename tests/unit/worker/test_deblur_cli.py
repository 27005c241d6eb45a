"""`swintormer deblur`: any size, EXIF orientation applied, alpha kept, progress shown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from swintormer.cli import main
from tests.factories import save_tiny_checkpoint

EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6  # the stored pixels must be turned 90 degrees clockwise to stand upright


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    return save_tiny_checkpoint(tmp_path / "tiny.safetensors", with_prior=False)


def test_restores_upright_with_alpha_and_progress(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, size=(70, 130, 4), dtype=np.uint8)  # H=70, W=130 as stored
    image = Image.fromarray(stored, mode="RGBA")
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    source = tmp_path / "blurry.png"
    image.save(source, exif=exif)
    output = tmp_path / "restored.png"
    arguments = ["deblur", str(source), "-o", str(output), "--checkpoint", str(tiny_checkpoint)]
    assert main([*arguments, "--tile-px", "64", "--overlap-px", "16", "--batch", "2"]) == 0
    with Image.open(output) as restored:
        assert restored.mode == "RGBA"
        assert restored.size == (70, 130)  # upright: width and height swapped
        upright_alpha = np.rot90(stored[..., 3], k=-1)
        assert np.array_equal(np.asarray(restored.getchannel("A")), upright_alpha)
    captured = capsys.readouterr()
    assert "tiles" in captured.err
    assert captured.err.rstrip().endswith("tiles")


def test_dual_pixel_network_needs_the_other_view(tmp_path: Path) -> None:
    checkpoint = tmp_path / "dual.safetensors"
    save_tiny_checkpoint(checkpoint, with_prior=False, in_channels=6)
    right, left = tmp_path / "right.png", tmp_path / "left.png"
    Image.new("RGB", (20, 10), (10, 20, 30)).save(right)
    Image.new("RGB", (20, 10), (40, 50, 60)).save(left)
    output = tmp_path / "out.png"
    arguments = ["deblur", str(right), "-o", str(output), "--checkpoint", str(checkpoint)]
    assert main(arguments) == 1
    assert main([*arguments, "--left-view", str(left)]) == 0
    with Image.open(output) as restored:
        assert restored.size == (20, 10)
        assert restored.mode == "RGB"


def test_bad_settings_and_missing_weights_are_reported(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (8, 8)).save(source)
    output = str(tmp_path / "out.png")
    bad = ["deblur", str(source), "-o", output, "--checkpoint", str(tiny_checkpoint)]
    assert main([*bad, "--overlap-px", "300"]) == 1
    assert "overlap_px" in capsys.readouterr().out
    assert main(["deblur", str(source), "-o", output, "--checkpoint", str(source)]) == 1
    assert "not a safetensors checkpoint" in capsys.readouterr().out


def test_a_self_ensemble_is_asked_for_by_its_size(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.png"
    pixels = np.random.default_rng(1).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(source)
    arguments = ["deblur", str(source), "--checkpoint", str(tiny_checkpoint), "-o"]
    assert main([*arguments, str(tmp_path / "bad.png"), "--self-ensemble", "3"]) == 1
    assert "self_ensemble must be one of 1, 2, 4, 8 (got 3)" in capsys.readouterr().out
    outputs = {size: tmp_path / f"x{size}.png" for size in (1, 8)}
    for size, output in outputs.items():
        assert main([*arguments, str(output), "--self-ensemble", str(size)]) == 0
    one, eight = (np.asarray(Image.open(output)) for output in outputs.values())
    assert one.shape == eight.shape == (40, 56, 3)
    assert not np.array_equal(one, eight)
